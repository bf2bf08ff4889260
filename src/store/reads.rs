//! Per-user state of notifications: unread and unseen counts, read, seen, archived, unread
//! again (SPEC sections 4 and 12).
//!
//! A user's read state is a snapshot (`notification_read_marks.read_through`: every row
//! visible in it is read, set by "mark all read") plus single reads since
//! (`notification_reads`) and rows made unread again although the mark covers them
//! (`notification_unreads`). Seen and archived are marks too, with per-row archive states;
//! the `inbox_states` migration has the model. Counts cover the inbox, `user:<id>` and
//! `broadcast`; marking a broadcast touches only the caller's rows. Every change NOTIFYs
//! `herald_reads` (the triggers do it, for herald's changes and an app's alike), so the user's
//! other tabs hear of it through whichever herald instance serves them.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Bool, Text};

use crate::channels;
use crate::cursor::{Cursor, Snapshot};
use crate::models::Counts;
use crate::schema::notifications;

/// The NOTIFY channel read-state changes are announced on.
pub const READS_CHANNEL: &str = "herald_reads";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// A statement's snapshot and a user's counts in it, as `counts` and a stream's opening
/// statement (`store::signals::opening`) select them.
#[derive(QueryableByName)]
pub(crate) struct CountsRow {
    #[diesel(sql_type = Text)]
    snapshot: String,
    #[diesel(sql_type = BigInt)]
    unread_count: i64,
    #[diesel(sql_type = BigInt)]
    unseen_count: i64,
}

impl CountsRow {
    /// The counts and the snapshot they are exact at.
    pub(crate) fn parse(self) -> QueryResult<(Counts, Snapshot)> {
        let counts = Counts {
            unread_count: self.unread_count,
            unseen_count: self.unseen_count,
        };
        Ok((counts, parse_snapshot(&self.snapshot)?))
    }
}

/// `user_id`'s counts, and the snapshot they were counted at.
pub fn counts(conn: &mut PgConnection, user_id: &str) -> QueryResult<(Counts, Snapshot)> {
    // One statement sees one snapshot: no transaction needed.
    let row: CountsRow = diesel::sql_query(
        "select pg_current_snapshot()::text as snapshot, herald_unread_count($1) as unread_count,
                herald_unseen_count($1) as unseen_count",
    )
    .bind::<Text, _>(user_id)
    .get_result(conn)?;
    row.parse()
}

/// The snapshot of the current statement (of the transaction, in a repeatable-read one).
pub fn snapshot_now(conn: &mut PgConnection) -> QueryResult<Snapshot> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        snapshot: String,
    }
    let row: Row =
        diesel::sql_query("select pg_current_snapshot()::text as snapshot").get_result(conn)?;
    parse_snapshot(&row.snapshot)
}

fn parse_snapshot(text: &str) -> QueryResult<Snapshot> {
    Snapshot::parse(text).map_err(|e| diesel::result::Error::DeserializationError(e.into()))
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

/// What one user does to one notification (SPEC sections 4 and 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read (and so seen).
    Read,
    /// Unread again, and back in the inbox.
    Unread,
    /// Out of the inbox, and read.
    Archive,
    /// Back in the inbox (read state unchanged).
    Unarchive,
}

/// Reads `id` for `$1`: a single read unless the read mark covers it, and no longer unread
/// again. Each statement that changes a row announces it on herald_reads (its trigger).
const READ: [&str; 2] = [
    "insert into notification_reads (user_id, notification_id)
     select $1, n.id from notifications n
     where n.id = $2
       and not exists (select 1 from notification_read_marks m
                       where m.user_id = $1 and pg_visible_in_snapshot(n.txid, m.read_through))
     on conflict do nothing",
    "delete from notification_unreads where user_id = $1 and notification_id = $2",
];

/// Makes `id` unread again for `$1`: its single read goes, or, if the read mark covers it, it
/// is recorded as an exception to the mark.
const UNREAD: [&str; 2] = [
    "delete from notification_reads where user_id = $1 and notification_id = $2",
    "insert into notification_unreads (user_id, notification_id)
     select $1, n.id from notifications n
     join notification_read_marks m on m.user_id = $1
     where n.id = $2 and pg_visible_in_snapshot(n.txid, m.read_through)
     on conflict do nothing",
];

