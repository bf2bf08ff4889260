"""herald's tables in the test database: the bundled SQL, the hook, what herald thinks of it."""

import io
import re
import sys
from pathlib import Path

from django.contrib.auth.models import User
from django.core import checks
from django.core.management import call_command
from django.db import connection
from django.test import SimpleTestCase, TestCase, TransactionTestCase, override_settings

import herald_django
import support
from herald_django import inbox_page, notify, send_signal, testdb, token_for


class InstalledPackage(SimpleTestCase):
    def test_herald_django_comes_from_the_virtualenv_not_from_the_checkout(self):
        # scripts/test installs the wheel and runs a copy of these tests outside the checkout.
        package = Path(herald_django.__file__).resolve()
        self.assertTrue(package.is_relative_to(Path(sys.prefix).resolve()), package)
        self.assertIn("site-packages", package.parts)
        self.assertFalse(package.is_relative_to((support.REPO / "clients").resolve()), package)

    def test_it_carries_herald_s_files_itself(self):
        package = Path(herald_django.__file__).parent
        self.assertTrue((package / "web" / "herald.js").is_file())
        self.assertTrue((package / "web" / "herald-sw.js").is_file())
        self.assertEqual(testdb.SCHEMA_DIR, package / "schema")
        self.assertTrue(list(testdb.SCHEMA_DIR.glob("*.sql")))


class BundledSchema(SimpleTestCase):
    def test_the_installed_package_carries_herald_s_migrations_byte_for_byte(self):
        # The suite runs against the package as scripts/wheel built it (not this source
        # tree): its schema/ is herald's migrations as of the build.
        migrations = support.REPO / "migrations"
        repo = {d.name: (d / "up.sql").read_bytes() for d in migrations.iterdir() if d.is_dir()}
        bundled = {p.stem: p.read_bytes() for p in testdb.SCHEMA_DIR.glob("*.sql")}
        self.assertTrue(repo, f"no migrations under {migrations}")
        self.assertEqual(sorted(bundled), sorted(repo))
        for name, sql in repo.items():
            self.assertEqual(bundled[name], sql, name)

    def test_versions_are_diesel_s_the_directory_s_date_and_time_without_dashes(self):
        versions = [version for version, _ in testdb.bundled_migrations()]
        self.assertEqual(versions[0], "20261121000001")
        self.assertTrue(all(re.fullmatch(r"\d{14}", v) for v in versions), versions)
        self.assertEqual(versions, sorted(versions))


class TestDatabaseHook(TestCase):
    def test_the_test_database_has_every_migration_recorded_as_diesel_records_it(self):
        with connection.cursor() as cursor:
            cursor.execute("select version from __diesel_schema_migrations order by version")
            recorded = [row[0] for row in cursor.fetchall()]
        self.assertEqual(recorded, [v for v, _ in testdb.bundled_migrations()])

    def test_herald_started_on_the_test_database_and_found_nothing_to_migrate(self):
        self.assertIn("migrations_applied=0", support.herald().log_tail(200))

    def test_applying_again_changes_nothing(self):
        self.assertEqual(testdb.apply_schema("default"), [])

    def test_only_a_database_renamed_by_the_test_setup_counts_as_a_test_database(self):
        start = testdb._names_at_start["default"]
        self.assertTrue(testdb.is_test_database(connection))
        test_name = connection.settings_dict["NAME"]
        cases = {
            start: False,  # the project's own database: never touched
            test_name: True,
            f"{test_name}_2": True,  # a clone for --parallel
            "someone_else": False,
        }
        for name, expected in cases.items():
            with self.subTest(name=name):
                fake = type("C", (), {"alias": "default",
                                      "settings_dict": {**connection.settings_dict, "NAME": name}})
                self.assertIs(testdb.is_test_database(fake), expected)

    def test_the_unread_count_function_is_there(self):
        with connection.cursor() as cursor:
            cursor.execute("select herald_unread_count('1')")
            self.assertEqual(cursor.fetchone()[0], 0)


def rows_per_table():
    with connection.cursor() as cursor:
        found = {}
        for table in testdb.HERALD_TEST_TABLES:
            cursor.execute("select to_regclass(%s) is not null", [table])
            if cursor.fetchone()[0]:
                cursor.execute(f"select count(*) from {table}")
                found[table] = cursor.fetchone()[0]
        return found


