"""herald_django.testing: capture_notifications() and HeraldTestMixin's assertions."""

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase

import support
from herald_django import notify
from herald_django.testing import HeraldTestMixin, capture_notifications


class CaptureNotifications(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")
        notify(self.ada, "before the block")

    def test_it_captures_what_the_block_created_oldest_first(self):
        with capture_notifications() as sent:
            notify(self.ada, "Order shipped", data={"order_id": 17})
            notify([self.ada, "broadcast"], "Both")
            with connection.cursor() as cursor:  # raw SQL too: it reads the table
                cursor.execute("insert into notifications (channel, title) values ('order:17', 'raw')")
            self.assertEqual(sent, [])  # filled when the block ends
        self.assertEqual([(n.channel, n.title) for n in sent],
                         [(f"user:{self.ada.pk}", "Order shipped"), (f"user:{self.ada.pk}", "Both"),
                          ("broadcast", "Both"), ("order:17", "raw")])
        self.assertEqual(sent[0].data, {"order_id": 17})

    def test_rolled_back_notifications_are_not_captured(self):
        with capture_notifications() as sent:
            try:
                with transaction.atomic():
                    notify(self.ada, "never happened")
                    raise RuntimeError
            except RuntimeError:
                pass
        self.assertEqual(len(sent), 0)

    def test_the_mixin_s_method_is_the_same(self):
        with HeraldTestMixin().captureNotifications() as sent:
            notify("broadcast", "hi")
        self.assertEqual([n.title for n in sent], ["hi"])


class CaptureWhatOthersCommit(TransactionTestCase):
    def test_notifications_committed_by_herald_meanwhile_are_captured_too(self):
        with capture_notifications() as sent:
            support.publish("order:17", "over HTTP")
        self.assertEqual([n.title for n in sent], ["over HTTP"])


class Assertions(HeraldTestMixin, TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")
        self.grace = User.objects.create_user("grace")
        notify(self.ada, "Order shipped", "On its way", kind="order_update", level="success",
               data={"order_id": 17, "url": "/orders/17/"})
        notify("order:17", "Picked up")

    def test_assert_notified_returns_the_newest_match(self):
        n = self.assertNotified(self.ada, title="Order shipped", kind="order_update",
                                level="success", data={"order_id": 17})
        self.assertEqual(n.body, "On its way")
        self.assertEqual(self.assertNotified("order:17").title, "Picked up")
        self.assertNotified([self.ada, self.grace], count=1)
        self.assertNotified(self.ada, title="Order shipped", count=1)

    def test_a_miss_says_what_the_recipient_has(self):
        with self.assertRaises(AssertionError) as caught:
            self.assertNotified(self.ada, title="Order delivered")
        message = str(caught.exception)
        self.assertIn(f"expected a notification to user:{self.ada.pk} with {{'title': 'Order delivered'}}",
                      message)
        self.assertIn("title='Order shipped'", message)
        for wrong in ({"data": {"order_id": 18}}, {"level": "info"}, {"count": 2}):
            with self.subTest(**wrong), self.assertRaises(AssertionError):
                self.assertNotified(self.ada, **wrong)
        with self.assertRaisesMessage(AssertionError, "has:\n  nothing"):
            self.assertNotified(self.grace)

    def test_assert_not_notified(self):
        self.assertNotNotified(self.grace)
        self.assertNotNotified(self.ada, title="Order delivered")
        with self.assertRaisesMessage(AssertionError, "found:\n  #"):
            self.assertNotNotified(self.ada, kind="order_update")
