"""Settings of the test suite: the example project's, on the server TEST_DATABASE_URL names.

Django creates the test database there (named by scripts/test, else after this process, so
runs side by side never meet) and drops it at the end; the maintenance database in the URL
is only connected to for that. `runner.HeraldRunner` starts a herald on the test database.
"""

import os
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "example"))

if not os.environ.get("TEST_DATABASE_URL"):
    sys.exit(
        "tests: set TEST_DATABASE_URL to a libpq URL of a maintenance database on a server "
        "where the tests may create databases (e.g. postgresql://postgres@127.0.0.1:5432/postgres)"
    )
# One secret per run, shared with the herald the runner starts. Set before the example's
# settings look for herald's dev secret.
os.environ.setdefault("HERALD_JWT_SECRET", secrets.token_hex(32))

from example.settings import *  # noqa: E402,F401,F403
from example.settings import database_from_url  # noqa: E402

DATABASES = {"default": database_from_url(os.environ["TEST_DATABASE_URL"])}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("HERALD_DJANGO_TEST_DB") or f"herald_django_test_{os.getpid()}"
}

HERALD_JWT_SECRET = os.environ["HERALD_JWT_SECRET"]
# One secret: herald verifies the app's simplejwt access tokens with it too.
SIMPLE_JWT = {"SIGNING_KEY": HERALD_JWT_SECRET, "ALGORITHM": "HS256"}
# Replaced with the running herald's address by the runner.
HERALD_URL = "http://127.0.0.1:9"

TEST_RUNNER = "runner.HeraldRunner"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    # Tests provoke these on purpose; they assert on them with assertLogs.
    "loggers": {"herald_django": {"handlers": ["null"], "propagate": False}},
}
