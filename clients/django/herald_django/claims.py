"""The claims herald reads about a user, for tokens of any kind (herald-django's stream tokens,
simplejwt access tokens through `_simplejwt.py`, another JWT library's): who they are, the
channels `HERALD_CHANNELS` grants them, their name (`HERALD_USER_NAME`) and whether they may
publish (`HERALD_PUBLISH`). Imported by `tokens` and `_simplejwt`, importing neither.
"""

from django.core.exceptions import ValidationError

from . import conf, validators

# herald keeps this many characters of a `name` claim.
MAX_NAME_CHARS = 100


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
