"""The model's validation against the real table: what one refuses, the other refuses."""

import json
import tempfile
from pathlib import Path

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.forms import modelform_factory
from django.test import TestCase

from herald_django.models import Notification


def table_accepts(**fields):
    """Whether PostgreSQL takes the row (inserted without any validation, then undone)."""
    try:
        with transaction.atomic():
            Notification.objects.create(**{"channel": "c", "title": "t", **fields})
            transaction.set_rollback(True)
        return True
    except (DatabaseError, ValueError):  # ValueError: the driver refuses NUL before sending
        return False


def model_accepts(**fields):
    try:
        Notification(**{"channel": "c", "title": "t", **fields}).full_clean()
        return True
    except ValidationError:
        return False


# Each end of every range the table forbids in channel names, and the characters next to them.
CHANNEL_EDGES = [0x01, 0x09, 0x20, 0x21, 0x7E, 0x7F, 0x85, 0xA0, 0xA1, 0x167F, 0x1680, 0x1681,
                 0x1FFF, 0x2000, 0x200A, 0x200B, 0x2027, 0x2028, 0x2029, 0x202A, 0x202E, 0x202F,
                 0x2030, 0x205E, 0x205F, 0x2060, 0x2FFF, 0x3000, 0x3001, 0xFEFF, 0x1F514]


class ValidationMirrorsTheTable(TestCase):
    def assert_agree(self, field, values):
        for value in values:
            with self.subTest(**{field: value}):
                self.assertEqual(model_accepts(**{field: value}), table_accepts(**{field: value}))

    def test_channel_names(self):
        values = ["user:42", "broadcast", "order:17", "a" * 200, "a" * 201, "", "a,b", "a*",
                  "é:1", "user:\x00"]
        values += [f"x{chr(c)}y" for c in CHANNEL_EDGES]
        self.assert_agree("channel", values)

    def test_kinds(self):
        # Control characters (C0, C1): refused by both, whatever the database's locale.
        self.assert_agree("kind", ["notification", "order update", "k" * 100, "k" * 101, "",
                                   "a\x00", "a\x01", "a\n", "a\x7f", "a\x85", "a\x9f", "a\xa0",
                                   "ünïcode ✓"])

    def test_kinds_the_model_refuses_are_never_ones_only_some_locales_refuse_the_other_way(self):
        # U+2028 and U+2029 are controls in some locales only: the model refuses them always,
        # so it is never looser than the table.
        for kind in ("a\u2028", "a\u2029"):
            self.assertFalse(model_accepts(kind=kind))

    def test_levels(self):
        self.assert_agree("level", ["info", "success", "warning", "error", "critical", "INFO", ""])

    def test_data_must_be_a_json_object_jsonb_can_store(self):
        self.assert_agree("data", [{}, {"order_id": 17, "nested": {"list": [1, "two", None]}},
                                   [1, 2], "text", 3, {"a": "\x00"}, {"\x00": 1},
                                   {"a": ["\x00"]}, {"a": "\ud800"}])

    def test_nan_and_infinity_are_refused_before_they_reach_the_database(self):
        for value in (float("nan"), float("inf")):
            self.assertFalse(model_accepts(data={"x": value}))

    def test_text_with_nul_or_a_lone_surrogate(self):
        for field in ("title", "body"):
            self.assert_agree(field, ["", "plain", "a\x00b", "a\ud800b", "🔔 " * 1000])

    def test_the_defaults_are_the_table_s(self):
        n = Notification(channel="user:1", title="t")
        n.full_clean()
        self.assertEqual((n.body, n.kind, n.level, n.data), ("", "notification", "info", {}))


