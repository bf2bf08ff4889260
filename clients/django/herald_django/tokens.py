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

STREAM_AUDIENCE = "herald:stream"
# herald keeps this many characters of a `name` claim.
MAX_NAME_CHARS = 100
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


def grants_for(user):
    """The extra channels `HERALD_CHANNELS` grants `user` (exact names or `prefix*`)."""
    hook = conf.channels_hook()
    if hook is None:
        return []
    return _checked_grants(hook(user))


def user_name(user):
    """How presence lists name `user` (`HERALD_USER_NAME`), or None."""
    hook = conf.user_name_hook()
    if hook is None:
        return None
    name = hook(user)
    if not isinstance(name, str) or not name.strip():
        return None
    return name.strip()[:MAX_NAME_CHARS]


def herald_claims(user, channels=None, publish=None):
    """The claims herald reads, for a token of any kind that names `user`.

    `sub` (`str(user.pk)`: herald's user id, whose inbox `notify(user)` writes to), `channels`
    (`HERALD_CHANNELS`'s grants, or `channels`), `name` (`HERALD_USER_NAME`) and, when
    `publish` (default: `HERALD_PUBLISH`'s answer for the user), `scope: "publish"`. Claims
    that would be empty are left out. For simplejwt, `HeraldAccessToken` adds these; for
    another JWT library, add them to the payload yourself.
    """
    grants = grants_for(user) if channels is None else _checked_grants(channels)
    claims = {"sub": str(user.pk)}
    if grants:
        claims["channels"] = grants
    name = user_name(user)
    if name:
        claims["name"] = name
    if publish is None:
        hook = conf.publish_hook()
        publish = bool(hook(user)) if hook is not None else False
    if publish:
        claims["scope"] = "publish"
    return claims


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


def _checked_grants(channels):
    if isinstance(channels, str):
        raise TypeError("herald_django: channels must be a list of names, not one string.")
    grants = []
    for channel in channels:
        try:
            validators.validate_grant(channel)
        except ValidationError:
            raise ValueError(f"herald_django: {channel!r} is not a channel grant.") from None
        if channel not in grants:
            grants.append(channel)
    return grants


def may_read(user, grants, channel):
    """True if a token for `user` with `grants` lets herald stream `channel` (herald's rule)."""
    if channel.startswith("user:"):
        return channel == f"user:{user.pk}"  # no grant opens another user's inbox
    return channel == "broadcast" or any(
        channel.startswith(g[:-1]) if g.endswith("*") else channel == g for g in grants
    )
