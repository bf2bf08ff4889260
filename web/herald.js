/*! herald.js: the browser client of herald (real-time notifications over SSE).
 *
 * No dependencies, no build step. A plain <script src="/herald.js"> defines window.Herald; as
 * an ES module, import "/herald.mjs" (it re-exports the same object). Types: herald.d.ts.
 *
 *   const page = await Herald.list({ url, token, limit: 20 });        // optional
 *   const herald = Herald.connect({
 *     url, token,                         // or getToken: async () => "<fresh token>"
 *     channels: ["user:42", "broadcast"], // default: the token's inbox
 *     cursor: page.cursor,                // resume exactly after the list
 *     onNotification(n) {}, onCounts({ unread, unseen }) {}, onRead({ ids } | { all: true }) {},
 *     onSeen({ through }) {}, onArchived({ ids } | { all: true, through }) {},
 *     onUnarchived({ ids }) {}, onUnread({ ids }) {},
 *     onReset(cursor) {}, onStatus(status) {}, onError(error) {},
 *     presence: ["project:5"], onPresence(channel, users) {}, onSignal(signal) {},
 *   });
 *   herald.markRead(id); herald.markAllRead(); herald.markSeen(); herald.markUnread(id);
 *   herald.archive(id); herald.unarchive(id); herald.archiveAll(); herald.close();
 *   herald.present("project:5"); herald.signal("project:5", "typing", { task: 17 });
 *   herald.signal("order:17", "location", { lat, lng }, { keep: 3600 }); // pages opened later see it
 *   await herald.enablePush();            // browser notifications while no tab is open
 *
 * Herald.connect(options) starts at once and returns the handle. Options, all optional:
 *   url           herald's base URL, such as "https://herald.example.com"; "" (the default) is
 *                 this page's own origin.
 *   token         the app's token (a JWT herald accepts), or a herald stream token.
 *   getToken      () => token, or a promise of one. Asked when there is no token, or when the
 *                 token expires within 30 s. Without it an expired token is never replaced.
 *   channels      the channels to follow, as an array or a comma-separated string. Default:
 *                 the token's inbox (user:<id> and broadcast).
 *   cursor        resume right after this position: pass the `cursor` of a Herald.list page
 *                 and nothing falls between the list and the stream. Default: from now on.
 *   forcePolling  true: long-poll even where EventSource exists.
 *   presence      channels to be present on (array or comma-separated), each one the token
 *                 may read: the user shows as online there while this connection is open, in
 *                 any tab, and onPresence hears who else is.
 *   heartbeat     herald's HERALD_HEARTBEAT_SECS (default 15): a stream that brings nothing,
 *                 not even its ping, for 2.5 heartbeats died silently and is replaced.
 * Callbacks, all optional:
 *   onNotification(n)     each new notification, once per id: { id, channel, kind, title, body,
 *                         level, data, created_at, read, seen, archived }. Insert its text as
 *                         text, not HTML.
 *   onCounts({ unread, unseen })  the inbox's counts: unread (not yet read) and unseen (not yet
 *                         seen: what a bell's badge shows, cleared by markSeen). First when
 *                         both are known, then whenever either changes: from the stream, from
 *                         each long-poll's answer, and from the answers of this tab's own
 *                         markRead, markSeen, archive... calls. Archived items count in neither.
 *   onUnreadCount(count)  the unread count alone: first when known, then on every change.
 *   onRead(change)        { ids: [...] } or { all: true }: notifications marked read, by this
 *                         tab or any other client of the user (streams only, not long-polls).
 *   onSeen(change)        { through: cursor }: the user's inbox was marked seen up to that
 *                         cursor, by any tab or client (streams only; the new counts follow).
 *   onArchived(change)    { ids: [...] }, or { all: true, through: cursor } (everything in the
 *                         inbox up to that cursor): archived, by any tab or client of the user;
 *                         drop them from the list (streams only).
 *   onUnarchived(change)  { ids: [...] }: back in the inbox, read (streams only).
 *   onUnread(change)      { ids: [...] }: marked unread again, and so back in the inbox if they
 *                         were archived (streams only).
 *                         On long-polls none of these five comes: the counts still follow, and a
 *                         page that must show every change reloads its list with Herald.list.
 *   onReset(cursor)       herald cannot replay from the cursor (unknown, or too old): reload
 *                         the list. The connection goes on from `cursor` by itself.
 *   onPresence(channel, users)  who is present on a `presence` channel, the user included:
 *                         [{ user, name, since }], oldest first; first the whole list, then
 *                         again after every join or leave.
 *   onSignal(signal)      a signal on a followed channel: { channel, kind, from, data, at }.
 *                         A live one reaches only connections open when it is sent. A kept one
 *                         (sent with `keep`: a courier's position) is also the channel's current
 *                         value, and comes with `kept: true` when the connection starts (its
 *                         stream opens, a tab joins, or long-polling starts: herald.js asks
 *                         GET /api/signals for the followed channels other than the inbox) and
 *                         again after reconnects. A kept value no newer than a signal of its
 *                         channel and kind already delivered is left out, so it never moves a
 *                         courier back.
 *   onChannelsRefused(channels)  herald refused these `channels`/`presence` channels: the
 *                         token no longer grants them (an order delivered, a project left).
 *                         The connection drops them and goes on with the rest at once (with
 *                         none left, the inbox), so the inbox stays live.
 *   onStatus(status)      "connecting", "live" (a stream delivers), "polling" (long-polls
 *                         deliver) or "offline" (two attempts failed in a row; retrying).
 *   onError(error)        an Error (with `status` when herald answered) from work done in the
 *                         background: a request, a token trade, getToken. For logging: the
 *                         connection retries by itself, its very first token too ("offline"
 *                         meanwhile). (markRead, archive and the other writes reject their
 *                         promise instead.)
 * The handle (each write's answer carries the new counts, which onCounts hears at once; the
 * other tabs hear the change itself through the stream; each rejects with an Error with the
 * HTTP `status` and herald's `code`, as a request does, such as 404 for an id not in the
 * user's inbox):
 *   markRead(id)     → Promise of { id, read: true, unread_count, unseen_count }
 *   markAllRead()    → Promise of { marked, unread_count, unseen_count }
 *   markSeen(through) → Promise of { unread_count, unseen_count }: marks the inbox seen up to
 *                    the cursor `through`; without it, up to the newest position this
 *                    connection knows (its list's cursor, or the last one streamed or polled),
 *                    so what the page shows. Call it when the bell's list is opened. Rejects
 *                    (code "no_cursor") if there is no position yet.
 *   markUnread(id)   → Promise of { id, read: false, unread_count, unseen_count }: unread
 *                    again, and back in the inbox if it was archived.
 *   archive(id)      → Promise of { id, archived: true, unread_count, unseen_count }: out of
 *                    the inbox (read and seen too), kept for Herald.list({ archived: true }).
 *   unarchive(id)    → Promise of { id, archived: false, unread_count, unseen_count }.
 *   archiveAll(through) → Promise of { unread_count, unseen_count }: archives everything in
 *                    the inbox up to the cursor `through`, or everything now without it.
 *   lastCursor()     → the last cursor seen (or null): pass it as `cursor` to resume elsewhere.
 *   present(channel) → who is present on a `presence` channel now (as onPresence last said).
 *   signal(channel, kind, data, options) → Promise of { delivered_to }: sends a signal (typing,
 *                    a position) to the channel's open streams. Any tab may send one. Options:
 *                    keep, seconds (1–86,400) during which it stays the channel's current value
 *                    of its kind (until a newer kept one replaces it), for pages opened later.
 *   enablePush(options) → Promise of the PushSubscription: turns on Web Push for this browser,
 *                    so herald notifies the user while none of their tabs is open (SPEC 11).
 *                    Asks the user's permission (call it from a click: some browsers ask only
 *                    then), registers the service worker, subscribes with herald's key
 *                    (GET /api/push/key) and hands the subscription to herald. Options:
 *                    serviceWorker, the worker's URL, default "/herald-sw.js": it must be on
 *                    the page's own origin, so where herald has an origin of its own (a Django
 *                    app's pages), the app serves a copy of herald-sw.js and passes its URL;
 *                    scope, the worker's scope (default: its directory). Rejects with an
 *                    Error whose `code` says why: "unsupported", "permission" (not granted),
 *                    "service_worker", "push_service" (the browser's push service refused, or
 *                    did not answer within 20 s), or herald's own code with `status` (such as
 *                    "push_disabled", "endpoint_not_allowed"); nothing stays subscribed then.
 *   disablePush(options) → Promise of true (or false: it was off): unsubscribes this browser
 *                    and tells herald. Options: serviceWorker or scope, as given to enablePush. The browser is
 *                    unsubscribed even when herald cannot be told (the promise rejects then).
 *   pushSubscription(options) → Promise of this browser's PushSubscription, or null while
 *                    push is off (or unsupported). Options: serviceWorker or scope.
 *   close()          stops, and hands the stream over to another tab.
 *   leader, status   read-only: whether this tab holds the stream; the last status.
 * Herald.list(options) → Promise of { notifications, unread_count, unseen_count, cursor }, one
 *   page of GET /api/notifications: newest first, or oldest first `after` a cursor. Options:
 *   url, token or getToken, channels, limit (1–200, default 50), unread (true: unread only),
 *   archived (true: only the archived ones, newest first; else they are left out), after.
 *   Without a token it rejects.
 * Herald.version is "1.4" (1.1: presence, signals, the stream watchdog; 1.2: Web Push; 1.3:
 * lost grants are dropped, not retried for ever; 1.4: seen, archived and unread again, onCounts,
 * kept signals).
 *
 * How it behaves:
 * - One stream per user and channel set, however many tabs: the tab holding a Web Lock is the
 *   leader, opens the stream, and relays every event to the other tabs over BroadcastChannel.
 *   A tab that joins fetches what it missed from its own cursor. When the leader closes,
 *   another tab takes the lock and resumes from the last cursor it relayed.
 * - After any drop it reconnects from the last cursor (no gap, no duplicate), with jittered
 *   exponential backoff so a restart under thousands of tabs is not a stampede; a tab that
 *   becomes visible, or a browser that comes back online, reconnects at once.
 * - Without EventSource, or when streams keep failing (a buffering proxy), it long-polls
 *   GET /api/notifications?wait=25 instead, and tries a stream again every minute. The first
 *   poll of a run answers at once, so the kept signals and presence lists come as it starts.
 * - With getToken, a token about to expire is refreshed before reconnecting.
 * - A stream that hears nothing for 2.5 heartbeats (herald pings every one) is closed and
 *   reopened from the cursor: a laptop waking from sleep, or a proxy that dropped the
 *   connection without closing it, heals by itself.
 * - URLs never carry the app's token: herald.js trades it (POST /api/stream-token) for a
 *   short-lived stream token that only herald accepts, uses that for everything, and trades
 *   again before it expires. A stream token given as `token` (or by getToken) is used as is.
 *
 * Inside: Tokens (app token → stream token), Transport (the leader's stream or long-poll loop;
 * knows nothing of tabs), Tabs (Web Lock + BroadcastChannel; knows nothing of herald), and
 * Connection (the handle: joins them, keeps the cursor and the status, delivers). Where new
 * things go: a named SSE event is one entry in STREAM_EVENTS (and a case in `#deliver` if the
 * page should hear it); a watchdog on heartbeats belongs where a stream hears its events; a
 * method that followers ask the leader to run is a new message in `#hear`.
 */