/// Archives `id` for `$1` (its own state, whatever the archive mark says). Its trigger reads
/// it too, for the app's SQL as for herald.
const ARCHIVE: &str = "insert into notification_archives (user_id, notification_id, archived)
     values ($1, $2, true)
     on conflict (user_id, notification_id) do update set archived = true, changed_at = now()
     where not notification_archives.archived";

/// Unarchives `id` for `$1` if it is archived, by its own state or by the archive mark.
const UNARCHIVE: &str = "insert into notification_archives (user_id, notification_id, archived)
     select $1, n.id, false from notifications n
     left join notification_archives a on a.user_id = $1 and a.notification_id = n.id
     left join notification_archive_marks m on m.user_id = $1
     where n.id = $2
       and coalesce(a.archived, pg_visible_in_snapshot(n.txid, m.archived_through), false)
     on conflict (user_id, notification_id) do update set archived = false, changed_at = now()";

/// Does `action` to notification `id` for `user_id` if `may_read` its channel; returns their
/// counts after it, or `None` if the notification is missing or not theirs to see. Repeats
/// change nothing.
pub fn act(
    conn: &mut PgConnection,
    user_id: &str,
    id: i64,
    action: Action,
    may_read: impl Fn(&str) -> bool,
) -> QueryResult<Option<Counts>> {
    conn.transaction(|conn| {
        let channel: Option<String> = notifications::table
            .find(id)
            .select(notifications::channel)
            .first(conn)
            .optional()?;
        if !channel.is_some_and(|c| may_read(&c)) {
            return Ok(None);
        }
        let statements: &[&str] = match action {
            Action::Read => &READ,
            Action::Unread => &[UNARCHIVE, UNREAD[0], UNREAD[1]],
            Action::Archive => &[ARCHIVE],
            Action::Unarchive => &[UNARCHIVE],
        };
        for statement in statements {
            diesel::sql_query(*statement)
                .bind::<Text, _>(user_id)
                .bind::<BigInt, _>(id)
                .execute(conn)?;
        }
        counts(conn, user_id).map(|(counts, _)| Some(counts))
    })
}

/// Marks `user_id`'s inbox seen through `through` (a snapshot no later than now: the caller
/// checks); a later seen mark stays. Their counts after it.
pub fn mark_seen(
    conn: &mut PgConnection,
    user_id: &str,
    through: &Snapshot,
) -> QueryResult<Counts> {
    conn.transaction(|conn| {
        diesel::sql_query("select herald_mark_seen($1, $2::pg_snapshot)")
            .bind::<Text, _>(user_id)
            .bind::<Text, _>(through.to_string())
            .execute(conn)?;
        counts(conn, user_id).map(|(counts, _)| counts)
    })
}

/// Archives everything `user_id` can see that `through` covers (a cursor no later than now:
/// the caller checks), and reads it; without `through`, everything now. Marks, one write
/// however large the inbox, and one row per inbox notification of the cursor's tail (the
/// part of a snapshot a live event's id covers: the rows of its batch up to it). Their
/// counts after it.
pub fn archive_all(
    conn: &mut PgConnection,
    user_id: &str,
    through: Option<&Cursor>,
) -> QueryResult<Counts> {
    let cursor = match through {
        Some(cursor) => cursor,
        None => {
            // "Mark all read" as of now, and the archive mark at its very snapshot.
            return in_repeatable_read(conn, |conn| {
                write_read_mark_now(conn, user_id)?;
                let now = snapshot_now(conn)?;
                write_archive_mark(conn, user_id, &now)?;
                counts(conn, user_id).map(|(counts, _)| counts)
            });
        }
    };
    let through = &cursor.base;
    conn.transaction(|conn| {
        diesel::sql_query("select herald_mark_read($1, $2::pg_snapshot)")
            .bind::<Text, _>(user_id)
            .bind::<Text, _>(through.to_string())
            .execute(conn)?;
        // What `through` covers is read again; single reads the read mark covers are no
        // longer needed. (A read mark further on stays, and so do its unread-again rows past
        // `through`.)
        diesel::sql_query(
            "delete from notification_unreads u using notifications n
             where u.user_id = $1 and n.id = u.notification_id
               and pg_visible_in_snapshot(n.txid, $2::pg_snapshot)",
        )
        .bind::<Text, _>(user_id)
        .bind::<Text, _>(through.to_string())
        .execute(conn)?;
        diesel::sql_query(
            "delete from notification_reads r using notifications n, notification_read_marks m
             where r.user_id = $1 and n.id = r.notification_id and m.user_id = $1
               and pg_visible_in_snapshot(n.txid, m.read_through)",
        )
        .bind::<Text, _>(user_id)
        .execute(conn)?;
        write_archive_mark(conn, user_id, through)?;
        if cursor.tail.is_some() {
            // Archived one by one (their trigger reads them too).
            diesel::sql_query(
                "insert into notification_archives (user_id, notification_id, archived)
                 select $1, n.id, true
                 from unnest(array['user:' || $1, 'broadcast']) as c(channel)
                 cross join lateral herald_channel_after(c.channel, $2::pg_snapshot) n
                 where pg_visible_in_snapshot(n.txid, $3::pg_snapshot) and n.id <= $4
                 on conflict (user_id, notification_id) do update set archived = true,
                     changed_at = now()
                 where not notification_archives.archived",
            )
            .bind::<Text, _>(user_id)
            .bind::<Text, _>(through.to_string())
            .bind::<Text, _>(cursor.upto().to_string())
            .bind::<BigInt, _>(cursor.last_id())
            .execute(conn)?;
        }
        counts(conn, user_id).map(|(counts, _)| counts)
    })
}

