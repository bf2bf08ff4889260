"""scripts/e2e's checks: a new Django project on herald-django's wheel and a real herald.

Run by scripts/e2e from a temporary directory (E2E_WORK), in a virtualenv where the wheel is
installed. It writes the project a team would write from the READMEs (a shop: orders, a bell,
a presence room, a courier on the order page, a DRF + simplejwt login for API clients), runs
herald (HERALD_BIN) and Django's runserver on a database of its own, and checks each thing in
turn, the project's own tests last. Every wait is bounded.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

WORK = Path(os.environ["E2E_WORK"])
PROJECT = WORK / "project"
CHECKOUT = Path(os.environ["E2E_CHECKOUT"]).resolve()
HERALD_BIN = os.environ["HERALD_BIN"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
MAINTENANCE_URL = os.environ["TEST_DATABASE_URL"]
DB_NAME = f"herald_e2e_{os.getpid()}"
SECRET = secrets.token_hex(32)
WAIT = 20  # seconds: every bounded wait


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DJANGO_PORT = free_port()
DJANGO_URL = f"http://127.0.0.1:{DJANGO_PORT}"


def database_url(name):
    return urlsplit(MAINTENANCE_URL)._replace(path=f"/{name}").geturl()


def django_database(url):
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if p)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": query.pop("host", None) or parts.hostname or "",
        "PORT": query.pop("port", None) or str(parts.port or ""),
        "OPTIONS": query,
        "ATOMIC_REQUESTS": True,
    }


# ---- the project, as a team writes it from the READMEs -------------------------------------

SETTINGS = """
# ---- herald (the lines clients/django/README.md asks for, plus API clients) ----
import os

