// What the browser test files share: herald started and stopped as a process, SQL on its
// database, bounded waits, Debian's headless Chromium launched, and a stand-in for the
// browser's push service.
// (Not a test file: node --test runs only *.test.mjs here.)

import { execFileSync, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

export const ROOT = resolve(import.meta.dirname, "../..");
export const HERALD = process.env.HERALD_BIN || join(ROOT, "target/debug/herald");
export const WAIT = 15_000;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** Stops a herald from `startHerald` with SIGTERM, as a deploy does; waits (bounded) for it. */
export async function stopHerald(herald) {
  const exited = new Promise((r) => herald.child.once("exit", r));
  herald.child.kill("SIGTERM");
  await withTimeout(exited, WAIT, () => "herald did not stop on SIGTERM");
}

/** Runs SQL on the database of the dev-mode herald under `dataDir`, as psql in a cron job
 *  would; returns what psql printed. */
export function sql(dataDir, statement) {
  const url = `postgresql://herald@/herald?host=${join(dataDir, "run")}`;
  return execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qAtc", statement], { encoding: "utf8" });
}

/** `promise`, or a rejection with `message()` after `ms`. */
export function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** herald in dev mode (its own private cluster under `dataDir`) on `port` (0: a free one), with
 *  `env` added; resolves with `{child, port}` once /readyz says ready. */
export async function startHerald({ dataDir, port = 0, env = {} }) {
  const child = spawn(HERALD, ["serve"], {
    env: {
      PATH: process.env.PATH,
      HERALD_DATA_DIR: dataDir,
      HERALD_BIND: `127.0.0.1:${port}`,
      // Set while working on web/: its files as they are now, not as compiled in.
      ...(process.env.HERALD_WEB_DIR ? { HERALD_WEB_DIR: process.env.HERALD_WEB_DIR } : {}),
      RUST_LOG: "info,actix_web=warn",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const bound = new Promise((resolvePort, reject) => {
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const match = /listening url=http:\/\/[^ ]*:(\d+)\//.exec(log);
      if (match) resolvePort(Number(match[1]));
    });
    child.on("exit", (code) => reject(new Error(`herald exited (${code}):\n${log}`)));
  });
  const actualPort = await withTimeout(bound, WAIT, () => `herald did not start:\n${log}`);
  const deadline = Date.now() + WAIT;
  for (;;) {
    const ready = await fetch(`http://127.0.0.1:${actualPort}/readyz`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`herald not ready:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  child.stderr.removeAllListeners("data");
  child.stderr.resume();
  return { child, port: actualPort };
}

/**
 * Debian's headless Chromium (or $CHROMIUM), with `args` added to the flags every test file
 * uses; `options` go to playwright as they are (`env`, say). Resolves with a Browser, or with
 * `profile` (a directory) with a persistent BrowserContext on that profile.
 */
export function launchChromium({ profile, args = [], ...options } = {}) {
  const launch = {
    executablePath: CHROMIUM,
    ...options,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ...args,
    ],
  };
  return profile === undefined ? chromium.launch(launch) : chromium.launchPersistentContext(profile, launch);
}

/**
 * Replaces the browser's push service in `page`: headless Chromium offline cannot reach
 * Google's, so PushManager.subscribe would fail. The stand-in hands out a subscription to
 * `endpoint` with keys as a push service makes them (p256dh: a P-256 public point; auth: 16
 * random bytes), and keeps in `window.pushStandIn` the `current` subscription and the
 * `serverKeys` it was asked to subscribe with. Everything else is real: the worker's
 * registration, herald's key, and herald.
 */
export function standInPushService(page, endpoint) {
  return page.evaluate(async (endpoint) => {
    const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
    const keys = {
      p256dh: base64url(await crypto.subtle.exportKey("raw", pair.publicKey)),
      auth: base64url(crypto.getRandomValues(new Uint8Array(16))),
    };
    const standIn = (window.pushStandIn = { current: null, serverKeys: [] });
    PushManager.prototype.subscribe = async function (options) {
      const applicationServerKey = new Uint8Array(options.applicationServerKey);
      standIn.serverKeys.push(base64url(applicationServerKey));
      standIn.current = {
        endpoint,
        expirationTime: null,
        options: { userVisibleOnly: options.userVisibleOnly, applicationServerKey: applicationServerKey.buffer },
        toJSON: () => ({ endpoint, expirationTime: null, keys }),
        unsubscribe: async () => { standIn.current = null; return true; },
      };
      return standIn.current;
    };
    PushManager.prototype.getSubscription = async () => standIn.current;
  }, endpoint);
}
