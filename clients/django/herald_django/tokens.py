"""Stream tokens: what a page hands herald.js, and nothing else accepts.

A stream token carries `"aud": "herald:stream"`. herald takes it for what a page does
(`/events`, `/api/notifications` and its read state) and refuses it for publishing and for
minting other tokens; every other service that checks `aud` refuses it outright, unlike the
app's own simplejwt access token, which the app's whole API accepts. It travels in
EventSource URLs (which cannot carry headers), so it lives a minute by default, five at most.

A token cannot be revoked: a user who signs out, or is deactivated, keeps an open stream
until its token expires (at most `HERALD_TOKEN_LIFETIME` seconds). The token view then
answers 401 and `{% herald_script %}` stops.
"""

import time

import jwt
from django.core.exceptions import ValidationError

from . import conf, validators

STREAM_AUDIENCE = "herald:stream"


def inbox(user):
    """The user's inbox: their own channel and `broadcast`."""
    return [f"user:{user.pk}", "broadcast"]


def grants_for(user):
    """The extra channels `HERALD_CHANNELS` grants `user` (exact names or `prefix*`)."""
    hook = conf.channels_hook()
    if hook is None:
        return []
    return _checked_grants(hook(user))


def token_for(user, channels=None, lifetime=None):
    """A herald stream token for `user`, granting `channels` beyond their inbox.

    `channels=None` grants what `HERALD_CHANNELS` returns for the user (nothing if unset);
    pass a list to choose. `lifetime` is in seconds, 1-300 (default `HERALD_TOKEN_LIFETIME`).
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
