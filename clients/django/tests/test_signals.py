"""send_signal(): live signals from the server (a courier's position), through herald's SQL
function, in the caller's transaction, delivered by the running herald."""

import json

import psycopg
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase

import support
from herald_django import HeraldError, send_signal, token_for


def open_stream(user, **query):
    stream = support.EventStream(token_for(user), **query)
    assert stream.status == 200, stream.error
    stream.next("unread_count")  # subscribed: what is sent from now on reaches it
    return stream


def signal_from_another_session(channel, kind, data=None):
    """A signal committed by another connection (a cron job, another request) right now."""
    with psycopg.connect(support.libpq_url(connection.settings_dict), autocommit=True) as other:
        other.execute("select herald_signal(%s, %s, %s::jsonb)", [channel, kind, json.dumps(data)])


def fields(signal, *names):
    return {name: signal.get(name) for name in names}


class Delivery(TransactionTestCase):
    """Committed for real (no test transaction): herald hears of a signal at commit."""

    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_outside_a_transaction_a_granted_channel_s_streams_hear_it_at_once(self):
        with open_stream(self.ada, channels="feed:demo") as stream:
            self.assertIsNone(send_signal("feed:demo", "location", {"lat": 48.85, "lng": 2.35}))
            signal = stream.next("signal")
        # No user sent it: `from` is null, and a server-side sender puts who it is about in data.
        self.assertEqual(fields(signal, "channel", "kind", "from", "data"),
                         {"channel": "feed:demo", "kind": "location", "from": None,
                          "data": {"lat": 48.85, "lng": 2.35}})
        self.assertRegex(signal["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertNotIn("kept", signal)

    def test_a_user_s_inbox_and_broadcast_take_signals_too(self):
        with open_stream(self.ada) as stream:
            send_signal(self.ada, "typing", None)
            self.assertEqual(fields(stream.next("signal"), "channel", "data"),
                             {"channel": f"user:{self.ada.pk}", "data": None})
            send_signal("broadcast", "maintenance", {"in": 300})
            self.assertEqual(stream.next("signal")["channel"], "broadcast")

    def test_inside_a_transaction_it_is_delivered_at_commit_and_not_before(self):
        with open_stream(self.ada, channels="feed:demo") as stream:
            with transaction.atomic():
                send_signal("feed:demo", "location", {"step": "with the order"})
                # Committed by another session while ours is open: it arrives first.
                signal_from_another_session("feed:demo", "marker")
                self.assertEqual(stream.next("signal")["kind"], "marker")
            self.assertEqual(fields(stream.next("signal"), "kind", "data"),
                             {"kind": "location", "data": {"step": "with the order"}})

    def test_a_rolled_back_signal_is_never_delivered(self):
        with open_stream(self.ada, channels="feed:demo") as stream:
            try:
                with transaction.atomic():
                    send_signal("feed:demo", "location", {"step": "rolled back"})
                    raise RuntimeError("the order failed to save")
            except RuntimeError:
                pass
            send_signal("feed:demo", "location", {"step": "after the rollback"})
            # The next signal on the stream is the one that committed after.
            self.assertEqual(stream.next("signal")["data"], {"step": "after the rollback"})

    def test_a_kept_signal_reaches_a_page_opened_afterwards(self):
        with open_stream(self.ada, channels="feed:demo") as open_before:
            send_signal("feed:demo", "wave", {"name": "not kept"})
            send_signal("feed:demo", "location", {"lat": 1, "lng": 1}, keep=60)
            send_signal("feed:demo", "location", {"lat": 2, "lng": 2}, keep=60)  # it moved
            # Delivered live to the page open then: herald is done with them.
            while open_before.next("signal")["data"] != {"lat": 2, "lng": 2}:
                pass
        with support.EventStream(token_for(self.ada), channels="feed:demo") as stream:
            # The stream starts from where the courier is now...
            kept = stream.next("signal")
            if "unread_count" not in [e for e, d in stream.seen]:
                stream.next("unread_count")  # subscribed: what is sent from now on reaches it
            self.assertEqual(fields(kept, "channel", "kind", "from", "data", "kept"),
                             {"channel": "feed:demo", "kind": "location", "from": None,
                              "data": {"lat": 2, "lng": 2}, "kept": True})
            # ...and nothing else came before this later one: neither the older position
            # nor the signal that was not kept.
            send_signal("feed:demo", "marker", {})
            self.assertEqual(stream.next("signal")["kind"], "marker")
        self.assertEqual([d["kind"] for e, d in stream.seen if e == "signal"],
                         ["location", "marker"])

    def test_a_rolled_back_kept_signal_is_not_kept(self):
        with transaction.atomic():
            send_signal("feed:demo", "location", {"lat": 3}, keep=60)
            transaction.set_rollback(True)
        with open_stream(self.ada, channels="feed:demo") as stream:
            send_signal("feed:demo", "marker", {})
            self.assertEqual(stream.next("signal")["kind"], "marker")
        self.assertEqual([d["kind"] for e, d in stream.seen if e == "signal"], ["marker"])

    def test_polling_clients_read_the_kept_values_too(self):
        send_signal("feed:demo", "location", {"lat": 4}, keep=60)
        status, body = support.api("GET", "/api/signals", token_for(self.ada), channels="feed:demo")
        self.assertEqual(status, 200, body)
        self.assertEqual([fields(s, "kind", "data", "kept") for s in body["signals"]],
                         [{"kind": "location", "data": {"lat": 4}, "kept": True}])


class Refusals(TestCase):
    def assert_transaction_usable(self):
        self.assertTrue(User.objects.filter(username="ada").exists())

    def setUp(self):
        User.objects.create_user("ada")

    def test_values_herald_would_refuse_raise_before_the_call(self):
        with connection.cursor() as cursor:  # undone with the test
            cursor.execute("drop function herald_signal(text, text, jsonb, integer)")
        for channel, kind, data in (("a b", "k", {}), ("feed:demo", "", {}),
                                    ("feed:demo", "k" * 65, {}), ("feed:demo", "a\nb", {}),
                                    ("feed:demo", "k", {1, 2}), ("feed:demo", "k", float("nan")),
                                    ("feed:demo", "k", {"a": "\x00"}), ("feed:demo", "k", "x" * 4100)):
            with self.subTest(channel=channel, kind=kind[:10]), self.assertRaises(ValidationError):
                send_signal(channel, kind, data)
        for keep in (0, 86401, "60", True, 1.5):
            with self.subTest(keep=keep), self.assertRaises(ValueError):
                send_signal("feed:demo", "k", {}, keep=keep)
        self.assert_transaction_usable()

    def test_the_size_limit_is_herald_s_and_a_refusal_leaves_the_transaction_usable(self):
        # Python writes 1e100 in 6 characters, jsonb in 101: only herald's function can tell
        # this is over 4,096 bytes. Its refusal is a ValidationError too, and the savepoint
        # keeps the transaction going.
        with self.assertRaisesMessage(ValidationError, "over 4096"):
            send_signal("feed:demo", "k", [1e100] * 40)
        self.assert_transaction_usable()
        send_signal("feed:demo", "k", "x" * 3900)  # just under: taken

    def test_a_database_without_herald_signal_is_a_clear_error(self):
        with connection.cursor() as cursor:
            cursor.execute("drop function herald_signal(text, text, jsonb, integer)")
        with self.assertRaises(HeraldError) as caught:
            send_signal("feed:demo", "k", {})
        self.assertEqual(caught.exception.code, "not_installed")
        self.assertIn("herald migrate", str(caught.exception))
        self.assert_transaction_usable()

    def test_a_role_without_execute_is_told_what_to_grant(self):
        role = f"herald_django_no_signal_{connection.settings_dict['NAME']}"[:63]
        with connection.cursor() as cursor:  # all of it undone with the test
            cursor.execute(f'create role "{role}"')
            cursor.execute(f'set local role "{role}"')
        try:
            with self.assertRaises(HeraldError) as caught:
                send_signal("feed:demo", "k", {})
        finally:
            with connection.cursor() as cursor:
                cursor.execute("reset role")
        self.assertEqual(caught.exception.code, "permission_denied")
        self.assertIn("grant execute on function herald_signal(text, text, jsonb, integer)",
                      str(caught.exception))
        self.assert_transaction_usable()
