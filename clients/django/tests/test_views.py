"""`GET herald/token/`: a token for the session's user, or 401 JSON (never a login redirect)."""

import jwt
from django.contrib.auth.models import User
from django.test import TestCase, override_settings

import support

URL = "/herald/token/"


class TokenView(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def assert_json_error(self, response, status, code):
        self.assertEqual(response.status_code, status)
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(response.json()["error"]["code"], code)

    def test_signed_in_it_answers_a_token_herald_accepts(self):
        self.client.force_login(self.ada)
        response = self.client.get(URL)
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["expires_in"], 60)
        self.assertIn("no-store", response["Cache-Control"])
        self.assertEqual(support.api("GET", "/api/notifications", body["token"])[0], 200)

    def test_signed_out_it_answers_401_json_not_a_redirect(self):
        response = self.client.get(URL)
        self.assert_json_error(response, 401, "not_signed_in")
        self.assertIn("no-store", response["Cache-Control"])

    def test_after_logout_it_answers_401(self):
        self.client.force_login(self.ada)
        self.client.logout()
        self.assert_json_error(self.client.get(URL), 401, "not_signed_in")

    def test_a_deactivated_user_gets_no_token(self):
        self.client.force_login(self.ada)
        User.objects.filter(pk=self.ada.pk).update(is_active=False)
        # Django's default backend signs inactive users out...
        self.assert_json_error(self.client.get(URL), 401, "not_signed_in")
        # ...and with one that does not, the view refuses them itself.
        backend = "django.contrib.auth.backends.AllowAllUsersModelBackend"
        with override_settings(AUTHENTICATION_BACKENDS=[backend]):
            self.client.force_login(User.objects.get(pk=self.ada.pk), backend=backend)
            self.assert_json_error(self.client.get(URL), 401, "inactive_user")

    def test_the_token_names_the_user_for_presence_lists(self):
        self.ada.first_name = "Ada"
        self.ada.save()
        self.client.force_login(self.ada)
        with override_settings(HERALD_USER_NAME="get_full_name"):
            token = self.client.get(URL).json()["token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        self.assertEqual(claims["name"], "Ada")

    def test_other_methods_are_405_json(self):
        self.client.force_login(self.ada)
        response = self.client.post(URL)
        self.assert_json_error(response, 405, "method_not_allowed")
        self.assertEqual(response["Allow"], "GET, HEAD")


class ServiceWorkerView(TestCase):
    def test_it_serves_heralds_service_worker_from_the_apps_origin(self):
        response = self.client.get("/herald/sw.js")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "text/javascript; charset=utf-8")
        self.assertEqual(response["Cache-Control"], "no-cache")
        # The copy the package was built with is this checkout's web/herald-sw.js.
        self.assertEqual(response.content, (support.REPO / "web" / "herald-sw.js").read_bytes())

    def test_other_methods_are_refused(self):
        self.assertEqual(self.client.post("/herald/sw.js").status_code, 405)
        self.assertEqual(self.client.post("/herald/herald.js").status_code, 405)


class ScriptView(TestCase):
    def test_it_serves_the_herald_js_the_package_was_built_with(self):
        response = self.client.get("/herald/herald.js")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "text/javascript; charset=utf-8")
        self.assertEqual(response.content, (support.REPO / "web" / "herald.js").read_bytes())
        # The glue of {% herald_script %} relies on these options.
        for option in (b"onPresence", b"onSignal", b"onChannelsRefused", b"cursor"):
            self.assertIn(option, response.content)
