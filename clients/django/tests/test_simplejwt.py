"""simplejwt access tokens with herald's claims (HeraldAccessToken and the serializers), as
the running herald takes them: one secret, HERALD_JWT_SECRET = SIMPLE_JWT["SIGNING_KEY"]."""

import threading

import jwt
from django.conf import settings
from django.contrib.auth.models import User
from django.test import TestCase, override_settings
from rest_framework_simplejwt.tokens import AccessToken

import support
from herald_django.models import Notification
from herald_django.tokens import (
    HeraldAccessToken,
    HeraldTokenObtainPairSerializer,
    HeraldTokenRefreshSerializer,
    herald_claims,
)


def claims(token):
    return jwt.decode(str(token), settings.HERALD_JWT_SECRET, algorithms=["HS256"])


class Claims(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada", first_name="Ada", password="pw")

    def test_an_access_token_carries_the_user_s_grants_and_name(self):
        with override_settings(HERALD_USER_NAME="first_name"):
            c = claims(HeraldAccessToken.for_user(self.ada))
        # simplejwt's own claims stay: the app's API accepts it as before.
        self.assertEqual((c["token_type"], c["user_id"]), ("access", str(self.ada.pk)))
        self.assertEqual((c["sub"], c["channels"], c["name"]), (str(self.ada.pk), ["feed:demo"], "Ada"))
        self.assertNotIn("scope", c)
        self.assertEqual(AccessToken(str(HeraldAccessToken.for_user(self.ada)))["user_id"],
                         str(self.ada.pk))

    def test_herald_publish_decides_the_publish_scope(self):
        with override_settings(HERALD_PUBLISH=lambda user: user.is_staff):
            self.assertNotIn("scope", claims(HeraldAccessToken.for_user(self.ada)))
            self.ada.is_staff = True
            self.assertEqual(claims(HeraldAccessToken.for_user(self.ada))["scope"], "publish")
        self.assertEqual(herald_claims(self.ada, channels=[], publish=True),
                         {"sub": str(self.ada.pk), "name": "Ada", "scope": "publish"})

    def test_login_and_refresh_through_the_serializers_mint_current_claims(self):
        login = HeraldTokenObtainPairSerializer(data={"username": "ada", "password": "pw"})
        self.assertTrue(login.is_valid(), login.errors)
        self.assertEqual(claims(login.validated_data["access"])["channels"], ["feed:demo"])
        self.assertNotIn("channels", claims(login.validated_data["refresh"]))
        # The grant is gone by the time the access token is refreshed: so is it from the token.
        with override_settings(HERALD_CHANNELS=lambda user: ["order:17"]):
            refresh = HeraldTokenRefreshSerializer(data={"refresh": login.validated_data["refresh"]})
            self.assertTrue(refresh.is_valid(), refresh.errors)
        self.assertEqual(claims(refresh.validated_data["access"])["channels"], ["order:17"])


class WhatHeraldAccepts(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_granted_channels_where_a_plain_access_token_is_refused(self):
        herald_token = str(HeraldAccessToken.for_user(self.ada))
        plain = str(AccessToken.for_user(self.ada))
        status, body = support.api("GET", "/api/notifications", plain, channels="feed:demo")
        self.assertEqual(status, 403, body)
        status, body = support.api("GET", "/api/notifications", herald_token,
                                   channels=f"user:{self.ada.pk},feed:demo")
        self.assertEqual(status, 200, body)

    def test_a_long_poll_client_hears_what_commits_while_it_waits(self):
        token = str(HeraldAccessToken.for_user(self.ada))
        status, first = support.api("GET", "/api/notifications", token, limit=1)
        self.assertEqual(status, 200, first)
        sender = threading.Timer(0.5, support.publish, [f"user:{self.ada.pk}", "While waiting"])
        sender.start()
        self.addCleanup(sender.join)
        status, page = support.api("GET", "/api/notifications", token, after=first["cursor"],
                                   wait=10)
        self.assertEqual((status, [n["title"] for n in page["notifications"]]),
                         (200, ["While waiting"]))

    def test_with_the_publish_scope_it_publishes(self):
        with override_settings(HERALD_PUBLISH=lambda user: True):
            token = str(HeraldAccessToken.for_user(self.ada))
        status, body = support.api("POST", "/api/notifications", token,
                                   {"channel": f"user:{self.ada.pk}", "title": "From the API"})
        self.assertEqual(status, 201, body)
        self.assertTrue(Notification.objects.filter(title="From the API").exists())
        status, body = support.api("POST", "/api/notifications",
                                   str(HeraldAccessToken.for_user(self.ada)),
                                   {"channel": f"user:{self.ada.pk}", "title": "Refused"})
        self.assertEqual(status, 403, body)

    def test_signed_with_the_one_secret(self):
        # The suite's settings, as the READMEs tell: SIMPLE_JWT signs with HERALD_JWT_SECRET.
        self.assertEqual(settings.SIMPLE_JWT["SIGNING_KEY"], settings.HERALD_JWT_SECRET)
