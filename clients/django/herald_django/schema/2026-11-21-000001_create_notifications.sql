-- One row per notification. Writers INSERT; herald only reads (and deletes when pruning).
create table notifications (
    id bigint generated always as identity primary key,
    channel text not null,
    title text not null,
    body text not null default '',
    kind text not null default 'notification',
    level text not null default 'info',
    data jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    -- The writing transaction. Ids are handed out before commit, so rows commit out of id
    -- order; cursors compare txid with PostgreSQL snapshots instead (see src/cursor.rs).
    txid xid8 not null default pg_current_xact_id(),

    -- No spaces, control characters, commas (they separate channel lists) or '*' (grant patterns).
    constraint notifications_channel_valid
        check (channel ~ '^[^[:space:][:cntrl:],*]{1,200}$'),
    constraint notifications_kind_valid check (kind ~ '^[^[:cntrl:]]{1,100}$'),
    constraint notifications_level_valid
        check (level in ('info', 'success', 'warning', 'error')),
    constraint notifications_data_is_object check (jsonb_typeof(data) = 'object')
);

comment on table notifications is
    'herald: insert a row and every open stream of its channel receives it.';

-- Newest-first lists per channel.
create index notifications_channel_id_idx on notifications (channel, id);
-- "What committed after this cursor", per channel (polling, streams, unread counts).
create index notifications_channel_txid_idx on notifications (channel, txid);
-- "What committed after this cursor", all channels (the listener's one query per wake-up).
create index notifications_txid_idx on notifications (txid);
