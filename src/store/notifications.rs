//! Queries on `notifications`: insert, a reader's pages, and the listener's "what is new".
//!
//! Reads that hand out a cursor run in one repeatable-read transaction whose first statement
//! takes its snapshot, so the rows returned and the cursor describe the same instant.
//! Rows after a cursor come in the order `cursor.rs` requires: those visible in the cursor's
//! `upto` snapshot first, then the rest, each by id.
//!
//! "Not visible in snapshot S" is written `txid >= xmax(S) or txid = any(xip(S))`, which the
//! txid indexes answer directly; `txid >= xmin(S) and not visible(S)` would scan every row
//! since the oldest transaction that was running, however long ago it began.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text};

use crate::cursor::{Cursor, Snapshot};
use crate::models::{NewNotification, Notification, ReadableNotification};
use crate::schema::notifications;
use crate::store::{current_snapshot, reads};

/// SQL: has the reader `$1` (joined as `m`, their "mark all read") read row `n`?
pub(crate) const IS_READ: &str = "(coalesce(pg_visible_in_snapshot(n.txid, m.read_through), false)
    or exists (select 1 from notification_reads r
               where r.user_id = $1 and r.notification_id = n.id))";

/// SQL: the reader `$1` (with their "mark all read" as `m`) and each of their channels `$2`
/// (as `c.channel`), to join each channel's rows to laterally.
const READER_CHANNELS: &str = "from (select $1::text as user_id) u
         left join notification_read_marks m on m.user_id = u.user_id
         cross join unnest($2::text[]) as c(channel)";

/// Inserts a notification; the trigger wakes every herald instance.
pub fn insert(conn: &mut PgConnection, new: &NewNotification) -> QueryResult<Notification> {
    diesel::insert_into(notifications::table)
        .values(new)
        .returning(Notification::as_returning())
        .get_result(conn)
}

/// Who reads, and which of their channels.
pub struct Reader<'a> {
    /// Read state is theirs.
    pub user_id: &'a str,
    /// Only these channels (already authorized).
    pub channels: &'a [String],
}

/// What page to read.
pub struct PageRequest<'a> {
    /// After this cursor, oldest first; `None`: the newest, newest first.
    pub after: Option<&'a Cursor>,
    /// At most this many rows.
    pub limit: i64,
    /// Only rows the reader has not read.
    pub unread_only: bool,
}

/// One page of a reader's notifications.
pub struct Page {
    /// The rows, with the reader's read state.
    pub rows: Vec<ReadableNotification>,
    /// Pass back as `after` (or `last_event_id`) to get only what is newer.
    pub cursor: Cursor,
    /// The cursor asked for was unknown (SPEC: `reset`); the page is the newest instead.
    pub reset: bool,
    /// The reader's unread count at the same instant.
    pub unread_count: i64,
    /// The snapshot the page was read at.
    pub snapshot: Snapshot,
}

/// A page of `reader`'s notifications, per `request`.
pub fn page(conn: &mut PgConnection, reader: &Reader, request: &PageRequest) -> QueryResult<Page> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|conn| {
            let now = current_snapshot(conn)?;
            let after = request.after.filter(|cursor| !cursor.is_after(&now));
            let reset = request.after.is_some() && after.is_none();
            let rows = match after {
                Some(cursor) => rows_after(conn, reader, cursor, request)?,
                None => newest(conn, reader, request)?,
            };
            let cursor = match (after, rows.last()) {
                (Some(cursor), Some(last)) if rows.len() as i64 == request.limit => {
                    cursor.after_row(&now, last.notification.txid, last.notification.id)
                }
                _ => Cursor::at(now.clone()),
            };
            let unread_count = reads::count_unread(conn, reader.user_id)?;
            Ok(Page {
                rows,
                cursor,
                reset,
                unread_count,
                snapshot: now,
            })
        })
}

fn newest(
    conn: &mut PgConnection,
    reader: &Reader,
    request: &PageRequest,
) -> QueryResult<Vec<ReadableNotification>> {
    // One index scan per channel, merged: `channel = any(...) order by id desc` cannot use
    // the (channel, id) index for the ordering and would sort the whole inbox.
    diesel::sql_query(format!(
        "select n.*, {IS_READ} as read
         {READER_CHANNELS}
         cross join lateral (
             select * from notifications n
             where n.channel = c.channel and (not $4 or not {IS_READ})
             order by n.id desc
             limit $3
         ) n
         order by n.id desc
         limit $3"
    ))
    .bind::<Text, _>(reader.user_id)
    .bind::<Array<Text>, _>(reader.channels)
    .bind::<BigInt, _>(request.limit)
    .bind::<Bool, _>(request.unread_only)
    .load(conn)
}

fn rows_after(
    conn: &mut PgConnection,
    reader: &Reader,
    cursor: &Cursor,
    request: &PageRequest,
) -> QueryResult<Vec<ReadableNotification>> {
    diesel::sql_query(format!(
        "select n.*, {IS_READ} as read
         {READER_CHANNELS}
         cross join lateral (
             select * from notifications n
             where n.channel = c.channel
               and (n.txid >= pg_snapshot_xmax($5::pg_snapshot)
                    or n.txid = any(array(select pg_snapshot_xip($5::pg_snapshot))))
               and not (pg_visible_in_snapshot(n.txid, $6::pg_snapshot) and n.id <= $7)
               and (not $4 or not {IS_READ})
             order by pg_visible_in_snapshot(n.txid, $6::pg_snapshot) desc, n.id
             limit $3
         ) n
         order by pg_visible_in_snapshot(n.txid, $6::pg_snapshot) desc, n.id
         limit $3"
    ))
    .bind::<Text, _>(reader.user_id)
    .bind::<Array<Text>, _>(reader.channels)
    .bind::<BigInt, _>(request.limit)
    .bind::<Bool, _>(request.unread_only)
    .bind::<Text, _>(cursor.base.to_string())
    .bind::<Text, _>(cursor.upto().to_string())
    .bind::<BigInt, _>(cursor.last_id())
    .load(conn)
}

/// Every channel's rows after `cursor`, at most `limit`, for the listener's fan-out; with the
/// snapshot they were read at.
pub fn since(
    conn: &mut PgConnection,
    cursor: &Cursor,
    limit: i64,
) -> QueryResult<(Vec<Notification>, Snapshot)> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|conn| {
            let now = current_snapshot(conn)?;
            let rows = diesel::sql_query(
                "select n.* from notifications n
                 where (n.txid >= pg_snapshot_xmax($1::pg_snapshot)
                        or n.txid = any(array(select pg_snapshot_xip($1::pg_snapshot))))
                   and not (pg_visible_in_snapshot(n.txid, $2::pg_snapshot) and n.id <= $3)
                 order by pg_visible_in_snapshot(n.txid, $2::pg_snapshot) desc, n.id
                 limit $4",
            )
            .bind::<Text, _>(cursor.base.to_string())
            .bind::<Text, _>(cursor.upto().to_string())
            .bind::<BigInt, _>(cursor.last_id())
            .bind::<BigInt, _>(limit)
            .load(conn)?;
            Ok((rows, now))
        })
}
