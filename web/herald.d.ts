// Types of herald.js, the browser client of herald. herald.js is a classic script that defines
// the global `Herald`: add this file to a tsconfig's "files", or
// /// <reference path="herald.d.ts" />. herald.js's header says how each option behaves.

declare namespace Herald {
  /** connecting → live (a stream delivers) or polling (long-polls deliver); offline after two
   *  failed attempts in a row, while it retries. */
  type Status = "connecting" | "live" | "polling" | "offline";

  /** A notification, as every herald endpoint and event shows it. */
  interface Notification {
    id: number;
    /** `user:<id>`, `broadcast`, or a granted channel such as `order:17`. */
    channel: string;
    /** What it is about, for the page to route on; "notification" by default. */
    kind: string;
    title: string;
    body: string;
    level: "info" | "success" | "warning" | "error";
    /** Any JSON object the writer attached; {} by default. */
    data: Record<string, unknown>;
    /** RFC 3339. */
    created_at: string;
    /** Whether this user has read it. */
    read: boolean;
  }

  /** A user present on a channel. */
  interface Member {
    user: string;
    /** The token's `name` claim, if it had one. */
    name: string | null;
    /** RFC 3339: since when they have been present without a break. */
    since: string;
  }

  /** A live signal: never stored, heard only by streams open when it was sent. */
  interface Signal {
    channel: string;
    kind: string;
    /** The sender's user id. */
    from: string;
    data: unknown;
    /** RFC 3339. */
    at: string;
  }

  /** What `onRead` receives: some ids, or everything. */
  type ReadChange = { ids: number[] } | { all: true };

  /** A token, or where to get a fresh one. */
  interface Auth {
    /** The app's token (a JWT herald accepts), or a herald stream token. */
    token?: string;
    /** Asked when there is no token, or when it expires within 30 s. */
    getToken?: () => string | Promise<string>;
  }

  interface ConnectOptions extends Auth {
    /** herald's base URL; "" (the default) is this page's origin. */
    url?: string;
    /** Default: the token's inbox (`user:<id>` and `broadcast`). */
    channels?: string[] | string;
    /** Resume right after this position, such as a `Page`'s cursor. Default: from now on. */
    cursor?: string | null;
    /** Long-poll even where EventSource exists. */
    forcePolling?: boolean;
    /** Channels to be present on (each readable by the token). */
    presence?: string[] | string;
    /** herald's HERALD_HEARTBEAT_SECS (default 15): a stream silent for 2.5 of them is
     *  replaced. */
    heartbeat?: number;
    /** Who is present on a `presence` channel, the user included, oldest first: the whole
     *  list first, then again after each join or leave. */
    onPresence?(channel: string, users: Member[]): void;
    /** A live signal on a followed channel. */
    onSignal?(signal: Signal): void;
    /** herald refused these channels (the token no longer grants them): the connection goes
     *  on without them (with none left, the inbox). */
    onChannelsRefused?(channels: string[]): void;
    /** Each new notification, once per id. Insert its text as text, never as HTML. */
    onNotification?(notification: Notification): void;
    /** The inbox's unread count: first when known, then on every change. */
    onUnreadCount?(count: number): void;
    /** Notifications marked read, by any tab or client of the user (streams only). */
    onRead?(change: ReadChange): void;
    /** herald cannot replay from the cursor: reload the list. It goes on from `cursor`. */
    onReset?(cursor: string): void;
    onStatus?(status: Status): void;
    /** A failed request, token trade or getToken; `status` and `code` are herald's answer,
     *  if any. */
    onError?(error: Error & { status?: number; code?: string }): void;
  }

  interface ListOptions extends Auth {
    url?: string;
    channels?: string[] | string;
    /** 1–200; default 50. */
    limit?: number;
    /** Only unread notifications. */
    unread?: boolean;
    /** Only what came after this cursor, oldest first (else the newest, newest first). */
    after?: string;
  }

  /** One page of `GET /api/notifications`. */
  interface Page {
    notifications: Notification[];
    unread_count: number;
    /** Pass it as `cursor` to connect, or as `after`, to get only what is newer. */
    cursor: string;
    /** Present when `after` was unknown or too old (reload, as on `onReset`). */
    reset?: true;
  }

  /** Where the service worker is. */
  interface PushScope {
    /** The worker's scope, as given to `enablePush`. Default: the worker's directory (for
     *  lookups: that of `serviceWorker` if given, else the registration that controls this
     *  page). */
    scope?: string;
    /** The service worker's URL, on this page's own origin; default "/herald-sw.js". Where
     *  herald has an origin of its own, the app serves a copy of herald-sw.js and names it. */
    serviceWorker?: string;
  }

  type PushOptions = PushScope;

  /** Why `enablePush` failed: one of these, or herald's own error code (with `status`), such as
   *  "push_disabled" or "endpoint_not_allowed". */
  type PushErrorCode = "unsupported" | "permission" | "service_worker" | "push_service";

  /** What `enablePush` rejects with. */
  type PushError = Error & { code: PushErrorCode | string; status?: number };

  /** What `connect` returns. */
  interface Connection {
    /** True while this tab holds the stream that the user's other tabs share. */
    readonly leader: boolean;
    /** The last status (null only before the first). */
    readonly status: Status | null;
    markRead(id: number): Promise<{ id: number; read: true; unread_count: number }>;
    markAllRead(): Promise<{ marked: number }>;
    /** The last cursor seen: pass it as `cursor` to resume elsewhere. */
    lastCursor(): string | null;
    /** Who is present on a `presence` channel now, as onPresence last said. */
    present(channel: string): Member[];
    /** Sends a live signal to the channel's open streams (any tab may). */
    signal(channel: string, kind: string, data?: unknown): Promise<{ delivered_to: number }>;
    /** Turns on Web Push for this browser: asks permission (call it from a click), registers
     *  the service worker, subscribes with herald's key and hands the subscription to herald.
     *  Rejects with a `PushError`, leaving nothing subscribed. */
    enablePush(options?: PushOptions): Promise<PushSubscription>;
    /** Unsubscribes this browser and tells herald; false if push was off. Unsubscribes even
     *  when herald cannot be told (and rejects then). */
    disablePush(options?: PushScope): Promise<boolean>;
    /** This browser's subscription, or null while push is off or unsupported. */
    pushSubscription(options?: PushScope): Promise<PushSubscription | null>;
    /** Stops, and hands the stream over to another tab. */
    close(): void;
  }

  /** Connects at once; see ConnectOptions. */
  function connect(options: ConnectOptions): Connection;
  /** One page of notifications; rejects (never throws) without a token. */
  function list(options: ListOptions): Promise<Page>;
  const version: string;
}
