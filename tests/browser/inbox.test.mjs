// The demo's inbox in a real browser (Debian's headless Chromium): the bell's badge counts what
// is unseen and opening it clears that, unread items stay bold, archive and "mark unread" act
// on one item and every tab of the user follows, and the order page shows the courier's kept
// position as it loads (SPEC 12).
//
// One herald runs in dev mode on its own private PostgreSQL cluster in a temporary directory,
// as in demo.test.mjs. Rows are inserted with psql, as a cron job would. Each test uses users
// of its own; "tabs" of one user are pages of one browser context (they share one stream),
// "another browser" is a context of its own.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WAIT, launchChromium, sql as runSql, startHerald, stopHerald } from "./herald.mjs";

let dataDir;
let herald;
let origin;
let browser;

const sql = (statement) => runSql(dataDir, statement);

function insert(channel, title) {
  const quote = (s) => `'${s.replace(/'/g, "''")}'`;
  return Number(sql(`insert into notifications (channel, title) values (${quote(channel)}, ${quote(title)}) returning id`).trim());
}

/**
 * What a page shows, as a user reads it: defined in every page of `newContext` as
 * window.shownToUser, so that a wait can test it where it is rendered.
 */
function shownToUser() {
  const badge = document.getElementById("badge");
  const titles = Array.from(document.querySelectorAll("#list .item-title"));
  const courier = document.getElementById("courier");
  return {
    badge: badge.hidden ? "" : badge.textContent,
    unread: document.getElementById("unread-count").textContent,
    titles: titles.map((t) => t.textContent),
    bold: titles.filter((t) => Number(getComputedStyle(t).fontWeight) >= 600).map((t) => t.textContent),
    courier: courier.hidden ? "" : document.getElementById("courier-label").textContent,
  };
}

/** A browser context (a browser of its own, to herald) whose pages can say what they show. */
async function newContext(options) {
  const context = await browser.newContext(options);
  await context.addInitScript(`window.shownToUser = ${shownToUser}`);
  return context;
}

/** Opens the demo as `user` in `context` and waits until it is `status` ("live", "polling"). */
async function openDemo(context, user, status = "live") {
  const page = await context.newPage();
  await page.goto(`${origin}/?user=${user}`);
  await page.waitForFunction((s) => document.getElementById("status").dataset.status === s, status, { timeout: WAIT });
  return page;
}

/**
 * Waits (bounded) until what `page` shows matches `want` (some keys of shownToUser's answer);
 * resolves with all it shows then, or fails saying what it showed instead.
 */
async function waitForShown(page, want) {
  const matches = (want) => {
    const now = window.shownToUser();
    return Object.entries(want).every(([key, value]) => JSON.stringify(now[key]) === JSON.stringify(value));
  };
  try {
    await page.waitForFunction(matches, want, { timeout: WAIT });
  } catch (error) {
    const now = await page.evaluate(() => window.shownToUser()).catch(() => "(the page is gone)");
    throw new Error(`the page never showed ${JSON.stringify(want)}; it shows ${JSON.stringify(now)}`, { cause: error });
  }
  return page.evaluate(() => window.shownToUser());
}

