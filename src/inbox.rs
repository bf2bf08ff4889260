//! The inbox service: every answer about a user's notifications (a page, an unread count)
//! and every write herald makes to them (read state, publishing), between the routes and
//! storage.
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
use crate::error::AppResult;
use crate::hub::{Answer, Hub, PageKey};
use crate::metrics::{Metrics, Source};
use crate::models::{NewNotification, Notification, NotificationJson};
use crate::store::notifications::{Page as StoredPage, PageRequest, Reader};
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
    /// The user's unread count with it.
    pub unread_count: i64,
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
            unread_count: answer.unread_count,
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
        let stored = self
            .read(
                user_id,
                &query.channels,
                query.after.clone(),
                query.limit,
                query.unread_only,
            )
            .await?;
        let notifications: Vec<NotificationJson> = stored
            .rows
            .iter()
            .map(|row| row.notification.to_json(row.read))
            .collect();
        let notifications: ByteString = serde_json::to_string(&notifications)
            .expect("notifications serialize")
            .into();
        self.hub
            .remember_count(user_id, stored.unread_count, stored.snapshot.clone(), seq);
        if query.after.is_none() && !query.unknown {
            let rows = (notifications.clone(), stored.rows.len());
            let key = page_key(user_id, query);
            self.hub
                .remember_page(key, rows, stored.snapshot.clone(), seq);
        }
        Ok(Page {
            notifications,
            rows: stored.rows.len(),
            created: Vec::new(),
            unread_count: stored.unread_count,
            cursor: stored.cursor,
            reset: stored.reset || query.unknown,
        })
    }

    fn remembered(&self, user_id: &str, query: &PageQuery) -> Option<Page> {
        let answer = match (&query.after, query.unknown) {
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
        after: Option<Cursor>,
        limit: i64,
        unread_only: bool,
    ) -> StoreResult<StoredPage> {
        let (user_id, channels) = (user_id.to_owned(), channels.to_vec());
        store::run(&self.pool, move |conn| {
            let reader = Reader {
                user_id: &user_id,
                channels: &channels,
            };
            let request = PageRequest {
                after: after.as_ref(),
                limit,
                unread_only,
            };
            store::notifications::page(conn, &reader, &request)
        })
        .await
    }

    /// `user_id`'s unread count: remembered, or counted (and then remembered).
    pub async fn unread_count(&self, user_id: &str) -> AppResult<i64> {
        if let Some(count) = self.hub.unread_count(user_id) {
            self.metrics.answered(Source::Memory);
            return Ok(count);
        }
        self.metrics.answered(Source::Database);
        let seq = self.hub.position();
        let (count, at) = self.count_now(user_id).await?;
        self.hub.remember_count(user_id, count, at, seq);
        Ok(count)
    }

    /// `user_id`'s unread count from the database, with the snapshot it is exact at (a stream
    /// counts on from there).
    pub async fn count_now(&self, user_id: &str) -> StoreResult<(i64, Snapshot)> {
        let user_id = user_id.to_owned();
        store::run(&self.pool, move |conn| {
            store::reads::unread_count(conn, &user_id)
        })
        .await
    }

    /// Marks `id` read for `caller`; their unread count after it, or `None` if they may not
    /// read it.
    pub async fn mark_read(&self, caller: &Caller, id: i64) -> AppResult<Option<i64>> {
        let (user_id, grants) = (caller.user_id.clone(), caller.grants.clone());
        let count = store::run(&self.pool, move |conn| {
            store::reads::mark_read(conn, &user_id, id, |channel| {
                crate::channels::may_read(&user_id, &grants, channel)
            })
        })
        .await?;
        self.hub.forget_reader(&caller.user_id);
        Ok(count)
    }

    /// Marks everything `user_id` can see read; how many of their inbox that was.
    pub async fn mark_all_read(&self, user_id: &str) -> AppResult<i64> {
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

fn page_key(user_id: &str, query: &PageQuery) -> PageKey {
    PageKey {
        user_id: user_id.to_owned(),
        channels: query.channels.clone(),
        limit: query.limit,
        unread_only: query.unread_only,
    }
}
