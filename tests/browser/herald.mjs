// What the browser test files share: herald started as a process, and bounded waits.
// (Not a test file: node --test runs only *.test.mjs here.)

import { spawn } from "node:child_process";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const HERALD = process.env.HERALD_BIN || join(ROOT, "target/debug/herald");
export const WAIT = 15_000;

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
