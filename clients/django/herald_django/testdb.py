"""herald's tables in Django's test databases, and only there.

In production herald's own migrations create its tables (`herald migrate`, or `herald
serve` at start); Django's migrations never touch them. A test database is new, though, and
no herald has migrated it: Django's test runner (and pytest-django, which uses it) would
fail with `relation "notifications" does not exist`.

So when Django migrates a *test* database, this applies herald's migrations to it, as herald
would: the SQL of each migration (carried in the wheel's `schema/`, herald's migrations as of
the build: scripts/wheel), each in a transaction, recorded in diesel's
`__diesel_schema_migrations`. A herald started against the test database then finds them
applied. After a flush (a `TransactionTestCase` between tests) herald's tables are emptied
too (notifications, every user's read, seen and archived state, kept signals), as Django
empties its own.

A test database is recognised by its name: Django renames the connection's database when
it creates the test one (`test_<NAME>`, `TEST["NAME"]`, or a clone `<that>_<n>`), so a
database still called what settings called it when Django started is never touched.
"""

from pathlib import Path

from django.db import connections, router, transaction
from django.db.models.signals import post_migrate, pre_migrate

# In the wheel (scripts/wheel); a package used from herald's checkout reads the checkout's.
SCHEMA_DIR = Path(__file__).with_name("schema")
CHECKOUT_MIGRATIONS = Path(__file__).resolve().parent.parent.parent.parent / "migrations"

# NAME of each database alias when Django started, before any test runner renamed it.
_names_at_start = {}

# What one test leaves in herald's tables and the next must not see: notifications, each
# user's inbox state (read, seen, archived, unread again) and kept signals. Truncated in one
# statement, as the per-user tables reference notifications (herald's triggers reset its
# counts with them). A table the bundled schema lacks is skipped: kept signals came later.
HERALD_TEST_TABLES = (
    "notifications",
    "notification_reads",
    "notification_read_marks",
    "notification_seen_marks",
    "notification_unreads",
    "notification_archives",
    "notification_archive_marks",
    "herald_kept_signals",
)


def connect(app_config):
    """Called by `HeraldConfig.ready()`."""
    for alias in connections:
        _names_at_start[alias] = connections[alias].settings_dict.get("NAME")
    pre_migrate.connect(_before_migrate, sender=app_config, dispatch_uid="herald_django.schema")
    post_migrate.connect(_after_migrate, sender=app_config, dispatch_uid="herald_django.flush")


def bundled_migrations():
    """`(version, path)` of each bundled migration, oldest first; versions as diesel's."""
    bundled = {path.stem: path for path in SCHEMA_DIR.glob("*.sql")}
    if not bundled:
        bundled = {up.parent.name: up for up in CHECKOUT_MIGRATIONS.glob("*/up.sql")}
    found = []
    for name in sorted(bundled):
        # 2026-11-21-000001_create_notifications -> 20261121000001
        version = name.split("_", 1)[0].replace("-", "")
        found.append((version, bundled[name]))
    return found


def is_test_database(connection):
    """True if `connection` now points at a database Django's test setup created."""
    name = connection.settings_dict.get("NAME")
    at_start = _names_at_start.get(connection.alias)
    if not name or not at_start or name == at_start:
        return False
    test_name = (connection.settings_dict.get("TEST") or {}).get("NAME") or f"test_{at_start}"
    return name == test_name or name.startswith(f"{test_name}_")


def apply_schema(using="default"):
    """Applies herald's bundled migrations that the database has not recorded yet.

    Returns the versions applied. Meant for test databases (the signal handlers below call
    it only for those); production schema is herald's to migrate.
    """
    connection = connections[using]
    with connection.cursor() as cursor:
        # diesel's own definition of its bookkeeping table.
        cursor.execute(
            "create table if not exists __diesel_schema_migrations ("
            " version varchar(50) primary key not null,"
            " run_on timestamp not null default current_timestamp)"
        )
        cursor.execute("select version from __diesel_schema_migrations")
        done = {row[0] for row in cursor.fetchall()}
    applied = []
    for version, path in bundled_migrations():
        if version in done:
            continue
        with transaction.atomic(using=using), connection.cursor() as cursor:
            # No parameters: the SQL is sent as it is (its `%` are format() directives).
            cursor.execute(path.read_text(encoding="utf-8"))
            cursor.execute(
                "insert into __diesel_schema_migrations (version) values (%s)", [version]
            )
        applied.append(version)
    return applied


def _wanted(using):
    connection = connections[using]
    return (
        connection.vendor == "postgresql"
        and is_test_database(connection)
        and router.allow_migrate(using, "herald_django", model_name="notification")
    )


def _before_migrate(sender, using, **kwargs):
    # Before the project's own migrations, as in production, where herald migrated first:
    # a project migration may refer to herald's tables.
    if _wanted(using):
        apply_schema(using)


def _after_migrate(sender, using, **kwargs):
    # post_migrate also follows every flush, which empties Django's tables but not those of
    # unmanaged models.
    if _wanted(using):
        apply_schema(using)
        with connections[using].cursor() as cursor:
            cursor.execute("select t from unnest(%s::text[]) as t where to_regclass(t) is not null",
                           [list(HERALD_TEST_TABLES)])
            present = [row[0] for row in cursor.fetchall()]
            cursor.execute(f"truncate {', '.join(present)}")
