-- Web Push (SPEC section 11): browsers' subscriptions, and the pushes waiting to be sent.
--
-- An endpoint is a URL the push service gave one browser: it names that browser, so it is
-- unique, and belongs to whoever subscribed it last (a shared computer changes hands).
create table herald_push_subscriptions (
    id bigserial primary key,
    user_id text not null,
    endpoint text not null unique,
    -- The browser's P-256 public key and auth secret, base64url, as PushSubscription has them.
    p256dh text not null,
    auth text not null,
    created_at timestamptz not null default now()
);
create index herald_push_subscriptions_user on herald_push_subscriptions (user_id);

-- One row per push to send: a notification for one subscription, not before `due` (the
-- 5 seconds in which reading it cancels the push; then the next retry), given up at
-- `expires` (the TTL). An instance claims rows by moving `due` a lease ahead, with
-- `for update skip locked`: two instances never claim one row, and a row whose sender died
-- comes due again when the lease runs out. Sent, skipped and given-up rows are deleted.
create table herald_push_queue (
    notification_id bigint not null,
    subscription_id bigint not null references herald_push_subscriptions on delete cascade,
    due timestamptz not null,
    expires timestamptz not null,
    attempts int not null default 0,
    primary key (notification_id, subscription_id)
);
create index herald_push_queue_due on herald_push_queue (due);
create index herald_push_queue_subscription on herald_push_queue (subscription_id);

-- Where the queue's writer is in the stream of committed notifications (a cursor, as
-- src/cursor.rs writes it): everything before it has been considered for a push. One
-- instance at a time moves it (the row's lock), so each notification is considered once.
-- It starts at the migration: nothing committed before push existed is pushed.
create table herald_push_scan (
    only_row boolean primary key default true check (only_row),
    position text not null
);
insert into herald_push_scan (position) values (pg_current_snapshot()::text);
