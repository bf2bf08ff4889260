"""unread_count(), unseen_count() and inbox_page(): the inbox as herald has it, read in the
caller's transaction.

herald's functions count rows "committed after" a snapshot up to the current snapshot's xmax,
one past the newest *completed* transaction. A transaction's own rows lie past it until some
later transaction completes (herald's roll-up does, every second), so the badge of a TestCase
said 0 or the right count depending on what had committed since the test's transaction began.
These tests put the count in both situations on purpose.
"""

import psycopg
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.template import Context, Template
from django.test import RequestFactory, TestCase, TransactionTestCase, override_settings

import support
from herald_django import inbox_page, notify, token_for, unread_count, unseen_count


def own_rows_past_xmax():
    """True while no transaction that began after this one's has completed."""
    with connection.cursor() as cursor:
        cursor.execute("select pg_current_xact_id() >= pg_snapshot_xmax(pg_current_snapshot())")
        return cursor.fetchone()[0]


def complete_another_transaction():
    """Commits a transaction (with an id) on another connection: xmax moves past ours."""
    with psycopg.connect(support.libpq_url(connection.settings_dict)) as other:
        other.execute("select pg_current_xact_id()")
        other.commit()


def badge(user, count="unread"):
    request = RequestFactory().get("/")
    request.user = user
    return Template("{% load herald %}{% herald_unread_badge count=count %}").render(
        Context({"request": request, "count": count})).strip()


def herald_counts(user):
    """The counts as herald itself answers them (GET /api/notifications/unread_count)."""
    status, body = support.api("GET", "/api/notifications/unread_count", token_for(user))
    assert status == 200, (status, body)
    return body["unread_count"], body["unseen_count"]


def counts(user):
    return unread_count(user), unseen_count(user)


