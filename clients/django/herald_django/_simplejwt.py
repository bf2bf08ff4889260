"""simplejwt access tokens that herald reads as the app means them (import needs simplejwt).

A plain simplejwt access token names the user (`user_id`) and nothing else herald reads: no
`channels`, so herald refuses any channel beyond the inbox, and no `scope`, so it cannot
publish. These classes add `herald_claims(user)`: `sub`, `channels` (`HERALD_CHANNELS`), `name`
(`HERALD_USER_NAME`) and `scope: "publish"` (when `HERALD_PUBLISH` says so), computed when each
access token is minted, so a refreshed token carries the grants of that moment:

    SIMPLE_JWT = {
        "SIGNING_KEY": HERALD_JWT_SECRET,    # herald verifies with the same key
        "ALGORITHM": "HS256",
        "TOKEN_OBTAIN_SERIALIZER": "herald_django.tokens.HeraldTokenObtainPairSerializer",
        "TOKEN_REFRESH_SERIALIZER": "herald_django.tokens.HeraldTokenRefreshSerializer",
    }

`HeraldAccessToken.for_user(user)` mints one directly. Refresh tokens get none of these claims:
herald refuses refresh tokens anyway, and grants copied into one would be stale by the time it
is used.
"""

from django.contrib.auth import get_user_model
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from .claims import herald_claims


class HeraldAccessToken(AccessToken):
    """A simplejwt access token with herald's claims for its user."""

    @classmethod
    def for_user(cls, user):
        token = super().for_user(user)
        token.payload.update(herald_claims(user))
        return token


class HeraldRefreshToken(RefreshToken):
    """A simplejwt refresh token whose access tokens are `HeraldAccessToken`s.

    The access token is made from the refresh token's claims (simplejwt's way) plus herald's
    claims for the user as they are now, so a grant lost since login is gone from it.
    """

    access_token_class = HeraldAccessToken
    _user = None

    @classmethod
    def for_user(cls, user):
        token = super().for_user(user)
        token._user = user  # at login: no query for the access token's claims
        return token

    @property
    def access_token(self):
        access = super().access_token
        user = self._user
        if user is None:  # a refresh: the user as they are now
            user_id = self.payload.get(api_settings.USER_ID_CLAIM)
            user = get_user_model()._default_manager.filter(
                **{api_settings.USER_ID_FIELD: user_id}
            ).first()
        if user is not None:
            access.payload.update(herald_claims(user))
        return access


class HeraldTokenObtainPairSerializer(TokenObtainPairSerializer):
    """simplejwt's login serializer (`TokenObtainPairView`), minting herald-aware tokens."""

    token_class = HeraldRefreshToken


class HeraldTokenRefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh serializer (`TokenRefreshView`): new access tokens get the user's
    current herald claims."""

    token_class = HeraldRefreshToken
