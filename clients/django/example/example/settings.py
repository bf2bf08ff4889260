"""The example project: a page with herald's bell, next to `scripts/run`.

Out of the box it uses what `scripts/run` (herald in dev mode, from the repository's root)
leaves under `.herald/`: the private PostgreSQL cluster's socket, and the dev secret in
`.herald/dev-jwt-secret`. Environment variables point it elsewhere:
DATABASE_URL (a libpq URL), HERALD_URL, HERALD_JWT_SECRET, HERALD_DEV_DIR.
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# herald's checkout: this file is clients/django/example/example/settings.py.
HERALD_DEV_DIR = Path(os.environ.get("HERALD_DEV_DIR") or BASE_DIR.parents[2] / ".herald")


def database_from_url(url):
    """Django's DATABASES entry for a libpq URL (`postgresql://user:pw@host:port/name`,
    or a socket directory as `?host=/path`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(f"DATABASE_URL: not a PostgreSQL URL: {parts.scheme}://...")
    options = dict(parse_qsl(parts.query))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": options.pop("host", None) or unquote(parts.hostname or ""),
        "PORT": options.pop("port", None) or (str(parts.port) if parts.port else ""),
        "OPTIONS": options,  # sslmode, sslrootcert, ...
    }


def dev_secret():
    path = HERALD_DEV_DIR / "dev-jwt-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise ImproperlyConfigured(
            f"{path} is missing: start herald first (scripts/run at the repository's root), "
            "or set HERALD_JWT_SECRET to herald's secret."
        ) from None


# An example: never deploy it as it is.
SECRET_KEY = "example-only-not-secret-6f0c1e2d9b8a7c6d5e4f3a2b1c0d9e8f"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "herald_django",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example.urls"
WSGI_APPLICATION = "example.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL")
        or f"postgresql://herald@/herald?host={HERALD_DEV_DIR / 'run'}"
    )
}
# A notification created in a view commits with the rest of the request, or not at all.
DATABASES["default"]["ATOMIC_REQUESTS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "login"

# herald: where the browser reaches it, and the secret it checks tokens with.
HERALD_URL = os.environ.get("HERALD_URL", "http://127.0.0.1:8080")
HERALD_JWT_SECRET = os.environ.get("HERALD_JWT_SECRET") or dev_secret()
# Channels beyond each user's inbox: granted in their tokens, subscribed by their pages.
HERALD_CHANNELS = "demo.herald.channels_for"
# How presence lists show a user.
HERALD_USER_NAME = "get_full_name"
