// The demo page and herald.js in a real browser (Debian's headless Chromium).
//
// One herald runs in dev mode (no DATABASE_URL, no secret) on its own private PostgreSQL
// cluster in a temporary directory, exactly as `scripts/run` starts it for a new user. Rows
// are inserted with psql, as a cron job would. Each test uses users of its own.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect as tcpConnect } from "node:net";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ROOT, WAIT, launchChromium, sql as runSql, startHerald as startHeraldProcess, stopHerald, withTimeout,
} from "./herald.mjs";

const ARTIFACTS = join(ROOT, "target/browser");

let dataDir;
let herald;
let port;
let browser;

/** Starts herald (on `port` if given) and resolves once /readyz says ready. */
function startHerald(fixedPort) {
  // Pings every 2 s, so the watchdog test (2.5 heartbeats) takes seconds, not a minute.
  return startHeraldProcess({ dataDir, port: fixedPort ?? 0, env: { HERALD_HEARTBEAT_SECS: "2" } });
}

/** Runs SQL on herald's database, as psql in a cron job would. */
const sql = (statement) => runSql(dataDir, statement);

function insert(channel, title, level = "info") {
  const quote = (s) => `'${s.replace(/'/g, "''")}'`;
  return Number(sql(`insert into notifications (channel, title, level) values (${quote(channel)}, ${quote(title)}, ${quote(level)}) returning id`).trim());
}

/** Opens the demo as `user` in `context` and waits until its stream (or long-poll) runs. */
async function openDemo(context, user, status = "live") {
  const page = await context.newPage();
  page.dialogs = [];
  page.on("dialog", (dialog) => {
    page.dialogs.push(dialog.message());
    dialog.dismiss();
  });
  await page.goto(`http://127.0.0.1:${port}/?user=${user}`);
  await page.waitForFunction((s) => document.getElementById("status").dataset.status === s, status, { timeout: WAIT });
  return page;
}

const badge = (page) => page.evaluate(() => {
  const node = document.getElementById("badge");
  return node.hidden ? "0" : node.textContent;
});

/** Waits until the list's heading says `expected` unread (the badge counts unseen ones). */
async function waitForUnread(page, expected) {
  await page.waitForFunction(
    (want) => document.getElementById("unread-count").textContent === `${want} unread`,
    expected,
    { timeout: WAIT }
  );
}

async function waitForBadge(page, expected, timeout = WAIT) {
  await page.waitForFunction(
    (want) => {
      const node = document.getElementById("badge");
      return (node.hidden ? "0" : node.textContent) === want;
    },
    String(expected),
    { timeout }
  );
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "herald-browser-"));
  herald = await startHerald();
  port = herald.port;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (herald) await stopHerald(herald);
  rmSync(dataDir, { recursive: true, force: true });
});

test("the page loads and shows the counts from the database", async () => {
  insert("user:11", "one");
  insert("user:11", "two");
  insert("user:11", "three");
  const read = insert("user:11", "already read");
  sql(`insert into notification_reads (user_id, notification_id) values ('11', ${read})`);
  const context = await browser.newContext();

  const page = await openDemo(context, 11);

  assert.equal(await badge(page), "3", "three new (a read one was seen)");
  await page.click("#bell");
  const titles = await page.locator("#list .item-title").allTextContents();
  assert.deepEqual(titles, ["already read", "three", "two", "one"]);
  assert.equal(await page.locator("#list .item.unread").count(), 3);
  assert.equal(await page.locator("#unread-count").textContent(), "3 unread");
  await context.close();
});

test("an SQL INSERT shows a toast and bumps the badge within 2 seconds", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context, 12);
  assert.equal(await badge(page), "0");

  insert("user:12", "Order #17 shipped", "success");

  const toast = page.locator(".toast", { hasText: "Order #17 shipped" });
  await toast.waitFor({ timeout: 2000 });
  await waitForBadge(page, 1, 2000);
  assert.match(await toast.getAttribute("class"), /level-success/);
  assert.equal(await page.locator("#toasts").getAttribute("aria-live"), "polite");
  await context.close();
});

test("mark-read in one tab updates the unread count in a second tab of the same user", async () => {
  insert("user:13", "first");
  const second = insert("user:13", "second");
  const context = await browser.newContext();
  const tabA = await openDemo(context, 13);
  const tabB = await openDemo(context, 13);
  await waitForBadge(tabB, 2);
  await waitForUnread(tabB, 2);

  await tabA.click("#bell");
  await tabA.click(`#list button[data-id="${second}"]`);

  await waitForUnread(tabB, 1);
  await waitForUnread(tabA, 1);
  // Mark all read from the keyboard in tab B: Tab to the bell, open it, reach the button.
  await tabB.focus("#bell");
  await tabB.keyboard.press("Enter");
  await tabB.focus("#mark-all");
  await tabB.keyboard.press("Enter");
  await waitForUnread(tabA, 0);
  await waitForBadge(tabA, 0);
  await context.close();
});

