//! `/api/notifications`: polling and long-polling, read state, publishing (SPEC section 4).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use bytestring::ByteString;
use serde::Deserialize;

use crate::auth::{Caller, Publisher};
use crate::cursor::Cursor;
use crate::error::{AppError, AppResult};
use crate::hub::{Answer, HubEvent, Kind, PageKey, Subscription};
use crate::metrics::{Source, Transport};
use crate::models::{NewNotification, NotificationJson};
use crate::routes::body::JsonBody;
use crate::state::AppState;
use crate::store::{self, notifications::PageRequest, notifications::Reader};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/notifications", web::get().to(list))
        .route("/api/notifications", web::post().to(publish))
        .route(
            "/api/notifications/unread_count",
            web::get().to(unread_count),
        )
        .route("/api/notifications/read_all", web::post().to(read_all))
        .route("/api/notifications/{id}/read", web::post().to(mark_read));
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    // Numbers and flags arrive as text and are parsed here, so a bad one is refused in
    // words that name it.
    limit: Option<String>,
    unread: Option<String>,
    channels: Option<String>,
    wait: Option<String>,
    /// Channels to be present on for the next 30 s (SPEC section 8).
    presence: Option<String>,
}

/// A `GET /api/notifications` request, checked.
#[derive(Clone)]
struct Listing {
    channels: Vec<String>,
    /// After this cursor; `None`: the newest.
    after: Option<Cursor>,
    /// `after` was given but herald cannot read it: answer the newest, with `reset`.
    unknown: bool,
    limit: i64,
    unread_only: bool,
    /// How long to wait for something newer than `after`.
    wait: Duration,
}

impl Listing {
    fn parse(query: ListQuery, caller: &Caller, max_wait: u64) -> AppResult<Listing> {
        let channels = caller.channels(query.channels.as_deref())?;
        let limit = number_param(query.limit.as_deref(), DEFAULT_LIMIT, 1..=MAX_LIMIT, || {
            AppError::bad_request(
                "invalid_limit",
                format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
            )
        })?;
        let wait = number_param(query.wait.as_deref(), 0, 0..=max_wait, || {
            AppError::bad_request(
                "invalid_wait",
                format!("wait must be a whole number of seconds from 0 to {max_wait}"),
            )
        })?;
        let unread_only = match query.unread.as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(_) => {
                return Err(AppError::bad_request(
                    "invalid_unread",
                    "unread must be true or false",
                ));
            }
        };
        // A cursor herald cannot read is unknown, like one from another database: reset.
        let (after, unknown) = match query.after.as_deref().map(Cursor::parse) {
            None => (None, false),
            Some(Ok(cursor)) => (Some(cursor), false),
            Some(Err(_)) => (None, true),
        };
        Ok(Listing {
            channels,
            after,
            unknown,
            limit,
            unread_only,
            wait: Duration::from_secs(wait),
        })
    }

    /// The same request, after `cursor`.
    fn after(&self, cursor: Cursor) -> Listing {
        Listing {
            after: Some(cursor),
            unknown: false,
            ..self.clone()
        }
    }

    /// Only a wait for something newer than a known cursor parks.
    fn parks(&self) -> bool {
        self.after.is_some() && !self.wait.is_zero()
    }
}

/// GET /api/notifications: the newest (newest first), or what came after `after` (oldest
/// first); with `wait`, holds the request until something arrives or the wait runs out.
///
/// Answered from the hub's memory when it can tell (`hub::recent` has the contract), else
/// from the database, whose answer the hub then remembers.
async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let mut query = query.into_inner();
    let presence = query.presence.take();
    let listing = Listing::parse(query, &caller, state.config.max_wait_secs)?;
    if let Some(list) = presence {
        let channels = caller.channels(Some(&list))?;
        let name = caller.name.as_deref();
        state
            .presence
            .touch(channels, &caller.user_id, name)
            .await?;
    }
    // Subscribe before looking, so nothing published after the look can slip by.
    let live = match listing.parks() {
        true => Some(
            state
                .hub
                .subscribe(Kind::LongPoll, &caller.user_id, &listing.channels)?,
        ),
        false => None,
    };
    let answer = look_up(&state, &caller, &listing).await?;
    match live {
        Some(live) if answer.rows == 0 && !answer.reset => {
            park(&state, &caller, &listing, live, answer).await
        }
        _ => Ok(respond(&state, &answer)),
    }
}

