"""`{% herald_script %}` and `{% herald_unread_badge %}` as rendered for real requests."""

import json
import re

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.template import Context, Template, TemplateSyntaxError
from django.test import RequestFactory, TestCase, override_settings

import support
from herald_django import notify, token_for


def render(source, user, **context):
    request = RequestFactory().get("/")
    request.user = user
    return Template("{% load herald %}" + source).render(Context({"request": request, **context}))


def config(html):
    found = re.search(r'<script id="herald-django-config" type="application/json">(.*?)</script>',
                      html, re.S)
    return json.loads(found.group(1))


class UnreadBadge(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_it_shows_the_unread_count_computed_by_herald_s_function(self):
        notify(self.ada, "one")
        notify("broadcast", "two")
        notify("feed:demo", "not in the inbox")
        self.assertEqual(render("{% herald_unread_badge %}", self.ada).strip(),
                         '<span class="herald-unread" data-herald-unread>2</span>')

    def test_it_counts_what_herald_marked_read(self):
        # Committed by herald (another session) while this test's transaction is open.
        sent = support.publish(f"user:{self.ada.pk}", "read it")
        support.api("POST", f"/api/notifications/{sent['id']}/read", token_for(self.ada))
        self.assertIn(">0</span>", render("{% herald_unread_badge %}", self.ada))

    def test_count_unseen_shows_what_no_bell_has_shown_yet(self):
        # Committed by herald: two notifications, one of them read (so seen), the inbox then
        # marked seen up to the first; a third, of this test's transaction, is unseen too.
        support.publish(f"user:{self.ada.pk}", "seen by opening the bell")
        status, listed = support.api("GET", "/api/notifications", token_for(self.ada))
        support.api("POST", "/api/notifications/seen", token_for(self.ada),
                    {"through": listed["cursor"]})
        read = support.publish(f"user:{self.ada.pk}", "read, so seen")
        support.api("POST", f"/api/notifications/{read['id']}/read", token_for(self.ada))
        support.publish(f"user:{self.ada.pk}", "not seen yet")
        notify(self.ada, "not seen yet either")
        self.assertEqual(render('{% herald_unread_badge count="unseen" %}', self.ada).strip(),
                         '<span class="herald-unseen" data-herald-unseen>2</span>')
        # The unread badge, next to it, counts the one only seen as well.
        self.assertEqual(render("{% herald_unread_badge %}", self.ada).strip(),
                         '<span class="herald-unread" data-herald-unread>3</span>')

    def test_an_unseen_badge_at_zero_is_hidden_too(self):
        self.assertEqual(render('{% herald_unread_badge count="unseen" %}', self.ada).strip(),
                         '<span class="herald-unseen" data-herald-unseen hidden>0</span>')

    def test_count_is_unread_or_unseen(self):
        self.assertEqual(render('{% herald_unread_badge count="unread" %}', self.ada),
                         render("{% herald_unread_badge %}", self.ada))
        with self.assertRaisesMessage(TemplateSyntaxError, 'count is "unread" or "unseen"'):
            render('{% herald_unread_badge count="new" %}', self.ada)

    def test_at_zero_it_is_hidden(self):
        self.assertEqual(render("{% herald_unread_badge %}", self.ada).strip(),
                         '<span class="herald-unread" data-herald-unread hidden>0</span>')

    def test_anonymous_users_get_nothing(self):
        self.assertEqual(render("{% herald_unread_badge %}{% herald_script %}", AnonymousUser()), "")

    def test_without_herald_s_function_the_page_still_renders_and_the_transaction_survives(self):
        with connection.cursor() as cursor:
            cursor.execute("drop function herald_unread_count(text)")  # undone with the test
        with self.assertLogs("herald_django", "ERROR"):
            html = render("{% herald_unread_badge %}", self.ada)
        self.assertEqual(html.strip(), '<span class="herald-unread" data-herald-unread hidden></span>')
        self.assertTrue(User.objects.filter(pk=self.ada.pk).exists())


class Script(TestCase):
    def setUp(self):
        self.ada = User.objects.create_user("ada")

    def test_it_loads_herald_js_and_wires_the_token_view(self):
        html = render("{% herald_script %}", self.ada)
        url = support.herald().url
        self.assertIn(f'<script src="{url}/herald.js"></script>', html)
        self.assertEqual(config(html), {
            "url": url,
            "token_url": "/herald/token/",
            # The inbox, plus what HERALD_CHANNELS grants: the token and the page agree.
            "channels": [f"user:{self.ada.pk}", "broadcast", "feed:demo"],
        })
        self.assertIn("Herald.connect(", html)
        self.assertIn("getToken", html)

    def test_the_page_carries_no_token(self):
        self.assertNotIn("eyJ", render("{% herald_script %}", self.ada))

    def test_without_grants_it_streams_the_inbox(self):
        with override_settings(HERALD_CHANNELS=None):
            self.assertIsNone(config(render("{% herald_script %}", self.ada))["channels"])

    def test_a_page_can_ask_for_granted_channels_and_ungranted_ones_are_left_out(self):
        with override_settings(HERALD_CHANNELS=lambda user: ["order:*"]):
            with self.assertLogs("herald_django", "WARNING") as logs:
                html = render('{% herald_script channels="order:17 project:5 user:999" %}',
                              self.ada)
        self.assertEqual(config(html)["channels"],
                         [f"user:{self.ada.pk}", "broadcast", "order:17"])
        self.assertEqual(len(logs.records), 2)

    def test_a_csp_nonce_goes_on_both_scripts(self):
        html = render("{% herald_script nonce=n %}", self.ada, n="r4nd0m")
        self.assertEqual(html.count('nonce="r4nd0m"'), 2)

    def test_presence_channels_go_to_herald_connect_and_ungranted_ones_are_left_out(self):
        with override_settings(HERALD_CHANNELS=lambda user: ["room:*"]):
            with self.assertLogs("herald_django", "WARNING") as logs:
                html = render('{% herald_script presence="room:5,broadcast order:1 room:5" %}',
                              self.ada)
        self.assertEqual(config(html)["presence"], ["room:5", "broadcast"])
        self.assertIsNone(config(html)["channels"])  # "room:*" grants, but names no channel
        self.assertEqual(len(logs.records), 1)
        self.assertIn("presence: config.presence", html)
        self.assertNotIn("presence", config(render("{% herald_script %}", self.ada)))

    def test_a_cursor_resumes_the_stream_after_a_list_the_page_rendered(self):
        html = render("{% herald_script cursor=page.cursor %}", self.ada,
                      page={"cursor": "100:104:101"})
        self.assertEqual(config(html)["cursor"], "100:104:101")
        self.assertIn("cursor: config.cursor", html)
        self.assertNotIn("cursor", config(render("{% herald_script %}", self.ada)))

    def test_presence_signals_inbox_changes_and_refused_channels_become_dom_events(self):
        html = render("{% herald_script %}", self.ada)
        for callback, event in (("onPresence", "presence"), ("onSignal", "signal"),
                                ("onChannelsRefused", "channels_refused"), ("onRead", "read"),
                                ("onSeen", "seen"), ("onArchived", "archived"),
                                ("onUnarchived", "unarchived"), ("onUnread", "unread")):
            with self.subTest(callback=callback):
                self.assertRegex(html, rf'{callback}: function \([^)]*\) {{ emit\("{event}"')

    def test_both_counts_keep_their_badges_live_and_become_herald_counts(self):
        html = render("{% herald_script %}", self.ada)
        self.assertRegex(html, r'onUnreadCount: function \(count\) \{\s*show\("unread", count\);'
                               r'\s*emit\("unread_count", count\);')
        self.assertRegex(html, r'onCounts: function \(counts\) \{\s*show\("unseen", counts.unseen\);'
                               r'\s*emit\("counts", \{ unread: counts.unread, unseen: counts.unseen \}\);')

    def test_herald_js_can_come_from_the_app(self):
        with override_settings(HERALD_JS="app"):
            html = render("{% herald_script %}", self.ada)
        self.assertIn('<script src="/herald/herald.js"></script>', html)
        self.assertEqual(config(html)["url"], support.herald().url)  # the stream is herald's

    def test_the_user_can_come_from_the_auth_context_processor(self):
        html = Template("{% load herald %}{% herald_script %}").render(Context({"user": self.ada}))
        self.assertIn("herald.js", html)
