"""token_for(): stream tokens that the running herald accepts for a page's work, and no more."""

import sys
from unittest import mock

import jwt
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ImproperlyConfigured
from django.test import TestCase, override_settings

import support
from herald_django import conf, token_for
from herald_django.models import Notification


def claims(token):
    return jwt.decode(token, conf.jwt_secret(), algorithms=["HS256"], audience="herald:stream")


class Claims(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_a_stream_token_for_the_user_with_the_hook_s_grants_for_a_minute(self):
        c = claims(token_for(self.ada))
        self.assertEqual((c["sub"], c["aud"], c["channels"], c["exp"] - c["iat"]),
                         (str(self.ada.pk), "herald:stream", ["feed:demo"], 60))
        self.assertNotIn("scope", c)

    def test_channels_and_lifetime_can_be_chosen(self):
        c = claims(token_for(self.ada, channels=["project:*", "order:17"], lifetime=300))
        self.assertEqual((c["channels"], c["exp"] - c["iat"]), (["project:*", "order:17"], 300))
        self.assertNotIn("channels", claims(token_for(self.ada, channels=[])))

    def test_the_lifetime_setting_is_the_default(self):
        with override_settings(HERALD_TOKEN_LIFETIME=120):
            c = claims(token_for(self.ada))
        self.assertEqual(c["exp"] - c["iat"], 120)

    def test_tokens_never_outlive_herald_s_five_minutes(self):
        for lifetime in (0, 301, 3600, "60", 1.5):
            with self.subTest(lifetime=lifetime), self.assertRaises(ValueError):
                token_for(self.ada, lifetime=lifetime)

    def test_only_signed_in_active_users_get_tokens(self):
        self.ada.is_active = False
        for user in (AnonymousUser(), None, self.ada):
            with self.subTest(user=user), self.assertRaises(ValueError):
                token_for(user)

    def test_grants_are_checked(self):
        for channels in (["a b"], ["a**"], ["*x"], [""]):
            with self.subTest(channels=channels), self.assertRaises(ValueError):
                token_for(self.ada, channels=channels)
        with self.assertRaises(TypeError):
            token_for(self.ada, channels="project:5")


class Names(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada", first_name="Ada", last_name="Lovelace")

    def test_without_the_setting_tokens_carry_no_name(self):
        with override_settings(HERALD_USER_NAME=None):  # the example sets it
            self.assertNotIn("name", claims(token_for(self.ada)))

    def test_an_attribute_a_method_or_a_callable_names_the_user(self):
        for setting, name in (("first_name", "Ada"), ("get_full_name", "Ada Lovelace"),
                              (lambda user: f"{user.username}!", "ada!"),
                              ("demo.herald.channels_for", None)):
            with self.subTest(setting=setting), override_settings(HERALD_USER_NAME=setting):
                if name is None:  # a callable answering something else than a string
                    self.assertNotIn("name", claims(token_for(self.ada)))
                else:
                    self.assertEqual(claims(token_for(self.ada))["name"], name)

    def test_blank_names_are_left_out_and_long_ones_cut_as_herald_would(self):
        with override_settings(HERALD_USER_NAME=lambda user: "  "):
            self.assertNotIn("name", claims(token_for(self.ada)))
        with override_settings(HERALD_USER_NAME=lambda user: "x" * 150):
            self.assertEqual(len(claims(token_for(self.ada))["name"]), 100)

    def test_herald_shows_the_name_in_presence_lists(self):
        room = f"room:{self.ada.pk}"  # no one else's test is present there
        with override_settings(HERALD_USER_NAME="get_full_name"):
            token = token_for(self.ada, channels=["room:*"])
        with support.EventStream(token, presence=room) as stream:
            self.assertEqual(stream.status, 200)
            present = stream.next("presence")
        self.assertEqual(present["channel"], room)
        self.assertEqual([(u["user"], u["name"]) for u in present["present"]],
                         [(str(self.ada.pk), "Ada Lovelace")])


class Secret(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_a_secret_herald_would_refuse_is_refused_here_too(self):
        with override_settings(HERALD_JWT_SECRET="too short"):
            with self.assertRaisesMessage(ImproperlyConfigured, "herald refuses secrets shorter"):
                token_for(self.ada)

    def test_without_herald_jwt_secret_simplejwt_s_hs256_key_is_used(self):
        key = "k" * 40
        with override_settings(HERALD_JWT_SECRET=None, SIMPLE_JWT={"SIGNING_KEY": key}):
            jwt.decode(token_for(self.ada), key, algorithms=["HS256"], audience="herald:stream")
        # An RSA private key is no secret for herald: then SECRET_KEY.
        with override_settings(HERALD_JWT_SECRET=None,
                               SIMPLE_JWT={"ALGORITHM": "RS256", "SIGNING_KEY": key}):
            self.assertEqual(conf.secret_source(), "SECRET_KEY")

    def test_without_simplejwt_secret_key_is_used(self):
        with override_settings(HERALD_JWT_SECRET=None, SECRET_KEY="s" * 50), \
                mock.patch.dict(sys.modules, {"rest_framework_simplejwt.settings": None}):
            jwt.decode(token_for(self.ada), "s" * 50, algorithms=["HS256"],
                       audience="herald:stream")


class WhatHeraldAccepts(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")
        self.token = token_for(self.ada)

    def test_the_event_stream_accepts_it_and_delivers(self):
        with support.EventStream(self.token) as stream:
            self.assertEqual(stream.status, 200)
            stream.next("unread_count")
            support.publish(f"user:{self.ada.pk}", "Hello")
            self.assertEqual(stream.next("notification")["title"], "Hello")

    def test_lists_and_read_state_accept_it(self):
        sent = support.publish(f"user:{self.ada.pk}", "Read me")
        status, page = support.api("GET", "/api/notifications", self.token)
        self.assertEqual((status, [n["title"] for n in page["notifications"]]), (200, ["Read me"]))
        status, body = support.api("POST", f"/api/notifications/{sent['id']}/read", self.token)
        self.assertEqual((status, body["unread_count"]), (200, 0))

    def test_granted_channels_stream_and_others_are_refused(self):
        token = token_for(self.ada, channels=["project:*"])
        with support.EventStream(token, channels="project:5,broadcast") as granted:
            self.assertEqual(granted.status, 200)
        with support.EventStream(token, channels="order:1") as refused:
            self.assertEqual(refused.status, 403)
        with support.EventStream(self.token, channels="feed:demo") as from_the_hook:
            self.assertEqual(from_the_hook.status, 200)

    def test_it_cannot_publish_nor_mint_more_tokens(self):
        status, body = support.api("POST", "/api/notifications", self.token,
                                   {"channel": "broadcast", "title": "Spoofed"})
        self.assertEqual(status, 403, body)
        status, body = support.api("POST", "/api/stream-token", self.token)
        self.assertEqual(status, 403, body)
        self.assertFalse(Notification.objects.filter(title="Spoofed").exists())

    def test_a_token_signed_with_another_secret_is_refused(self):
        with override_settings(HERALD_JWT_SECRET="o" * 40):
            other = token_for(self.ada)
        self.assertEqual(support.api("GET", "/api/notifications", other)[0], 401)

    def test_the_app_s_simplejwt_api_refuses_a_stream_token_even_with_the_key_shared(self):
        from rest_framework_simplejwt.exceptions import TokenError
        from rest_framework_simplejwt.tokens import AccessToken

        from django.conf import settings

        with override_settings(SIMPLE_JWT={"SIGNING_KEY": settings.HERALD_JWT_SECRET}):
            with self.assertRaises(TokenError):
                AccessToken(self.token)  # what JWTAuthentication does with a Bearer token

    def test_simplejwt_access_tokens_work_too_when_the_key_is_shared(self):
        from rest_framework_simplejwt.tokens import AccessToken

        from django.conf import settings

        with override_settings(SIMPLE_JWT={"SIGNING_KEY": settings.HERALD_JWT_SECRET}):
            access = str(AccessToken.for_user(self.ada))
        self.assertEqual(support.api("GET", "/api/notifications", access)[0], 200)