/// A page as it is sent: the notifications' JSON array, and what goes with it.
struct Reply {
    notifications: ByteString,
    rows: usize,
    /// When live rows were inserted, for the delivery-latency histogram.
    created: Vec<chrono::DateTime<chrono::Utc>>,
    unread_count: i64,
    cursor: Cursor,
    /// The cursor asked for was unknown.
    reset: bool,
}

impl From<Answer> for Reply {
    fn from(answer: Answer) -> Reply {
        Reply {
            notifications: answer.notifications,
            rows: answer.rows,
            created: answer.created,
            unread_count: answer.unread_count,
            cursor: answer.cursor,
            reset: false,
        }
    }
}

/// The answer to `listing`: from the hub's memory if it has one, else from the database.
async fn look_up(state: &AppState, caller: &Caller, listing: &Listing) -> AppResult<Reply> {
    match remembered(state, caller, listing) {
        Some(answer) => Ok(answer),
        None => read_page(state, caller, listing).await,
    }
}

/// The answer to `listing` from the hub's memory, if it has one.
fn remembered(state: &AppState, caller: &Caller, listing: &Listing) -> Option<Reply> {
    let hub = &state.hub;
    let answer = match (&listing.after, listing.unknown) {
        (_, true) => None,
        (None, false) => hub.newest(&page_key(caller, listing)),
        (Some(after), false) => hub.after(&caller.user_id, &listing.channels, after, listing.limit),
    };
    let reply = answer.map(Reply::from);
    if reply.is_some() {
        state.metrics.answered(Source::Memory);
    }
    reply
}

fn page_key(caller: &Caller, listing: &Listing) -> PageKey {
    PageKey {
        user_id: caller.user_id.clone(),
        channels: listing.channels.clone(),
        limit: listing.limit,
        unread_only: listing.unread_only,
    }
}

