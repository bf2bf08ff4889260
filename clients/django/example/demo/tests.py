"""The example project's tests, as a project using herald_django writes them.

Nothing here starts herald or configures a test runner: `python manage.py test` (Django's
default runner) and `pytest` (pytest-django) both find herald's tables in the test
database, which herald_django's hook migrated.
"""

from django.contrib.auth.models import User
from django.test import TestCase, TransactionTestCase

from herald_django import notify, unread_count
from herald_django.models import Notification
from herald_django.testing import HeraldTestMixin, capture_notifications


class SendingFromAView(HeraldTestMixin, TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")
        self.client.force_login(self.ada)

    def test_the_send_view_stores_a_notification_for_the_user(self):
        with capture_notifications() as sent:
            response = self.client.post("/send/", {"title": "Hello", "to": "me"},
                                        HTTP_ACCEPT="application/json")
        self.assertEqual(response.status_code, 201)
        self.assertEqual([(n.id, n.title) for n in sent], [(response.json()["id"], "Hello")])
        self.assertNotified(self.ada, title="Hello", data={"from": "ada"})

    def test_sending_to_the_feed_notifies_the_feed_not_the_user(self):
        self.client.post("/send/", {"title": "To all readers", "to": "feed"})
        self.assertNotified("feed:demo", title="To all readers", count=1)
        self.assertNotNotified(self.ada)

    def test_a_bad_value_is_a_400_not_a_500(self):
        response = self.client.post("/send/", {"title": "Hello", "level": "loud"},
                                    HTTP_ACCEPT="application/json")
        self.assertEqual(response.status_code, 400)
        self.assertFalse(Notification.objects.exists())

    def test_the_page_shows_the_unread_count_from_the_database(self):
        notify(self.ada, "one")
        notify("broadcast", "two")
        self.assertContains(self.client.get("/"),
                            '<span class="herald-unread" data-herald-unread>2</span>', html=True)

    def test_the_unread_count_counts_this_test_s_own_notifications(self):
        notify(self.ada, "one")
        self.assertEqual(unread_count(self.ada), 1)

    def test_the_page_lists_the_inbox_with_its_read_state(self):
        notify(self.ada, "Order shipped")
        page = self.client.get("/")
        self.assertContains(page, '<li data-id="', count=1)
        self.assertContains(page, "Order shipped")
        self.assertIn('"cursor": "', page.content.decode())  # the stream resumes after the list


class EmptiedBetweenTransactionTests(TransactionTestCase):
    """Django empties its own tables after each TransactionTestCase test; herald_django
    empties herald's (in alphabetical order, test_1 runs first)."""

    def test_1_commits_a_notification(self):
        notify("broadcast", "committed")
        self.assertEqual(Notification.objects.count(), 1)

    def test_2_starts_with_none(self):
        self.assertEqual(Notification.objects.count(), 0)
