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
    /** Whether this user has read it (reading one also makes it seen). */
    read: boolean;
    /** Whether this user has seen it: a bell showed it (`markSeen`), or it was read. */
    seen: boolean;
    /** Whether this user archived it: out of the inbox and its counts, listed only by
     *  `list({ archived: true })`. */
    archived: boolean;
  }

  /** The inbox's counts, as `onCounts` receives them (archived notifications count in
   *  neither). */
  interface Counts {
    /** Not yet read. */
    unread: number;
    /** Not yet seen: what a bell's badge shows; `markSeen` clears it. */
    unseen: number;
  }

  /** The counts as herald's answers carry them. */
  interface CountsAnswer {
    unread_count: number;
    unseen_count: number;
  }

  /** A user present on a channel. */
  interface Member {
    user: string;
    /** The token's `name` claim, if it had one. */
    name: string | null;
    /** RFC 3339: since when they have been present without a break. */
    since: string;
  }

  /** A signal. A live one is heard only by streams open when it was sent; a kept one (sent
   *  with `keep`) is also its channel's current value of its kind, given to connections that
   *  start later. */
  interface Signal {
    channel: string;
    kind: string;
    /** The sender's user id. */
    from: string;
    data: unknown;
    /** RFC 3339. */
    at: string;
    /** True for a kept value handed over as a connection starts (a stream opens, a tab
     *  joins, long-polling starts), rather than heard live. */
    kept?: true;
  }

  /** What `onRead` receives: some ids, or everything. */
  type ReadChange = { ids: number[] } | { all: true };

  /** What `onSeen` receives: the inbox was marked seen up to this cursor. */
  interface SeenChange {
    through: string;
  }

  /** What `onArchived` receives: some ids, or everything in the inbox up to a cursor. */
  type ArchivedChange = { ids: number[] } | { all: true; through?: string };

  /** What `onUnarchived` and `onUnread` receive. */
  interface IdsChange {
    ids: number[];
  }

  /** Options of `signal`. */
  interface SignalOptions {
    /** Seconds (1–86,400) during which the signal stays its channel's current value of its
     *  kind (until a newer kept one replaces it): connections that start later get it with
     *  `kept: true`. */
    keep?: number;
  }

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
    /** A signal on a followed channel: live, or a kept value (`kept: true`) as the connection
     *  starts. A kept value no newer than one already delivered is left out. */
    onSignal?(signal: Signal): void;
    /** herald refused these channels (the token no longer grants them): the connection goes
     *  on without them (with none left, the inbox). */
    onChannelsRefused?(channels: string[]): void;
    /** Each new notification, once per id. Insert its text as text, never as HTML. */
    onNotification?(notification: Notification): void;
    /** The inbox's unread and unseen counts: first when both are known, then whenever either
     *  changes (from the stream, each long-poll, and the answers of this tab's writes). */
    onCounts?(counts: Counts): void;
    /** The inbox's unread count alone: first when known, then on every change. */
    onUnreadCount?(count: number): void;
    /** Notifications marked read, by any tab or client of the user (streams only). */
    onRead?(change: ReadChange): void;
    /** The inbox was marked seen up to a cursor, by any tab or client (streams only). */
    onSeen?(change: SeenChange): void;
    /** Notifications archived, by any tab or client of the user (streams only). */
    onArchived?(change: ArchivedChange): void;
    /** Notifications back in the inbox, still read (streams only). */
    onUnarchived?(change: IdsChange): void;
    /** Notifications marked unread again, back in the inbox if archived (streams only). */
    onUnread?(change: IdsChange): void;
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
    /** Only archived notifications, newest first (by default they are left out). */
    archived?: boolean;
    /** Only what came after this cursor, oldest first (else the newest, newest first). */
    after?: string;
  }

  /** One page of `GET /api/notifications`. */
  interface Page {
    notifications: Notification[];
    unread_count: number;
    unseen_count: number;
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
    // Each write resolves with herald's answer, whose counts `onCounts` hears at once, and
    // rejects with an Error carrying herald's `status` and `code` (404: not in the inbox).
    markRead(id: number): Promise<{ id: number; read: true } & CountsAnswer>;
    markAllRead(): Promise<{ marked: number } & CountsAnswer>;
    /** Marks the inbox seen up to `through`; default: the newest position this connection
     *  knows (its list's cursor, or the last streamed or polled), so what the page shows.
     *  Rejects with code "no_cursor" while there is none. */
    markSeen(through?: string): Promise<CountsAnswer>;
    /** Unread again, and back in the inbox if it was archived. */
    markUnread(id: number): Promise<{ id: number; read: false } & CountsAnswer>;
    /** Out of the inbox (read and seen too); listed by `list({ archived: true })`. */
    archive(id: number): Promise<{ id: number; archived: true } & CountsAnswer>;
    /** Back in the inbox, still read. */
    unarchive(id: number): Promise<{ id: number; archived: false } & CountsAnswer>;
    /** Archives everything in the inbox up to `through`, or everything now without it. */
    archiveAll(through?: string): Promise<CountsAnswer>;
    /** The last cursor seen: pass it as `cursor` to resume elsewhere. */
    lastCursor(): string | null;
    /** Who is present on a `presence` channel now, as onPresence last said. */
    present(channel: string): Member[];
    /** Sends a signal to the channel's open streams (any tab may); with `keep`, it is also the
     *  channel's current value of its kind for that many seconds. */
    signal(channel: string, kind: string, data?: unknown, options?: SignalOptions): Promise<{ delivered_to: number }>;
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
