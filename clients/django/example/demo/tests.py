"""The example project's tests, as a project using herald_django writes them.

Nothing here starts herald or configures a test runner: `python manage.py test` (Django's
default runner) and `pytest` (pytest-django) both find herald's tables in the test
database, which herald_django's hook migrated.
"""

from django.contrib.auth.models import User
from django.db import connection
from django.test import TestCase, TransactionTestCase

from herald_django import notify
from herald_django.models import Notification


class SendingFromAView(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")
        self.client.force_login(self.ada)

    def test_the_send_view_stores_a_notification_for_the_user(self):
        response = self.client.post("/send/", {"title": "Hello", "to": "me"},
                                    HTTP_ACCEPT="application/json")
        self.assertEqual(response.status_code, 201)
        n = Notification.objects.get(id=response.json()["id"])
        self.assertEqual((n.channel, n.title, n.data), (f"user:{self.ada.pk}", "Hello",
                                                        {"from": "ada"}))

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

    def test_herald_s_sql_function_works_in_the_test_database(self):
        notify(self.ada, "one")
        with connection.cursor() as cursor:
            cursor.execute("select herald_unread_count(%s)", [str(self.ada.pk)])
            self.assertEqual(cursor.fetchone()[0], 1)


class EmptiedBetweenTransactionTests(TransactionTestCase):
    """Django empties its own tables after each TransactionTestCase test; herald_django
    empties herald's (in alphabetical order, test_1 runs first)."""

    def test_1_commits_a_notification(self):
        notify("broadcast", "committed")
        self.assertEqual(Notification.objects.count(), 1)

    def test_2_starts_with_none(self):
        self.assertEqual(Notification.objects.count(), 0)
