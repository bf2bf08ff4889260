"""herald-django: live notifications for Django apps, delivered by herald.

    from herald_django import notify, token_for
    notify(request.user, "Your export is ready", data={"url": "/exports/9"})

The names are imported on first use, so `INSTALLED_APPS` can load this package before
Django's models are ready.
"""

__version__ = "0.1.0"

__all__ = ["notify", "token_for"]


def __getattr__(name):
    if name == "notify":
        from .publish import notify

        return notify
    if name == "token_for":
        from .tokens import token_for

        return token_for
    raise AttributeError(f"module 'herald_django' has no attribute {name!r}")
