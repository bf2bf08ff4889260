// herald.js on a page of another origin, in a real browser (Debian's headless Chromium): the
// app's pages are served by the app, herald by herald, and the page loads
// <script src="http://127.0.0.1:<herald's port>/herald.js"> and calls herald across origins.
//
// The app is a node server on another port of 127.0.0.1 (another port is another origin).
// One herald runs in dev mode (its own private cluster, as in demo.test.mjs) with
// HERALD_ALLOWED_ORIGINS naming the app's origin. A second such server, on a third port, is
// an origin herald was not told of. Each test uses users of its own; tokens come from
// herald's dev token view, which the page asks cross-origin as it would ask the app's own.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ROOT, WAIT, launchChromium, sql as runSql, standInPushService, startHerald, stopHerald,
} from "./herald.mjs";

/** The one push endpoint host herald accepts here (see push.test.mjs): nothing listens on
 *  the discard port, and nothing needs to, since these tests never have herald send a push. */
const PUSH_HOST = "127.0.0.1:9";

let dataDir;
let herald;
/** herald's origin, and the app's pages' origins: one it allows, one it was not told of. */
let heraldOrigin;
let app;
let stranger;
let browser;

/**
 * The app's site on a free port of 127.0.0.1: `/` is a page that loads herald.js from herald
 * (whose origin is asked per request: herald starts after the app's origin is known), and
 * `/herald-sw.js` is the app's copy of herald's service worker, which must be on the page's
 * own origin.
 */
