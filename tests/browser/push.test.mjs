// Web Push in a real browser (Debian's headless Chromium): web/herald-sw.js shows what is
// pushed and opens its page on click; herald.enablePush() and the demo's switch register the
// browser's subscription with herald (SPEC 11).
//
// herald runs in dev mode (push on, with a key pair of its own), as in demo.test.mjs, and its
// HERALD_PUSH_HOSTS names one loopback address that a test subscription may point to.
//
// Pushes are delivered with the DevTools protocol (ServiceWorker.deliverPushMessage), as a
// push service would deliver them. Clicks: headless Chromium has no screen, and the protocol
// has no method to click a notification. On Linux, Chromium shows a notification by handing
// it to the desktop's notification server over D-Bus, and hears of a click from that server's
// ActionInvoked signal. So every browser here is on a private bus where
// notification-server.py plays the desktop: it records what Chromium shows, and clicks when
// told to. From the signal on, the path is Chromium's own, down to the worker's
// notificationclick and clients.openWindow.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  WAIT, launchChromium, standInPushService, startHerald as startHeraldProcess, withTimeout,
} from "./herald.mjs";

// Debian's python3, which has python3-dbus and python3-gi (a virtualenv's may not).
const PYTHON = process.env.HERALD_TEST_PYTHON || "/usr/bin/python3";
/** The one push endpoint host herald accepts here: nothing listens on the discard port, and
 *  nothing needs to, since these tests never have herald send a push. */
const PUSH_HOST = "127.0.0.1:9";

let tmp;
let herald;
let origin;
let bus;
let desktop;

/** Starts `command` and resolves with it once a line of its stdout matches `ready`. */
async function startProcess(command, args, env, ready) {
  const child = spawn(command, args, { env, stdio: ["pipe", "pipe", "pipe"] });
  let log = "";
  child.stderr.on("data", (chunk) => { log += chunk; });
  const lines = createInterface({ input: child.stdout });
  const started = new Promise((resolveLine, reject) => {
    lines.on("line", (line) => { if (ready.test(line)) resolveLine(line); });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`${command} exited (${code}):\n${log}`)));
  });
  const line = await withTimeout(started, WAIT, () => `${command} did not start:\n${log}`);
  return { child, lines, line, log: () => log };
}

async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await withTimeout(exited, WAIT, () => `${child.spawnfile} did not stop on SIGTERM`);
}

/** herald in dev mode on a free port; resolves once /readyz says ready. */
function startHerald() {
  return startHeraldProcess({ dataDir: join(tmp, "herald"), env: { HERALD_PUSH_HOSTS: PUSH_HOST } });
}

/** A D-Bus session bus of our own: Chromium's notifications reach no real desktop, and
 *  nothing on it is started on demand (no service directories). The policy is Debian's
 *  session.conf's. */
