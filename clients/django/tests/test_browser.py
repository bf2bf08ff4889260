"""The example page in Debian's headless Chromium: the bell follows notify() live.

Django serves the example project (its views and templates, on the test database) from a
live server; herald runs on the same database and allows the live server's origin (CORS),
as a deployment with herald on its own host would.
"""

import os
import threading
from pathlib import Path

from django.contrib.auth.models import User
from django.test import LiveServerTestCase, override_settings

import support
from herald_django import notify, send_signal, token_for

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WAIT_MS = support.WAIT * 1000
SCREENSHOT = support.REPO / "target" / "browser" / "django-example.png"


def off_the_event_loop(function, *args, **kwargs):
    """Runs Django code in a thread of its own: Playwright's sync API keeps an asyncio loop
    running in this one, where Django refuses database access."""
    result = {}

    def run():
        from django.db import connection

        try:
            result["value"] = function(*args, **kwargs)
        except BaseException as err:  # re-raised in the test's thread
            result["error"] = err
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(support.WAIT)
    if "error" in result:
        raise result["error"]
    return result.get("value")


class ExamplePage(LiveServerTestCase):
    host = "127.0.0.1"
    port = support.LIVE_SERVER_PORT

    def setUp(self):
        # Started and stopped within each test: Playwright's sync API runs an asyncio loop in
        # this thread while it is up, and Django's own test machinery (the flush after each
        # test) refuses to touch the database under a running loop.
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        self.addCleanup(playwright.stop)
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # As tests/browser/demo.test.mjs launches it.
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )
        self.addCleanup(browser.close)
        self.context = browser.new_context()
        self.context.set_default_timeout(WAIT_MS)
        self.addCleanup(self.context.close)
        self.errors = []

    def open_page(self, context=None):
        page = (context or self.context).new_page()
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.goto(f"{self.live_server_url}/")
        return page

    def sign_in(self, name, context=None):
        page = self.open_page(context)
        page.get_by_role("button", name=name.capitalize()).click()
        page.wait_for_url(f"{self.live_server_url}/")
        return page

    def wait_live(self, page):
        page.wait_for_selector('[data-herald-unread][data-herald-status="live"]', state="attached")

    def wait_badge(self, page, text):
        try:
            page.wait_for_function(
                """(text) => { const b = document.querySelector("[data-herald-unread]");
                               return b && b.textContent === text && b.hidden === (text === "0"); }""",
                arg=text)
        except Exception as err:
            badge = page.eval_on_selector("[data-herald-unread]", "b => b.outerHTML")
            raise AssertionError(f"badge never showed {text!r}: {badge}; page errors "
                                 f"{self.errors}\nherald's log:\n{support.herald().log_tail()}"
                                 ) from err

    def test_the_bell_follows_notify_live(self):
        page = self.sign_in("ada")
        self.wait_live(page)
        ada = off_the_event_loop(User.objects.get, username="ada")

        # notify() in Django: the badge and the live list follow, without a reload.
        off_the_event_loop(notify, ada, "Order shipped", level="success")
        self.wait_badge(page, "1")
        page.get_by_text(f"user:{ada.pk}: Order shipped").wait_for()

        # A second tab renders the count on the server, then follows too.
        other = self.open_page()
        self.assertEqual(other.text_content("[data-herald-unread]"), "1")
        self.wait_live(other)
        other.fill("input[name=title]", "Sent from the form")
        other.get_by_role("button", name="Send").click()
        self.wait_badge(page, "2")
        self.wait_badge(other, "2")

        # A channel the HERALD_CHANNELS hook grants: the page subscribed to it by itself.
        off_the_event_loop(notify, "feed:demo", "On the shared feed")
        page.get_by_text("feed:demo: On the shared feed").wait_for()

        # Mark all read in one tab: herald tells the other.
        page.get_by_role("button", name="Mark all read").click()
        self.wait_badge(page, "0")
        self.wait_badge(other, "0")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        off_the_event_loop(notify, ada, "Your export is ready", level="info")
        self.wait_badge(page, "1")
        page.screenshot(path=str(SCREENSHOT))
        self.assertEqual(self.errors, [])

    def wait_unseen(self, page, text):
        try:
            page.wait_for_function(
                """(text) => { const b = document.querySelector("[data-herald-unseen]");
                               return b && b.textContent === text && b.hidden === (text === "0"); }""",
                arg=text)
        except Exception as err:
            badge = page.eval_on_selector("[data-herald-unseen]", "b => b.outerHTML")
            raise AssertionError(f"unseen badge never showed {text!r}: {badge}; page errors "
                                 f"{self.errors}\nherald's log:\n{support.herald().log_tail()}"
                                 ) from err

    def test_the_bell_counts_unseen_and_the_list_keeps_unread_in_bold(self):
        page = self.sign_in("ada")
        self.wait_live(page)
        page.evaluate("""() => { window.heardCounts = [];
            document.addEventListener("herald:counts", (e) => window.heardCounts.push(e.detail)); }""")
        ada = off_the_event_loop(User.objects.get, username="ada")
        off_the_event_loop(notify, ada, "Your order shipped")
        self.wait_unseen(page, "1")
        self.wait_badge(page, "1")
        in_list = "#inbox li[data-id]"
        page.locator(f"{in_list}.unread", has_text="Your order shipped").wait_for(state="attached")

        # A second tab renders both counts on the server.
        other = self.open_page()
        self.assertEqual((other.text_content("[data-herald-unseen]"),
                          other.text_content("[data-herald-unread]")), ("1", "1"))
        self.wait_live(other)

        # Opening the bell clears the unseen count, in every tab; the item stays unread, in bold.
        page.get_by_role("button", name="Notifications", exact=True).click()
        self.wait_unseen(page, "0")
        self.wait_unseen(other, "0")
        self.assertEqual(page.text_content("[data-herald-unread]"), "1")
        item = page.locator(f"{in_list}.unread", has_text="Your order shipped")
        self.assertEqual(item.evaluate("li => getComputedStyle(li).fontWeight"), "600")
        page.wait_for_function(
            "() => window.heardCounts.some((c) => c.unread === 1 && c.unseen === 0)")

        # Read, then unread again: bold again and counted unread, but not unseen: it was seen.
        item.get_by_role("button", name="Mark read").click()
        page.locator(f"{in_list}:not(.unread)", has_text="Your order shipped").wait_for()
        self.wait_badge(page, "0")
        page.locator(in_list, has_text="Your order shipped").get_by_role(
            "button", name="Mark unread").click()
        page.locator(f"{in_list}.unread", has_text="Your order shipped").wait_for()
        self.wait_badge(page, "1")
        self.wait_badge(other, "1")
        self.assertEqual(page.text_content("[data-herald-unseen]"), "0")

        # Archived: out of the list here and in the other tab, out of the counts, and not
        # listed when the page is rendered again.
        page.locator(in_list, has_text="Your order shipped").get_by_role(
            "button", name="Archive").click()
        for tab in (page, other):
            tab.locator(in_list, has_text="Your order shipped").wait_for(state="detached")
            self.wait_badge(tab, "0")
        page.reload()
        self.assertEqual(page.locator(in_list).count(), 0)
        self.assertEqual(self.errors, [])

    def wait_text(self, page, selector, text):
        try:
            page.locator(selector, has_text=text).first.wait_for()
        except Exception as err:
            raise AssertionError(f"{selector} never showed {text!r}: "
                                 f"{page.inner_text('body')[:2000]}\npage errors {self.errors}"
                                 f"\nherald's log:\n{support.herald().log_tail()}") from err

    def test_presence_signals_and_the_dropdown_s_read_state(self):
        ada_page = self.sign_in("ada")
        self.wait_live(ada_page)
        # Grace, in a browser of her own: both pages list both, by the names in their tokens.
        grace_context = self.context.browser.new_context()
        grace_context.set_default_timeout(WAIT_MS)
        self.addCleanup(grace_context.close)
        grace_page = self.sign_in("grace", grace_context)
        for page in (ada_page, grace_page):
            self.wait_text(page, "#present li", "Ada")
            self.wait_text(page, "#present li", "Grace")

        # A signal from the server (send_signal), and one from Grace's page (herald.signal
        # through the example's view, which calls send_signal too).
        off_the_event_loop(send_signal, "feed:demo", "wave", {"name": "The server"})
        for page in (ada_page, grace_page):
            self.wait_text(page, "#live li.signal", "The server waved")
        grace_page.get_by_role("button", name="Wave to the feed").click()
        self.wait_text(ada_page, "#live li.signal", "Grace waved")

        # The dropdown: a new item arrives unread, is marked read from the list, and stays
        # read when the page renders it again on the server.
        ada = off_the_event_loop(User.objects.get, username="ada")
        off_the_event_loop(notify, ada, "Read me from the list")
        ada_page.get_by_role("button", name="Notifications", exact=True).click()
        item = ada_page.locator("#inbox li.unread", has_text="Read me from the list")
        item.get_by_role("button", name="Mark read").click()
        ada_page.locator("#inbox li:not(.unread)", has_text="Read me from the list").wait_for()
        self.wait_badge(ada_page, "0")
        ada_page.reload()
        self.assertEqual(ada_page.locator("#inbox li.unread").count(), 0)
        self.assertEqual(ada_page.locator("#inbox li", has_text="Read me from the list").count(), 1)
        self.assertEqual(self.errors, [])

    def test_a_lost_grant_leaves_the_inbox_live(self):
        # The page was rendered with feed:demo (granted then), but every token it gets now
        # lacks it, as when channels_for stops granting an order once it is delivered.
        ada = off_the_event_loop(User.objects.create_user, "ada", first_name="Ada")

        def token_without_the_feed(route):
            route.fulfill(json={"token": token_for(ada, channels=[]), "expires_in": 60})

        self.context.route("**/herald/token/", token_without_the_feed)
        page = self.sign_in("ada")
        self.wait_text(page, "#live li.refused", "No longer following feed:demo")
        self.wait_live(page)
        off_the_event_loop(notify, ada, "The inbox still works")
        self.wait_badge(page, "1")
        page.get_by_text(f"user:{ada.pk}: The inbox still works").wait_for()
        self.assertEqual(self.errors, [])

    def test_a_signed_out_page_stops_asking_for_tokens(self):
        # herald.js renews a token 30 s before it expires: at 30 s it asks for one at each use.
        with override_settings(HERALD_TOKEN_LIFETIME=30):
            page = self.sign_in("grace")
            self.wait_live(page)
            # Signed out elsewhere (another tab, an expired session): the token view says 401.
            self.context.clear_cookies()
            page.evaluate("() => window.herald.markAllRead().catch(() => {})")
            page.wait_for_selector('[data-herald-unread][data-herald-status="signed_out"]',
                                   state="attached")
