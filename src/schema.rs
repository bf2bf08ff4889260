// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "pg_snapshot", schema = "pg_catalog"))]
    pub struct PgSnapshot;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "xid8", schema = "pg_catalog"))]
    pub struct Xid8;
}

diesel::table! {
    herald_kept_signals (channel, kind) {
        channel -> Text,
        kind -> Text,
        event -> Json,
        sent_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Xid8;

    /// The change log (no key in the database: herald reads it with plain SQL; the key
    /// declared here is nominal, for diesel's macro).
    herald_changes (txid) {
        txid -> Xid8,
        channel -> Nullable<Text>,
        reader -> Nullable<Text>,
        at -> Timestamptz,
    }
}

diesel::table! {
    herald_listeners (pid) {
        pid -> Int4,
        armed -> Bool,
        since -> Timestamptz,
    }
}

diesel::table! {
    herald_presence (channel, user_id, holder) {
        channel -> Text,
        user_id -> Text,
        holder -> Int8,
        name -> Nullable<Text>,
        since -> Timestamptz,
        until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    herald_presence_holders (holder) {
        holder -> Int8,
        expires -> Timestamptz,
    }
}

diesel::table! {
    herald_push_queue (notification_id, subscription_id) {
        notification_id -> Int8,
        subscription_id -> Int8,
        due -> Timestamptz,
        expires -> Timestamptz,
        attempts -> Int4,
    }
}

diesel::table! {
    herald_push_scan (only_row) {
        only_row -> Bool,
        position -> Text,
    }
}

diesel::table! {
    herald_push_subscriptions (id) {
        id -> Int8,
        user_id -> Text,
        endpoint -> Text,
        p256dh -> Text,
        auth -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::PgSnapshot;

    notification_archive_marks (user_id) {
        user_id -> Text,
        archived_through -> PgSnapshot,
        marked_at -> Timestamptz,
    }
}

diesel::table! {
    notification_archives (user_id, notification_id) {
        user_id -> Text,
        notification_id -> Int8,
        archived -> Bool,
        changed_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Xid8;

    /// Deletions not yet rolled up (no key in the database: herald reads it with plain SQL;
    /// the key declared here is nominal, for diesel's macro).
    notification_count_deltas (channel) {
        channel -> Text,
        total -> Int8,
        deleted -> Int8,
        deleted_max_txid -> Nullable<Xid8>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Xid8;

    notification_counts (channel) {
        channel -> Text,
        total -> Int8,
        deleted -> Int8,
        deleted_max_txid -> Nullable<Xid8>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::PgSnapshot;

    notification_counts_through (only_row) {
        only_row -> Bool,
        through -> PgSnapshot,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::PgSnapshot;

    notification_read_marks (user_id) {
        user_id -> Text,
        read_through -> PgSnapshot,
        marked_at -> Timestamptz,
        inbox_seen -> Nullable<Int8>,
        inbox_deleted -> Nullable<Int8>,
        broadcast_seen -> Nullable<Int8>,
        broadcast_deleted -> Nullable<Int8>,
    }
}

diesel::table! {
    notification_reads (user_id, notification_id) {
        user_id -> Text,
        notification_id -> Int8,
        read_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::PgSnapshot;

    notification_seen_marks (user_id) {
        user_id -> Text,
        seen_through -> PgSnapshot,
        inbox_count -> Nullable<Int8>,
        inbox_deleted -> Nullable<Int8>,
        broadcast_count -> Nullable<Int8>,
        broadcast_deleted -> Nullable<Int8>,
        marked_at -> Timestamptz,
    }
}

diesel::table! {
    notification_unreads (user_id, notification_id) {
        user_id -> Text,
        notification_id -> Int8,
        unread_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Xid8;

    notifications (id) {
        id -> Int8,
        channel -> Text,
        title -> Text,
        body -> Text,
        kind -> Text,
        level -> Text,
        data -> Jsonb,
        created_at -> Timestamptz,
        txid -> Xid8,
    }
}

diesel::joinable!(herald_push_queue -> herald_push_subscriptions (subscription_id));
diesel::joinable!(notification_archives -> notifications (notification_id));
diesel::joinable!(notification_reads -> notifications (notification_id));
diesel::joinable!(notification_unreads -> notifications (notification_id));

diesel::allow_tables_to_appear_in_same_query!(
    herald_changes,
    herald_kept_signals,
    herald_listeners,
    herald_presence,
    herald_presence_holders,
    herald_push_queue,
    herald_push_scan,
    herald_push_subscriptions,
    notification_archive_marks,
    notification_archives,
    notification_count_deltas,
    notification_counts,
    notification_counts_through,
    notification_read_marks,
    notification_reads,
    notification_seen_marks,
    notification_unreads,
    notifications,
);