/// The caller's page, as `listing` asks, from the database; the hub remembers the unread
/// count, and the page if it is the newest.
async fn read_page(state: &AppState, caller: &Caller, listing: &Listing) -> AppResult<Reply> {
    let (user_id, channels) = (caller.user_id.clone(), listing.channels.clone());
    let (after, limit, unread_only) = (listing.after.clone(), listing.limit, listing.unread_only);
    let seq = state.hub.position();
    state.metrics.answered(Source::Database);
    let page = state
        .db(move |conn| {
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
        .await?;
    let notifications: Vec<NotificationJson> = page
        .rows
        .iter()
        .map(|row| row.notification.to_json(row.read))
        .collect();
    let notifications: ByteString = serde_json::to_string(&notifications)
        .expect("notifications serialize")
        .into();
    let hub = &state.hub;
    hub.remember_count(
        &caller.user_id,
        page.unread_count,
        page.snapshot.clone(),
        seq,
    );
    if listing.after.is_none() && !listing.unknown {
        let rows = (notifications.clone(), page.rows.len());
        hub.remember_page(page_key(caller, listing), rows, page.snapshot.clone(), seq);
    }
    Ok(Reply {
        notifications,
        rows: page.rows.len(),
        created: Vec::new(),
        unread_count: page.unread_count,
        cursor: page.cursor,
        reset: page.reset || listing.unknown,
    })
}

/// Waits for rows newer than `empty` (an empty answer) and answers with them, from memory
/// when the hub can tell, else from the database. Ends when the wait (or the token) runs out,
/// or herald shuts down, with the empty answer brought up to date.
async fn park(
    state: &AppState,
    caller: &Caller,
    listing: &Listing,
    mut live: Subscription,
    empty: Reply,
) -> AppResult<HttpResponse> {
    live.mark_parked();
    let mut after = empty.cursor.clone();
    // A long-poll ends when its token does, as a stream does: nothing is handed out on an
    // expired token, and the client's next request gets its 401.
    let deadline = tokio::time::Instant::now() + listing.wait.min(caller.expires_in());
    loop {
        tokio::select! {
            event = live.recv() => match event {
                Some(HubEvent::Rows(batch)) if live.has_news(&batch, &after) => {}
                // The answer's count is taken when it is sent, exact then.
                Some(_) => continue,
                // Shutting down (or hopelessly behind): answer with what there is.
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
        let answer = look_up(state, caller, &listing.after(after.clone())).await?;
        if answer.rows > 0 || answer.reset {
            return Ok(respond(state, &answer));
        }
        after = answer.cursor;
    }
    let answer = look_up(state, caller, &listing.after(after)).await?;
    Ok(respond(state, &answer))
}

/// The number in `text`, `default` when absent; `refuse()` unless it is within `range`.
fn number_param<T: std::str::FromStr + PartialOrd>(
    text: Option<&str>,
    default: T,
    range: std::ops::RangeInclusive<T>,
    refuse: impl Fn() -> AppError,
) -> AppResult<T> {
    match text {
        None => Ok(default),
        Some(text) => match text.parse() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(refuse()),
        },
    }
}

/// Every page's JSON: `{"notifications", "unread_count", "cursor"}`, and `"reset": true` when
/// the cursor asked for was unknown. Written by hand: the notifications are JSON already,
/// and the cursor is digits, `:`, `,` and `~` only.
fn respond(state: &AppState, reply: &Reply) -> HttpResponse {
    for created in &reply.created {
        state.metrics.observe_delivery(*created);
    }
    state.metrics.delivered(Transport::Poll, reply.rows as u64);
    let cursor = reply.cursor.to_string();
    let mut body = String::with_capacity(reply.notifications.len() + cursor.len() + 80);
    body.push_str("{\"notifications\":");
    body.push_str(&reply.notifications);
    body.push_str(",\"unread_count\":");
    body.push_str(&reply.unread_count.to_string());
    body.push_str(",\"cursor\":\"");
    body.push_str(&cursor);
    body.push('"');
    if reply.reset {
        body.push_str(",\"reset\":true");
    }
    body.push('}');
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

/// GET /api/notifications/unread_count: the caller's unread inbox notifications.
async fn unread_count(caller: Caller, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let count = match state.hub.unread_count(&caller.user_id) {
        Some(count) => {
            state.metrics.answered(Source::Memory);
            count
        }
        None => {
            state.metrics.answered(Source::Database);
            let (seq, user_id) = (state.hub.position(), caller.user_id.clone());
            let (count, at) = state
                .db(move |conn| store::reads::unread_count(conn, &user_id))
                .await?;
            state.hub.remember_count(&caller.user_id, count, at, seq);
            count
        }
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "unread_count": count })))
}

/// POST /api/notifications/{id}/read: marks one read for the caller; 404 if they cannot see it.
async fn mark_read(
    caller: Caller,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::bad_request("invalid_id", "a notification id is a whole number"))?;
    let user_id = caller.user_id.clone();
    let count = state
        .db(move |conn| {
            store::reads::mark_read(conn, &caller.user_id, id, |channel| {
                caller.may_read(channel)
            })
        })
        .await?
        .ok_or(AppError::NotFound)?;
    // The caller's next poll, on this instance, must not be answered from before this.
    state.hub.forget_reader(&user_id);
    // Other tabs hear of it through NOTIFY, from whichever instance serves them.
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": id, "read": true, "unread_count": count
    })))
}

/// POST /api/notifications/read_all: marks everything the caller can see read.
async fn read_all(caller: Caller, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let user_id = caller.user_id.clone();
    let marked = state
        .db(move |conn| store::reads::mark_all_read(conn, &user_id))
        .await?;
    state.hub.forget_reader(&caller.user_id);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "marked": marked })))
}

/// POST /api/notifications: inserts a notification (token scope `publish`); 201 with it.
async fn publish(
    _: Publisher,
    JsonBody(new): JsonBody<NewNotification>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    new.validate()
        .map_err(|message| AppError::unprocessable("invalid_notification", message))?;
    let stored = state
        .db(move |conn| store::notifications::insert(conn, &new))
        .await?;
    // The publisher's next poll, on this instance, must not be answered from before this.
    state.hub.forget_channel(&stored.channel);
    Ok(HttpResponse::Created().json(stored.to_json(false)))
}
