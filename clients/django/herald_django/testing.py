"""Helpers for a project's tests: what did this code notify?

    from herald_django.testing import HeraldTestMixin, capture_notifications

    class OrderTests(HeraldTestMixin, TestCase):
        def test_shipping_tells_the_customer(self):
            with capture_notifications() as sent:
                ship(order)
            self.assertEqual([n.title for n in sent], ["Order #17 shipped"])
            self.assertNotified(order.customer, title="Order #17 shipped", data={"order_id": 17})

They read herald's table, so they see every notification however it was made: `notify()`,
the model, raw SQL, `herald send`, or herald's HTTP API. Nothing is delivered in a `TestCase`
(it never commits); these check what would be.
"""

from contextlib import contextmanager

from django.db import router

from .models import Notification
from .publish import _COLLECTIONS, channel_of


class CapturedNotifications(list):
    """The notifications created inside `capture_notifications()`, oldest first. Filled when
    the block ends."""


@contextmanager
def capture_notifications(using=None):
    """Captures the notifications created inside the block (by this code or, once committed,
    by anyone else), as `Notification` objects, oldest first.

    Ids grow with every insert, so "created inside" is "an id above the largest one when the
    block began". Rows rolled back inside the block are not there, as they never existed.
    """
    using = using or router.db_for_read(Notification)
    manager = Notification.objects.using(using)
    before = manager.order_by("-id").values_list("id", flat=True).first() or 0
    sent = CapturedNotifications()
    yield sent
    sent.extend(manager.filter(id__gt=before).order_by("id"))


def _describe(n):
    return (f"#{n.id} {n.channel} title={n.title!r} kind={n.kind!r} level={n.level!r} "
            f"data={n.data!r}")


class HeraldTestMixin:
    """Assertions about notifications, for `TestCase`, `TransactionTestCase` and friends."""

    def _notifications(self, to, title, body, kind, level, data, using):
        query = Notification.objects.using(using or router.db_for_read(Notification))
        channels = [channel_of(r) for r in (to if isinstance(to, _COLLECTIONS) else [to])]
        everything = query.filter(channel__in=channels)
        matching = everything
        for name, value in (("title", title), ("body", body), ("kind", kind), ("level", level)):
            if value is not None:
                matching = matching.filter(**{name: value})
        if data is not None:
            matching = matching.filter(data__contains=data)
        return channels, everything, matching

    def assertNotified(self, to, title=None, *, body=None, kind=None, level=None, data=None,
                       count=None, using=None, msg=None):
        """Asserts that `to` (a user, a channel name, or a list of them) has a notification
        with these values, and returns the newest one that does.

        Only the values given are compared; `data` matches when it contains the given items
        (`data={"order_id": 17}` matches `{"order_id": 17, "url": "/orders/17/"}`). `count`
        asks for exactly that many matches (on all of `to` together).
        """
        channels, everything, matching = self._notifications(to, title, body, kind, level,
                                                             data, using)
        found = list(matching.order_by("-id"))
        if (count is None and found) or (count is not None and len(found) == count):
            return found[0] if found else None
        wanted = {k: v for k, v in (("title", title), ("body", body), ("kind", kind),
                                    ("level", level), ("data", data)) if v is not None}
        there = [_describe(n) for n in everything.order_by("-id")[:10]]
        expected = f"{count} notification(s)" if count is not None else "a notification"
        self.fail(self._formatMessage(msg, (
            f"expected {expected} to {', '.join(channels)} with {wanted or 'any values'}, found "
            f"{len(found)}; {', '.join(channels)} has:\n  " + ("\n  ".join(there) or "nothing"))))

    def assertNotNotified(self, to, title=None, *, body=None, kind=None, level=None, data=None,
                          using=None, msg=None):
        """Asserts that `to` has no notification with these values (any, with none given)."""
        channels, _, matching = self._notifications(to, title, body, kind, level, data, using)
        found = [_describe(n) for n in matching.order_by("-id")[:10]]
        if found:
            self.fail(self._formatMessage(msg, (
                f"expected no such notification to {', '.join(channels)}, found:\n  "
                + "\n  ".join(found))))

    def captureNotifications(self, using=None):
        """`capture_notifications()`, as a method."""
        return capture_notifications(using)