test("many tabs of one user share one stream", async () => {
  const context = await browser.newContext();
  const tabs = [];
  // More tabs than Chromium's six connections per host: separate streams would starve.
  for (let i = 0; i < 8; i++) tabs.push(await openDemo(context, 17));
  const leaders = await Promise.all(tabs.map((tab) => tab.evaluate(() => window.heraldDemo.herald.leader === true)));
  assert.equal(leaders.filter(Boolean).length, 1, "exactly one tab holds the stream");

  insert("user:17", "to every tab");

  for (const tab of tabs) await waitForBadge(tab, 1);
  await context.close();
});

test("a tab that joins after the leader relayed a notification still gets it, once", async () => {
  const context = await browser.newContext();
  const leader = await openDemo(context, 18);
  // Tab B's list answers from before the notification; the leader relays it before B listens.
  const joining = await context.newPage();
  let relayed;
  const missedId = new Promise((resolve) => { relayed = resolve; });
  let first = true;
  await joining.route("**/api/notifications?**", async (route) => {
    if (!first) return route.continue();
    first = false;
    const response = await route.fetch();
    const id = insert("user:18", "committed while the second tab was loading");
    await leader.waitForFunction((id) => window.heraldDemo.received.includes(id), id, { timeout: WAIT });
    await route.fulfill({ response });
    relayed(id);
  });
  await joining.goto(`http://127.0.0.1:${port}/?user=18`);
  const missed = await withTimeout(missedId, WAIT, () => "the second tab never asked for its list");

  await joining.waitForFunction((id) => window.heraldDemo && window.heraldDemo.received.includes(id), missed, { timeout: WAIT });
  const later = insert("user:18", "after both tabs are open");
  await joining.waitForFunction((id) => window.heraldDemo.received.includes(id), later, { timeout: WAIT });
  assert.deepEqual(await joining.evaluate(() => window.heraldDemo.received), [missed, later]);
  await context.close();
});

test("with EventSource removed the page still receives notifications by long-polling", async () => {
  const context = await browser.newContext();
  await context.addInitScript(() => { delete window.EventSource; });
  const page = await openDemo(context, 14, "polling");

  insert("user:14", "via long-poll");

  await page.locator(".toast", { hasText: "via long-poll" }).waitFor({ timeout: WAIT });
  await waitForBadge(page, 1);
  await context.close();
});

test("URLs carry only a stream token, never the page's own token", async () => {
  const context = await browser.newContext();
  const urls = [];
  context.on("request", (request) => urls.push(request.url()));
  const page = await openDemo(context, 19);
  const appToken = await page.evaluate(() => window.heraldDemo.token);

  insert("user:19", "seen through a stream token");
  await page.locator(".toast", { hasText: "seen through a stream token" }).waitFor({ timeout: WAIT });

  const claims = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
  const inUrls = urls.map((u) => new URL(u).searchParams.get("token")).filter(Boolean);
  assert.ok(inUrls.length > 0, "the stream's URL has a token");
  for (const token of inUrls) {
    assert.notEqual(token, appToken);
    assert.equal(claims(token).aud, "herald:stream");
    assert.ok(claims(token).exp - Date.now() / 1000 <= 300, "a stream token lives 5 minutes at most");
  }
  assert.ok(!urls.some((u) => u.includes(appToken)), "the app's token is in no URL");
  await context.close();
});

test("a notification title is rendered as text, never as HTML", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context, 15);
  const evil = "<img src=x onerror=alert(1)>";

  insert("user:15", evil);

  const toast = page.locator(".toast", { hasText: evil });
  await toast.waitFor({ timeout: WAIT });
  assert.equal(await toast.locator(".toast-title").textContent(), evil);
  await page.click("#bell");
  assert.equal(await page.locator("#list .item-title").first().textContent(), evil);
  assert.equal(await page.locator("img").count(), 0);
  assert.deepEqual(page.dialogs, []);
  await context.close();
});

