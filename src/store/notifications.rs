//! Queries on `notifications`: insert, a reader's pages, and repairing hand-set txids. (The
//! listener reads "what is new" on its own connection: `listener::reader`.)
//!
//! Reads that hand out a cursor are one statement that also returns its snapshot
//! (`pg_current_snapshot()`), so the rows returned and the cursor describe the same instant.
//! Rows after a cursor come in the order `cursor.rs` requires: those visible in the cursor's
//! `upto` snapshot first, then the rest, each by id.
//!
//! The queries themselves are PL/pgSQL functions (migration `page_functions`), so that their
//! plans are kept per connection instead of being made again on every request; that
//! migration also explains how they read "committed after a snapshot" through the indexes.

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};

use crate::cursor::{Cursor, Snapshot, Xid};
use crate::models::{Counts, NewNotification, Notification, ReadableNotification, ReaderState};
use crate::schema::notifications;
use crate::schema::sql_types::Xid8;

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
    /// Only archived rows (else only the others).
    pub archived_only: bool,
}

/// One page of a reader's notifications.
pub struct Page {
    /// The rows, with the reader's state of each.
    pub rows: Vec<ReadableNotification>,
    /// Pass back as `after` (or `last_event_id`) to get only what is newer.
    pub cursor: Cursor,
    /// The cursor asked for was unknown (SPEC: `reset`); the page is the newest instead.
    pub reset: bool,
    /// The reader's counts at the same instant.
    pub counts: Counts,
    /// The snapshot the page was read at.
    pub snapshot: Snapshot,
}

/// A page of `reader`'s notifications, per `request`.
///
/// One statement: its snapshot is the page's, so the rows, the cursor and the unread count
/// describe one instant without a transaction around them (a transaction costs two more round
/// trips, and polling is mostly round trips).
pub fn page(conn: &mut PgConnection, reader: &Reader, request: &PageRequest) -> QueryResult<Page> {
    let (rows, now, counts) = read_page(conn, reader, request.after, request)?;
    // A cursor from the future (another database, a restored backup) is unknown: the newest
    // page instead, read afresh (rare, so a second statement is fine).
    let (after, reset, rows, now, counts) = match request.after {
        Some(cursor) if cursor.is_after(&now) => {
            let (rows, now, counts) = read_page(conn, reader, None, request)?;
            (None, true, rows, now, counts)
        }
        after => (after, false, rows, now, counts),
    };
    let cursor = match (after, rows.last()) {
        (Some(cursor), Some(last)) if rows.len() as i64 == request.limit => {
            cursor.after_row(&now, last.notification.txid, last.notification.id)
        }
        _ => Cursor::at(now.clone()),
    };
    Ok(Page {
        rows,
        cursor,
        reset,
        counts,
        snapshot: now,
    })
}

/// A row of [`read_page`]'s statement: the snapshot and counts on every row, and a
/// notification unless the page is empty (then there is exactly one row).
#[derive(QueryableByName)]
struct PageRow {
    #[diesel(sql_type = Text)]
    snapshot: String,
    #[diesel(sql_type = BigInt)]
    unread_count: i64,
    #[diesel(sql_type = BigInt)]
    unseen_count: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    channel: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    title: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    body: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    kind: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    level: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    data: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    created_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Xid8>)]
    txid: Option<Xid>,
    #[diesel(sql_type = Nullable<Bool>)]
    read: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    seen: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    archived: Option<bool>,
}

impl PageRow {
    /// The row's notification and the reader's state of it, unless it is the empty page's
    /// only row.
    fn into_notification(self) -> Option<ReadableNotification> {
        let notification = Notification {
            id: self.id?,
            channel: self.channel?,
            title: self.title?,
            body: self.body?,
            kind: self.kind?,
            level: self.level?,
            data: self.data?,
            created_at: self.created_at?,
            txid: self.txid?,
        };
        // herald_newest and herald_after always say.
        let state = ReaderState {
            read: self.read.unwrap_or(false),
            seen: self.seen.unwrap_or(false),
            archived: self.archived.unwrap_or(false),
        };
        Some(ReadableNotification {
            notification,
            state,
        })
    }
}

/// The notifications of a page's rows, the snapshot and the counts they carry.
type SplitPage = (Vec<ReadableNotification>, Snapshot, Counts);

fn split_page(rows: Vec<PageRow>) -> QueryResult<SplitPage> {
    let head = rows.first().ok_or(diesel::result::Error::NotFound)?;
    let snapshot = Snapshot::parse(&head.snapshot)
        .map_err(|e| diesel::result::Error::DeserializationError(e.into()))?;
    let counts = Counts {
        unread_count: head.unread_count,
        unseen_count: head.unseen_count,
    };
    let rows = rows
        .into_iter()
        .filter_map(PageRow::into_notification)
        .collect();
    Ok((rows, snapshot, counts))
}

/// The rows after `after` (or the newest), the snapshot they were read in, and the counts in
/// it.
fn read_page(
    conn: &mut PgConnection,
    reader: &Reader,
    after: Option<&Cursor>,
    request: &PageRequest,
) -> QueryResult<SplitPage> {
    // `offset 0` keeps the count in its subquery, counted once: pulled up, it is counted
    // for every row. `with ordinality`: the function's order is the page's.
    const HEAD: &str = "select s.snapshot, s.unread_count, s.unseen_count, p.id, p.channel,
                p.title, p.body, p.kind, p.level, p.data, p.created_at, p.txid, p.read, p.seen,
                p.archived
         from (select pg_current_snapshot()::text as snapshot,
                      herald_unread_count($1) as unread_count,
                      herald_unseen_count($1) as unseen_count offset 0) s
         left join lateral";
    const TAIL: &str = "with ordinality p on true order by p.ordinality";
    let query = diesel::sql_query(match after {
        Some(_) => format!(
            "{HEAD} herald_after($1, $2, $3, $4, $5, $6::pg_snapshot, $7::pg_snapshot, $8) {TAIL}"
        ),
        None => format!("{HEAD} herald_newest($1, $2, $3, $4, $5) {TAIL}"),
    })
    .bind::<Text, _>(reader.user_id)
    .bind::<Array<Text>, _>(reader.channels)
    .bind::<BigInt, _>(request.limit)
    .bind::<Bool, _>(request.unread_only)
    .bind::<Bool, _>(request.archived_only);
    let rows: Vec<PageRow> = match after {
        Some(cursor) => query
            .bind::<Text, _>(cursor.base.to_string())
            .bind::<Text, _>(cursor.upto().to_string())
            .bind::<BigInt, _>(cursor.last_id())
            .load(conn)?,
        None => query.load(conn)?,
    };
    split_page(rows)
}

/// Gives rows whose txid no transaction has reached yet (restored with triggers off) this
/// statement's transaction id, so they are delivered once; returns how many there were.
pub fn repair_txids(conn: &mut PgConnection) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Repaired {
        #[diesel(sql_type = BigInt)]
        repaired: i64,
    }
    let row: Repaired =
        diesel::sql_query("select herald_repair_txids() as repaired").get_result(conn)?;
    Ok(row.repaired)
}