class EmptiedBetweenTransactionTests(TransactionTestCase):
    """Django empties its tables after each TransactionTestCase test; herald_django empties
    herald's: notifications, every user's read, seen, archived and unread-again state, and
    kept signals. (In alphabetical order, test_1 runs first.)"""

    def test_1_leaves_something_in_every_table(self):
        ada = User.objects.create_user("ada")
        token = token_for(ada)

        def act(path, **body):
            status, answer = support.api("POST", f"/api/notifications/{path}", token, body)
            self.assertEqual(status, 200, answer)

        one = notify(ada, "one")
        notify("broadcast", "for everyone")
        act("archive_all", through=inbox_page(ada).cursor)  # archive, read and seen marks
        two, three = notify(ada, "two"), notify(ada, "three")
        act(f"{two.id}/read")                                 # a single read
        act(f"{three.id}/archive")                            # an archived row
        act(f"{one.id}/unread")                               # unread again under the mark
        send_signal("feed:demo", "location", {"lat": 1}, keep=600)
        tables = rows_per_table()
        self.assertIn("herald_kept_signals", tables, "the bundled schema has no kept signals")
        self.assertEqual([t for t, n in tables.items() if n == 0], [], tables)

    def test_2_starts_with_none_of_it(self):
        tables = rows_per_table()
        self.assertEqual(set(tables), set(testdb.HERALD_TEST_TABLES))
        self.assertEqual([t for t, n in tables.items() if n], [], tables)
        # As a page sees it: no courier from the last test, an empty inbox.
        ada = User.objects.create_user("ada")
        status, body = support.api("GET", "/api/signals", token_for(ada), channels="feed:demo")
        self.assertEqual((status, body), (200, {"signals": []}))
        status, body = support.api("GET", "/api/notifications", token_for(ada))
        self.assertEqual((body["notifications"], body["unread_count"], body["unseen_count"]),
                         ([], 0, 0))


class DjangoMigrations(TestCase):
    def test_the_shipped_migration_matches_the_model(self):
        # Else `makemigrations` in a user's project would write one into site-packages.
        out = io.StringIO()
        call_command("makemigrations", "herald_django", check=True, dry_run=True, stdout=out)
        self.assertIn("No changes detected", out.getvalue())


class SystemChecks(SimpleTestCase):
    def errors(self):
        return {e.id for e in checks.run_checks(include_deployment_checks=False)
                if e.id.startswith("herald_django")}

    def test_the_suite_s_settings_pass(self):
        self.assertEqual(self.errors(), set())

    def test_a_missing_herald_url_is_reported(self):
        with override_settings(HERALD_URL=None):
            self.assertIn("herald_django.E001", self.errors())
        with override_settings(HERALD_URL="herald.example.com"):
            self.assertIn("herald_django.E001", self.errors())

    def test_a_short_secret_is_reported_as_herald_would_refuse_it(self):
        with override_settings(HERALD_JWT_SECRET="x" * 31):
            self.assertIn("herald_django.E002", self.errors())

    def test_a_lifetime_past_five_minutes_is_reported(self):
        for lifetime in (0, 301, "60"):
            with override_settings(HERALD_TOKEN_LIFETIME=lifetime):
                self.assertIn("herald_django.E003", self.errors())

    def test_a_channels_hook_that_does_not_import_is_reported(self):
        with override_settings(HERALD_CHANNELS="demo.herald.nothing_here"):
            self.assertIn("herald_django.E004", self.errors())

    def test_settings_added_since_are_checked_too(self):
        cases = (
            ({"HERALD_INTERNAL_URL": "herald.internal"}, "herald_django.E006"),
            ({"HERALD_USER_NAME": "no such name"}, "herald_django.E007"),
            ({"HERALD_USER_NAME": "demo.herald.nothing_here"}, "herald_django.E007"),
            ({"HERALD_PUBLISH": "demo.herald.nothing_here"}, "herald_django.E008"),
            ({"HERALD_JS": "cdn"}, "herald_django.E009"),
        )
        for settings, check_id in cases:
            with self.subTest(**settings), override_settings(**settings):
                self.assertIn(check_id, self.errors())
        with override_settings(HERALD_INTERNAL_URL="http://herald.internal:8080",
                               HERALD_USER_NAME="get_full_name", HERALD_JS="app",
                               HERALD_PUBLISH=lambda user: user.is_staff):
            self.assertEqual(self.errors(), set())

    def test_a_missing_token_url_is_reported(self):
        with override_settings(ROOT_URLCONF="tests_urls_without_herald"):
            self.assertIn("herald_django.E005", self.errors())