test("a screenshot of the demo page is saved under target/browser", async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await openDemo(context, 1);
  insert("user:1", "Payment received for order #16", "success");
  insert("broadcast", "Maintenance tonight at 22:00", "warning");
  insert("feed:orders", "Order #18 placed by Acme GmbH");
  insert("user:1", "Card declined for order #19", "error");
  await page.locator(".toast", { hasText: "order #19" }).waitFor({ timeout: WAIT });
  await page.click("#bell");
  // Open, the dropdown leaves the cards' headings readable.
  const panel = await page.locator("#panel").boundingBox();
  for (const heading of await page.locator(".card h2").all()) {
    const box = await heading.boundingBox();
    const overlaps = box.x < panel.x + panel.width && panel.x < box.x + box.width &&
      box.y < panel.y + panel.height && panel.y < box.y + box.height;
    assert.ok(!overlaps, `the dropdown covers "${await heading.textContent()}"`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "demo.png"), animations: "disabled" });
  await context.close();
});

test("when the leading tab closes, another tab takes over the stream from the last cursor", async () => {
  const context = await browser.newContext();
  const leader = await openDemo(context, 21);
  const follower = await openDemo(context, 21);
  assert.equal(await leader.evaluate(() => window.heraldDemo.herald.leader), true);
  const before = insert("user:21", "relayed by the first tab");
  await follower.waitForFunction((id) => window.heraldDemo.received.includes(id), before, { timeout: WAIT });

  await leader.close();
  const during = insert("user:21", "committed while no tab held the stream");
  await follower.waitForFunction(() => window.heraldDemo.herald.leader === true, null, { timeout: WAIT });
  await follower.waitForFunction(() => document.getElementById("status").dataset.status === "live", null, { timeout: WAIT });
  const afterwards = insert("user:21", "streamed by the second tab");

  await follower.waitForFunction((id) => window.heraldDemo.received.includes(id), afterwards, { timeout: WAIT });
  assert.deepEqual(await follower.evaluate(() => window.heraldDemo.received), [before, during, afterwards]);
  await context.close();
});

test("forcePolling long-polls although EventSource exists", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context, 22);
  const streams = [];
  context.on("request", (request) => {
    const url = new URL(request.url());
    if (url.pathname === "/events") streams.push(url.searchParams.get("channels"));
  });

  await page.evaluate(() => {
    window.polled = { statuses: [], received: [] };
    window.polling = Herald.connect({
      url: "", token: window.heraldDemo.token, channels: ["user:22"], forcePolling: true,
      onStatus: (status) => window.polled.statuses.push(status),
      onNotification: (n) => window.polled.received.push(n.id),
    });
  });
  // Its first page sets the position; what commits after it must come by long-poll.
  await page.waitForFunction(() => window.polling.lastCursor() !== null, null, { timeout: WAIT });
  const id = insert("user:22", "long-polled");

  await page.waitForFunction((id) => window.polled.received.includes(id), id, { timeout: WAIT });
  assert.ok(await page.evaluate(() => window.polled.statuses.includes("polling")));
  assert.ok(!streams.includes("user:22"), "no stream was opened for the polling connection");
  await page.evaluate(() => window.polling.close());
  await context.close();
});

for (const forcePolling of [false, true]) {
  test(`a channel the token no longer grants is dropped and the inbox stays live (${forcePolling ? "polling" : "stream"})`, async () => {
    const context = await browser.newContext();
    const user = forcePolling ? 27 : 26;
    const page = await openDemo(context, user);

    // The app's token no longer grants order:3 (delivered); the page still asks for it.
    await page.evaluate(({ user, forcePolling }) => {
      window.lost = { refused: [], received: [] };
      window.lostGrant = Herald.connect({
        url: "", token: window.heraldDemo.token, forcePolling,
        channels: [`user:${user}`, "broadcast", "order:3"], presence: ["order:3"],
        onChannelsRefused: (channels) => window.lost.refused.push(...channels),
        onNotification: (n) => window.lost.received.push(n.id),
      });
    }, { user, forcePolling });
    await page.waitForFunction(() => window.lost.refused.length > 0, null, { timeout: WAIT });
    // Live again without it: a stream delivers, or a long-poll has its first page.
    const live = forcePolling ? "polling" : "live";
    await page.waitForFunction((live) => window.lostGrant.status === live, live, { timeout: WAIT });
    if (forcePolling) {
      await page.waitForFunction(() => window.lostGrant.lastCursor() !== null, null, { timeout: WAIT });
    }
    const id = insert(`user:${user}`, "still arrives");

    await page.waitForFunction((id) => window.lost.received.includes(id), id, { timeout: WAIT });
    assert.deepEqual(await page.evaluate(() => [...new Set(window.lost.refused)]), ["order:3"]);
    await page.evaluate(() => window.lostGrant.close());
    await context.close();
  });
}

