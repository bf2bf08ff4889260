//! `/api/notifications`: polling and long-polling, read state, publishing (SPEC section 4).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::{Caller, Publisher};
use crate::cursor::Cursor;
use crate::error::{AppError, AppResult};
use crate::hub::Kind;
use crate::hub::{HubEvent, LiveRow, Subscription};
use crate::metrics::Transport;
use crate::models::{NewNotification, NotificationJson};
use crate::routes::body::JsonBody;
use crate::state::AppState;
use crate::store::{self, notifications::Page, notifications::PageRequest, notifications::Reader};

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
}

/// A `GET /api/notifications` request, checked.
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

    /// Only a wait for something newer than a known cursor parks.
    fn parks(&self) -> bool {
        self.after.is_some() && !self.wait.is_zero()
    }
}

/// GET /api/notifications: the newest (newest first), or what came after `after` (oldest
/// first); with `wait`, holds the request until something arrives or the wait runs out.
async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let listing = Listing::parse(query.into_inner(), &caller, state.config.max_wait_secs)?;
    // Subscribe before the first query, so nothing committed after its snapshot can slip by.
    let live = match listing.parks() {
        true => Some(
            state
                .hub
                .subscribe(Kind::LongPoll, &caller.user_id, &listing.channels)?,
        ),
        false => None,
    };
    let page = read_page(&state, &caller, &listing).await?;
    let page = match live {
        Some(live) if page.rows.is_empty() && !page.reset => {
            match park(&state, &caller, &listing, live, page).await? {
                Parked::Answer(answer) => return Ok(answer),
                Parked::Page(page) => page,
            }
        }
        _ => page,
    };
    state
        .metrics
        .delivered(Transport::Poll, page.rows.len() as u64);
    let notifications = page
        .rows
        .iter()
        .map(|row| Listed::Row(row.notification.to_json(row.read)))
        .collect();
    Ok(HttpResponse::Ok().json(PageBody {
        notifications,
        unread_count: page.unread_count,
        cursor: page.cursor.to_string(),
        reset: page.reset || listing.unknown,
    }))
}

/// The caller's page, as `listing` asks.
async fn read_page(state: &AppState, caller: &Caller, listing: &Listing) -> AppResult<Page> {
    let (user_id, channels) = (caller.user_id.clone(), listing.channels.clone());
    let (after, limit, unread_only) = (listing.after.clone(), listing.limit, listing.unread_only);
    state
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
        .await
}

/// How a parked long-poll ended.
enum Parked {
    /// With the rows the hub brought.
    Answer(HttpResponse),
    /// With a page: empty when the wait (or the token) ran out, or read again.
    Page(Page),
}

/// Waits for rows newer than `page` (empty) and answers with them. What the hub brings after
/// `page.snapshot` is exactly what is new: the answer needs no query while the unread count
/// can be kept exactly (no read-state change arrived meanwhile); else the page is read again.
async fn park(
    state: &AppState,
    caller: &Caller,
    listing: &Listing,
    mut live: Subscription,
    mut page: Page,
) -> AppResult<Parked> {
    live.mark_parked();
    let mut count_exact = true;
    // A long-poll ends when its token does, as a stream does: nothing is handed out on an
    // expired token, and the client's next request gets its 401.
    let deadline = tokio::time::Instant::now() + listing.wait.min(caller.expires_in());
    loop {
        tokio::select! {
            event = live.recv() => match event {
                Some(HubEvent::Rows(batch)) => {
                    let news = live.news(&batch, &page.snapshot, &page.snapshot);
                    page.unread_count += news.unread_added;
                    if news.rows.is_empty() {
                        continue;
                    }
                    if count_exact {
                        let answer = live_page(state, &news.rows, listing.limit, &page);
                        return Ok(Parked::Answer(answer));
                    }
                    page = read_page(state, caller, listing).await?;
                    count_exact = true;
                    if !page.rows.is_empty() {
                        return Ok(Parked::Page(page));
                    }
                }
                Some(HubEvent::Read(_) | HubEvent::Resync) => count_exact = false,
                // Shutting down (or hopelessly behind): answer with what we have.
                None => return Ok(Parked::Page(page)),
            },
            _ = tokio::time::sleep_until(deadline) => return Ok(Parked::Page(page)),
        }
    }
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

/// A long-poll's answer built from the rows the hub brought: the first `limit` of `rows` (new
/// since `page`, the parked request's empty page, in reading order), their JSON as serialized
/// once by the listener, the unread count kept meanwhile, and the cursor after the last one.
fn live_page(state: &AppState, rows: &[&LiveRow], limit: i64, page: &Page) -> HttpResponse {
    let rows = &rows[..rows.len().min(limit as usize)];
    let last = rows.last().expect("answered only with new rows");
    for row in rows {
        state.metrics.observe_delivery(row.created_at);
    }
    state.metrics.delivered(Transport::Poll, rows.len() as u64);
    let notifications = rows
        .iter()
        .map(|row| {
            Listed::Raw(
                RawValue::from_string(row.json.to_string()).expect("the listener wrote JSON"),
            )
        })
        .collect();
    HttpResponse::Ok().json(PageBody {
        notifications,
        unread_count: page.unread_count,
        // Everything in the page's snapshot was covered by `after`.
        cursor: last.position_after(&page.snapshot),
        reset: false,
    })
}

/// Every page's JSON: `{"notifications", "unread_count", "cursor"}`, and `"reset": true`
/// when the cursor asked for was unknown.
#[derive(Serialize)]
struct PageBody<'a> {
    notifications: Vec<Listed<'a>>,
    unread_count: i64,
    cursor: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reset: bool,
}

/// A notification in a page: read from the database, or as the listener serialized it.
#[derive(Serialize)]
#[serde(untagged)]
enum Listed<'a> {
    Row(NotificationJson<'a>),
    Raw(Box<RawValue>),
}

/// GET /api/notifications/unread_count: the caller's unread inbox notifications.
async fn unread_count(caller: Caller, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let user_id = caller.user_id;
    let (count, _) = state
        .db(move |conn| store::reads::unread_count(conn, &user_id))
        .await?;
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
    let count = state
        .db(move |conn| {
            store::reads::mark_read(conn, &caller.user_id, id, |channel| {
                caller.may_read(channel)
            })
        })
        .await?
        .ok_or(AppError::NotFound)?;
    // Other tabs hear of it through NOTIFY, from whichever instance serves them.
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": id, "read": true, "unread_count": count
    })))
}

/// POST /api/notifications/read_all: marks everything the caller can see read.
async fn read_all(caller: Caller, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let user_id = caller.user_id;
    let marked = state
        .db(move |conn| store::reads::mark_all_read(conn, &user_id))
        .await?;
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
    Ok(HttpResponse::Created().json(stored.to_json(false)))
}