async function startBus() {
  const config = join(tmp, "bus.conf");
  writeFileSync(config, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
  "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${join(tmp, "bus")}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`);
  const started = await startProcess(
    "dbus-daemon", [`--config-file=${config}`, "--nofork", "--print-address=1"],
    { PATH: process.env.PATH }, /^unix:/
  );
  return { child: started.child, address: started.line.trim() };
}

/** notification-server.py on `bus`: what Chromium shows and closes, and a way to click. */
async function startDesktop(bus) {
  const server = await startProcess(
    PYTHON, [join(import.meta.dirname, "notification-server.py")],
    { PATH: process.env.PATH, DBUS_SESSION_BUS_ADDRESS: bus.address }, /"ready"/
  );
  const events = [];
  const waiting = new Set();
  server.lines.on("line", (line) => {
    events.push(JSON.parse(line));
    for (const check of waiting) check();
  });
  return {
    child: server.child,
    /** The first event that `matches`, once there is one. */
    waitFor(matches, what) {
      let check;
      const found = new Promise((resolveEvent) => {
        check = () => {
          const event = events.find(matches);
          if (event) resolveEvent(event);
        };
        waiting.add(check);
        check();
      });
      return withTimeout(found, WAIT, () => `the desktop never saw ${what}; it saw ${JSON.stringify(events)}`)
        .finally(() => waiting.delete(check));
    },
    /** What a user's click on the notification's body makes the desktop send. */
    click(id) {
      server.child.stdin.write(`click ${id}\n`);
    },
  };
}

/**
 * A new browser on our bus with a profile of its own, permission to notify granted or not;
 * closed when test `t` ends. A persistent context, because Chromium finds the profile a click
 * belongs to by its name: it finds the default profile of a persistent context, but not the
 * contexts of browser.newContext() (a click on their notifications opens nothing).
 */
async function openBrowser(t, { notifications = true } = {}) {
  const profile = mkdtempSync(join(tmp, "profile-"));
  const context = await launchChromium({
    profile,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DBUS_SESSION_BUS_ADDRESS: bus.address },
  });
  t.after(() => context.close());
  if (notifications) await context.grantPermissions(["notifications"], { origin });
  return context;
}

/** Opens the demo as `user` and waits until its stream runs. */
async function openDemo(context, user) {
  const page = await context.newPage();
  await page.goto(`${origin}/?user=${user}`);
  await page.waitForFunction(() => document.getElementById("status").dataset.status === "live", null, { timeout: WAIT });
  return page;
}

/** Registers /herald-sw.js from `page`; resolves with what deliverPushMessage needs. */
async function registerWorker(context, page) {
  const cdp = await context.newCDPSession(page);
  // Chromium delivers a push only to a registration whose worker is active.
  const registered = new Promise((resolveId) => {
    cdp.on("ServiceWorker.workerVersionUpdated", ({ versions }) => {
      const ours = versions.find((v) => v.scriptURL === `${origin}/herald-sw.js` && v.status === "activated");
      if (ours) resolveId(ours.registrationId);
    });
  });
  await cdp.send("ServiceWorker.enable");
  await page.evaluate(async () => {
    await navigator.serviceWorker.register("/herald-sw.js");
    await navigator.serviceWorker.ready;
  });
  const registrationId = await withTimeout(registered, WAIT, () => "/herald-sw.js never became active");
  return {
    /** Delivers `payload` (JSON, or a string as it is) as the push service would. */
    push: (payload) => cdp.send("ServiceWorker.deliverPushMessage", {
      origin,
      registrationId,
      data: typeof payload === "string" ? payload : JSON.stringify(payload),
    }),
  };
}

/**
 * The worker's notifications once there are `count` of them: [{ title, body, tag, data }].
 * Only ask once the desktop shows them: Chromium drops its record of a notification that
 * getNotifications() finds not yet displayed (it syncs its records with the desktop's).
 */
async function waitForNotifications(page, count) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const shown = await page.evaluate(async () => {
      const registration = await navigator.serviceWorker.ready;
      const notifications = await registration.getNotifications();
      return notifications.map(({ title, body, tag, data }) => ({ title, body, tag, data }));
    });
    if (shown.length === count) return shown;
    if (Date.now() > deadline) {
      throw new Error(`waited for ${count} notifications; the worker has ${JSON.stringify(shown)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** POSTs `subscription` to herald as `user` (a dev token); resolves with the status. */
async function postSubscription(user, subscription) {
  const { token } = await (await fetch(`${origin}/dev/token?user=${user}`)).json();
  const response = await fetch(`${origin}/api/push/subscriptions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(subscription),
  });
  return response.status;
}

async function clickSwitch(page) {
  await page.click("#bell");
  await page.click("#push");
}

