"""Stream tokens: what a page hands herald.js, and nothing else accepts. Also herald's claims
for the app's own tokens (simplejwt access tokens that API clients send to herald).

A stream token carries `"aud": "herald:stream"`. herald takes it for what a page does
(`/events`, `/api/notifications` and its read state) and refuses it for publishing and for
minting other tokens; every other service that checks `aud` refuses it outright, unlike the
app's own simplejwt access token, which the app's whole API accepts. It travels in
EventSource URLs (which cannot carry headers), so it lives a minute by default, five at most.

A token cannot be revoked: a user who signs out, or is deactivated, keeps an open stream
until its token expires (at most `HERALD_TOKEN_LIFETIME` seconds). The token view then
answers 401 and `{% herald_script %}` stops.

Tokens carry the user's `name` (`HERALD_USER_NAME`), which herald shows in presence lists.

simplejwt: `HeraldAccessToken` and `HeraldRefreshToken` (and the serializers
`HeraldTokenObtainPairSerializer`, `HeraldTokenRefreshSerializer`) give the app's own access
tokens herald's claims, from the same settings (`herald_claims`). They are defined in
`_simplejwt.py` and importable from here once simplejwt is installed.
"""

import time

import jwt
from django.core.exceptions import ValidationError

from . import conf, validators
from .claims import _checked_grants, grants_for, herald_claims, user_name  # noqa: F401 (API)

STREAM_AUDIENCE = "herald:stream"
# Defined in _simplejwt.py, imported on first use (simplejwt is optional).
_SIMPLEJWT_NAMES = (
    "HeraldAccessToken",
    "HeraldRefreshToken",
    "HeraldTokenObtainPairSerializer",
    "HeraldTokenRefreshSerializer",
)


def __getattr__(name):
    if name in _SIMPLEJWT_NAMES:
        from . import _simplejwt

        return getattr(_simplejwt, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def inbox(user):
    """The user's inbox: their own channel and `broadcast`."""
    return [f"user:{user.pk}", "broadcast"]


def token_for(user, channels=None, lifetime=None):
    """A herald stream token for `user`, granting `channels` beyond their inbox.

    `channels=None` grants what `HERALD_CHANNELS` returns for the user (nothing if unset);
    pass a list to choose. `lifetime` is in seconds, 1-300 (default `HERALD_TOKEN_LIFETIME`).
    The token names the user (`name`) when `HERALD_USER_NAME` is set.
    """
    return mint(user, channels, lifetime)[0]


def mint(user, channels=None, lifetime=None):
    """`token_for`, also returning the token's lifetime in seconds."""
    if user is None or not getattr(user, "is_authenticated", False) or user.pk is None:
        raise ValueError("herald_django: tokens are for signed-in users only.")
    if getattr(user, "is_active", True) is False:
        raise ValueError("herald_django: no token for an inactive user.")
    try:
        validators.validate_channel(f"user:{user.pk}")
    except ValidationError:
        raise ValueError(f"herald_django: user pk {user.pk!r} cannot name a channel.") from None
    grants = grants_for(user) if channels is None else _checked_grants(channels)
    if lifetime is None:
        lifetime = conf.token_lifetime()
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or not (
        1 <= lifetime <= conf.MAX_TOKEN_LIFETIME
    ):
        raise ValueError(f"herald_django: lifetime must be 1-{conf.MAX_TOKEN_LIFETIME} seconds.")
    now = int(time.time())
    claims = {"sub": str(user.pk), "aud": STREAM_AUDIENCE, "iat": now, "exp": now + lifetime}
    if grants:
        claims["channels"] = grants
    name = user_name(user)
    if name:
        claims["name"] = name
    return jwt.encode(claims, conf.jwt_secret(), algorithm="HS256"), lifetime


def may_read(user, grants, channel):
    """True if a token for `user` with `grants` lets herald stream `channel` (herald's rule)."""
    if channel.startswith("user:"):
        return channel == f"user:{user.pk}"  # no grant opens another user's inbox
    return channel == "broadcast" or any(
        channel.startswith(g[:-1]) if g.endswith("*") else channel == g for g in grants
    )
