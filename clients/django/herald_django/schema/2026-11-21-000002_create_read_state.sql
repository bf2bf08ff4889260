-- Read state is per user. "Mark all read" stores a snapshot instead of one row per
-- notification: every row visible in it is read, so it costs O(1) however large the inbox.
create table notification_read_marks (
    user_id text primary key,
    read_through pg_snapshot not null,
    marked_at timestamptz not null default now()
);

-- Single reads since the user's last "mark all read".
create table notification_reads (
    user_id text not null,
    notification_id bigint not null
        constraint notification_reads_notification_fk
        references notifications (id) on delete cascade,
    read_at timestamptz not null default now(),
    primary key (user_id, notification_id)
);

-- The cascade from notifications (pruning) looks reads up by notification.
create index notification_reads_notification_id_idx on notification_reads (notification_id);