async function startAppSite() {
  const worker = readFileSync(join(ROOT, "web/herald-sw.js"));
  const server = createServer((request, response) => {
    const path = new URL(request.url, "http://app").pathname;
    if (path === "/") {
      response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      response.end(appPage(heraldOrigin));
    } else if (path === "/herald-sw.js") {
      response.writeHead(200, { "Content-Type": "text/javascript; charset=utf-8" });
      response.end(worker);
    } else {
      response.writeHead(404, { "Content-Type": "text/plain" });
      response.end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/** The app's page: herald.js from herald, and what the tests call in it. */
function appPage(herald) {
  return `<!doctype html>
<html lang="en"><meta charset="utf-8"><title>An app on another origin</title>
<script>
  const HERALD = ${JSON.stringify(herald)};
  /** The app's token view; here herald's dev one, asked cross-origin. */
  async function devToken(query) {
    const answer = await fetch(HERALD + "/dev/token?" + query);
    if (!answer.ok) throw new Error("token view: HTTP " + answer.status);
    return (await answer.json()).token;
  }
  /** Herald.connect to herald, with everything the connection reports kept in \`heard\`. */
  function connect(options) {
    const heard = {
      statuses: [], notifications: [], counts: [], both: [], reads: [], seen: [], archived: [],
      unarchived: [], unread: [], presence: [], signals: [], errors: [],
    };
    const herald = Herald.connect({
      url: HERALD,
      ...options,
      onStatus: (status) => heard.statuses.push(status),
      onNotification: (n) => heard.notifications.push(n),
      onUnreadCount: (count) => heard.counts.push(count),
      onCounts: (counts) => heard.both.push(counts),
      onRead: (change) => heard.reads.push(change),
      onSeen: (change) => heard.seen.push(change),
      onArchived: (change) => heard.archived.push(change),
      onUnarchived: (change) => heard.unarchived.push(change),
      onUnread: (change) => heard.unread.push(change),
      onPresence: (channel, users) => heard.presence.push({ channel, users: users.map((u) => u.user) }),
      onSignal: (signal) => heard.signals.push(signal),
      onError: (error) => heard.errors.push({ name: error.name, message: error.message, status: error.status }),
    });
    return { herald, heard };
  }
</script>
<script src="${herald}/herald.js"></script>
<h1>An app on another origin</h1>
</html>
`;
}

function stopSite(site) {
  site.server.closeAllConnections();
  return new Promise((resolve) => site.server.close(resolve));
}

/** Runs SQL on herald's database, as psql in a cron job would. */
const sql = (statement) => runSql(dataDir, statement);

function insert(channel, title) {
  const quote = (s) => `'${s.replace(/'/g, "''")}'`;
  return Number(sql(`insert into notifications (channel, title) values (${quote(channel)}, ${quote(title)}) returning id`).trim());
}

/** A dev token for `user`, asked by node (not by a page). */
async function devToken(user) {
  const answer = await fetch(`${heraldOrigin}/dev/token?user=${user}`);
  assert.equal(answer.status, 200);
  return (await answer.json()).token;
}

/**
 * The app's page on `site`, in a browser context of its own that test `t` closes (granted
 * `permissions` for that origin). `page.console` collects what the browser's console says.
 */
async function openApp(t, site, { permissions = [] } = {}) {
  const context = await browser.newContext();
  t.after(() => context.close());
  if (permissions.length) await context.grantPermissions(permissions, { origin: site.origin });
  const page = await context.newPage();
  page.console = [];
  page.on("console", (message) => page.console.push(message.text()));
  await page.goto(`${site.origin}/`);
  assert.equal(await page.evaluate(() => location.origin), site.origin);
  assert.equal(await page.evaluate(() => Herald.version), "1.4", "herald.js came from herald");
  return page;
}

/** Waits until `page`'s connection (window.app) has reported `status`. */
async function waitForStatus(page, status) {
  await page.waitForFunction((want) => window.app.heard.statuses.includes(want), status, { timeout: WAIT })
    .catch(async (error) => {
      const heard = await page.evaluate(() => window.app.heard);
      throw new Error(`no "${status}" status: the page heard ${JSON.stringify(heard)}`, { cause: error });
    });
}

/** Waits until the last unread count `page`'s connection heard is `count`. */
async function waitForCount(page, count) {
  await page.waitForFunction((want) => window.app.heard.counts.at(-1) === want, count, { timeout: WAIT })
    .catch(async (error) => {
      const counts = await page.evaluate(() => window.app.heard.counts);
      throw new Error(`unread count never ${count}: the page heard ${JSON.stringify(counts)}`, { cause: error });
    });
}

/** Waits until the last counts `page`'s connection (window[name]) heard are `counts`. */
async function waitForCounts(page, counts, name = "app") {
  await page.waitForFunction(
    ([want, name]) => JSON.stringify(window[name].heard.both.at(-1)) === JSON.stringify(want),
    [counts, name],
    { timeout: WAIT }
  ).catch(async (error) => {
    const heard = await page.evaluate((name) => window[name].heard.both, name);
    throw new Error(`counts never ${JSON.stringify(counts)}: the page heard ${JSON.stringify(heard)}`, { cause: error });
  });
}

/** Waits until `page`'s connection has heard a `what` change (a key of `heard`: seen,
 *  archived...) with the values of `want`, and resolves with it. */
async function waitForHeard(page, what, want) {
  const find = ([what, want]) => window.app.heard[what].find((change) =>
    Object.entries(want).every(([key, value]) => JSON.stringify(change[key]) === JSON.stringify(value)));
  await page.waitForFunction(find, [what, want], { timeout: WAIT }).catch(async (error) => {
    const heard = await page.evaluate((what) => window.app.heard[what], what);
    throw new Error(`no ${what} change with ${JSON.stringify(want)}: the page heard ${JSON.stringify(heard)}`, { cause: error });
  });
  return page.evaluate(find, [what, want]);
}

/** Waits until `page`'s connection has delivered notification `id`. */
async function waitForNotification(page, id) {
  await page.waitForFunction((id) => window.app.heard.notifications.some((n) => n.id === id), id, { timeout: WAIT });
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "herald-crossorigin-"));
  app = await startAppSite();
  stranger = await startAppSite();
  herald = await startHerald({
    dataDir,
    env: { HERALD_ALLOWED_ORIGINS: app.origin, HERALD_PUSH_HOSTS: PUSH_HOST },
  });
  heraldOrigin = `http://127.0.0.1:${herald.port}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (herald) await stopHerald(herald);
  for (const site of [app, stranger]) if (site) await stopSite(site);
  rmSync(dataDir, { recursive: true, force: true });
});

test("a page of an allowed origin streams from herald and hears a notification at once", async (t) => {
  const page = await openApp(t, app);
  await page.evaluate(() => { window.app = connect({ getToken: () => devToken("user=71") }); });
  await waitForStatus(page, "live");
  await waitForCount(page, 0);

  const id = insert("user:71", "Order #17 shipped");

  await waitForNotification(page, id);
  await waitForCount(page, 1);
  const [notification] = await page.evaluate(() => window.app.heard.notifications);
  assert.equal(notification.title, "Order #17 shipped");
  assert.equal(notification.channel, "user:71");
  assert.equal(await page.evaluate(() => window.app.herald.status), "live");
  assert.deepEqual(await page.evaluate(() => window.app.heard.errors), []);
});

test("unread count, markRead and markAllRead work across origins", async (t) => {
  const first = insert("user:72", "first");
  insert("user:72", "second");
  insert("user:72", "third");
  const page = await openApp(t, app);
  await page.evaluate(() => { window.app = connect({ getToken: () => devToken("user=72") }); });
  await waitForCount(page, 3);

  const marked = await page.evaluate((id) => window.app.herald.markRead(id), first);

  // Reading one also makes it seen.
  assert.deepEqual(marked, { id: first, read: true, unread_count: 2, unseen_count: 2 });
  await waitForCount(page, 2);
  // herald's read event came back over the cross-origin stream too.
  await page.waitForFunction((id) => window.app.heard.reads.some((r) => r.ids?.includes(id)), first, { timeout: WAIT });

  const all = await page.evaluate(() => window.app.herald.markAllRead());

  assert.deepEqual(all, { marked: 2, unread_count: 0, unseen_count: 0 });
  await waitForCount(page, 0);
  await page.waitForFunction(() => window.app.heard.reads.some((r) => r.all === true), null, { timeout: WAIT });
  const unread = await page.evaluate(() =>
    Herald.list({ url: HERALD, getToken: () => devToken("user=72"), unread: true }));
  assert.deepEqual(unread.notifications, []);
  assert.equal(unread.unread_count, 0);
  assert.deepEqual(await page.evaluate(() => window.app.heard.errors), []);
});

test("markSeen, archive, unarchive, markUnread and archiveAll work across origins, and the stream tells of each", async (t) => {
  const a = insert("user:79", "a");
  const b = insert("user:79", "b");
  const c = insert("user:79", "c");
  const page = await openApp(t, app);
  await page.evaluate(() => { window.app = connect({ getToken: () => devToken("user=79") }); });
  await waitForStatus(page, "live");
  await waitForCounts(page, { unread: 3, unseen: 3 });
  const call = (method, ...args) =>
    page.evaluate(([method, args]) => window.app.herald[method](...args), [method, args]);
  const list = (options) =>
    page.evaluate((options) => Herald.list({ url: HERALD, getToken: () => devToken("user=79"), ...options }), options);

  // Without a cursor: up to the connection's position, which covers a, b and c.
  assert.deepEqual(await call("markSeen"), { unread_count: 3, unseen_count: 0 });
  await waitForCounts(page, { unread: 3, unseen: 0 });
  const seen = await waitForHeard(page, "seen", {});
  assert.equal(typeof seen.through, "string");
  assert.deepEqual((await list()).notifications.map((n) => [n.title, n.seen, n.read]),
    [["c", true, false], ["b", true, false], ["a", true, false]]);

  assert.deepEqual(await call("archive", a), { id: a, archived: true, unread_count: 2, unseen_count: 0 });
  await waitForHeard(page, "archived", { ids: [a] });
  await waitForCounts(page, { unread: 2, unseen: 0 });
  assert.deepEqual((await list()).notifications.map((n) => n.id), [c, b]);
  const archived = await list({ archived: true });
  assert.deepEqual(archived.notifications.map((n) => [n.id, n.archived, n.read, n.seen]), [[a, true, true, true]]);

  assert.deepEqual(await call("unarchive", a), { id: a, archived: false, unread_count: 2, unseen_count: 0 });
  await waitForHeard(page, "unarchived", { ids: [a] });
  assert.deepEqual((await list()).notifications.map((n) => [n.id, n.read, n.archived]),
    [[c, false, false], [b, false, false], [a, true, false]]);

  const unread = await call("markUnread", a);
  assert.deepEqual({ ...unread, unseen_count: typeof unread.unseen_count },
    { id: a, read: false, unread_count: 3, unseen_count: "number" });
  await waitForHeard(page, "unread", { ids: [a] });
  await waitForCount(page, 3);

  // Up to a cursor: everything the connection has had.
  const through = await page.evaluate(() => window.app.herald.lastCursor());
  assert.deepEqual(await call("archiveAll", through), { unread_count: 0, unseen_count: 0 });
  await waitForHeard(page, "archived", { all: true });
  await waitForCounts(page, { unread: 0, unseen: 0 });
  assert.deepEqual((await list()).notifications, []);
  assert.deepEqual((await list({ archived: true })).notifications.map((n) => n.id).sort(), [a, b, c].sort());
  // Without one: everything now in the inbox.
  const d = insert("user:79", "d");
  await waitForNotification(page, d);
  await waitForCounts(page, { unread: 1, unseen: 1 });
  assert.deepEqual(await call("archiveAll"), { unread_count: 0, unseen_count: 0 });
  await waitForCounts(page, { unread: 0, unseen: 0 });

  // Refusals reject, with herald's status and code, as markRead's do.
  const outcome = (method, arg) => page.evaluate(([method, arg]) => window.app.herald[method](arg)
    .then(() => "resolved", (error) => ({ status: error.status, code: error.code })), [method, arg]);
  assert.deepEqual(await outcome("archive", 2147483000), { status: 404, code: "not_found" });
  assert.deepEqual(await outcome("markUnread", 2147483000), { status: 404, code: "not_found" });
  assert.deepEqual(await outcome("markSeen", "not-a-cursor"), { status: 400, code: "invalid_cursor" });
  assert.deepEqual(await page.evaluate(() => window.app.heard.errors), []);
});

test("a kept signal reaches connections that start later across origins, streaming or polling", async (t) => {
  const page = await openApp(t, app);
  await page.evaluate(() => {
    window.app = connect({ getToken: () => devToken("user=80&channels=order:80") });
  });
  await waitForStatus(page, "live");

  const sent = await page.evaluate(() =>
    window.app.herald.signal("order:80", "location", { km: 3 }, { keep: 600 }));

  assert.equal(typeof sent.delivered_to, "number");
  // Two connections of other channel sets (so neither follows another's stream).
  await page.evaluate(() => {
    const getToken = () => devToken("user=80&channels=order:80");
    window.streaming = connect({ getToken, channels: ["user:80", "order:80"] });
    window.polling = connect({ getToken, channels: ["order:80"], forcePolling: true });
  });
  for (const name of ["streaming", "polling"]) {
    await page.waitForFunction((name) => window[name].heard.signals.length > 0, name, { timeout: WAIT })
      .catch(async (error) => {
        const heard = await page.evaluate((name) => window[name].heard, name);
        throw new Error(`${name} heard no kept signal: ${JSON.stringify(heard)}`, { cause: error });
      });
    const [{ channel, kind, from, data, kept, at }] = await page.evaluate((name) => window[name].heard.signals, name);
    assert.deepEqual({ channel, kind, from, data, kept }, { channel: "order:80", kind: "location", from: "80", data: { km: 3 }, kept: true }, name);
    assert.equal(typeof at, "string");
    assert.deepEqual(await page.evaluate((name) => window[name].heard.errors, name), [], name);
  }
  assert.equal(await page.evaluate(() => window.polling.herald.status), "polling");
  await page.evaluate(() => { window.streaming.herald.close(); window.polling.herald.close(); });
});

test("Herald.list reads pages of the inbox across origins, with a token or getToken", async (t) => {
  insert("user:73", "one");
  insert("user:73", "two");
  const three = insert("user:73", "three");
  sql(`insert into notification_reads (user_id, notification_id) values ('73', ${three})`);
  const token = await devToken(73);
  const page = await openApp(t, app);

  const newest = await page.evaluate((token) => Herald.list({ url: HERALD, token, limit: 2 }), token);
  const unread = await page.evaluate(() =>
    Herald.list({ url: HERALD, getToken: () => devToken("user=73"), unread: true }));

  assert.deepEqual(newest.notifications.map((n) => [n.title, n.read]), [["three", true], ["two", false]]);
  assert.equal(newest.unread_count, 2);
  assert.equal(typeof newest.cursor, "string");
  assert.deepEqual(unread.notifications.map((n) => n.title), ["two", "one"]);
  // After the first page's cursor: what committed since, oldest first. herald answers as of
  // its last read of the table, so a poll right after the INSERT may come back empty: poll
  // again, as a client does.
  const later = insert("user:73", "four");
  const deadline = Date.now() + WAIT;
  let after;
  for (;;) {
    after = await page.evaluate(([token, after]) => Herald.list({ url: HERALD, token, after }), [token, newest.cursor]);
    if (after.notifications.length > 0 || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.deepEqual(after.notifications.map((n) => [n.id, n.title]), [[later, "four"]]);
});

test("forcePolling long-polls herald across origins", async (t) => {
  const page = await openApp(t, app);
  const streams = [];
  page.on("request", (request) => {
    if (new URL(request.url()).pathname === "/events") streams.push(request.url());
  });
  await page.evaluate(() => {
    window.app = connect({ getToken: () => devToken("user=74"), forcePolling: true });
  });
  // Its first page sets the position; what commits after it must come by long-poll.
  await page.waitForFunction(() => window.app.herald.lastCursor() !== null, null, { timeout: WAIT });
  await waitForStatus(page, "polling");

  const id = insert("user:74", "long-polled");

  await waitForNotification(page, id);
  await waitForCount(page, 1);
  await waitForCounts(page, { unread: 1, unseen: 1 }); // long-polls' answers carry both
  assert.equal(await page.evaluate(() => window.app.herald.status), "polling");
  assert.deepEqual(streams, [], "no stream was opened");
  assert.deepEqual(await page.evaluate(() => window.app.heard.errors), []);
});

test("two users on an allowed origin see each other present, signal, and leave", async (t) => {
  const ada = await openApp(t, app);
  const grace = await openApp(t, app);
  // Each follows project:5 (to hear its signals) and is present there.
  for (const [page, user, name] of [[ada, 75, "Ada"], [grace, 76, "Grace"]]) {
    await page.evaluate(([user, name]) => {
      window.app = connect({
        getToken: () => devToken(`user=${user}&channels=project:5&name=${name}`),
        channels: [`user:${user}`, "project:5"],
        presence: ["project:5"],
      });
    }, [user, name]);
    await waitForStatus(page, "live");
  }
  const sees = (page, users) => page.waitForFunction(
    (users) => {
      const last = window.app.heard.presence.filter((p) => p.channel === "project:5").at(-1);
      return JSON.stringify(last?.users.slice().sort()) === JSON.stringify(users);
    },
    users,
    { timeout: WAIT }
  );
  await sees(ada, ["75", "76"]);
  await sees(grace, ["75", "76"]);
  const present = await ada.evaluate(() => window.app.herald.present("project:5").map((u) => [u.user, u.name]));
  assert.deepEqual(present, [["75", "Ada"], ["76", "Grace"]]);

  const sent = await grace.evaluate(() => window.app.herald.signal("project:5", "typing", { task: 17 }));

  assert.ok(sent.delivered_to >= 1, `delivered to ${sent.delivered_to} streams`);
  await ada.waitForFunction(() => window.app.heard.signals.length > 0, null, { timeout: WAIT });
  const [signal] = await ada.evaluate(() => window.app.heard.signals);
  assert.deepEqual(
    { channel: signal.channel, kind: signal.kind, from: signal.from, data: signal.data },
    { channel: "project:5", kind: "typing", from: "76", data: { task: 17 } }
  );

  await grace.evaluate(() => window.app.herald.close());
  // Gone once the reconnect grace (5 s) has passed.
  await sees(ada, ["75"]);
  assert.deepEqual(await ada.evaluate(() => window.app.heard.errors), []);
});

test("enablePush and disablePush hand a subscription to herald and take it back across origins", async (t) => {
  const page = await openApp(t, app, { permissions: ["notifications"] });
  // Headless Chromium offline has no push service: a stand-in hands out a subscription, as
  // in push.test.mjs. The worker (the app's copy), herald's key and herald are real.
  await standInPushService(page, `http://${PUSH_HOST}/push/77`);
  await page.evaluate(() => { window.app = connect({ getToken: () => devToken("user=77") }); });
  const held = () => sql("select endpoint from herald_push_subscriptions where user_id = '77'").trim();

  const endpoint = await page.evaluate(async () => (await window.app.herald.enablePush()).endpoint);

  assert.equal(endpoint, `http://${PUSH_HOST}/push/77`);
  assert.equal(held(), endpoint, "herald holds the subscription");
  const { public_key: key } = await (await fetch(`${heraldOrigin}/api/push/key`)).json();
  assert.deepEqual(await page.evaluate(() => window.pushStandIn.serverKeys), [key], "subscribed with herald's key");
  assert.equal(await page.evaluate(async () => (await window.app.herald.pushSubscription())?.endpoint), endpoint);

  const disabled = await page.evaluate(() => window.app.herald.disablePush()
    .then((off) => ({ off }), (error) => ({ error: `${error.name}: ${error.message}`, status: error.status, code: error.code })));

  assert.deepEqual(disabled, { off: true }, "disablePush resolved");
  assert.equal(held(), "", "herald let the subscription go");
  assert.equal(await page.evaluate(() => window.pushStandIn.current), null, "unsubscribed in the browser");
});

test("a page of an origin herald was not told of gets nothing, and the console says why", async (t) => {
  insert("user:78", "not for strangers");
  const token = await devToken(78);
  const stream = await (await fetch(`${heraldOrigin}/api/stream-token`, {
    method: "POST", headers: { Authorization: `Bearer ${token}` },
  })).json();
  const page = await openApp(t, stranger);

  const listed = await page.evaluate((token) => Herald.list({ url: HERALD, token })
    .then((answer) => ({ answer }), (error) => ({ error: `${error.name}: ${error.message}`, status: error.status })), token);
  // With the app's token herald.js trades it for a stream token first (a POST with
  // Authorization, so preflighted); with a stream token it opens the EventSource at once.
  await page.evaluate(([app, stream]) => {
    window.app = connect({ token: app });
    window.streamOnly = connect({ token: stream });
  }, [token, stream.token]);
  await waitForStatus(page, "offline");
  await page.waitForFunction(() => window.streamOnly.heard.statuses.includes("offline"), null, { timeout: WAIT });

  assert.deepEqual(listed, { error: "TypeError: Failed to fetch", status: undefined });
  for (const name of ["app", "streamOnly"]) {
    const heard = await page.evaluate((name) => window[name].heard, name);
    assert.deepEqual(heard.notifications, [], `${name}: no notification`);
    assert.deepEqual(heard.counts, [], `${name}: not even the unread count`);
    assert.ok(!heard.statuses.includes("live"), `${name}: never live`);
  }
  const errors = await page.evaluate(() => window.app.heard.errors);
  assert.ok(errors.length > 0 && errors.every((e) => e.message === "Failed to fetch"), JSON.stringify(errors));
  const refused = (path) => page.console.some((text) =>
    text.includes(`${heraldOrigin}${path}`) &&
    text.includes(`from origin '${stranger.origin}' has been blocked by CORS policy`));
  assert.ok(refused("/api/notifications"), `the console names the list; it said ${JSON.stringify(page.console)}`);
  assert.ok(refused("/api/stream-token"), `the console names the token trade; it said ${JSON.stringify(page.console)}`);
  assert.ok(refused("/events"), `the console names the stream; it said ${JSON.stringify(page.console)}`);
  // And herald.js says what to do about it, in one sentence, once.
  const explained = page.console.filter((text) => text.startsWith("herald.js:"));
  assert.equal(explained.length, 1, JSON.stringify(page.console));
  assert.ok(explained[0].includes(`add ${stranger.origin} to herald's HERALD_ALLOWED_ORIGINS`), explained[0]);
});
