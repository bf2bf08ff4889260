"""herald_django's settings, read in one place. Each has a system check in `checks.py`.

- `HERALD_URL`: herald's public base URL, as the browser reaches it.
- `HERALD_JWT_SECRET`: herald's `HERALD_JWT_SECRET`. Default: simplejwt's `SIGNING_KEY` when
  simplejwt is installed and signs with HS256, else `SECRET_KEY`.
- `HERALD_TOKEN_LIFETIME`: seconds a stream token lives (default 60, at most 300).
- `HERALD_CHANNELS`: dotted path of `f(user) -> iterable of grants`, the channels beyond
  the user's inbox that their tokens grant and their pages subscribe to.
- `HERALD_USER_NAME`: how presence lists name a user: an attribute or method of the user
  (`"get_full_name"`), or a callable (or its dotted path) taking the user. Default: no name.
- `HERALD_PUBLISH`: a callable (or its dotted path) `f(user) -> bool`: whether the user's
  simplejwt access tokens (`HeraldAccessToken`) carry herald's `publish` scope. Default: never.
- `HERALD_INTERNAL_URL`: herald's base URL as this server reaches it, for the app's own calls
  to herald's API (`internal_url()`). Default: `HERALD_URL`.
- `HERALD_JS`: where `{% herald_script %}` loads herald.js from: `"herald"` (default,
  `HERALD_URL/herald.js`) or `"app"` (the copy in this package, at `herald/herald.js`).
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

# herald refuses shorter secrets at startup (and HS256 keys this short are guessable).
MIN_SECRET_BYTES = 32
# herald's own stream tokens live at most this long (auth.rs, STREAM_TOKEN_TTL).
MAX_TOKEN_LIFETIME = 300
# herald.js renews a token 30 s before it expires: a lifetime of 60 s is the shortest that
# still spends most of each token's life streaming, and ends a signed-out user's stream
# within a minute.
DEFAULT_TOKEN_LIFETIME = 60


def herald_url():
    """`HERALD_URL` without a trailing slash."""
    url = getattr(settings, "HERALD_URL", None)
    if not url:
        raise ImproperlyConfigured(
            "herald_django: set HERALD_URL to herald's public base URL "
            '(e.g. "https://herald.example.com").'
        )
    return str(url).rstrip("/")


def internal_url():
    """`HERALD_INTERNAL_URL` (else `HERALD_URL`) without a trailing slash: herald as this
    server reaches it, which may be an address inside the network browsers never see."""
    url = getattr(settings, "HERALD_INTERNAL_URL", None)
    if not url:
        return herald_url()
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ImproperlyConfigured(
            f"herald_django: HERALD_INTERNAL_URL = {url!r} is not a base URL "
            '(e.g. "http://herald.internal:8080").'
        )
    return str(url).rstrip("/")


def script_source():
    """`HERALD_JS`: `"herald"` (herald.js from `HERALD_URL`) or `"app"` (the package's copy)."""
    source = getattr(settings, "HERALD_JS", "herald")
    if source not in ("herald", "app"):
        raise ImproperlyConfigured(
            f'herald_django: HERALD_JS = {source!r}; use "herald" (herald.js from HERALD_URL, '
            'the default) or "app" (the copy in herald_django, served at herald/herald.js).'
        )
    return source


def _simplejwt_key():
    """simplejwt's signing key when it signs with HS256, else None."""
    try:
        from rest_framework_simplejwt.settings import api_settings
    except ImportError:
        return None
    if api_settings.ALGORITHM != "HS256":
        return None  # an RSA/EC private key is no HS256 secret for herald
    return api_settings.SIGNING_KEY


def secret_source():
    """Which setting the secret comes from, for error messages (never the value)."""
    if getattr(settings, "HERALD_JWT_SECRET", None):
        return "HERALD_JWT_SECRET"
    if _simplejwt_key():
        return 'SIMPLE_JWT["SIGNING_KEY"]'
    return "SECRET_KEY"


def jwt_secret():
    """The HS256 secret herald verifies tokens with, as bytes; at least 32 bytes."""
    secret = getattr(settings, "HERALD_JWT_SECRET", None) or _simplejwt_key() or settings.SECRET_KEY
    if isinstance(secret, str):
        secret = secret.encode()
    if len(secret or b"") < MIN_SECRET_BYTES:
        raise ImproperlyConfigured(
            f"herald_django: the token secret ({secret_source()}) is {len(secret or b'')} bytes; "
            f"herald refuses secrets shorter than {MIN_SECRET_BYTES}. Set HERALD_JWT_SECRET (and "
            "herald's) to a longer random value, e.g. `openssl rand -hex 32`."
        )
    return secret


def token_lifetime():
    """`HERALD_TOKEN_LIFETIME` in seconds."""
    lifetime = getattr(settings, "HERALD_TOKEN_LIFETIME", DEFAULT_TOKEN_LIFETIME)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or not (
        1 <= lifetime <= MAX_TOKEN_LIFETIME
    ):
        raise ImproperlyConfigured(
            f"herald_django: HERALD_TOKEN_LIFETIME must be whole seconds, 1-{MAX_TOKEN_LIFETIME}."
        )
    return lifetime


def _callable_setting(name):
    """The callable a setting names (itself, or its dotted path), or None when unset."""
    path = getattr(settings, name, None)
    if not path:
        return None
    if callable(path):
        return path
    try:
        hook = import_string(path)
    except ImportError as err:
        raise ImproperlyConfigured(f"herald_django: {name} = {path!r}: {err}") from err
    if not callable(hook):
        raise ImproperlyConfigured(f"herald_django: {name} = {path!r} is not callable.")
    return hook


def channels_hook():
    """The `HERALD_CHANNELS` callable, or None."""
    return _callable_setting("HERALD_CHANNELS")


def publish_hook():
    """The `HERALD_PUBLISH` callable, or None."""
    return _callable_setting("HERALD_PUBLISH")


def user_name_hook():
    """`HERALD_USER_NAME` as a callable `f(user) -> name or None`, or None when unset.

    A name without a dot is the user's attribute (called if it is a method, as
    `get_full_name` is); a dotted path or a callable is called with the user.
    """
    value = getattr(settings, "HERALD_USER_NAME", None)
    if not value:
        return None
    if isinstance(value, str) and "." not in value:
        if not value.isidentifier():
            raise ImproperlyConfigured(
                f"herald_django: HERALD_USER_NAME = {value!r} is neither an attribute name "
                "nor a dotted path."
            )

        def attribute(user):
            found = getattr(user, value, None)
            return found() if callable(found) else found

        return attribute
    return _callable_setting("HERALD_USER_NAME")