(() => {
  "use strict";

  const POLL_WAIT_SECS = 25;
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 15000;
  /** A stream that opens but sends nothing (not even its unread count) is being buffered. */
  const FIRST_EVENT_TIMEOUT_MS = 8000;
  /** Streams that failed in a row before falling back to long-polling. */
  const STREAM_FAILURES_BEFORE_POLLING = 3;
  /** While polling because streams failed, try a stream again after this long. */
  const RETRY_STREAM_AFTER_MS = 60000;
  /** A token is replaced this long before it expires, so no request carries an expired one. */
  const TOKEN_REFRESH_MARGIN_SECS = 30;
  const STREAM_AUDIENCE = "herald:stream";
  /** Notification ids remembered to drop repeats (a replay or catch-up overlapping a relay). */
  const SEEN_LIMIT = 2000;
  /** herald's default HERALD_HEARTBEAT_SECS. */
  const HEARTBEAT_SECS = 15;
  /** Heartbeats without any event after which a stream is taken for dead. */
  const WATCHDOG_HEARTBEATS = 2.5;
  /** herald's largest page: a joining tab catches up in as few requests as it can. */
  const CATCH_UP_PAGE = 200;
  /** Channel and kind pairs whose last signal time is remembered (to drop stale kept values). */
  const SIGNAL_TIMES_LIMIT = 1000;

  // ---- requests ---------------------------------------------------------------------------------

  function trimSlashes(url) {
    return (url || "").replace(/\/+$/, "");
  }

  /** The query string of `params`, leaving out those without a value. */
  function query(params) {
    return Object.entries(params)
      .filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
      .join("&");
  }

  /** "a,b" from ["a", " b"] or "a, b"; "" for none, which herald reads as the inbox. */
  function channelList(channels) {
    if (!channels) return "";
    return (Array.isArray(channels) ? channels : String(channels).split(","))
      .map((channel) => channel.trim())
      .filter(Boolean)
      .join(",");
  }

  /** `list` ("a,b") without the channels in `refused`. */
  function withoutChannels(list, refused) {
    return list.split(",").filter((c) => c && !refused.includes(c)).join(",");
  }

  /** The channels of `list` other than the inbox of `token`'s user: those whose kept signals
   *  (a courier's position) a page starts from. */
  function keptChannels(list, token) {
    const who = claims(token);
    const user = who.sub !== undefined ? who.sub : who.user_id;
    return withoutChannels(list, ["broadcast", `user:${user}`]);
  }

  /** The kept signals of `channels` (GET /api/signals), each marked `kept: true`. */
  async function keptSignals(url, token, channels) {
    const answer = await request("GET", `${url}/api/signals?${query({ channels })}`, token);
    return (answer?.signals || []).map((signal) => ({ ...signal, kept: true }));
  }

  /** Calls herald with `token` as Bearer; resolves with the JSON body (null for 204), rejects
   *  with an Error that carries the HTTP `status` (and herald's own message and `code` when it
   *  sent them). */
  async function request(method, url, token, signal, body) {
    const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      if (error?.name !== "AbortError") explainUnreachable(url);
      throw error;
    }
    const failure = (message, code, channels) =>
      Object.assign(
        new Error(message),
        { status: response.status },
        code ? { code } : {},
        channels ? { channels } : {},
      );
    if (response.status === 204) return null;
    let answer;
    try {
      answer = await response.json();
    } catch {
      throw failure(`HTTP ${response.status}`);
    }
    if (!response.ok) {
      const error = answer?.error;
      throw failure(error?.message || `HTTP ${response.status}`, error?.code, error?.channels);
    }
    return answer;
  }

  let explained = false;

  /** A request to herald that fails without an answer, from a page of another origin, is most
   *  often CORS: the browser keeps the reason to itself, so say it, once per page. */
  function explainUnreachable(url) {
    const page = globalThis.location?.origin;
    let target;
    try {
      target = new URL(url, globalThis.location?.href).origin;
    } catch {
      return;
    }
    if (explained || !page || target === page) return;
    explained = true;
    globalThis.console?.error(
      `herald.js: ${target} did not answer this page (${page}); if herald is up, add ${page} ` +
        "to herald's HERALD_ALLOWED_ORIGINS (localhost and 127.0.0.1 are different origins).",
    );
  }

  // ---- tokens -----------------------------------------------------------------------------------

  /** The token's claims, unverified (herald verifies them); {} if unreadable. */
  function claims(token) {
    try {
      let part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) part += "=";
      return JSON.parse(atob(part));
    } catch {
      return {};
    }
  }

  /** True if `token` is a herald stream token, the only kind that may go into a URL. */
  function isStreamToken(token) {
    const { aud } = claims(token);
    return aud === STREAM_AUDIENCE || (Array.isArray(aud) && aud.includes(STREAM_AUDIENCE));
  }

  /** True if `token` expires within the refresh margin (one without `exp` never does). */
  function expiresSoon(token) {
    const { exp } = claims(token);
    return Boolean(exp) && exp - TOKEN_REFRESH_MARGIN_SECS < Date.now() / 1000;
  }

  function fresh(token) {
    return Boolean(token) && !expiresSoon(token);
  }

  /** The app's token (given, or from getToken) and the stream token traded for it. */
  class Tokens {
    #url;
    #app;
    #getToken;
    #stream = null;

    constructor(url, token, getToken) {
      this.#url = url;
      this.#app = token || null;
      this.#getToken = getToken || null;
    }

    /** The stream token to use now: the current one, or a fresh one traded for the app's. */
    async current() {
      if (fresh(this.#stream)) return this.#stream;
      const app = await this.#appToken();
      if (isStreamToken(app)) return (this.#stream = app);
      const traded = await request("POST", `${this.#url}/api/stream-token`, app);
      return (this.#stream = traded.token);
    }

    /** herald refused the stream token: trade again, and ask getToken if the app's is stale. */
    expired() {
      this.#stream = null;
      if (!fresh(this.#app)) this.#app = null;
    }

    async #appToken() {
      if (fresh(this.#app) || !this.#getToken) {
        if (!this.#app) throw new Error("no token");
        return this.#app; // stale, maybe, but there is nothing better to try
      }
      return (this.#app = await this.#getToken());
    }
  }

  // ---- the connection's state -------------------------------------------------------------------

  /**
   * Every change of the status that onStatus reports, in the tab that leads: each thing the
   * transport reports maps the status before to the status after. Followers show whatever
   * their leader last said.
   */
  const TRANSITIONS = {
    /** The tab starts, or starts to lead: nothing is delivered yet. */
    connect: () => "connecting",
    /** Reopening a stream that was live is no news: it resumes from the cursor. */
    streamOpening: (status) => (status === "live" ? "live" : "connecting"),
    /** The stream's first event came through, so no proxy holds it back. */
    streamHeard: () => "live",
    /** A long-poll went out after one that worked, or came back. */
    polled: () => "polling",
    /** Two attempts in a row failed (or the first token could not be had). */
    unreachable: () => "offline",
  };

  // ---- the transport: the leader's stream, or its long-polls ------------------------------------

  /**
   * The named SSE events a stream listens to, each turned into the message that the tabs
   * deliver (`cursor`: the position after it, when it has one). Every event also shows the
   * stream is alive; an entry that returns nothing only does that.
   */
  const STREAM_EVENTS = {
    notification: (data, id) => ({ type: "notification", data, cursor: id }),
    // The first one carries the stream's position, even before any notification.
    unread_count: (data, id) => ({ type: "unread_count", data, cursor: id || null }),
    read: (data) => ({ type: "read", data }),
    // Another tab's position, not this stream's: it never moves the cursor.
    seen: (data) => ({ type: "seen", data }),
    archived: (data) => ({ type: "archived", data }),
    unarchived: (data) => ({ type: "unarchived", data }),
    unread: (data) => ({ type: "unread", data }),
    reset: (data) => ({ type: "reset", data, cursor: data.cursor }),
    presence: (data) => ({ type: "presence", data }),
    signal: (data) => ({ type: "signal", data }),
    // Only says the stream is alive.
    ping: () => null,
  };

  /** How an attempt (one stream, or a run of long-polls) ended. */
  const DROPPED = "dropped"; // it worked until it ended: reconnect soon
  const FAILED = "failed"; // it never worked: back off further
  const EXPIRED = "expired"; // herald refused the token: get another
  const UNOPENED = "unopened"; // the stream failed before it opened: ask herald why

  /** A random wait in the upper half of 1 s × 2^(failures − 1), at most 15 s: the jitter keeps
   *  the tabs that a restart dropped from all coming back in the same instant. */
  function backoff(failures) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, failures - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  /** The wait between attempts; wake() ends it, or skips the next one if none is running. */
  class Pause {
    #end = null;
    #skipNext = false;

    wait(ms) {
      if (this.#skipNext) {
        this.#skipNext = false;
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        const end = () => {
          clearTimeout(timer);
          this.#end = null;
          resolve();
        };
        const timer = setTimeout(end, ms);
        this.#end = end;
      });
    }

    wake() {
      if (this.#end) this.#end();
      else this.#skipNext = true; // mid-attempt: skip the next backoff instead
    }
  }

  /**
   * herald, as the leading tab reaches it: one EventSource from the last cursor, or long-polls
   * where streams cannot work, attempt after attempt until stop(). It owns when and how to
   * connect; what it hears goes to `host` (the Connection), which keeps the cursor and status.
   */
  class Transport {
    #url;
    #channels;
    #presence;
    #watchdogMs;
    #tokens;
    #host;
    #canStream;
    #pause = new Pause();
    #stopped = false;
    /** Ends the stream or long-poll in flight. */
    #interrupt = null;
    /** Attempts in a row that failed: the backoff grows with them. */
    #failures = 0;
    /** Attempts in a row that ended with herald refusing the token. */
    #expiredStreak = 0;
    /** Streams in a row that a proxy seemed to hold back, and when they reached the limit. */
    #streamFailures = 0;
    #pollingSince = 0;

    /**
     * `host`: cursor() and setCursor(cursor), the position to resume from; dispatch(message)
     * for what herald sends; transition(name) of TRANSITIONS; report(error).
     */
    constructor({ url, channels, presence, heartbeat, tokens, forcePolling, host }) {
      this.#url = url;
      this.#channels = channels;
      this.#presence = presence;
      this.#watchdogMs = (Number(heartbeat) || HEARTBEAT_SECS) * WATCHDOG_HEARTBEATS * 1000;
      this.#tokens = tokens;
      this.#host = host;
      this.#canStream = typeof globalThis.EventSource === "function" && !forcePolling;
      globalThis.document?.addEventListener("visibilitychange", this.#onVisibilityChange);
      globalThis.addEventListener?.("online", this.#wake);
    }

    /** Connects, and reconnects after every drop until stop(). */
    async run() {
      while (!this.#stopped) {
        const outcome = await this.#attempt();
        if (this.#stopped) return;
        if (outcome === EXPIRED) {
          this.#tokens.expired();
          this.#expiredStreak += 1;
          // At once the first time; a server that keeps refusing (a rotated secret, a
          // getToken that returns stale tokens) gets the usual backoff instead of a spin.
          if (this.#expiredStreak === 1) continue;
          this.#failures += 1;
        } else {
          this.#expiredStreak = 0;
        }
        if (outcome === FAILED) {
          this.#failures += 1;
          if (this.#failures >= 2) this.#host.transition("unreachable");
        }
        await this.#pause.wait(backoff(this.#failures));
      }
    }

    stop() {
      this.#stopped = true;
      this.#interrupt?.();
      this.#pause.wake();
      globalThis.document?.removeEventListener("visibilitychange", this.#onVisibilityChange);
      globalThis.removeEventListener?.("online", this.#wake);
    }

    /** The tab came back into view, or the browser back online: try now, from scratch. */
    #wake = () => {
      this.#failures = 0;
      this.#pause.wake();
    };

    #onVisibilityChange = () => {
      if (document.visibilityState === "visible") this.#wake();
    };

    /** One stream, or long-polls until it is time to try a stream again. */
    async #attempt() {
      const polling = this.#shouldPoll();
      try {
        const token = await this.#tokens.current();
        if (this.#stopped) return DROPPED; // closed while the token was being traded
        const outcome = polling ? await this.#poll(token) : await this.#stream(token);
        return outcome === UNOPENED ? await this.#whyUnopened(token) : outcome;
      } catch (error) {
        if (error.status === 403 && error.channels?.length) return this.#drop(error.channels);
        this.#host.report(error);
        return FAILED;
      }
    }

    /** EventSource does not say why a stream failed to open: a request that checks the same
     *  channels does. A lost grant (403 naming channels) is dropped and the rest retried at
     *  once; a refused token is EXPIRED; anything else an outage. */
    async #whyUnopened(token) {
      const channels = channelList(`${this.#channels},${this.#presence}`);
      const params = query({ limit: 1, channels });
      try {
        await request("GET", `${this.#url}/api/notifications?${params}`, token);
      } catch (error) {
        if (error.status === 401) return EXPIRED;
        if (error.status === 403 && error.channels?.length) return this.#drop(error.channels);
      }
      return FAILED;
    }

    /** Goes on without `refused`; the page hears which. */
    #drop(refused) {
      this.#channels = withoutChannels(this.#channels, refused);
      this.#presence = withoutChannels(this.#presence, refused);
      this.#host.dispatch({ type: "channels_refused", data: { channels: refused } });
      return DROPPED;
    }

    #shouldPoll() {
      if (!this.#canStream) return true;
      if (this.#streamFailures < STREAM_FAILURES_BEFORE_POLLING) return false;
      if (Date.now() - this.#pollingSince < RETRY_STREAM_AFTER_MS) return true;
      // Time for one more stream: if it is held back too, back to polling at once.
      this.#streamFailures = STREAM_FAILURES_BEFORE_POLLING - 1;
      return false;
    }

    /** A stream that a proxy held back: enough of them in a row and we poll for a while. */
    #heldBack() {
      this.#streamFailures += 1;
      if (this.#streamFailures >= STREAM_FAILURES_BEFORE_POLLING) this.#pollingSince = Date.now();
    }

    /** One EventSource from the cursor, until it ends. */
    #stream(token) {
      return new Promise((resolve) => {
        this.#host.transition("streamOpening");
        const params = {
          token,
          channels: this.#channels,
          presence: this.#presence,
          last_event_id: this.#host.cursor(),
        };
        const source = new EventSource(`${this.#url}/events?${query(params)}`);
        let opened = false;
        let heard = false;
        let ended = false;
        let lastHeard = Date.now();
        const end = (outcome) => {
          if (ended) return;
          ended = true;
          clearTimeout(firstEventDue);
          clearInterval(watchdog);
          source.close();
          this.#interrupt = null;
          resolve(outcome);
        };
        // A proxy that buffers the stream lets it open but never delivers the first event.
        const firstEventDue = setTimeout(() => {
          if (heard) return;
          this.#heldBack();
          end(FAILED);
        }, FIRST_EVENT_TIMEOUT_MS);
        // Frozen, not closed (a laptop asleep, a proxy that lost it): EventSource would wait
        // for ever. herald pings every heartbeat, so silence this long means it is gone.
        const watchdog = setInterval(() => {
          if (heard && Date.now() - lastHeard > this.#watchdogMs) end(DROPPED);
        }, Math.min(1000, this.#watchdogMs / 5));
        const hear = () => {
          lastHeard = Date.now();
          if (heard) return;
          heard = true;
          this.#failures = 0;
          this.#expiredStreak = 0; // a stream that worked ends at its token's expiry: no backoff
          this.#streamFailures = 0;
          this.#host.transition("streamHeard");
        };
        for (const [name, toMessage] of Object.entries(STREAM_EVENTS)) {
          source.addEventListener(name, (event) => {
            hear();
            const message = toMessage(JSON.parse(event.data), event.lastEventId);
            if (message) this.#host.dispatch(message);
          });
        }
        source.addEventListener("auth_expired", () => end(EXPIRED));
        source.onopen = () => { opened = true; };
        source.onerror = () => {
          // We reconnect ourselves: with a fresh token, our cursor, and jitter. A stream that
          // opened yet brought nothing is being buffered; one that never opened is an outage
          // (a restart, the network), which is no reason to give up on streaming.
          if (!heard && opened) this.#heldBack();
          end(heard ? DROPPED : opened ? FAILED : UNOPENED);
        };
        this.#interrupt = () => end(DROPPED);
      });
    }

    /** Long-polls until it is time to try a stream again, or the token is about to expire;
     *  throws when a request fails. */
    async #poll(token) {
      const until = this.#canStream ? this.#pollingSince + RETRY_STREAM_AFTER_MS : Infinity;
      let keptAsked = false;
      while (!this.#stopped && Date.now() < until) {
        if (expiresSoon(token)) return EXPIRED;
        if (this.#failures === 0) this.#host.transition("polled");
        const cursor = this.#host.cursor();
        // The first poll of a run answers at once (wait 0), not when something new comes or
        // 25 s pass: the kept signals and presence lists asked after it are what a stream
        // would start with, so the page must not wait a long-poll for them.
        const wait = keptAsked ? POLL_WAIT_SECS : 0;
        const params = cursor
          ? { after: cursor, wait, channels: this.#channels }
          : { limit: 1, channels: this.#channels }; // no cursor yet: this page's is "now"
        params.presence = this.#presence; // present while polling, too
        const controller = new AbortController();
        this.#interrupt = () => controller.abort();
        let page;
        try {
          const url = `${this.#url}/api/notifications?${query(params)}`;
          page = await request("GET", url, token, controller.signal);
        } catch (error) {
          if (error.status === 401) return EXPIRED;
          throw error;
        } finally {
          this.#interrupt = null;
        }
        this.#failures = 0;
        this.#host.transition("polled");
        if (page.reset) {
          const reset = { type: "reset", data: { cursor: page.cursor }, cursor: page.cursor };
          this.#host.dispatch(reset);
        } else if (cursor) {
          for (const n of page.notifications) {
            this.#host.dispatch({ type: "notification", data: n, cursor: page.cursor });
          }
        }
        this.#host.setCursor(page.cursor);
        const counts = { unread_count: page.unread_count, unseen_count: page.unseen_count };
        this.#host.dispatch({ type: "unread_count", data: counts });
        if (!keptAsked) {
          // Once the first page has accepted the channels: a stream would start with these.
          keptAsked = true;
          await this.#pollKept(token);
        }
        if (this.#presence) await this.#pollPresence(token);
      }
      return DROPPED;
    }

    /** Long-polls hear no signals: the kept ones (current values, such as a courier's
     *  position) are asked for as a run of them starts, so a polling page starts from them
     *  too. Without them the page still works: a failure is only reported. */
    async #pollKept(token) {
      const channels = keptChannels(this.#channels, token);
      if (!channels) return;
      try {
        const signals = await keptSignals(this.#url, token, channels);
        for (const data of signals) this.#host.dispatch({ type: "signal", data });
      } catch (error) {
        this.#host.report(error);
      }
    }

    /** Long-polls hear no presence events: each poll asks for the lists instead. */
    async #pollPresence(token) {
      const url = `${this.#url}/api/presence?${query({ channels: this.#presence })}`;
      const { presence } = await request("GET", url, token);
      for (const [channel, present] of Object.entries(presence)) {
        this.#host.dispatch({ type: "presence", data: { channel, present } });
      }
    }
  }

  // ---- tab sharing ------------------------------------------------------------------------------

  /**
   * The tabs of one user and channel set in one browser. The tab holding the Web Lock named
   * `key` leads; the others wait in line for it, and the browser hands it to the next one when
   * the leader closes or its tab dies. All of them talk over the BroadcastChannel `key`.
   *
   * The messages (unchanged since herald.js 1, so that tabs loaded before and after an upgrade
   * still share a stream):
   *   { type: "hello" }                          a tab joined; the leader answers with "state"
   *   { type: "state", status, unread, cursor,   the leader's status, unread count and cursor,
   *     present, unseen }                        (since herald.js 1.1) its presence lists, and
   *                                              (since 1.4) its unseen count
   *   { type: "status", status }                 the leader's status changed
   *   { type, data, cursor }                     an event, as the leader delivered it itself
   *                                              (type: notification, unread_count, read, reset,
   *                                              since 1.1 presence, signal, and since 1.4 seen,
   *                                              archived, unarchived, unread; a tab ignores
   *                                              the types it does not know)
   */
  class Tabs {
    static supported() {
      return Boolean(globalThis.BroadcastChannel && globalThis.navigator?.locks);
    }

    #bus;
    #leave = new AbortController();
    #release = null;
    #closed = false;

    /** Joins: `hear(message)` gets the other tabs' messages, `lead()` runs when it is our turn. */
    constructor(key, { hear, lead }) {
      this.#bus = new BroadcastChannel(key);
      this.#bus.onmessage = (event) => hear(event.data);
      navigator.locks
        .request(key, { signal: this.#leave.signal }, () => {
          if (this.#closed) return;
          lead();
          // Hold the lock for as long as this tab leads.
          return new Promise((resolve) => { this.#release = resolve; });
        })
        .catch(() => {}); // this tab left while waiting in line
      // If another tab leads, it answers with the current state.
      this.#bus.postMessage({ type: "hello" });
    }

    post(message) {
      this.#bus.postMessage(message);
    }

    /** Leaves: gives the lock to the next tab in line, if this one held it. */
    close() {
      this.#closed = true;
      this.#release?.();
      this.#leave.abort();
      this.#bus.close();
    }
  }

  // ---- Web Push: notifications while no tab is open ---------------------------------------------

  /** Where enablePush registers the service worker unless told otherwise: the root of the
   *  page's origin, where herald serves it (so its scope is the whole site). */
  const SERVICE_WORKER = "/herald-sw.js";
  /** A push service answers a subscription within seconds; one that cannot be reached (the
   *  browser is offline) leaves Chromium's subscribe() unsettled for ever. */
  const SUBSCRIBE_TIMEOUT_MS = 20000;

  function pushSupported() {
    const { navigator, PushManager, Notification } = globalThis;
    return Boolean(navigator?.serviceWorker && PushManager && Notification);
  }

  /** An Error whose `code` the page can branch on, keeping what caused it. */
  function pushError(code, message, cause) {
    return Object.assign(new Error(message, cause ? { cause } : undefined), { code });
  }

  /** The bytes of a base64url string, such as herald's public key. */
  function fromBase64Url(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(binary, (char) => char.charCodeAt(0));
  }

  function sameBytes(buffer, bytes) {
    const other = new Uint8Array(buffer || []);
    return other.length === bytes.length && other.every((byte, i) => byte === bytes[i]);
  }

  /** Registers (or updates) the service worker; resolves once it is active, since a push
   *  manager only subscribes for an active worker. */
  async function registerWorker({ serviceWorker = SERVICE_WORKER, scope } = {}) {
    let registration;
    try {
      registration = await navigator.serviceWorker.register(serviceWorker, scope ? { scope } : {});
    } catch (error) {
      const message = `the service worker ${serviceWorker} could not be registered`;
      throw pushError("service_worker", `${message}: ${error.message}`, error);
    }
    const worker = registration.installing || registration.waiting;
    if (registration.active || !worker) return registration;
    return new Promise((resolve, reject) => {
      worker.addEventListener("statechange", () => {
        if (worker.state === "activated") resolve(registration);
        if (worker.state === "redundant") {
          const message = `the service worker ${serviceWorker} failed to install`;
          reject(pushError("service_worker", message));
        }
      });
    });
  }

  /** The browser's push subscription for the worker of `scope`, else of the `serviceWorker`
   *  URL's directory (its default scope: a worker served at /herald/sw.js does not control
   *  the pages it notifies for), else the one controlling this page. */
  async function pushSubscription({ scope, serviceWorker } = {}) {
    if (!pushSupported()) return null;
    const where = scope ?? (serviceWorker ? new URL(".", new URL(serviceWorker, location.href)).href : undefined);
    const registration = await navigator.serviceWorker.getRegistration(where);
    return (await registration?.pushManager.getSubscription()) || null;
  }

  /** A new subscription with herald's `key`, within SUBSCRIBE_TIMEOUT_MS. */
  async function subscribe(registration, key) {
    const subscribing = registration.pushManager.subscribe({
      userVisibleOnly: true, // the only kind browsers allow: each push shows a notification
      applicationServerKey: key,
    });
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(resolve, SUBSCRIBE_TIMEOUT_MS);
    });
    try {
      const subscription = await Promise.race([subscribing, timeout]);
      if (subscription) return subscription;
    } catch (error) {
      const message = "the browser's push service did not subscribe this browser";
      throw pushError("push_service", `${message}: ${error.message}`, error);
    } finally {
      clearTimeout(timer);
    }
    // Given up on: if it comes after all, herald never hears of it, so it must not stay.
    subscribing.then((late) => late.unsubscribe(), () => {});
    const message = "the browser's push service did not answer within";
    throw pushError("push_service", `${message} ${SUBSCRIBE_TIMEOUT_MS / 1000} s`);
  }

  /** Asks permission, subscribes with herald's key, and hands the subscription to herald. */
  async function enablePush(url, tokens, options = {}) {
    if (!pushSupported()) {
      throw pushError("unsupported", "this browser cannot show push notifications");
    }
    // Asked first, while the click that called us still counts: some browsers ask only then.
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      throw pushError("permission", permission === "denied"
        ? "notifications are blocked for this site (the browser's site settings can allow them)"
        : "notifications were not allowed");
    }
    const registration = await registerWorker(options);
    const token = await tokens.current();
    const { public_key: publicKey } = await request("GET", `${url}/api/push/key`, token);
    const key = fromBase64Url(publicKey);
    let subscription = await registration.pushManager.getSubscription();
    // Subscribed with another key (herald's was replaced): the push service would refuse
    // herald's pushes to it, so it is replaced too.
    if (subscription && !sameBytes(subscription.options?.applicationServerKey, key)) {
      await subscription.unsubscribe();
      subscription = null;
    }
    const created = !subscription;
    subscription ||= await subscribe(registration, key);
    try {
      const body = subscription.toJSON();
      await request("POST", `${url}/api/push/subscriptions`, token, undefined, body);
    } catch (error) {
      // A new one, kept, would say push is on while herald never pushes to it. One that was
      // there before may be herald's already (a 5xx, a network error): it stays.
      if (created) await subscription.unsubscribe().catch(() => {});
      throw error;
    }
    return subscription;
  }

  /** Unsubscribes this browser and tells herald; false if there was nothing to turn off. */
  async function disablePush(url, tokens, options = {}) {
    const subscription = await pushSubscription(options);
    if (!subscription) return false;
    try {
      const token = await tokens.current();
      const body = { endpoint: subscription.endpoint };
      await request("DELETE", `${url}/api/push/subscriptions`, token, undefined, body);
    } finally {
      // Even if herald could not be told: the user asked for no more notifications, and
      // herald drops the subscription itself once the push service answers that it is gone.
      await subscription.unsubscribe();
    }
    return true;
  }

  // ---- the handle -------------------------------------------------------------------------------

  /** The last ids delivered, oldest dropped first (a Set iterates in insertion order). */
  class RecentIds {
    #ids = new Set();

    /** False if `id` was seen already. */
    add(id) {
      if (this.#ids.has(id)) return false;
      this.#ids.add(id);
      if (this.#ids.size > SEEN_LIMIT) this.#ids.delete(this.#ids.values().next().value);
      return true;
    }
  }

  /**
   * When the last signal of each channel and kind was sent. Kept values come again (after a
   * reconnect, when a tab joins or takes over, from GET /api/signals), and may arrive after a
   * newer live signal: one no newer than what was delivered is old news.
   */
  class SignalTimes {
    #times = new Map();

    /** False for a kept `signal` no newer than one of its channel and kind delivered before. */
    fresh({ channel, kind, at, kept }) {
      const key = `${channel}\n${kind}`;
      const time = Date.parse(at);
      if (!Number.isFinite(time)) return true; // nothing to compare: deliver it
      const last = this.#times.get(key);
      if (last !== undefined && time <= last) {
        if (kept) return false;
        if (time < last) return true; // a live one out of order: delivered, remembers nothing
      }
      this.#times.delete(key); // re-inserted last: the oldest pair is dropped first
      this.#times.set(key, time);
      if (this.#times.size > SIGNAL_TIMES_LIMIT) this.#times.delete(this.#times.keys().next().value);
      return true;
    }
  }

  /** What Herald.connect returns: one tab's connection, leading or following. */
  class Connection {
    #options;
    #url;
    #channels;
    #tokens;
    #transport;
    #tabs = null;
    #cursor;
    #status = null;
    #unread;
    #unseen;
    /** The notifications delivered (to drop repeats), and when each kind of signal was sent. */
    #delivered = new RecentIds();
    #signalTimes = new SignalTimes();
    /** Who is present on each presence channel: channel → (user → { user, name, since }). */
    #present = new Map();
    #presence;
    #leading = false;
    #caughtUp = false;
    #keptAsked = false;
    #closed = false;

    constructor(options) {
      this.#options = options; // read at each call, as callbacks may be swapped later
      this.#url = trimSlashes(options.url);
      this.#channels = channelList(options.channels);
      this.#presence = channelList(options.presence);
      this.#cursor = options.cursor || null;
      this.#tokens = new Tokens(this.#url, options.token, options.getToken);
      this.#transport = new Transport({
        url: this.#url,
        channels: this.#channels,
        presence: this.#presence,
        heartbeat: options.heartbeat,
        tokens: this.#tokens,
        forcePolling: options.forcePolling,
        host: {
          cursor: () => this.#cursor,
          setCursor: (cursor) => { this.#cursor = cursor; },
          dispatch: (message) => this.#dispatch(message),
          transition: (name) => this.#transition(name),
          report: (error) => this.#report(error),
        },
      });
      this.#transition("connect");
      this.#join();
    }

    /** True while this tab holds the stream for the others. */
    get leader() {
      return this.#leading;
    }

    get status() {
      return this.#status;
    }

    /** Marks one notification read; resolves with { id, read, unread_count, unseen_count }. */
    markRead(id) {
      return this.#write(`${encodeURIComponent(id)}/read`);
    }

    /** Marks everything read; resolves with { marked, unread_count, unseen_count }. */
    async markAllRead() {
      const answer = await this.#write("read_all");
      // A herald that does not say the counts: none is unread now.
      if (typeof answer?.unread_count !== "number") {
        this.#dispatch({ type: "unread_count", data: { unread_count: 0 } });
      }
      return answer;
    }

    /** Marks the inbox seen up to `through` (default: the newest position this connection
     *  knows); resolves with { unread_count, unseen_count }. */
    async markSeen(through) {
      const cursor = through || this.#cursor;
      if (!cursor) {
        const message = "nothing to mark seen yet: no list or stream position is known";
        throw Object.assign(new Error(message), { code: "no_cursor" });
      }
      return this.#write("seen", { through: cursor });
    }

    /** Makes one notification unread again (and un-archives it). */
    markUnread(id) {
      return this.#write(`${encodeURIComponent(id)}/unread`);
    }

    /** Archives one notification: out of the inbox and its counts. */
    archive(id) {
      return this.#write(`${encodeURIComponent(id)}/archive`);
    }

    /** Brings an archived notification back into the inbox (still read). */
    unarchive(id) {
      return this.#write(`${encodeURIComponent(id)}/unarchive`);
    }

    /** Archives everything in the inbox up to `through`, or everything now without it. */
    archiveAll(through) {
      return this.#write("archive_all", through ? { through } : {});
    }

    /** POSTs to /api/notifications/`path`; the counts in herald's answer go to every tab at
     *  once (the other tabs hear the change itself from the stream). */
    async #write(path, body) {
      const token = await this.#tokens.current();
      const url = `${this.#url}/api/notifications/${path}`;
      const answer = await request("POST", url, token, undefined, body);
      const counts = {};
      for (const name of ["unread_count", "unseen_count"]) {
        if (typeof answer?.[name] === "number") counts[name] = answer[name];
      }
      if (Object.keys(counts).length) this.#dispatch({ type: "unread_count", data: counts });
      return answer;
    }

    /** Who is present on `channel` now: [{ user, name, since }], oldest first. */
    present(channel) {
      const users = Array.from(this.#present.get(channel)?.values() || []);
      return users.sort((a, b) => (a.since < b.since ? -1 : a.since > b.since ? 1 : 0));
    }

    /** Sends a signal to `channel`'s open streams, kept as its current value for
     *  `options.keep` seconds if given; resolves with { delivered_to }. */
    async signal(channel, kind, data, options) {
      const token = await this.#tokens.current();
      const body = { channel, kind, data };
      if (options?.keep !== undefined && options.keep !== null) body.keep = options.keep;
      return request("POST", `${this.#url}/api/signals`, token, undefined, body);
    }

    /** Turns on Web Push for this browser; resolves with its PushSubscription. */
    enablePush(options) {
      return enablePush(this.#url, this.#tokens, options);
    }

    /** Turns Web Push off for this browser; resolves with false if it was off. */
    disablePush(options) {
      return disablePush(this.#url, this.#tokens, options);
    }

    /** This browser's push subscription, or null while push is off. */
    pushSubscription(options) {
      return pushSubscription(options);
    }

    /** The last cursor seen: pass it as `cursor` to resume elsewhere. */
    lastCursor() {
      return this.#cursor;
    }

    /** Stops, and frees the stream for another tab. */
    close() {
      if (this.#closed) return;
      this.#closed = true;
      this.#transport.stop();
      this.#relay({ type: "status", status: "connecting" }); // until the next leader says more
      this.#tabs?.close();
    }

    /** Gets a token (its user names the tab group), then leads, or joins the other tabs. */
    async #join() {
      let token;
      // A first token that cannot be had (the network at page load, the app's token view
      // down) is retried with the usual backoff until it comes or the page closes us.
      for (let failures = 1; !token; failures += 1) {
        try {
          token = await this.#tokens.current();
        } catch (error) {
          if (this.#closed) return;
          this.#transition("unreachable");
          this.#report(error);
          await new Promise((resolve) => setTimeout(resolve, backoff(failures)));
        }
        if (this.#closed) return;
      }
      if (!Tabs.supported()) {
        this.#lead();
        return;
      }
      const who = claims(token);
      const user = who.sub !== undefined ? who.sub : who.user_id;
      this.#tabs = new Tabs(`herald|${this.#url}|${user}|${this.#channels}`, {
        hear: (message) => this.#hear(message),
        lead: () => this.#lead(),
      });
    }

    #lead() {
      this.#leading = true;
      // Whatever this tab showed while it followed was the old leader's news: say afresh,
      // to this tab and to the followers, that it is connecting.
      this.#status = null;
      this.#transition("connect");
      this.#transport.run();
    }

    /** What the leader hears from herald (or learns from a mark-read): deliver it everywhere. */
    #dispatch(message) {
      if (message.cursor) this.#cursor = message.cursor;
      this.#relay(message);
      this.#deliver(message);
    }

    #relay(message) {
      if (this.#leading) this.#tabs?.post(message);
    }

    /** A message from another tab. */
    #hear(message) {
      if (!message || this.#closed) return;
      if (message.type === "hello") {
        if (this.#leading) {
          const state = {
            status: this.#status, unread: this.#unread, cursor: this.#cursor, unseen: this.#unseen,
          };
          const present = {};
          for (const channel of this.#present.keys()) present[channel] = this.present(channel);
          this.#tabs.post({ type: "state", ...state, present });
        }
        return;
      }
      if (this.#leading) return; // everything else is the leader's to send
      switch (message.type) {
        case "state":
          // What committed between this tab's own list and joining: the leader relayed it
          // before we listened. Fetch it from our own cursor, then follow the leader's.
          if (this.#cursor && !this.#caughtUp) this.#catchUp(this.#cursor);
          // The leader's stream heard the kept signals when it opened, before this tab was.
          if (!this.#keptAsked) this.#askKept();
          if (message.cursor) this.#cursor = message.cursor;
          if (message.status) this.#setStatus(message.status);
          if (typeof message.unread === "number") {
            const counts = { unread_count: message.unread, unseen_count: message.unseen };
            this.#deliver({ type: "unread_count", data: counts });
          }
          for (const [channel, present] of Object.entries(message.present || {})) {
            this.#deliver({ type: "presence", data: { channel, present } });
          }
          break;
        case "status":
          this.#setStatus(message.status);
          break;
        default:
          if (message.cursor) this.#cursor = message.cursor;
          this.#deliver(message);
      }
    }

    /** Delivers what committed after `after`, page by page; the seen ids drop the overlap. */
    async #catchUp(after) {
      this.#caughtUp = true;
      try {
        for (;;) {
          const token = await this.#tokens.current();
          const params = query({ after, limit: CATCH_UP_PAGE, channels: this.#channels });
          const page = await request("GET", `${this.#url}/api/notifications?${params}`, token);
          if (this.#closed || page.reset) return;
          for (const n of page.notifications) this.#deliver({ type: "notification", data: n });
          if (page.notifications.length < CATCH_UP_PAGE) return;
          after = page.cursor;
        }
      } catch (error) {
        this.#report(error);
      }
    }

    /** A joining tab's own kept signals, for the page of this tab alone. */
    async #askKept() {
      this.#keptAsked = true;
      try {
        const token = await this.#tokens.current();
        const channels = keptChannels(this.#channels, token);
        if (!channels || this.#closed) return;
        const signals = await keptSignals(this.#url, token, channels);
        for (const data of signals) this.#deliver({ type: "signal", data });
      } catch (error) {
        this.#report(error);
      }
    }

    /** Hands a message to the page's callbacks, in every tab. */
    #deliver({ type, data }) {
      if (this.#closed) return; // the page said close(): no more callbacks
      const options = this.#options;
      switch (type) {
        case "notification":
          if (this.#delivered.add(data.id)) options.onNotification?.(data);
          break;
        case "unread_count": {
          // Either count may be missing (an older herald or leader tab): the other one stays.
          const known = (count, before) => (typeof count === "number" ? count : before);
          const unread = known(data.unread_count, this.#unread);
          const unseen = known(data.unseen_count, this.#unseen);
          if (unread === this.#unread && unseen === this.#unseen) return;
          const unreadChanged = unread !== this.#unread;
          this.#unread = unread;
          this.#unseen = unseen;
          if (unreadChanged) options.onUnreadCount?.(unread);
          if (unread !== undefined && unseen !== undefined) options.onCounts?.({ unread, unseen });
          break;
        }
        case "read":
          options.onRead?.(data);
          break;
        case "seen":
          options.onSeen?.(data);
          break;
        case "archived":
          options.onArchived?.(data);
          break;
        case "unarchived":
          options.onUnarchived?.(data);
          break;
        case "unread":
          options.onUnread?.(data);
          break;
        case "reset":
          options.onReset?.(data.cursor);
          break;
        case "presence":
          this.#applyPresence(data);
          options.onPresence?.(data.channel, this.present(data.channel));
          break;
        case "signal":
          if (this.#signalTimes.fresh(data)) options.onSignal?.(data);
          break;
        case "channels_refused": {
          this.#channels = withoutChannels(this.#channels, data.channels);
          this.#presence = withoutChannels(this.#presence, data.channels);
          options.onChannelsRefused?.(data.channels);
          break;
        }
      }
    }

    /** A whole list (`present`), or a change (`joined`, `left`). */
    #applyPresence({ channel, present, joined, left }) {
      if (present) this.#present.set(channel, new Map());
      const users = this.#present.get(channel) || new Map();
      this.#present.set(channel, users);
      for (const member of present || joined || []) users.set(member.user, member);
      for (const user of left || []) users.delete(user);
    }

    #transition(name) {
      this.#setStatus(TRANSITIONS[name](this.#status));
    }

    #setStatus(status) {
      if (this.#status === status) return;
      this.#status = status;
      this.#relay({ type: "status", status });
      this.#options.onStatus?.(status);
    }

    #report(error) {
      this.#options.onError?.(error);
    }
  }

  /** One page of GET /api/notifications, with the app's token (Bearer: never in a URL). */
  async function list(options) {
    let token = options.token;
    if (!token) {
      if (!options.getToken) throw new Error("no token");
      token = await options.getToken();
    }
    const params = query({
      limit: options.limit,
      unread: options.unread ? "true" : "",
      archived: options.archived ? "true" : "",
      channels: channelList(options.channels),
      after: options.after,
    });
    return request("GET", `${trimSlashes(options.url)}/api/notifications?${params}`, token);
  }

  globalThis.Herald = {
    connect: (options) => new Connection(options),
    list,
    version: "1.4",
  };
})();