class Ids(TestCase):
    def test_postgresql_assigns_the_id(self):
        n = Notification.objects.create(channel="user:1", title="t")
        self.assertIsInstance(n.id, int)

    def test_an_id_chosen_by_the_app_is_a_validation_error(self):
        with self.assertRaises(ValidationError) as caught:
            Notification(id=12345, channel="user:1", title="t").full_clean()
        self.assertIn("id", caught.exception.message_dict)

    def test_saving_a_new_row_with_an_id_says_why_it_cannot(self):
        with self.assertRaisesMessage(ValueError, "PostgreSQL assigns notification ids"):
            Notification(id=12345, channel="user:1", title="t").save()

    def test_an_existing_row_can_still_be_saved_by_id(self):
        n = Notification.objects.create(channel="user:1", title="before")
        Notification(id=n.id, channel="user:1", title="after", created_at=n.created_at).save()
        self.assertEqual(Notification.objects.get(id=n.id).title, "after")


class Fixtures(TestCase):
    def load(self, records):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "notifications.json"
            path.write_text(json.dumps(records))
            call_command("loaddata", str(path), verbosity=0)

    def test_a_fixture_without_pk_or_created_at_loads(self):
        self.load([{"model": "herald_django.notification",
                    "fields": {"channel": "broadcast", "title": "From a fixture"}}])
        n = Notification.objects.get(title="From a fixture")
        self.assertIsNotNone(n.created_at)

    def test_a_fixture_with_a_new_pk_is_refused_with_the_reason(self):
        with self.assertRaisesMessage(Exception, "Leave `pk` out"):
            self.load([{"model": "herald_django.notification", "pk": 987654,
                        "fields": {"channel": "broadcast", "title": "t"}}])


class CreatedAt(TestCase):
    def test_created_at_is_the_database_s_now_not_the_app_s_clock(self):
        with connection.cursor() as cursor:
            cursor.execute("select now()")  # the transaction's start, as the column default
            now = cursor.fetchone()[0]
        one = Notification.objects.create(channel="user:1", title="t")
        many = Notification.objects.bulk_create(
            [Notification(channel="user:1", title="a"), Notification(channel="user:2", title="b")])
        self.assertEqual([one.created_at] + [n.created_at for n in many], [now] * 3)
        self.assertEqual(Notification.objects.get(id=one.id).created_at, now)


class Forms(TestCase):
    Form = modelform_factory(Notification, fields=["channel", "title", "body", "kind", "level",
                                                   "data"])

    def test_a_model_form_reports_what_the_table_would_refuse_as_field_errors(self):
        form = self.Form({"channel": "user 2", "title": "t", "kind": "notification",
                          "level": "loud", "data": "[1, 2]"})
        self.assertFalse(form.is_valid())
        self.assertEqual(sorted(form.errors), ["channel", "data", "level"])

    def test_a_valid_form_saves(self):
        form = self.Form({"channel": "order:17", "title": "Shipped", "kind": "order_update",
                          "level": "success", "data": '{"order_id": 17}'})
        self.assertTrue(form.is_valid(), form.errors)
        self.assertEqual(form.save().data, {"order_id": 17})


class Admin(TestCase):
    def setUp(self):
        self.client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
        self.n = Notification.objects.create(channel="user:7", title="Needle", body="hay")

    def test_the_list_searches_and_filters(self):
        for query in ("", "?q=Needle", "?q=user:7", "?level__exact=info"):
            with self.subTest(query=query):
                response = self.client.get(f"/admin/herald_django/notification/{query}")
                self.assertContains(response, "Needle")

    def test_notifications_are_read_only(self):
        base = "/admin/herald_django/notification"
        self.assertEqual(self.client.get(f"{base}/add/").status_code, 403)
        self.assertContains(self.client.get(f"{base}/{self.n.id}/change/"), "Needle")
        response = self.client.post(f"{base}/{self.n.id}/change/", {"title": "changed"})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.client.post(f"{base}/{self.n.id}/delete/", {"post": "yes"})
                         .status_code, 403)
        self.assertEqual(Notification.objects.get(id=self.n.id).title, "Needle")
