/*! herald-sw.js: herald's service worker. It shows the Web Push notifications herald sends
 * while none of the user's tabs is open, and a click on one focuses or opens its page.
 *
 * No dependencies, no build step. herald.enablePush() registers it (herald.js's header says
 * how). A service worker only controls pages of its own origin, so it is served by the app's
 * site, not by herald when herald has an origin of its own: copy this file there (a Django app
 * serves it from its root, or a `scope` path) and pass its URL as `serviceWorker`.
 *
 * What herald pushes (JSON): { id, title, body, level, data }; `data.url`, when given, is the
 * page a click leads to, on this worker's origin (a URL elsewhere is not followed). Without it,
 * the click leads to the site's root.
 */
"use strict";

/** The title of a push that carries no readable notification. */
const FALLBACK_TITLE = "New notification";

// A new version takes over at once, and a first registration controls the page that made it
// without a reload: nothing here keeps state that an older version could be relying on.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

/** The pushed notification, or {} when the push has no JSON object in it. */
function readPayload(event) {
  try {
    const payload = event.data?.json();
    if (payload && typeof payload === "object") return payload;
  } catch {
    // not JSON: shown as a generic notification below
  }
  return {};
}

self.addEventListener("push", (event) => {
  const { id, title, body, level, data } = readPayload(event);
  const extra = data && typeof data === "object" ? data : {};
  const options = {
    body: typeof body === "string" ? body : "",
    data: { ...extra, id: id ?? null, level: level || "info" },
  };
  // The same notification pushed twice (a retry) replaces itself instead of showing twice.
  if (id !== undefined && id !== null) options.tag = `herald-${id}`;
  // Every push must show something (the subscription promised userVisibleOnly): a push that
  // shows nothing makes the browser show its own "site updated in the background" notice, and
  // may cost the subscription. So a push without a readable payload still shows one.
  const shown = typeof title === "string" && title ? title : FALLBACK_TITLE;
  event.waitUntil(self.registration.showNotification(shown, options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(focusOrOpen(targetOf(event.notification.data)));
});

/** The absolute URL a click leads to: `data.url` resolved against this origin; the site's root
 *  when there is none, or when it leads elsewhere. Only the site's own pages: whoever may write
 *  a notification must not be able to send a click to a page of theirs (or to `javascript:`).
 *  (Not the scope: a worker served at /herald/sw.js has /herald/ as its scope, no page.) */
function targetOf(data) {
  const home = new URL("/", self.location.origin).href;
  if (!data || typeof data.url !== "string" || !data.url) return home;
  try {
    const url = new URL(data.url, self.location.origin);
    return url.origin === self.location.origin ? url.href : home;
  } catch {
    return home;
  }
}

/** Focuses a tab already showing `url`, or opens one. Either is allowed only while the click's
 *  event is being handled, so this runs inside its waitUntil. */
async function focusOrOpen(url) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const open = windows.find((client) => client.url === url);
  if (open) return open.focus();
  return self.clients.openWindow(url);
}
