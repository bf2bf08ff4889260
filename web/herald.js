/*! herald.js: the browser client of herald (real-time notifications over SSE).
 *
 * No dependencies, no build step. A plain <script src="/herald.js"> defines window.Herald; as
 * an ES module, import "/herald.mjs" (it re-exports the same object).
 *
 *   const page = await Herald.list({ url, token, limit: 20 });        // optional
 *   const herald = Herald.connect({
 *     url, token,                         // or getToken: async () => "<fresh token>"
 *     channels: ["user:42", "broadcast"], // default: the token's inbox
 *     cursor: page.cursor,                // resume exactly after the list
 *     onNotification(n) {}, onUnreadCount(count) {}, onRead({ ids } | { all: true }) {},
 *     onReset(cursor) {}, onStatus(status) {}, onError(error) {},
 *   });
 *   herald.markRead(id); herald.markAllRead(); herald.close();
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
 * Callbacks, all optional:
 *   onNotification(n)     each new notification, once per id: { id, channel, kind, title, body,
 *                         level, data, created_at, read }. Insert its text as text, not HTML.
 *   onUnreadCount(count)  the inbox's unread count: first when known, then on every change.
 *   onRead(change)        { ids: [...] } or { all: true }: notifications marked read, by this
 *                         tab or any other client of the user (streams only, not long-polls).
 *   onReset(cursor)       herald cannot replay from the cursor (unknown, or too old): reload
 *                         the list. The connection goes on from `cursor` by itself.
 *   onStatus(status)      "connecting", "live" (a stream delivers), "polling" (long-polls
 *                         deliver) or "offline" (two attempts failed in a row; retrying).
 *   onError(error)        an Error (with `status` when herald answered) from work done in the
 *                         background: a request, a token trade, getToken. For logging: the
 *                         connection retries by itself, except when its very first token cannot
 *                         be had; then it stays "offline". (markRead and markAllRead reject
 *                         their promise instead.)
 * The handle:
 *   markRead(id)     → Promise of { id, read: true, unread_count }
 *   markAllRead()    → Promise of { marked }
 *   lastCursor()     → the last cursor seen (or null): pass it as `cursor` to resume elsewhere.
 *   close()          stops, and hands the stream over to another tab.
 *   leader, status   read-only: whether this tab holds the stream; the last status.
 * Herald.list(options) → Promise of { notifications, unread_count, cursor }, one page of
 *   GET /api/notifications: newest first, or oldest first `after` a cursor. Options: url,
 *   token or getToken, channels, limit (1–200, default 50), unread (true: unread only), after.
 *   Without a token it rejects.
 * Herald.version is "1".
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
 *   GET /api/notifications?wait=25 instead, and tries a stream again every minute.
 * - With getToken, a token about to expire is refreshed before reconnecting.
 * - URLs never carry the app's token: herald.js trades it (POST /api/stream-token) for a
 *   short-lived stream token that only herald accepts, uses that for everything, and trades
 *   again before it expires. A stream token given as `token` (or by getToken) is used as is.
 */