INSTALLED_APPS += ["rest_framework", "herald_django", "shop"]
DATABASES = {{"default": {database!r}}}
HERALD_URL = os.environ["HERALD_URL"]
HERALD_JWT_SECRET = os.environ["HERALD_JWT_SECRET"]
HERALD_CHANNELS = "shop.herald.channels_for"
HERALD_USER_NAME = "get_full_name"
# One secret: herald verifies the API's simplejwt access tokens with it too.
SIMPLE_JWT = {{
    "SIGNING_KEY": HERALD_JWT_SECRET,
    "ALGORITHM": "HS256",
    "TOKEN_OBTAIN_SERIALIZER": "herald_django.tokens.HeraldTokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "herald_django.tokens.HeraldTokenRefreshSerializer",
}}
ALLOWED_HOSTS = ["127.0.0.1"]
"""

FILES = {
    "shop/models.py": '''
        from django.conf import settings
        from django.db import models


        class Order(models.Model):
            customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                         related_name="orders")
            status = models.CharField(max_length=20, default="placed")
    ''',
    "shop/herald.py": '''
        def channels_for(user):
            """Orders on their way, and the lobby everyone may be present in."""
            orders = user.orders.exclude(status="delivered").values_list("pk", flat=True)
            return [f"order:{pk}" for pk in orders] + ["room:lobby"]
    ''',
    "shop/views.py": '''
        from django.contrib import auth
        from django.contrib.auth.decorators import login_required
        from django.contrib.auth.models import User
        from django.http import HttpResponse
        from django.shortcuts import get_object_or_404, redirect, render
        from django.views.decorators.http import require_POST

        from herald_django import inbox_page, notify

        from .models import Order


        def login(request, username):
            """A test shop: sign in by name."""
            auth.login(request, get_object_or_404(User, username=username),
                       backend="django.contrib.auth.backends.ModelBackend")
            return redirect("/")


        @login_required
        def home(request):
            order = request.user.orders.exclude(status="delivered").first()
            return render(request, "shop/home.html",
                          {"inbox": inbox_page(request.user, limit=10), "order": order})


        @require_POST
        @login_required
        def ship(request, pk):
            order = get_object_or_404(Order, pk=pk, customer=request.user)
            order.status = "shipped"
            order.save()
            notify(order.customer, f"Order #{pk} shipped", kind="order", data={"order": pk})
            notify(f"order:{pk}", "shipped", kind="order_status")
            return HttpResponse(status=204)
    ''',
    "shop/templates/shop/home.html": '''
        {% load herald %}<!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
        <body>
          <button id="bell" type="button">Notifications {% herald_unread_badge %}</button>
          <ul id="inbox">{% for n in inbox.notifications %}<li data-id="{{ n.id }}">{{ n.title }}</li>{% endfor %}</ul>
          <h2>In the lobby</h2><ul id="present"></ul>
          {% if order %}<p>Order #{{ order.pk }}: courier at <span id="courier">unknown</span></p>{% endif %}
          {% herald_script presence="room:lobby" cursor=inbox.cursor %}
          <script>
            document.addEventListener("herald:presence", function (event) {
              var list = document.getElementById("present");
              list.replaceChildren.apply(list, event.detail.users.map(function (u) {
                var item = document.createElement("li");
                item.textContent = u.name || u.user;
                return item;
              }));
            });
            document.addEventListener("herald:signal", function (event) {
              var s = event.detail;
              if (s.kind === "location") {
                document.getElementById("courier").textContent = s.data.lat + "," + s.data.lng;
              }
            });
          </script>
        </body></html>
    ''',
    "shop/tests.py": '''
        from django.contrib.auth.models import User
        from django.test import TestCase

        from herald_django import unread_count
        from herald_django.testing import HeraldTestMixin, capture_notifications

        from .models import Order


        class Shipping(HeraldTestMixin, TestCase):
            def setUp(self):
                self.ada = User.objects.create_user("ada", first_name="Ada")
                self.order = Order.objects.create(customer=self.ada)
                self.client.force_login(self.ada)

            def test_shipping_tells_the_customer_and_the_order_page(self):
                with capture_notifications() as sent:
                    response = self.client.post(f"/orders/{self.order.pk}/ship/")
                self.assertEqual(response.status_code, 204)
                self.assertEqual([n.channel for n in sent],
                                 [f"user:{self.ada.pk}", f"order:{self.order.pk}"])
                self.assertNotified(self.ada, title=f"Order #{self.order.pk} shipped",
                                    data={"order": self.order.pk})

            def test_the_badge_counts_it_in_the_test_s_transaction(self):
                self.client.post(f"/orders/{self.order.pk}/ship/")
                self.assertEqual(unread_count(self.ada), 1)
                self.assertContains(self.client.get("/"),
                                    '<span class="herald-unread" data-herald-unread>1</span>',
                                    html=True)

            def test_a_placed_order_notifies_nobody(self):
                self.assertNotNotified(self.ada)
    ''',
}

URLS = '''
from django.contrib import admin
from django.urls import include, path
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from shop import views

urlpatterns = [
    path("", views.home),
    path("login/<str:username>/", views.login),
    path("orders/<int:pk>/ship/", views.ship),
    path("herald/", include("herald_django.urls")),
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", TokenRefreshView.as_view()),
    path("admin/", admin.site.urls),
]
'''


def write_project():
    PROJECT.mkdir()
    run([sys.executable, "-m", "django", "startproject", "mysite", str(PROJECT)], cwd=WORK)
    run([sys.executable, "manage.py", "startapp", "shop"])
    settings = PROJECT / "mysite" / "settings.py"
    settings.write_text(settings.read_text()
                        + SETTINGS.format(database=django_database(database_url(DB_NAME))))
    (PROJECT / "mysite" / "urls.py").write_text(URLS)
    for name, text in FILES.items():
        path = PROJECT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    run([sys.executable, "manage.py", "makemigrations", "shop"])


def env(**extra):
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    return {**clean, "HERALD_JWT_SECRET": SECRET, "HERALD_URL": Herald.url or "http://127.0.0.1:9",
            **extra}


def run(command, cwd=None, **kwargs):
    result = subprocess.run(command, cwd=cwd or PROJECT, env=env(), capture_output=True,
                            text=True, timeout=kwargs.pop("timeout", 120), **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def shell(code):
    """`manage.py shell -c`: Django code in a process of its own (it commits at once). Returns
    the last line it printed (Django 5.2's shell first says what it imported)."""
    out = run([sys.executable, "manage.py", "shell", "-c", textwrap.dedent(code)])
    return (out.strip().splitlines() or [""])[-1]


class Herald:
    """`herald serve` on the project's database, allowing the Django pages' origin."""

    url = None
    process = None
    log = []

    @classmethod
    def start(cls):
        cls.process = subprocess.Popen(
            [HERALD_BIN, "serve"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                 "DATABASE_URL": database_url(DB_NAME), "HERALD_JWT_SECRET": SECRET,
                 "HERALD_BIND": "127.0.0.1:0", "HERALD_ALLOWED_ORIGINS": DJANGO_URL,
                 "HERALD_SHUTDOWN_SPREAD_SECS": "0", "RUST_LOG": "info,actix_web=warn"})
        listening = threading.Event()

        def read():
            for line in cls.process.stderr:
                cls.log.append(line.rstrip())
                if cls.url is None and "listening url=" in line:
                    cls.url = line.split("listening url=", 1)[1].split()[0].rstrip("/")
                    listening.set()
            listening.set()

        threading.Thread(target=read, daemon=True).start()
        if not listening.wait(WAIT) or cls.url is None:
            raise RuntimeError("herald did not start:\n" + "\n".join(cls.log[-30:]))
        wait_until(lambda: http("GET", cls.url + "/readyz")[0] == 200, "herald ready")

    @classmethod
    def stop(cls):
        if cls.process and cls.process.poll() is None:
            cls.process.terminate()
            try:
                cls.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                cls.process.kill()


def http(method, url, token=None, body=None, timeout=WAIT):
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw.decode(errors="replace")
    except OSError:
        return None, None


def wait_until(condition, what):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def maintenance(sql):
    import psycopg
    from psycopg import sql as q

    with psycopg.connect(MAINTENANCE_URL, autocommit=True) as conn:
        conn.execute(q.SQL(sql).format(q.Identifier(DB_NAME)))


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        maintenance("create database {}")
        try:
            write_project()
            Herald.start()  # herald migrates its tables first, as in production
            run([sys.executable, "manage.py", "migrate", "--noinput"])
            cls.ids = json.loads(shell('''
                import json
                from django.contrib.auth.models import User
                from shop.models import Order
                ada = User.objects.create_user("ada", password="pw", first_name="Ada", last_name="Lovelace")
                grace = User.objects.create_user("grace", password="pw", first_name="Grace", last_name="Hopper")
                order = Order.objects.create(customer=ada)
                print(json.dumps({"ada": ada.pk, "grace": grace.pk, "order": order.pk}))
            '''))
            cls.django = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{DJANGO_PORT}",
                 "--noreload"],
                cwd=PROJECT, env=env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wait_until(lambda: http("GET", DJANGO_URL + "/herald/token/")[0] == 401,
                       "Django's runserver")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        django = getattr(cls, "django", None)
        if django is not None and django.poll() is None:
            django.terminate()
            django.wait(WAIT)
        Herald.stop()
        maintenance("drop database if exists {} with (force)")

    def herald_log(self):
        return "\n".join(Herald.log[-30:])

    def test_1_the_project_uses_the_wheel_not_a_checkout(self):
        found = Path(shell("import herald_django; print(herald_django.__file__)").strip()).resolve()
        self.assertIn("site-packages", found.parts)
        self.assertFalse(found.is_relative_to(CHECKOUT / "clients"), found)
        self.assertFalse(any(Path(p or ".").resolve().is_relative_to(CHECKOUT / "clients")
                             for p in sys.path), sys.path)
        for name in ("schema", "web"):
            self.assertTrue((found.parent / name).is_dir(), name)

    def test_2_the_bell_the_lobby_and_the_courier_in_a_browser(self):
        from playwright.sync_api import sync_playwright

        ids = self.ids
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync"])
            errors = []

            def open_as(username):
                context = browser.new_context()
                context.set_default_timeout(WAIT * 1000)
                page = context.new_page()
                page.on("pageerror", lambda err: errors.append(str(err)))
                page.goto(f"{DJANGO_URL}/login/{username}/")
                page.wait_for_selector('[data-herald-unread][data-herald-status="live"]',
                                       state="attached")
                return page

            try:
                ada = open_as("ada")
                # The bell: notify() from another process reaches the page.
                shell(f'''
                    from django.contrib.auth.models import User
                    from herald_django import notify
                    notify(User.objects.get(pk={ids["ada"]}), "Hello from the shell")
                ''')
                ada.wait_for_function(
                    """() => document.querySelector("[data-herald-unread]").textContent === "1" """)

                # The lobby: both listed, by name, on both pages.
                grace = open_as("grace")
                for page in (ada, grace):
                    for name in ("Ada Lovelace", "Grace Hopper"):
                        page.locator("#present li", has_text=name).wait_for()

                # The courier: send_signal on the server moves it on the order's page, and
                # keeps it, so a page opened afterwards starts from where the courier is.
                shell(f'''
                    from herald_django import send_signal
                    send_signal("order:{ids["order"]}", "location", {{"lat": 48.85, "lng": 2.35}},
                                keep=600)
                ''')
                ada.locator("#courier", has_text="48.85,2.35").wait_for()
                open_as("ada").locator("#courier", has_text="48.85,2.35").wait_for()
                self.assertEqual(errors, [])
            except Exception as err:
                raise AssertionError(f"{err}\nherald's log:\n{self.herald_log()}") from err
            finally:
                browser.close()

    def test_3_a_long_poll_client_with_a_simplejwt_token(self):
        ids = self.ids
        status, tokens = http("POST", DJANGO_URL + "/api/token/",
                              body={"username": "ada", "password": "pw"})
        self.assertEqual(status, 200, tokens)
        access = tokens["access"]
        channels = f"user:{ids['ada']},order:{ids['order']}"
        # The order's channel is granted by the access token (HeraldAccessToken's channels).
        status, first = http("GET", f"{Herald.url}/api/notifications?"
                             + urlencode({"channels": channels, "limit": 1}), access)
        self.assertEqual(status, 200, first)

        answer = {}

        def long_poll():
            answer["value"] = http("GET", f"{Herald.url}/api/notifications?" + urlencode(
                {"channels": channels, "after": first["cursor"], "wait": 15}), access)

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(0.5)  # parked (a notification committed before would be answered too)
        shell(f'''
            from herald_django import notify
            notify("order:{ids["order"]}", "Out for delivery", kind="order_status")
        ''')
        poller.join(WAIT)
        status, page = answer.get("value", (None, None))
        self.assertEqual((status, [n["title"] for n in (page or {}).get("notifications", [])]),
                         (200, ["Out for delivery"]), self.herald_log())

        # A refreshed access token works too, with the grants of the moment.
        status, refreshed = http("POST", DJANGO_URL + "/api/token/refresh/",
                                 body={"refresh": tokens["refresh"]})
        self.assertEqual(status, 200, refreshed)
        status, _ = http("GET", f"{Herald.url}/api/notifications?"
                         + urlencode({"channels": channels}), refreshed["access"])
        self.assertEqual(status, 200)

    def test_4_the_project_s_own_tests_pass(self):
        out = subprocess.run([sys.executable, "manage.py", "test", "--noinput", "-v", "2"],
                             cwd=PROJECT, env=env(), capture_output=True, text=True,
                             timeout=300)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stderr, r"Ran 3 tests")


if __name__ == "__main__":
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        sys.exit(f"e2e: no browser at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)")
    unittest.main()
