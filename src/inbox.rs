//! The inbox service: every answer about a user's notifications (a page, their counts) and
//! every write herald makes to them (read, seen, archived, unread again; publishing), between
//! the routes and storage.
//!
//! It owns the protocol of the hub's remembered answers (`hub::recent` has the contract): a
//! look in memory first; on a miss, the hub's position noted *before* the query, then the
//! query, then the answer remembered as of that position; and after every write, the
//! remembered answers it may have changed forgotten, so the writer's next poll on this
//! instance is not answered from before it. A new write belongs here, next to its
//! invalidation; routes parse, call this, and render, and never touch remember/forget.

use std::sync::Arc;

use bytestring::ByteString;

use crate::auth::Caller;
use crate::cursor::{Cursor, Snapshot};
use crate::error::{AppError, AppResult};
use crate::hub::{Answer, Hub, PageKey};
use crate::metrics::{Metrics, Source};
use crate::models::{Counts, NewNotification, Notification, NotificationJson};
use crate::store::notifications::{Page as StoredPage, PageRequest, Reader};
use crate::store::reads::Action;
use crate::store::signals::Opening;
use crate::store::{self, DbPool, StoreResult};

/// What a page of notifications asks for.
#[derive(Clone, Debug)]
pub struct PageQuery {
    /// The channels read (already checked against the token).
    pub channels: Vec<String>,
    /// After this cursor, oldest first; `None`: the newest, newest first.
    pub after: Option<Cursor>,
    /// A cursor was given but herald cannot read it: the newest, with `reset`.
    pub unknown: bool,
    /// At most this many.
    pub limit: i64,
    /// Only what the user has not read.
    pub unread_only: bool,
    /// Only what the user archived (else only the rest).
    pub archived_only: bool,
}

impl PageQuery {
    /// The same query, after `cursor`.
    pub fn after(&self, cursor: Cursor) -> PageQuery {
        PageQuery {
            after: Some(cursor),
            unknown: false,
            ..self.clone()
        }
    }
}

/// A page as it is sent: the notifications' JSON array, and what goes with it.
pub struct Page {
    /// The notifications as a JSON array.
    pub notifications: ByteString,
    /// How many there are.
    pub rows: usize,
    /// When live rows were inserted, for the delivery-latency histogram.
    pub created: Vec<chrono::DateTime<chrono::Utc>>,
    /// The user's counts with it.
    pub counts: Counts,
    /// Where the next page starts.
    pub cursor: Cursor,
    /// The cursor asked for was unknown or too old.
    pub reset: bool,
}

impl From<Answer> for Page {
    fn from(answer: Answer) -> Page {
        Page {
            notifications: answer.notifications,
            rows: answer.rows,
            created: answer.created,
            counts: answer.counts,
            cursor: answer.cursor,
            reset: false,
        }
    }
}

/// See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    pool: DbPool,
    hub: Hub,
    metrics: Arc<Metrics>,
}

impl Inbox {
    /// The inbox service on `pool`, remembering answers in `hub`.
    pub fn new(pool: DbPool, hub: Hub, metrics: Arc<Metrics>) -> Inbox {
        Inbox { pool, hub, metrics }
    }

    /// `user_id`'s page as `query` asks: from the hub's memory if it can tell, else from the
    /// database (and then remembered).
    pub async fn page(&self, user_id: &str, query: &PageQuery) -> AppResult<Page> {
        if let Some(page) = self.remembered(user_id, query) {
            self.metrics.answered(Source::Memory);
            return Ok(page);
        }
        let seq = self.hub.position();
        self.metrics.answered(Source::Database);
        let request = ReadRequest {
            after: query.after.clone(),
            limit: query.limit,
            unread_only: query.unread_only,
            archived_only: query.archived_only,
        };
        let stored = self.read(user_id, &query.channels, request).await?;
        let notifications: Vec<NotificationJson> = stored
            .rows
            .iter()
            .map(|row| row.notification.to_json(row.state))
            .collect();
        let notifications: ByteString = serde_json::to_string(&notifications)
            .expect("notifications serialize")
            .into();
        self.hub
            .remember_count(user_id, stored.counts, stored.snapshot.clone(), seq);
        // Archived lists are rare (a page of their own): not kept.
        if query.after.is_none() && !query.unknown && !query.archived_only {
            let rows = (notifications.clone(), stored.rows.len());
            let key = page_key(user_id, query);
            self.hub
                .remember_page(key, rows, stored.snapshot.clone(), seq);
        }
        Ok(Page {
            notifications,
            rows: stored.rows.len(),
            created: Vec::new(),
            counts: stored.counts,
            cursor: stored.cursor,
            reset: stored.reset || query.unknown,
        })
    }

    fn remembered(&self, user_id: &str, query: &PageQuery) -> Option<Page> {
        let answer = match (&query.after, query.unknown || query.archived_only) {
            (_, true) => None,
            (None, false) => self.hub.newest(&page_key(user_id, query)),
            (Some(after), false) => self.hub.after(user_id, &query.channels, after, query.limit),
        };
        answer.map(Page::from)
    }

    /// The one read of a user's notifications, as stored: polls and SSE replay alike.
    pub async fn read(
        &self,
        user_id: &str,
        channels: &[String],
        request: ReadRequest,
    ) -> StoreResult<StoredPage> {
        let (user_id, channels) = (user_id.to_owned(), channels.to_vec());
        store::run(&self.pool, move |conn| {
            let reader = Reader {
                user_id: &user_id,
                channels: &channels,
            };
            let request = PageRequest {
                after: request.after.as_ref(),
                limit: request.limit,
                unread_only: request.unread_only,
                archived_only: request.archived_only,
            };
            store::notifications::page(conn, &reader, &request)
        })
        .await
    }

