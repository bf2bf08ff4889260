//! `/api/notifications`: polling and long-polling, read state, publishing (SPEC section 4).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::{Caller, Publisher};
use crate::channels;
use crate::cursor::{Cursor, Snapshot};
use crate::error::{AppError, AppResult};
use crate::hub::Kind;
use crate::hub::{HubEvent, LiveRow};
use crate::metrics::Transport;
use crate::models::NewNotification;
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

/// GET /api/notifications: the newest (newest first), or what came after `after` (oldest
/// first); with `wait`, holds the request until something arrives or the wait runs out.
async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let channels = caller.channels(query.channels.as_deref())?;
    let limit = number_param(query.limit.as_deref(), DEFAULT_LIMIT, 1..=MAX_LIMIT, || {
        AppError::bad_request(
            "invalid_limit",
            format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
        )
    })?;
    let max_wait = state.config.max_wait_secs;
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

    // Park only when asked to wait for something newer than a known cursor. Subscribe before
    // the first query, so nothing committed after its snapshot can slip by unnoticed; to the
    // inbox too, to keep the unread count without asking the database again.
    let mut live = match (&after, wait) {
        (Some(_), 1..) => Some(state.hub.subscribe(
            Kind::LongPoll,
            &caller.user_id,
            &caller.with_inbox(&channels),
        )?),
        _ => None,
    };
    let read = |after: Option<Cursor>| {
        let (user_id, channels) = (caller.user_id.clone(), channels.clone());
        state.db(move |conn| {
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
    };
    let mut page = read(after.clone()).await?;

    if let Some(live) = live.as_mut()
        && page.rows.is_empty()
        && !page.reset
    {
        // What the hub brings after `page.snapshot` is exactly what is new: answer from it,
        // with no query, while the unread count can be kept exactly (no read-state change
        // arrived meanwhile); else read the page again.
        live.mark_parked();
        let mut unread = page.unread_count;
        let mut count_exact = true;
        // A long-poll ends when its token does, as a stream does: nothing is handed out
        // on an expired token, and the client's next request gets its 401.
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(wait).min(caller.expires_in());
        loop {
            tokio::select! {
                event = live.recv() => match event {
                    Some(HubEvent::Rows(batch)) => {
                        let mut fresh = Vec::new();
                        for row in batch.rows.iter() {
                            if page.snapshot.is_visible(row.txid) {
                                continue;
                            }
                            if channels::is_inbox(&caller.user_id, &row.channel) {
                                unread += 1;
                            }
                            if channels.contains(&row.channel) {
                                fresh.push(row);
                            }
                        }
                        if fresh.is_empty() {
                            continue;
                        }
                        if count_exact {
                            let answer = live_page(&fresh, limit, &page.snapshot, unread);
                            for row in fresh.iter().take(limit as usize) {
                                state.metrics.observe_delivery(row.created_at);
                            }
                            let handed = fresh.len().min(limit as usize) as u64;
                            state.metrics.delivered(Transport::Poll, handed);
                            return Ok(answer);
                        }
                        page = read(after.clone()).await?;
                        (unread, count_exact) = (page.unread_count, true);
                        if !page.rows.is_empty() {
                            break;
                        }
                    }
                    Some(HubEvent::Read(_) | HubEvent::Resync) => count_exact = false,
                    // Shutting down (or hopelessly behind): answer with what we have.
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    state
        .metrics
        .delivered(Transport::Poll, page.rows.len() as u64);
    Ok(HttpResponse::Ok().json(page_json(&page, unknown)))
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
/// since `floor`, the parked request's snapshot, in reading order), their JSON as serialized
/// once by the listener, and the cursor after the last one.
fn live_page(rows: &[&LiveRow], limit: i64, floor: &Snapshot, unread_count: i64) -> HttpResponse {
    let rows = &rows[..rows.len().min(limit as usize)];
    let last = rows.last().expect("answered only with new rows");
    // Everything in `floor` was covered by `after`; the row's own cursor may start earlier.
    let cursor = last.cursor.rebased_on(floor).to_string();
    let mut body = String::from("{\"notifications\":[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&row.json);
    }
    body.push_str(&format!(
        "],\"unread_count\":{unread_count},\"cursor\":\"{cursor}\"}}"
    ));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

fn page_json(page: &Page, unknown: bool) -> serde_json::Value {
    let notifications: Vec<_> = page
        .rows
        .iter()
        .map(|row| row.notification.to_json(row.read))
        .collect();
    let mut body = serde_json::json!({
        "notifications": notifications,
        "unread_count": page.unread_count,
        "cursor": page.cursor.to_string(),
    });
    if page.reset || unknown {
        body["reset"] = true.into();
    }
    body
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
