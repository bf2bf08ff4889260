"""herald-django: live notifications for Django apps, delivered by herald.

    from herald_django import notify, token_for
    notify(request.user, "Your export is ready", data={"url": "/exports/9"})

The names are imported on first use, so `INSTALLED_APPS` can load this package before
Django's models are ready.
"""

__version__ = "0.1.0"

__all__ = [
    "HeraldError",
    "inbox_page",
    "notify",
    "send_signal",
    "token_for",
    "unread_count",
    "unseen_count",
]

# Where each public name lives.
_HOMES = {
    "HeraldError": "publish",
    "inbox_page": "inbox",
    "notify": "publish",
    "send_signal": "publish",
    "token_for": "tokens",
    "unread_count": "inbox",
    "unseen_count": "inbox",
}


def __getattr__(name):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'herald_django' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{home}", __name__), name)