(function (global) {
  "use strict";

  var POLL_WAIT_SECS = 25;
  var BACKOFF_FIRST_MS = 1000;
  var BACKOFF_MAX_MS = 15000;
  /** A stream that opens but sends nothing (not even its unread count) is being buffered. */
  var FIRST_EVENT_TIMEOUT_MS = 8000;
  /** Streams that failed in a row before falling back to long-polling. */
  var STREAM_FAILURES_BEFORE_POLLING = 3;
  /** While polling because streams failed, try a stream again after this long. */
  var RETRY_STREAM_AFTER_MS = 60000;
  var TOKEN_REFRESH_MARGIN_SECS = 30;
  var STREAM_AUDIENCE = "herald:stream";
  var SEEN_LIMIT = 2000;

  function base(url) {
    return (url || "").replace(/\/+$/, "");
  }

  /** The token's claims, unverified (the server verifies); {} if unreadable. */
  function claims(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) part += "=";
      return JSON.parse(atob(part));
    } catch (e) {
      return {};
    }
  }

  /** True if `token` is a herald stream token (already fit for URLs). */
  function isStreamToken(token) {
    var aud = claims(token).aud;
    return aud === STREAM_AUDIENCE || (Array.isArray(aud) && aud.indexOf(STREAM_AUDIENCE) >= 0);
  }

  /** True unless `token` expires within the refresh margin. */
  function fresh(token) {
    var exp = token ? claims(token).exp : 0;
    return !!token && (!exp || exp - TOKEN_REFRESH_MARGIN_SECS > Date.now() / 1000);
  }

  function query(params) {
    var pairs = [];
    for (var key in params) {
      if (params[key] !== undefined && params[key] !== null && params[key] !== "") {
        pairs.push(encodeURIComponent(key) + "=" + encodeURIComponent(params[key]));
      }
    }
    return pairs.join("&");
  }

  function request(method, url, token, signal) {
    return fetch(url, {
      method: method,
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      signal: signal,
      credentials: "omit",
      cache: "no-store",
    }).then(function (response) {
      return response.json().then(
        function (body) {
          if (!response.ok) {
            var error = new Error((body.error && body.error.message) || "HTTP " + response.status);
            error.status = response.status;
            throw error;
          }
          return body;
        },
        function () {
          var error = new Error("HTTP " + response.status);
          error.status = response.status;
          throw error;
        }
      );
    });
  }

  function channelList(channels) {
    if (!channels) return "";
    return (Array.isArray(channels) ? channels : String(channels).split(","))
      .map(function (c) { return c.trim(); })
      .filter(Boolean)
      .join(",");
  }

  /** GET /api/notifications: { notifications, unread_count, cursor }. Rejects without a token. */
  function list(options) {
    // A promise either way: a caller that only attaches .catch must see every failure there.
    var start = Promise.resolve(options).then(function (options) {
      if (options.token) return options.token;
      if (!options.getToken) throw new Error("no token");
      return options.getToken();
    });
    return start.then(function (token) {
      var params = query({
        limit: options.limit,
        unread: options.unread ? "true" : "",
        channels: channelList(options.channels),
        after: options.after,
      });
      return request("GET", base(options.url) + "/api/notifications?" + params, token);
    });
  }

  function Connection(options) {
    this.url = base(options.url);
    this.token = options.token || null;
    this.getToken = options.getToken || null;
    this.channels = channelList(options.channels);
    this.cursor = options.cursor || null;
    this.callbacks = options;
    this.status = null;
    this.closed = false;
    this.seen = new Set();
    this.seenOrder = [];
    this.failures = 0;
    this.streamFailures = 0;
    this.pollingSince = 0;
    this.wake = null;
    this.controller = null;
    this.source = null;
    this.canStream = typeof global.EventSource === "function" && !options.forcePolling;
    this._start();
  }

  Connection.prototype._start = function () {
    var self = this;
    this._onVisible = function () {
      if (document.visibilityState === "visible") self._wakeUp();
    };
    this._onOnline = function () { self._wakeUp(); };
    if (global.document) document.addEventListener("visibilitychange", this._onVisible);
    global.addEventListener && global.addEventListener("online", this._onOnline);

    this._setStatus("connecting");
    this._tokenNow().then(function (token) {
      if (self.closed) return;
      var who = claims(token);
      var user = who.sub !== undefined ? who.sub : who.user_id;
      var key = "herald|" + self.url + "|" + user + "|" + self.channels;
      var shared = global.BroadcastChannel && global.navigator && navigator.locks;
      if (!shared) {
        self._lead();
        return;
      }
      self.bus = new BroadcastChannel(key);
      self.bus.onmessage = function (e) { self._onBus(e.data); };
      self.abandon = new AbortController();
      navigator.locks
        .request(key, { signal: self.abandon.signal }, function () {
          if (self.closed) return;
          self._lead();
          // Hold the lock for as long as this tab leads.
          return new Promise(function (resolve) { self.release = resolve; });
        })
        .catch(function () {});
      // If another tab leads, it answers with the current state.
      self.bus.postMessage({ type: "hello" });
    }, function (error) {
      self._setStatus("offline");
      self._report(error);
    });
  };

  // ---- the leader: one stream (or long-poll loop) for every tab ------------------------

  Connection.prototype._lead = function () {
    this.leader = true;
    this.status = null; // whatever the old leader said, this tab is only starting
    this._setStatus("connecting");
    this._loop();
  };

  Connection.prototype._loop = function () {
    var self = this;
    if (this.closed) return;
    var polling =
      !this.canStream ||
      (this.streamFailures >= STREAM_FAILURES_BEFORE_POLLING &&
        Date.now() - this.pollingSince < RETRY_STREAM_AFTER_MS);
    if (this.canStream && !polling && this.streamFailures >= STREAM_FAILURES_BEFORE_POLLING) {
      this.streamFailures = STREAM_FAILURES_BEFORE_POLLING - 1; // one more try at streaming
    }
    this._tokenNow()
      .then(function (token) {
        return polling ? self._poll(token) : self._stream(token);
      })
      .then(
        function (outcome) { return outcome; },
        function (error) { self._report(error); return "failed"; }
      )
      .then(function (outcome) {
        if (self.closed) return;
        if (outcome === "expired") {
          self.streamToken = null; // trade for a fresh one
          if (!fresh(self.token)) self.token = null;
          self.expiredStreak = (self.expiredStreak || 0) + 1;
          // At once the first time; a server that keeps refusing (a rotated secret, a
          // getToken that returns stale tokens) gets the usual backoff instead of a spin.
          if (self.expiredStreak === 1) {
            self._loop();
            return;
          }
          self.failures += 1;
        } else {
          self.expiredStreak = 0;
        }
        if (outcome === "failed") {
          self.failures += 1;
          if (self.failures >= 2) self._setStatus("offline");
        }
        self._sleep(self._backoff()).then(function () { self._loop(); });
      });
  };

  /** Resolves with "dropped", "failed" or "expired" when the stream ends. */
  Connection.prototype._stream = function (token) {
    var self = this;
    return new Promise(function (resolve) {
      var params = { token: token, channels: self.channels, last_event_id: self.cursor };
      var source = new EventSource(self.url + "/events?" + query(params));
      var gotEvent = false;
      var done = false;
      self.source = source;
      self._setStatus(self.status === "live" ? "live" : "connecting");
      var finish = function (outcome) {
        if (done) return;
        done = true;
        clearTimeout(buffered);
        source.close();
        if (self.source === source) self.source = null;
        resolve(outcome);
      };
      // A proxy that buffers the stream lets it open but never delivers the first event.
      var opened = false;
      var buffering = function () {
        self.streamFailures += 1;
        if (self.streamFailures >= STREAM_FAILURES_BEFORE_POLLING) self.pollingSince = Date.now();
      };
      var buffered = setTimeout(function () {
        if (!gotEvent) {
          buffering();
          finish("failed");
        }
      }, FIRST_EVENT_TIMEOUT_MS);
      source.onopen = function () { opened = true; };
      var first = function () {
        if (gotEvent) return;
        gotEvent = true;
        self.failures = 0;
        self.expiredStreak = 0; // a stream that worked ends at its token's expiry: no backoff
        self.streamFailures = 0;
        self._setStatus("live");
      };
      source.addEventListener("notification", function (e) {
        first();
        self._dispatch({ type: "notification", data: JSON.parse(e.data), cursor: e.lastEventId });
      });
      source.addEventListener("unread_count", function (e) {
        first();
        // The first one carries the stream's position, even before any notification.
        self._dispatch({ type: "unread_count", data: JSON.parse(e.data), cursor: e.lastEventId || null });
      });
      source.addEventListener("read", function (e) {
        first();
        self._dispatch({ type: "read", data: JSON.parse(e.data) });
      });
      source.addEventListener("reset", function (e) {
        first();
        var data = JSON.parse(e.data);
        self._dispatch({ type: "reset", data: data, cursor: data.cursor });
      });
      source.addEventListener("auth_expired", function () { finish("expired"); });
      source.onerror = function () {
        // We reconnect ourselves: with a fresh token, our cursor, and jitter. A stream that
        // opened yet brought nothing is being buffered; one that never opened is an outage
        // (a restart, the network), which is no reason to give up on streaming.
        if (!gotEvent && opened) buffering();
        finish(gotEvent ? "dropped" : "failed");
      };
      self.stopStream = function () { finish("dropped"); };
    });
  };

  /** Long-polls until an error or RETRY_STREAM_AFTER_MS (when streams may work again). */
  Connection.prototype._poll = function (token) {
    var self = this;
    var until = this.canStream ? this.pollingSince + RETRY_STREAM_AFTER_MS : Infinity;
    var step = function () {
      if (self.closed || Date.now() >= until) return Promise.resolve("dropped");
      if (claims(token).exp && claims(token).exp - TOKEN_REFRESH_MARGIN_SECS < Date.now() / 1000) {
        return Promise.resolve("expired");
      }
      self.controller = new AbortController();
      if (self.failures === 0) self._setStatus("polling");
      var params = self.cursor
        ? { after: self.cursor, wait: POLL_WAIT_SECS, channels: self.channels }
        : { limit: 1, channels: self.channels }; // no cursor yet: start from now
      return request("GET", self.url + "/api/notifications?" + query(params), token, self.controller.signal)
        .then(function (body) {
          self.failures = 0;
          self._setStatus("polling");
          if (body.reset) {
            self._dispatch({ type: "reset", data: { cursor: body.cursor }, cursor: body.cursor });
          } else if (params.after) {
            body.notifications.forEach(function (n) {
              self._dispatch({ type: "notification", data: n, cursor: body.cursor });
            });
          }
          self.cursor = body.cursor;
          self._dispatch({ type: "unread_count", data: { unread_count: body.unread_count } });
          return step();
        })
        .catch(function (error) {
          if (error.status === 401) return "expired";
          throw error;
        });
    };
    return step();
  };

  // ---- every tab: deliver, relay, dedupe ------------------------------------------------

  Connection.prototype._dispatch = function (message) {
    if (message.cursor) this.cursor = message.cursor;
    if (this.leader && this.bus) this.bus.postMessage(message);
    this._deliver(message);
  };

  Connection.prototype._onBus = function (message) {
    if (!message || this.closed) return;
    if (message.type === "hello") {
      if (this.leader) {
        this.bus.postMessage({ type: "state", status: this.status, unread: this.unread, cursor: this.cursor });
      }
      return;
    }
    if (this.leader) return; // another leader's echo cannot happen; ignore stray messages
    if (message.type === "state") {
      // What committed between this tab's own list and joining: the leader relayed it
      // before we listened. Fetch it from our own cursor, then follow the leader's.
      if (this.cursor && !this.caughtUp) this._catchUp(this.cursor);
      if (message.cursor) this.cursor = message.cursor;
      if (message.status) this._setStatus(message.status);
      if (typeof message.unread === "number") this._deliver({ type: "unread_count", data: { unread_count: message.unread } });
      return;
    }
    if (message.type === "status") {
      this._setStatus(message.status);
      return;
    }
    if (message.cursor) this.cursor = message.cursor;
    this._deliver(message);
  };

  Connection.prototype._catchUp = function (cursor) {
    var self = this;
    this.caughtUp = true;
    var page = function (after) {
      return self._tokenNow()
        .then(function (token) {
          var params = query({ after: after, limit: 200, channels: self.channels });
          return request("GET", self.url + "/api/notifications?" + params, token);
        })
        .then(function (body) {
          if (self.closed || body.reset) return;
          body.notifications.forEach(function (n) { self._deliver({ type: "notification", data: n }); });
          if (body.notifications.length === 200) return page(body.cursor);
        });
    };
    page(cursor).catch(function (error) { self._report(error); });
  };

  Connection.prototype._deliver = function (message) {
    var cb = this.callbacks;
    switch (message.type) {
      case "notification":
        var id = message.data.id;
        if (this.seen.has(id)) return;
        this.seen.add(id);
        this.seenOrder.push(id);
        if (this.seenOrder.length > SEEN_LIMIT) this.seen.delete(this.seenOrder.shift());
        cb.onNotification && cb.onNotification(message.data);
        break;
      case "unread_count":
        if (this.unread === message.data.unread_count) return;
        this.unread = message.data.unread_count;
        cb.onUnreadCount && cb.onUnreadCount(this.unread);
        break;
      case "read":
        cb.onRead && cb.onRead(message.data);
        break;
      case "reset":
        cb.onReset && cb.onReset(message.data.cursor);
        break;
    }
  };

  Connection.prototype._setStatus = function (status) {
    if (this.status === status) return;
    this.status = status;
    if (this.leader && this.bus) this.bus.postMessage({ type: "status", status: status });
    this.callbacks.onStatus && this.callbacks.onStatus(status);
  };

  Connection.prototype._report = function (error) {
    if (this.callbacks.onError) this.callbacks.onError(error);
  };

  // ---- tokens, timing -------------------------------------------------------------------

  /** The stream token to use now: the current one, or a fresh one traded for the app's. */
  Connection.prototype._tokenNow = function () {
    var self = this;
    if (fresh(this.streamToken)) return Promise.resolve(this.streamToken);
    return this._appToken().then(function (token) {
      if (isStreamToken(token)) return (self.streamToken = token);
      return request("POST", self.url + "/api/stream-token", token).then(function (body) {
        return (self.streamToken = body.token);
      });
    });
  };

  /** The app's token: as given, or from getToken when it is about to expire. */
  Connection.prototype._appToken = function () {
    var self = this;
    if (fresh(this.token) || !this.getToken) {
      return this.token ? Promise.resolve(this.token) : Promise.reject(new Error("no token"));
    }
    return Promise.resolve(this.getToken()).then(function (token) {
      self.token = token;
      return token;
    });
  };

  Connection.prototype._backoff = function () {
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * Math.pow(2, Math.max(0, this.failures - 1)));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  };

  /** Waits `ms`, or less if the tab becomes visible or the browser comes back online. */
  Connection.prototype._sleep = function (ms) {
    var self = this;
    if (this.wakeRequested) {
      this.wakeRequested = false;
      return Promise.resolve();
    }
    return new Promise(function (resolve) {
      var timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (self.wake === done) self.wake = null;
        resolve();
      }
      self.wake = done;
    });
  };

  Connection.prototype._wakeUp = function () {
    this.failures = 0;
    if (this.wake) this.wake();
    else this.wakeRequested = true; // mid-attempt: skip the next backoff instead
  };

  // ---- the public handle ----------------------------------------------------------------

  /** Marks one notification read; resolves with { id, read, unread_count }. */
  Connection.prototype.markRead = function (id) {
    var self = this;
    return this._tokenNow()
      .then(function (token) {
        return request("POST", self.url + "/api/notifications/" + encodeURIComponent(id) + "/read", token);
      })
      .then(function (body) {
        self._dispatch({ type: "unread_count", data: { unread_count: body.unread_count } });
        return body;
      });
  };

  /** Marks everything read; resolves with { marked }. */
  Connection.prototype.markAllRead = function () {
    var self = this;
    return this._tokenNow()
      .then(function (token) {
        return request("POST", self.url + "/api/notifications/read_all", token);
      })
      .then(function (body) {
        self._dispatch({ type: "unread_count", data: { unread_count: 0 } });
        return body;
      });
  };

  /** The last cursor seen: pass it as `cursor` to resume elsewhere. */
  Connection.prototype.lastCursor = function () {
    return this.cursor;
  };

  /** Stops streaming and frees the stream for another tab. */
  Connection.prototype.close = function () {
    if (this.closed) return;
    this.closed = true;
    if (this.stopStream) this.stopStream();
    if (this.controller) this.controller.abort();
    if (this.wake) this.wake();
    if (this.leader && this.bus) this.bus.postMessage({ type: "status", status: "connecting" });
    if (this.release) this.release();
    if (this.abandon) this.abandon.abort();
    if (this.bus) this.bus.close();
    if (global.document) document.removeEventListener("visibilitychange", this._onVisible);
    global.removeEventListener && global.removeEventListener("online", this._onOnline);
  };

  global.Herald = {
    connect: function (options) { return new Connection(options); },
    list: list,
    version: "1",
  };
})(typeof globalThis !== "undefined" ? globalThis : window);