test("Herald.list without a token rejects rather than throwing", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context, 20);

  const outcome = await page.evaluate(() => {
    let listed;
    try {
      listed = Herald.list({ url: "" });
    } catch (error) {
      return `threw: ${error.message}`;
    }
    return listed.then(() => "resolved", (error) => `rejected: ${error.message}`);
  });

  assert.equal(outcome, "rejected: no token");
  await context.close();
});

test("a first token that cannot be had is asked for again until it comes", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context, 24);
  const statuses = await page.evaluate(() => new Promise((resolve) => {
    let asked = 0;
    const seen = [];
    const connection = Herald.connect({
      url: "",
      channels: ["user:25"],
      // Down at page load, then back.
      getToken: async () => {
        asked += 1;
        if (asked === 1) throw new Error("token view down");
        const answer = await fetch("/dev/token?user=25");
        return (await answer.json()).token;
      },
      onStatus: (status) => {
        seen.push(status);
        if (status === "live") {
          connection.close();
          resolve(seen);
        }
      },
    });
  }));
  assert.deepEqual(statuses, ["connecting", "offline", "connecting", "live"]);
  await context.close();
});

test("herald.mjs exports the same client to ES modules", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context, 23);

  const exported = await page.evaluate(async () => {
    const module = await import("/herald.mjs");
    return {
      same: module.default === globalThis.Herald,
      connect: module.connect === module.default.connect,
      list: module.list === module.default.list,
      version: module.default.version,
    };
  });

  assert.deepEqual(exported, { same: true, connect: true, list: true, version: "1.4" });
  await context.close();
});

// Last: it restarts herald.
/** The users shown in the "Online now" row. Every demo page is present on the feed, so
 *  other tests' users may show too (for the 5 s reconnect grace after they close). */
const online = (page) => page.evaluate(() =>
  Array.from(document.querySelectorAll("#online-list li")).map((li) => li.dataset.user));

async function waitForOnline(page, user, shown = true) {
  await page.waitForFunction(
    ([who, want]) => Boolean(document.querySelector(`#online-list li[data-user="${who}"]`)) === want,
    [String(user), shown],
    { timeout: WAIT }
  );
}

test("two users see each other come online, type and leave; a user without the grant sees neither", async () => {
  const [ada, grace, outsider] = [await browser.newContext(), await browser.newContext(), await browser.newContext()];
  const adaPage = await openDemo(ada, 1);
  await waitForOnline(adaPage, 1);
  assert.equal(await adaPage.locator('#online-list li[data-user="1"]').textContent(), "A");

  const gracePage = await openDemo(grace, 2);
  await waitForOnline(gracePage, 1);
  await waitForOnline(gracePage, 2);
  await waitForOnline(adaPage, 2);
  assert.equal(await adaPage.locator('#online-list li[data-user="2"]').getAttribute("title"), "Grace");

  // User 3's own token, without the feed's grant: the page follows only their inbox.
  const bare = await (await fetch(`http://127.0.0.1:${port}/dev/token?user=3`)).json();
  const outsiderPage = await outsider.newPage();
  await outsiderPage.goto(`http://127.0.0.1:${port}/?token=${bare.token}`);
  await outsiderPage.waitForFunction(() => document.getElementById("status").dataset.status === "live", null, { timeout: WAIT });

  await gracePage.fill('#send input[name="title"]', "Order #18 is packed");
  await adaPage.locator("#typing", { hasText: "Grace is typing…" }).waitFor({ timeout: WAIT });

  // What the outsider would have heard by now, they would have shown.
  insert("user:3", "fence for the outsider");
  await outsiderPage.locator(".toast", { hasText: "fence for the outsider" }).waitFor({ timeout: WAIT });
  assert.equal(await outsiderPage.locator("#online").isHidden(), true);
  assert.deepEqual(await online(outsiderPage), []);
  assert.equal(await outsiderPage.locator("#typing").isHidden(), true);
  assert.ok(!(await online(adaPage)).includes("3"), "the outsider is not listed");

  await grace.close();
  // Gone once the reconnect grace (5 s) has passed: within the spec's 15 s.
  await waitForOnline(adaPage, 2, false);
  await ada.close();
  await outsider.close();
});

