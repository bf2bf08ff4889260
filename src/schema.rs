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
    herald_listeners (pid) {
        pid -> Int4,
        armed -> Bool,
        since -> Timestamptz,
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

diesel::joinable!(notification_reads -> notifications (notification_id));

diesel::allow_tables_to_appear_in_same_query!(
    herald_listeners,
    notification_counts,
    notification_counts_through,
    notification_read_marks,
    notification_reads,
    notifications,
);
