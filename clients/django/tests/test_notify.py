"""notify(): what it inserts, and what the running herald delivers (commit) or not (rollback)."""

from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import TestCase, TransactionTestCase

import support
from herald_django import notify, token_for
from herald_django.models import Notification


class WhatNotifyInserts(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_a_user_means_their_inbox(self):
        n = notify(self.ada, "Order shipped", "Order #17 is on its way", kind="order_update",
                   level="success", data={"order_id": 17})
        stored = Notification.objects.get(id=n.id)
        self.assertEqual(
            (stored.channel, stored.title, stored.body, stored.kind, stored.level, stored.data),
            (f"user:{self.ada.pk}", "Order shipped", "Order #17 is on its way", "order_update",
             "success", {"order_id": 17}))
        self.assertIsNotNone(n.created_at)

    def test_a_string_is_a_channel_name(self):
        self.assertEqual(notify("broadcast", "Maintenance tonight").channel, "broadcast")
        self.assertEqual(notify("order:17", "Picked up").channel, "order:17")

    def test_a_list_or_queryset_is_one_insert_for_all(self):
        grace = User.objects.create_user("grace")
        with self.assertNumQueries(1):
            rows = notify([self.ada, grace], "New task", data={"task": 3})
        self.assertEqual([r.channel for r in rows], [f"user:{self.ada.pk}", f"user:{grace.pk}"])
        self.assertTrue(all(r.id and r.created_at for r in rows))
        members = User.objects.filter(pk__in=[self.ada.pk, grace.pk])
        self.assertEqual(len(notify(members, "From a queryset")), 2)
        self.assertEqual(len(notify([self.ada, "feed:team"], "Both")), 2)

    def test_bad_values_raise_validation_error_and_leave_the_transaction_usable(self):
        with transaction.atomic():
            for bad in ({"to": "user 2"}, {"level": "loud"}, {"data": [1, 2]}, {"kind": ""},
                        {"title": "a\x00b"}):
                with self.subTest(**{k: repr(v) for k, v in bad.items()}):
                    with self.assertRaises(ValidationError):
                        notify(**{"to": self.ada, "title": "t", **bad})
            # Nothing reached PostgreSQL, so the transaction was not aborted.
            self.assertEqual(Notification.objects.filter(channel=f"user:{self.ada.pk}").count(), 0)

    def test_recipients_that_name_no_inbox_are_refused(self):
        group = Group.objects.create(name="staff")  # a model, but not a user: no inbox
        for to, error in ((AnonymousUser(), ValueError), (User(username="unsaved"), ValueError),
                          (42, TypeError), (None, TypeError), (group, TypeError)):
            with self.subTest(to=to), self.assertRaises(error):
                notify(to, "t")


class WhatHeraldDelivers(TransactionTestCase):
    """Committed for real (no test transaction), as herald sees only what commits."""

    def setUp(self):
        self.ada = User.objects.create_user("ada")
        self.stream = support.EventStream(token_for(self.ada))
        self.addCleanup(self.stream.close)
        self.assertEqual(self.stream.status, 200)
        # Sent once subscribed: whatever commits from now on reaches this stream.
        self.stream.next("unread_count")

    def test_outside_a_transaction_it_is_delivered_at_once(self):
        notify(self.ada, "Export ready", data={"url": "/exports/9"})
        n = self.stream.next("notification")
        self.assertEqual((n["title"], n["data"], n["read"]), ("Export ready", {"url": "/exports/9"},
                                                              False))
        self.stream.count_reaches(1)  # raises, with what the stream sent, if it never does

    def test_inside_a_transaction_it_is_delivered_at_commit_and_not_before(self):
        with transaction.atomic():
            notify(self.ada, "With the order")
            # Committed by another session while ours is open: it arrives first.
            support.publish(f"user:{self.ada.pk}", "Meanwhile")
            self.assertEqual(self.stream.next("notification")["title"], "Meanwhile")
        self.assertEqual(self.stream.next("notification")["title"], "With the order")

    def test_a_rolled_back_notification_is_never_delivered(self):
        try:
            with transaction.atomic():
                notify(self.ada, "Order shipped")
                raise RuntimeError("the order failed to save")
        except RuntimeError:
            pass
        notify(self.ada, "After the rollback")
        # The next notification on the stream is the one that committed after.
        self.assertEqual(self.stream.next("notification")["title"], "After the rollback")
        self.assertEqual(Notification.objects.filter(title="Order shipped").count(), 0)

    def test_a_list_of_recipients_reaches_each_inbox(self):
        grace = User.objects.create_user("grace")
        with support.EventStream(token_for(grace)) as theirs:
            theirs.next("unread_count")
            notify([self.ada, grace], "Standup in 5 minutes")
            self.assertEqual(self.stream.next("notification")["channel"], f"user:{self.ada.pk}")
            self.assertEqual(theirs.next("notification")["channel"], f"user:{grace.pk}")