/// Moves `user_id`'s archive mark to `through` unless it is further already, and drops the
/// per-row states `through` covers: those rows are archived now, by the mark. (A mark
/// further on stays, and so do its per-row states past `through`.)
fn write_archive_mark(
    conn: &mut PgConnection,
    user_id: &str,
    through: &Snapshot,
) -> QueryResult<()> {
    diesel::sql_query(
        "insert into notification_archive_marks as m (user_id, archived_through)
         values ($1, $2::pg_snapshot)
         on conflict (user_id) do update
         set archived_through = excluded.archived_through, marked_at = now()
         where herald_snapshot_at_or_after(excluded.archived_through, m.archived_through)",
    )
    .bind::<Text, _>(user_id)
    .bind::<Text, _>(through.to_string())
    .execute(conn)?;
    diesel::sql_query(
        "delete from notification_archives a using notifications n
         where a.user_id = $1 and n.id = a.notification_id
           and pg_visible_in_snapshot(n.txid, $2::pg_snapshot)",
    )
    .bind::<Text, _>(user_id)
    .bind::<Text, _>(through.to_string())
    .execute(conn)
    .map(drop)
}

/// Marks everything `user_id` can see read, as of now; returns how many inbox notifications
/// were unread, and the counts after it.
pub fn mark_all_read(conn: &mut PgConnection, user_id: &str) -> QueryResult<(i64, Counts)> {
    in_repeatable_read(conn, |conn| {
        let marked = write_read_mark_now(conn, user_id)?;
        Ok((marked, counts(conn, user_id)?.0))
    })
}

/// Runs `work` in a repeatable-read transaction: every statement of it sees one snapshot, so
/// counts and the marks stored describe the same instant. Two of one user's at once can
/// conflict; the loser simply runs again.
fn in_repeatable_read<T>(
    conn: &mut PgConnection,
    work: impl Fn(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = conn.build_transaction().repeatable_read().run(&work);
        match result {
            Err(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _))
                if attempts < 5 => {}
            other => return other,
        }
    }
}

/// In a repeatable-read transaction: the read mark at its snapshot, with no single read or
/// unread-again row left (the mark covers every row it can see); how many inbox
/// notifications were unread before.
fn write_read_mark_now(conn: &mut PgConnection, user_id: &str) -> QueryResult<i64> {
    let marked = count_unread(conn, user_id)?;
    // The inbox channels' counts as of the mark, so that later unread counts are "count now -
    // count then" (valid while no row of the channel is deleted). The seen mark follows (its
    // trigger).
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
    // Every single read and unread-again row is of a row the new snapshot covers. The mark
    // announces itself on herald_reads (its trigger), at commit.
    for table in ["notification_reads", "notification_unreads"] {
        diesel::sql_query(format!("delete from {table} where user_id = $1"))
            .bind::<Text, _>(user_id)
            .execute(conn)?;
    }
    Ok(marked)
}