/** The demo's switch and what it says, once it is done with the last change. */
async function switchOutcome(page) {
  await page.waitForFunction(() => !document.getElementById("push").disabled, null, { timeout: 3 * WAIT });
  return page.evaluate(() => ({
    on: document.getElementById("push").checked,
    said: document.getElementById("push-result").textContent,
    failed: document.getElementById("push-result").classList.contains("error"),
  }));
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "herald-push-"));
  herald = await startHerald();
  origin = `http://127.0.0.1:${herald.port}`;
  bus = await startBus();
  desktop = await startDesktop(bus);
});

after(async () => {
  if (desktop) await stopProcess(desktop.child);
  if (bus) await stopProcess(bus.child);
  if (herald) await stopProcess(herald.child);
  rmSync(tmp, { recursive: true, force: true });
});

test("a push shows a notification with its title and body, tagged with its id", async (t) => {
  const context = await openBrowser(t);
  const page = await openDemo(context, 61);
  const worker = await registerWorker(context, page);

  await worker.push({
    id: 501, title: "Order #17 shipped", body: "It arrives tomorrow.", level: "success",
    data: { url: "/?user=61", order: 17 },
  });

  const onDesktop = await desktop.waitFor((e) => e.title === "Order #17 shipped", "the notification");
  assert.match(onDesktop.body, /It arrives tomorrow\.$/);
  const shown = await waitForNotifications(page, 1);
  assert.deepEqual(shown, [{
    title: "Order #17 shipped",
    body: "It arrives tomorrow.",
    tag: "herald-501",
    data: { url: "/?user=61", order: 17, id: 501, level: "success" },
  }]);
});

test("a push without a readable payload still shows a notification", async (t) => {
  const context = await openBrowser(t);
  const page = await openDemo(context, 62);
  const worker = await registerWorker(context, page);

  await worker.push("not json");

  // A push that showed nothing would make Chromium show its own notice instead.
  await desktop.waitFor((e) => e.title === "New notification", "the notification");
  const shown = await waitForNotifications(page, 1);
  assert.deepEqual(shown, [{ title: "New notification", body: "", tag: "", data: { id: null, level: "info" } }]);
});

test("a click on a notification opens the page named in its data.url", async (t) => {
  const context = await openBrowser(t);
  const page = await openDemo(context, 63);
  const worker = await registerWorker(context, page);
  await worker.push({ id: 502, title: "Click to see order #18", body: "", level: "info", data: { url: "/?user=63&order=18" } });
  const shown = await desktop.waitFor((e) => e.title === "Click to see order #18", "the notification");

  const opened = context.waitForEvent("page", { timeout: WAIT });
  desktop.click(shown.shown);

  const tab = await opened;
  await tab.waitForURL(`${origin}/?user=63&order=18`, { timeout: WAIT });
  // The worker closed it, as a click on a notification is expected to.
  await desktop.waitFor((e) => e.closed === shown.shown, "the notification closed");
  assert.deepEqual(await waitForNotifications(page, 0), []);
});

test("a click on a notification whose page is open opens no second tab for it", async (t) => {
  const context = await openBrowser(t);
  const page = await openDemo(context, 64);
  const worker = await registerWorker(context, page);
  await worker.push({ id: 503, title: "Already open", body: "", level: "info", data: { url: "/?user=64" } });
  await worker.push({ id: 504, title: "Not open yet", body: "", level: "info", data: { url: "/?user=64&order=19" } });
  const onOpenPage = await desktop.waitFor((e) => e.title === "Already open", "the first notification");
  const onNewPage = await desktop.waitFor((e) => e.title === "Not open yet", "the second notification");
  const opened = [];
  context.on("page", (tab) => opened.push(tab));
  // Headless Chromium cannot show which tab has focus (every page says it has), so the
  // worker's WindowClient.focus reports whom it focused. The click's handler either focuses
  // or opens: once focus is done, no tab opens for this click. The second click waits for
  // it too: sent as soon as the first notification closed, while the first click's focus
  // was still under way, it opened no tab in about one run in six (headless Chromium 156).
  const sw = context.serviceWorkers().find((w) => w.url() === `${origin}/herald-sw.js`);
  assert.ok(sw, "the worker is running");
  await sw.evaluate(() => {
    self.focusedUrl = new Promise((resolve) => {
      const focus = WindowClient.prototype.focus;
      WindowClient.prototype.focus = function () {
        return focus.call(this).finally(() => resolve(this.url));
      };
    });
  });

  desktop.click(onOpenPage.shown);
  const focused = await withTimeout(sw.evaluate(() => self.focusedUrl), WAIT, () => "no tab was focused");
  assert.equal(focused, page.url());
  const next = context.waitForEvent("page", { timeout: WAIT });
  desktop.click(onNewPage.shown);
  await (await next).waitForURL(`${origin}/?user=64&order=19`, { timeout: WAIT });

  assert.deepEqual(opened.map((tab) => tab.url()), [`${origin}/?user=64&order=19`]);
});