    /// `user_id`'s counts: remembered, or counted (and then remembered).
    pub async fn counts(&self, user_id: &str) -> AppResult<Counts> {
        if let Some(counts) = self.hub.counts(user_id) {
            self.metrics.answered(Source::Memory);
            return Ok(counts);
        }
        self.metrics.answered(Source::Database);
        let seq = self.hub.position();
        let (counts, at) = self.count_now(user_id).await?;
        self.hub.remember_count(user_id, counts, at, seq);
        Ok(counts)
    }

    /// `user_id`'s counts from the database, with the snapshot they are exact at (a stream
    /// counts on from there).
    pub async fn count_now(&self, user_id: &str) -> StoreResult<(Counts, Snapshot)> {
        let user_id = user_id.to_owned();
        store::run(&self.pool, move |conn| store::reads::counts(conn, &user_id)).await
    }

    /// What a stream on `channels` starts with: `user_id`'s counts, the snapshot they are
    /// exact at, and the channels' kept signals, in one round trip.
    pub async fn opening(&self, user_id: &str, channels: &[String]) -> StoreResult<Opening> {
        let (user_id, channels) = (user_id.to_owned(), channels.to_vec());
        store::run(&self.pool, move |conn| {
            store::signals::opening(conn, &user_id, &channels)
        })
        .await
    }

    /// Does `action` to notification `id` for `caller`; their counts after it, or `None` if
    /// they may not read it.
    pub async fn act(&self, caller: &Caller, id: i64, action: Action) -> AppResult<Option<Counts>> {
        let (user_id, grants) = (caller.user_id.clone(), caller.grants.clone());
        let counts = store::run(&self.pool, move |conn| {
            store::reads::act(conn, &user_id, id, action, |channel| {
                crate::channels::may_read(&user_id, &grants, channel)
            })
        })
        .await?;
        self.hub.forget_reader(&caller.user_id);
        Ok(counts)
    }

    /// Marks `user_id`'s inbox seen through `through`; their counts after it. A cursor
    /// herald cannot have handed out (from the future: another database) is refused.
    pub async fn mark_seen(&self, user_id: &str, through: Cursor) -> AppResult<Counts> {
        let owner = user_id.to_owned();
        let counts = store::run(&self.pool, move |conn| match within_now(conn, through)? {
            // A live event's id is partway through its batch's snapshot (the rows up to its
            // own): the mark takes the whole snapshot, which the rest of the batch reaches the
            // page with. Marking only `base` would leave what the bell just showed unseen.
            Ok(through) => store::reads::mark_seen(conn, &owner, through.upto()).map(Ok),
            Err(refused) => Ok(Err(refused)),
        })
        .await??;
        self.hub.forget_reader(user_id);
        Ok(counts)
    }

    /// Archives (and reads) everything `user_id` can see, through `through` or as of now;
    /// their counts after it.
    pub async fn archive_all(&self, user_id: &str, through: Option<Cursor>) -> AppResult<Counts> {
        let owner = user_id.to_owned();
        let counts = store::run(&self.pool, move |conn| {
            let through = match through {
                Some(cursor) => match within_now(conn, cursor)? {
                    Ok(cursor) => Some(cursor),
                    Err(refused) => return Ok(Err(refused)),
                },
                None => None,
            };
            store::reads::archive_all(conn, &owner, through.as_ref()).map(Ok)
        })
        .await??;
        self.hub.forget_reader(user_id);
        Ok(counts)
    }

    /// Marks everything `user_id` can see read; how many of their inbox that was, and their
    /// counts after it.
    pub async fn mark_all_read(&self, user_id: &str) -> AppResult<(i64, Counts)> {
        let owner = user_id.to_owned();
        let marked = store::run(&self.pool, move |conn| {
            store::reads::mark_all_read(conn, &owner)
        })
        .await?;
        self.hub.forget_reader(user_id);
        Ok(marked)
    }

    /// Stores `new` (already validated by its publisher's route).
    pub async fn publish(&self, new: NewNotification) -> AppResult<Notification> {
        let stored = store::run(&self.pool, move |conn| {
            store::notifications::insert(conn, &new)
        })
        .await?;
        self.hub.forget_channel(&stored.channel);
        Ok(stored)
    }
}

/// What [`Inbox::read`] reads.
#[derive(Clone, Debug, Default)]
pub struct ReadRequest {
    /// After this cursor, oldest first; `None`: the newest, newest first.
    pub after: Option<Cursor>,
    /// At most this many.
    pub limit: i64,
    /// Only what the user has not read.
    pub unread_only: bool,
    /// Only what the user archived (else only the rest).
    pub archived_only: bool,
}

/// `cursor` if herald could have handed it out by now; `Err` if it is from the future
/// (another database).
fn within_now(
    conn: &mut diesel::PgConnection,
    cursor: Cursor,
) -> diesel::QueryResult<Result<Cursor, AppError>> {
    let now = store::reads::snapshot_now(conn)?;
    if cursor.is_after(&now) {
        return Ok(Err(invalid_cursor()));
    }
    Ok(Ok(cursor))
}

/// The answer to a `through` that is not one of herald's cursors.
pub fn invalid_cursor() -> AppError {
    AppError::bad_request(
        "invalid_cursor",
        "through must be a cursor herald gave (a page's cursor or a stream event's id)",
    )
}

fn page_key(user_id: &str, query: &PageQuery) -> PageKey {
    PageKey {
        user_id: user_id.to_owned(),
        channels: query.channels.clone(),
        limit: query.limit,
        unread_only: query.unread_only,
    }
}