/** The item of the list titled `title`, and one of its actions ("Archive", "Mark unread"). */
const item = (page, title) => page.locator("#list li", { has: page.locator(".item-title", { hasText: title }) });
const act = (page, title, label) =>
  item(page, title).getByRole("button", { name: `${label}: ${title}`, exact: true });

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "herald-inbox-"));
  herald = await startHerald({ dataDir });
  origin = `http://127.0.0.1:${herald.port}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (herald) await stopHerald(herald);
  rmSync(dataDir, { recursive: true, force: true });
});

test("opening the bell clears the unseen badge in every tab, while unread items stay bold", async () => {
  insert("user:61", "Order #1 shipped");
  insert("user:61", "Order #2 shipped");
  const context = await newContext();
  const tab = await openDemo(context, 61);
  const otherTab = await openDemo(context, 61);
  await waitForShown(tab, { badge: "2", unread: "2 unread" });
  await waitForShown(otherTab, { badge: "2" });

  await tab.click("#bell");

  const opened = await waitForShown(tab, { badge: "", unread: "2 unread" });
  assert.deepEqual(opened.bold, ["Order #2 shipped", "Order #1 shipped"], "unread items are still bold");
  await waitForShown(otherTab, { badge: "", unread: "2 unread" });
  // Kept by herald: a page loaded now starts with nothing new, and the same items unread.
  const reloaded = await openDemo(await newContext(), 61);
  await waitForShown(reloaded, { badge: "", unread: "2 unread", bold: ["Order #2 shipped", "Order #1 shipped"] });

  // Shown in the open list, a new one is seen at once; with the list closed it counts.
  insert("user:61", "Order #3 shipped");
  await waitForShown(tab, { titles: ["Order #3 shipped", "Order #2 shipped", "Order #1 shipped"], badge: "", unread: "3 unread" });
  await tab.keyboard.press("Escape");
  insert("user:61", "Order #4 shipped");
  await waitForShown(tab, { badge: "1", unread: "4 unread" });
  await waitForShown(otherTab, { badge: "1", unread: "4 unread" });
  await reloaded.context().close();
  await context.close();
});

test("archive removes an item, the user's other tabs and browsers follow, and it is listed as archived", async () => {
  insert("user:62", "Invoice #7");
  const archived = insert("user:62", "Invoice #8");
  insert("user:62", "Invoice #9");
  const context = await newContext();
  const tab = await openDemo(context, 62);
  const otherTab = await openDemo(context, 62);
  const otherBrowser = await openDemo(await newContext(), 62);
  await waitForShown(otherTab, { titles: ["Invoice #9", "Invoice #8", "Invoice #7"], unread: "3 unread" });

  await tab.click("#bell");
  await act(tab, "Invoice #8", "Archive").click();

  for (const page of [tab, otherTab, otherBrowser]) {
    await waitForShown(page, { titles: ["Invoice #9", "Invoice #7"], unread: "2 unread" });
  }
  const reloaded = await openDemo(context, 62);
  await waitForShown(reloaded, { titles: ["Invoice #9", "Invoice #7"], unread: "2 unread" });
  const list = await tab.evaluate(() => Herald.list({ url: "", token: window.heraldDemo.token, archived: true }));
  assert.deepEqual(list.notifications.map((n) => [n.id, n.title, n.archived, n.read]), [[archived, "Invoice #8", true, true]]);

  // Unread again brings it back into the inbox: the tabs that had dropped it show it again.
  await tab.evaluate((id) => window.heraldDemo.herald.markUnread(id), archived);

  for (const page of [tab, otherTab, otherBrowser]) {
    await waitForShown(page, {
      titles: ["Invoice #9", "Invoice #8", "Invoice #7"],
      bold: ["Invoice #9", "Invoice #8", "Invoice #7"],
      unread: "3 unread",
    });
  }
  await otherBrowser.context().close();
  await context.close();
});

test("mark unread makes an item bold again, and the counts follow in both tabs", async () => {
  insert("user:63", "Payment received");
  insert("user:63", "Parcel delivered");
  const context = await newContext();
  const tab = await openDemo(context, 63);
  const otherTab = await openDemo(context, 63);
  await tab.click("#bell");
  await tab.click('#list .item:has-text("Parcel delivered")'); // read, as before
  for (const page of [tab, otherTab]) {
    await waitForShown(page, { bold: ["Payment received"], unread: "1 unread" });
  }

  await act(tab, "Parcel delivered", "Mark unread").click();

  for (const page of [tab, otherTab]) {
    await waitForShown(page, { bold: ["Parcel delivered", "Payment received"], unread: "2 unread" });
  }
  // From the keyboard in the other tab: its action reads it again.
  await otherTab.click("#bell");
  await act(otherTab, "Parcel delivered", "Mark read").focus();
  await otherTab.keyboard.press("Enter");
  for (const page of [tab, otherTab]) {
    await waitForShown(page, { bold: ["Payment received"], unread: "1 unread" });
  }
  await context.close();
});

test("the order page shows where the courier is as it loads: streaming, polling, or as a second tab", async () => {
  // Sent before any page opened, kept for an hour (as a dispatcher's app would send it).
  const { token } = await (await fetch(`${origin}/dev/token?user=64&channels=feed:orders`)).json();
  const sent = await fetch(`${origin}/api/signals`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ channel: "feed:orders", kind: "location", data: { order: 17, progress: 0.4 }, keep: 3600 }),
  });
  assert.equal(sent.status, 202, await sent.text());

  const streaming = await newContext();
  const polling = await newContext();
  await polling.addInitScript(() => { delete window.EventSource; });
  const first = await openDemo(streaming, 65);
  const second = await openDemo(streaming, 65); // a follower: its leader heard the value first
  const poller = await openDemo(polling, 66, "polling");

  for (const page of [first, second, poller]) {
    await waitForShown(page, { courier: "Order #17: courier 40% of the way" });
  }
  assert.equal(await second.evaluate(() => window.heraldDemo.herald.leader), false);

  // The demo's own courier keeps its positions too: a page opened after it arrived shows it.
  await first.click("#simulate-courier");
  await waitForShown(first, { courier: "Order #17: delivered" });
  const later = await openDemo(await newContext(), 67);
  await waitForShown(later, { courier: "Order #17: delivered" });
  await later.context().close();
  await streaming.close();
  await polling.close();
});
