"""send_signal(): live signals from the server (a courier's position), through the running herald."""

import socket
import threading
import time

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import TestCase, override_settings

import support
from herald_django import HeraldError, send_signal, token_for


def open_stream(user, **query):
    stream = support.EventStream(token_for(user), **query)
    assert stream.status == 200, stream.error
    stream.next("unread_count")  # subscribed: what is sent from now on reaches it
    return stream


class Delivery(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_a_granted_channel_s_streams_hear_it_from_the_server(self):
        with open_stream(self.ada, channels="feed:demo") as stream:
            delivered = send_signal("feed:demo", "location", {"lat": 48.85, "lng": 2.35})
            signal = stream.next("signal")
        self.assertGreaterEqual(delivered, 1)
        self.assertEqual({k: signal[k] for k in ("channel", "kind", "from", "data")},
                         {"channel": "feed:demo", "kind": "location", "from": "server",
                          "data": {"lat": 48.85, "lng": 2.35}})
        self.assertIn("at", signal)

    def test_a_user_s_inbox_and_broadcast_need_the_publish_scope_which_it_has(self):
        with open_stream(self.ada) as stream:
            send_signal(self.ada, "typing", None)
            self.assertEqual(stream.next("signal")["channel"], f"user:{self.ada.pk}")
            send_signal("broadcast", "maintenance", {"in": 300})
            self.assertEqual(stream.next("signal")["channel"], "broadcast")

    def test_the_sender_can_be_a_user(self):
        courier = User.objects.create_user("courier")
        with open_stream(self.ada, channels="feed:demo") as stream:
            send_signal("feed:demo", "location", [1, 2], sender=courier)
            self.assertEqual(stream.next("signal")["from"], str(courier.pk))

    def test_herald_internal_url_is_where_the_server_sends_it(self):
        with override_settings(HERALD_URL="http://herald.example.invalid",
                               HERALD_INTERNAL_URL=support.herald().url + "/"):
            with open_stream(self.ada, channels="feed:demo") as stream:
                send_signal("feed:demo", "ping", {})
                self.assertEqual(stream.next("signal")["kind"], "ping")

    def test_keep_is_sent_and_a_herald_without_kept_values_says_so(self):
        try:
            send_signal("feed:demo", "location", {"lat": 1}, keep=60)
        except HeraldError as err:  # herald before SPEC section 12's kept values
            self.assertIn(err.status, (400, 422))
            self.assertIn("this herald does not keep signals yet", str(err))


class Refusals(TestCase):
    def test_values_herald_would_refuse_raise_before_any_request(self):
        with override_settings(HERALD_INTERNAL_URL="http://127.0.0.1:9"):  # nothing there
            for channel, kind, data in (("a b", "k", {}), ("feed:demo", "", {}),
                                        ("feed:demo", "k" * 65, {}), ("feed:demo", "a\nb", {}),
                                        ("feed:demo", "k", {1, 2}), ("feed:demo", "k", float("nan")),
                                        ("feed:demo", "k", "x" * 4100)):
                with self.subTest(channel=channel, kind=kind[:10]), self.assertRaises(ValidationError):
                    send_signal(channel, kind, data)
            for keep in (0, 86401, "60", True):
                with self.subTest(keep=keep), self.assertRaises(ValueError):
                    send_signal("feed:demo", "k", {}, keep=keep)

    def test_a_rate_limited_sender_gets_retry_after(self):
        sender = f"flood-{time.monotonic_ns()}"
        with self.assertRaises(HeraldError) as caught:
            for _ in range(100):  # 20 a second, burst 40
                send_signal("feed:demo", "spam", {}, sender=sender)
        self.assertEqual((caught.exception.status, caught.exception.code), (429, "rate_limited"))
        self.assertGreaterEqual(caught.exception.retry_after, 1)

    def test_herald_not_answering_is_a_clear_error_within_the_timeout(self):
        with override_settings(HERALD_INTERNAL_URL=f"http://127.0.0.1:{support.free_port()}"):
            with self.assertRaises(HeraldError) as caught:
                send_signal("feed:demo", "k", {})
        self.assertEqual((caught.exception.status, caught.exception.code), (None, "unreachable"))

        # A herald that accepts the connection and then hangs.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        self.addCleanup(silent.close)
        held = []
        threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
        with override_settings(HERALD_INTERNAL_URL=f"http://127.0.0.1:{silent.getsockname()[1]}"):
            start = time.monotonic()
            with self.assertRaisesMessage(HeraldError, "did not answer within 0.5 s"):
                send_signal("feed:demo", "k", {}, timeout=0.5)
        self.assertLess(time.monotonic() - start, 3)