test("the switch says so and stays off when notifications are not allowed", async (t) => {
  const context = await openBrowser(t, { notifications: false });
  const page = await openDemo(context, 65);

  await clickSwitch(page);

  const outcome = await switchOutcome(page);
  assert.equal(outcome.on, false);
  assert.equal(outcome.failed, true);
  assert.match(outcome.said, /^Not turned on: notifications (were not allowed|are blocked)/);
  assert.equal(await page.evaluate(() => window.heraldDemo.herald.pushSubscription()), null);
});

test("with no push service reachable, the switch says so and turns back off", async (t) => {
  const context = await openBrowser(t);
  const page = await openDemo(context, 66);

  await clickSwitch(page);

  const outcome = await switchOutcome(page);
  assert.equal(outcome.on, false);
  assert.equal(outcome.failed, true);
  // Offline, Chromium's subscribe() never settles: herald.js gives up on it after 20 s.
  assert.match(outcome.said, /^Not turned on: the browser's push service did not (answer|subscribe)/);
  assert.equal(await page.evaluate(() => window.heraldDemo.herald.pushSubscription()), null);
});

test("the switch hands the browser's subscription to herald, and off takes it back", async (t) => {
  const context = await openBrowser(t);
  const page = await openDemo(context, 67);
  await standInPushService(page, `http://${PUSH_HOST}/push/67`);

  await clickSwitch(page);

  const on = await switchOutcome(page);
  assert.deepEqual(on, { on: true, said: "On: notifications reach this browser while the page is closed.", failed: false });
  const { public_key: key } = await (await fetch(`${origin}/api/push/key`)).json();
  assert.deepEqual(await page.evaluate(() => window.pushStandIn.serverKeys), [key], "subscribed with herald's key");
  const subscription = await page.evaluate(() => window.pushStandIn.current.toJSON());
  assert.equal(await postSubscription(67, subscription), 200, "herald holds it already");

  await page.click("#push");

  const off = await switchOutcome(page);
  assert.deepEqual(off, { on: false, said: "", failed: false });
  assert.equal(await page.evaluate(() => window.pushStandIn.current), null, "unsubscribed in the browser");
  assert.equal(await postSubscription(67, subscription), 201, "herald had let it go");
});

test("a subscription herald refuses is not kept in the browser", async (t) => {
  const context = await openBrowser(t);
  const page = await openDemo(context, 68);
  // Not in HERALD_PUSH_HOSTS: herald never sends to an address it was not told to trust.
  await standInPushService(page, "http://127.0.0.1:10/push/68");

  const error = await page.evaluate(() => window.heraldDemo.herald.enablePush()
    .then(() => null, (e) => ({ status: e.status, code: e.code })));

  assert.deepEqual(error, { status: 422, code: "endpoint_not_allowed" });
  assert.equal(await page.evaluate(() => window.pushStandIn.current), null);
  assert.equal(await page.evaluate(() => window.heraldDemo.herald.pushSubscription()), null);
});