class UnreadCountInATransaction(TransactionTestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_own_notifications_count_before_any_later_transaction_completes(self):
        # herald's roll-up completes a transaction every second: try until the count ran
        # while ours was still the newest (checked after it: xmax never goes back).
        for _ in range(50):
            with transaction.atomic():
                notify(self.ada, "one")
                notify("broadcast", "two")
                notify("feed:demo", "not in the inbox")
                count, html = counts(self.ada), badge(self.ada)
                unseen_html = badge(self.ada, "unseen")
                newest = own_rows_past_xmax()
                transaction.set_rollback(True)
            self.assertEqual(count, (2, 2))
            self.assertIn(">2</span>", html)
            self.assertIn(">2</span>", unseen_html)
            if newest:
                return
        self.fail("every attempt had a later transaction complete before the count")

    def test_own_notifications_count_after_a_later_transaction_completed(self):
        with transaction.atomic():
            notify(self.ada, "one")
            notify("broadcast", "two")
            complete_another_transaction()
            self.assertFalse(own_rows_past_xmax())
            self.assertEqual(counts(self.ada), (2, 2))
            self.assertIn(">2</span>", badge(self.ada))
            self.assertIn(">2</span>", badge(self.ada, "unseen"))
            transaction.set_rollback(True)

    def test_committed_rows_and_own_rows_add_up_and_reads_are_subtracted(self):
        sent = support.publish(f"user:{self.ada.pk}", "committed by herald")
        support.publish(f"user:{self.ada.pk}", "committed too")
        support.api("POST", f"/api/notifications/{sent['id']}/read", token_for(self.ada))
        with transaction.atomic():
            notify(self.ada, "ours")
            self.assertEqual(counts(self.ada), (2, 2))
            transaction.set_rollback(True)
        self.assertEqual(counts(self.ada), (1, 1))


class UnseenCount(TransactionTestCase):
    """Committed for real: herald's own answers are the reference."""

    def setUp(self):
        self.ada = User.objects.create_user("ada")
        self.token = token_for(self.ada)

    def act(self, path, **body):
        status, answer = support.api("POST", f"/api/notifications/{path}", self.token, body)
        self.assertEqual(status, 200, answer)

    def test_opening_the_bell_marks_what_the_page_showed_seen_and_nothing_after(self):
        notify(self.ada, "one")
        notify("broadcast", "two")
        page = inbox_page(self.ada)
        self.assertEqual((page.unread_count, page.unseen_count), (2, 2))
        notify(self.ada, "after the page")
        # What the page's bell does when opened: markSeen(page.cursor).
        self.act("seen", through=page.cursor)
        self.assertEqual(counts(self.ada), (3, 1))
        self.assertEqual(counts(self.ada), herald_counts(self.ada))
        self.assertEqual(badge(self.ada, "unseen"),
                         '<span class="herald-unseen" data-herald-unseen>1</span>')
        page = inbox_page(self.ada)
        self.assertEqual([(n.title, n.read, n.seen, n.archived) for n in page.notifications],
                         [("after the page", False, False, False), ("two", False, True, False),
                          ("one", False, True, False)])
        self.assertEqual((page.unread_count, page.unseen_count), (3, 1))

    def test_reading_archiving_and_unread_again_keep_it_exact(self):
        one, two, three = (notify(self.ada, title) for title in ("one", "two", "three"))
        self.assertEqual(counts(self.ada), (3, 3))
        self.act(f"{one.id}/read")           # reading sees it too
        self.assertEqual(counts(self.ada), (2, 2))
        self.act(f"{two.id}/archive")        # archiving reads it, and it leaves the inbox
        self.assertEqual(counts(self.ada), (1, 1))
        self.act(f"{one.id}/unread")
        self.assertEqual(unread_count(self.ada), 2)
        self.assertEqual(counts(self.ada), herald_counts(self.ada))
        self.act("read_all")
        self.assertEqual(counts(self.ada), (0, 0))
        self.act(f"{three.id}/unread")       # read by the mark, unread again
        self.assertEqual(counts(self.ada), herald_counts(self.ada))
        self.assertEqual(unread_count(self.ada), 1)
        with transaction.atomic():           # and our own rows on top, uncommitted
            notify(self.ada, "ours")
            notify("broadcast", "ours too")
            unread, unseen = herald_counts(self.ada)
            self.assertEqual(counts(self.ada), (unread + 2, unseen + 2))
            transaction.set_rollback(True)


class UnreadCountInATestCase(TestCase):
    """Whatever ran before in the class's transaction, and whatever herald did meanwhile.

    (Rows herald commits during a TestCase outlive it: only the user's own inbox, whose id no
    other test reuses, gets any here.)
    """

    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_1_first_in_the_class(self):
        notify(self.ada, "one")
        notify("broadcast", "two")
        self.assertEqual((unread_count(self.ada), badge(self.ada)),
                         (2, '<span class="herald-unread" data-herald-unread>2</span>'))

    def test_2_after_another_transaction_completed(self):
        notify(self.ada, "one")
        complete_another_transaction()
        notify("broadcast", "two")
        self.assertEqual(unread_count(self.ada), 2)

    def test_3_after_a_mark_all_read_by_herald(self):
        support.publish(f"user:{self.ada.pk}", "committed")
        status, _ = support.api("POST", "/api/notifications/read_all", token_for(self.ada))
        self.assertEqual(status, 200)
        notify(self.ada, "one")
        self.assertEqual(counts(self.ada), (1, 1))

    def test_4_after_herald_marked_the_inbox_seen(self):
        support.publish(f"user:{self.ada.pk}", "committed")
        status, listed = support.api("GET", "/api/notifications", token_for(self.ada))
        self.assertEqual((status, listed["unseen_count"]), (200, 1))
        status, _ = support.api("POST", "/api/notifications/seen", token_for(self.ada),
                                {"through": listed["cursor"]})
        self.assertEqual(status, 200)
        notify(self.ada, "ours")
        self.assertEqual(counts(self.ada), (2, 1))
        self.assertEqual(badge(self.ada, "unseen"),
                         '<span class="herald-unseen" data-herald-unseen>1</span>')


class InboxPage(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_the_newest_first_with_read_state_and_the_unread_count(self):
        first = support.publish(f"user:{self.ada.pk}", "first")
        support.api("POST", f"/api/notifications/{first['id']}/read", token_for(self.ada))
        notify("broadcast", "second")
        notify("feed:demo", "not in the inbox")
        notify(self.ada, "third, uncommitted", data={"url": "/x"})
        page = inbox_page(self.ada, limit=10)
        self.assertEqual([(n.title, n.read, n.seen, n.archived) for n in page.notifications],
                         [("third, uncommitted", False, False, False),
                          ("second", False, False, False), ("first", True, True, False)])
        self.assertEqual(page.notifications[0].data, {"url": "/x"})
        self.assertIsNotNone(page.notifications[0].created_at)
        self.assertEqual((page.unread_count, page.unseen_count), (2, 2))
        self.assertEqual([n.title for n in inbox_page(self.ada, limit=1).notifications],
                         ["third, uncommitted"])
        self.assertEqual([n.title for n in inbox_page(self.ada, unread=True).notifications],
                         ["third, uncommitted", "second"])

    def test_archived_ones_are_left_out_and_listed_on_their_own(self):
        kept = support.publish(f"user:{self.ada.pk}", "kept")
        cleared = support.publish(f"user:{self.ada.pk}", "cleared")
        status, _ = support.api("POST", f"/api/notifications/{cleared['id']}/archive",
                                token_for(self.ada))
        self.assertEqual(status, 200)
        page = inbox_page(self.ada)
        self.assertEqual([n.title for n in page.notifications], ["kept"])
        self.assertEqual((page.unread_count, page.unseen_count), (1, 1))
        archived = inbox_page(self.ada, archived=True)
        self.assertEqual([(n.id, n.read, n.seen, n.archived) for n in archived.notifications],
                         [(cleared["id"], True, True, True)])
        self.assertNotIn(kept["id"], [n.id for n in archived.notifications])

    def test_an_empty_inbox_still_has_a_cursor(self):
        page = inbox_page(self.ada)
        self.assertEqual((page.notifications, page.unread_count, page.unseen_count), ([], 0, 0))
        self.assertRegex(page.cursor, r"^\d+:\d+:[\d,]*$")

    def test_granted_channels_can_be_listed_and_others_are_refused(self):
        notify("feed:demo", "on the feed")
        page = inbox_page(self.ada, channels="feed:demo")
        self.assertEqual([n.title for n in page.notifications], ["on the feed"])
        for channels in (["order:1"], [f"user:{self.ada.pk + 1}"]):
            with self.subTest(channels=channels), self.assertRaises(ValueError):
                inbox_page(self.ada, channels=channels)
        with self.assertRaises(ValueError):
            inbox_page(self.ada, limit=0)


class InboxPageCursor(TransactionTestCase):
    def test_herald_streams_exactly_what_commits_after_the_page(self):
        ada = User.objects.create_user("ada")
        notify(ada, "listed")
        page = inbox_page(ada)
        self.assertEqual([n.title for n in page.notifications], ["listed"])
        notify(ada, "after the list")
        with support.EventStream(token_for(ada), last_event_id=page.cursor) as stream:
            self.assertEqual(stream.status, 200)
            self.assertEqual(stream.next("notification")["title"], "after the list")
            notify(ada, "live")
            self.assertEqual(stream.next("notification")["title"], "live")
        self.assertNotIn("listed", [d["title"] for e, d in stream.seen if e == "notification"])

    def test_herald_accepts_it_as_a_long_poll_s_after(self):
        ada = User.objects.create_user("ada")
        page = inbox_page(ada)
        notify(ada, "after the list")
        status, body = support.api("GET", "/api/notifications", token_for(ada), after=page.cursor)
        self.assertEqual((status, [n["title"] for n in body["notifications"]]),
                         (200, ["after the list"]))
        self.assertNotIn("reset", body)


@override_settings(HERALD_CHANNELS=None)
class WithoutGrants(TestCase):
    def test_only_the_inbox_is_readable(self):
        ada = User.objects.create_user("ada")
        with self.assertRaises(ValueError):
            inbox_page(ada, channels=["feed:demo"])
        notify("broadcast", "for everyone")
        self.assertEqual([n.title for n in inbox_page(ada, channels=["broadcast"]).notifications],
                         ["for everyone"])
