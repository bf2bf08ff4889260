//! Per-user read state: unread counts, "mark read", "mark all read".
//!
//! A user's read state is a snapshot (`notification_read_marks.read_through`: every row
//! visible in it is read, set by "mark all read") plus single reads since
//! (`notification_reads`). Unread counts cover the inbox, `user:<id>` and `broadcast`; marking
//! a broadcast read touches only the caller's rows. Every change NOTIFYs `herald_reads` (the
//! read-state triggers do it, for herald's changes and an app's alike), so the user's other
//! tabs hear of it through whichever herald instance serves them.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Bool, Text};

use crate::channels;
use crate::cursor::Snapshot;
use crate::schema::notifications;

/// The NOTIFY channel read-state changes are announced on.
pub const READS_CHANNEL: &str = "herald_reads";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// `user_id`'s unread count, and the snapshot it was counted at.
pub fn unread_count(conn: &mut PgConnection, user_id: &str) -> QueryResult<(i64, Snapshot)> {
    // One statement sees one snapshot: no transaction needed.
    let (snapshot, count) = snapshot_and_unread(conn, user_id)?;
    Ok((count, snapshot))
}

/// The current statement's snapshot and `user_id`'s unread count in it; in a repeatable-read
/// transaction, called first, the snapshot of the whole transaction.
pub(crate) fn snapshot_and_unread(
    conn: &mut PgConnection,
    user_id: &str,
) -> QueryResult<(Snapshot, i64)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        snapshot: String,
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let row: Row = diesel::sql_query(
        "select pg_current_snapshot()::text as snapshot, herald_unread_count($1) as count",
    )
    .bind::<Text, _>(user_id)
    .get_result(conn)?;
    let snapshot = Snapshot::parse(&row.snapshot)
        .map_err(|e| diesel::result::Error::DeserializationError(e.into()))?;
    Ok((snapshot, row.count))
}

/// `user_id`'s unread count as the current statement sees it: O(1) in the inbox's size (the
/// `unread_counts` migration explains how).
pub(crate) fn count_unread(conn: &mut PgConnection, user_id: &str) -> QueryResult<i64> {
    let row: Count = diesel::sql_query("select herald_unread_count($1) as count")
        .bind::<Text, _>(user_id)
        .get_result(conn)?;
    Ok(row.count)
}

/// Adds the rows committed since the last roll-up to the per-channel counts unread counts
/// start from; false if another session was at it, or deleters were (a `patient` roll-up
/// waits for deleters, up to 2 s).
pub fn roll_up_counts(conn: &mut PgConnection, patient: bool) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Done {
        #[diesel(sql_type = Bool)]
        done: bool,
    }
    let row: Done = diesel::sql_query("select herald_roll_up_counts($1) as done")
        .bind::<Bool, _>(patient)
        .get_result(conn)?;
    Ok(row.done)
}

/// Marks notification `id` read for `user_id` if `may_read` its channel; returns the new
/// unread count, or `None` if the notification is missing or not theirs to see. Repeats
/// change nothing.
pub fn mark_read(
    conn: &mut PgConnection,
    user_id: &str,
    id: i64,
    may_read: impl Fn(&str) -> bool,
) -> QueryResult<Option<i64>> {
    conn.transaction(|conn| {
        let channel: Option<String> = notifications::table
            .find(id)
            .select(notifications::channel)
            .first(conn)
            .optional()?;
        if !channel.is_some_and(|c| may_read(&c)) {
            return Ok(None);
        }
        // Nothing to record if "mark all read" already covers it. A row inserted announces
        // itself on herald_reads (its trigger), at commit.
        diesel::sql_query(
            "insert into notification_reads (user_id, notification_id)
             select $1, n.id from notifications n
             where n.id = $2
               and not exists (select 1 from notification_read_marks m
                               where m.user_id = $1
                                 and pg_visible_in_snapshot(n.txid, m.read_through))
             on conflict do nothing",
        )
        .bind::<Text, _>(user_id)
        .bind::<BigInt, _>(id)
        .execute(conn)?;
        count_unread(conn, user_id).map(Some)
    })
}

/// Marks everything `user_id` can see read, as of now; returns how many inbox notifications
/// were unread.
pub fn mark_all_read(conn: &mut PgConnection, user_id: &str) -> QueryResult<i64> {
    // Repeatable read: the count and the stored snapshot describe the same instant. Two
    // "mark all read" of one user at once can conflict; the loser simply runs again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = conn.build_transaction().repeatable_read().run(|conn| {
            let marked = count_unread(conn, user_id)?;
            // The inbox channels' counts as of the mark, so that later unread counts are
            // "count now - count then" (valid while no row of the channel is deleted).
            diesel::sql_query(
                "insert into notification_read_marks as m (user_id, read_through,
                         inbox_seen, inbox_deleted, broadcast_seen, broadcast_deleted)
                     select $1, pg_current_snapshot(),
                            herald_channel_count($2),
                            coalesce((select deleted from notification_counts_now where channel = $2), 0),
                            herald_channel_count($3),
                            coalesce((select deleted from notification_counts_now where channel = $3), 0)
                     on conflict (user_id) do update
                     set read_through = excluded.read_through, marked_at = now(),
                         inbox_seen = excluded.inbox_seen,
                         inbox_deleted = excluded.inbox_deleted,
                         broadcast_seen = excluded.broadcast_seen,
                         broadcast_deleted = excluded.broadcast_deleted",
            )
            .bind::<Text, _>(user_id)
            .bind::<Text, _>(channels::personal(user_id))
            .bind::<Text, _>(channels::BROADCAST)
            .execute(conn)?;
            // Every single read is of a row the new snapshot covers.
            diesel::sql_query("delete from notification_reads where user_id = $1")
                .bind::<Text, _>(user_id)
                .execute(conn)?;
            // The mark announces itself on herald_reads (its trigger), at commit.
            Ok(marked)
        });
        match result {
            Err(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _))
                if attempts < 5 => {}
            other => return other,
        }
    }
}