test("a follower tab sees who is online as its leader does, and its typing reaches others", async () => {
  const [mine, theirs] = [await browser.newContext(), await browser.newContext()];
  const leader = await openDemo(mine, 51);
  const follower = await openDemo(mine, 51);
  const other = await openDemo(theirs, 52);
  assert.equal(await follower.evaluate(() => window.heraldDemo.herald.leader), false);
  await waitForOnline(follower, 51);
  await waitForOnline(follower, 52);
  await waitForOnline(leader, 52);

  await follower.fill('#send input[name="title"]', "typed in the follower");
  await other.locator("#typing", { hasText: "is typing…" }).waitFor({ timeout: WAIT });
  assert.equal(await other.locator("#typing").getAttribute("data-user"), "51");
  await mine.close();
  await waitForOnline(other, 51, false);
  await theirs.close();
});

test("a courier's location signals move the dot for everyone on the feed", async () => {
  const [dispatcher, customer] = [await browser.newContext(), await browser.newContext()];
  const dispatcherPage = await openDemo(dispatcher, 31);
  const customerPage = await openDemo(customer, 32);
  await waitForOnline(customerPage, 31);

  await dispatcherPage.click("#simulate-courier");

  await customerPage.waitForFunction(() => document.getElementById("courier").dataset.progress === "1", null, { timeout: WAIT });
  assert.equal(await customerPage.locator("#courier-label").textContent(), "Order #17: delivered");
  await dispatcher.close();
  await customer.close();
});

/**
 * A TCP proxy in front of herald that can freeze the /events connections open through it:
 * their bytes stop flowing both ways, and nothing is closed, as when a laptop sleeps or a
 * middlebox loses a connection. New connections pass.
 */
async function freezingProxy(target) {
  const streams = new Set();
  const server = createServer((client) => {
    const upstream = tcpConnect(target, "127.0.0.1");
    const connection = { client, upstream, frozen: false };
    // Any request on the connection may be the stream (a browser reuses connections).
    client.on("data", (chunk) => {
      if (chunk.toString("latin1").startsWith("GET /events")) streams.add(connection);
      if (!connection.frozen) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!connection.frozen) client.write(chunk);
    });
    const drop = () => {
      streams.delete(connection);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    /** Freezes the /events connections open now; returns how many. */
    freeze() {
      const frozen = [...streams];
      for (const connection of frozen) {
        connection.frozen = true;
        connection.client.pause();
        connection.upstream.pause();
        streams.delete(connection);
      }
      return frozen.length;
    },
    close() {
      server.close();
    },
  };
}

test("a stream that freezes without closing is replaced by the watchdog, and nothing is lost", async () => {
  const proxy = await freezingProxy(port);
  const context = await browser.newContext();
  const page = await context.newPage();
  // heartbeat=2: herald's (HERALD_HEARTBEAT_SECS above), so silence of 5 s means dead.
  await page.goto(`http://127.0.0.1:${proxy.port}/?user=41&heartbeat=2`);
  await page.waitForFunction(() => document.getElementById("status").dataset.status === "live", null, { timeout: WAIT });
  insert("user:41", "before the freeze");
  await page.locator(".toast", { hasText: "before the freeze" }).waitFor({ timeout: WAIT });

  assert.equal(proxy.freeze(), 1, "the page's one stream is frozen");
  insert("user:41", "while frozen");

  await page.locator(".toast", { hasText: "while frozen" }).waitFor({ timeout: WAIT });
  const received = await page.evaluate(() => window.heraldDemo.received.length);
  assert.equal(received, 2, "each once");
  await context.close();
  proxy.close();
});

test("after herald restarts the page resumes without losing or repeating a notification", async () => {
  const context = await browser.newContext();
  const page = await openDemo(context, 16);
  const base = Number(await badge(page)); // broadcasts of earlier tests count too
  const before = insert("user:16", "before the restart");
  await waitForBadge(page, base + 1);

  // Hold the page off until the new herald is up and a row has committed meanwhile, so the
  // page must catch up from its cursor rather than receive it live.
  await page.route("**/events**", (route) => route.abort());
  await page.route("**/api/notifications**", (route) => route.abort());
  await stopHerald(herald);
  herald = await startHerald(port);
  const during = insert("user:16", "while the page was away");
  await page.unroute("**/events**");
  await page.unroute("**/api/notifications**");
  await page.evaluate(() => window.dispatchEvent(new Event("online"))); // reconnect now
  await page.waitForFunction(() => document.getElementById("status").dataset.status === "live", null, { timeout: WAIT });
  const afterwards = insert("user:16", "after the restart");

  await waitForBadge(page, base + 3);
  await page.waitForFunction((id) => window.heraldDemo.received.includes(id), afterwards, { timeout: WAIT });
  const received = await page.evaluate(() => window.heraldDemo.received);
  assert.deepEqual(received, [before, during, afterwards]);
  await context.close();
});
