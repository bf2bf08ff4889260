//! `/api/notifications`: polling and long-polling, read, seen and archived state, publishing
//! (SPEC sections 4 and 12).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::auth::{Caller, Publisher};
use crate::cursor::Cursor;
use crate::error::{AppError, AppResult};
use crate::hub::{HubEvent, Kind, Subscription};
use crate::inbox::{Page, PageQuery, invalid_cursor};
use crate::metrics::Transport;
use crate::models::{NewNotification, ReaderState};
use crate::query;
use crate::routes::body::{JsonBody, OptionalJsonBody};
use crate::state::AppState;
use crate::store::reads::Action;

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
        .route("/api/notifications/seen", web::post().to(seen))
        .route(
            "/api/notifications/archive_all",
            web::post().to(archive_all),
        )
        .route("/api/notifications/{id}/read", web::post().to(read))
        .route("/api/notifications/{id}/unread", web::post().to(unread))
        .route("/api/notifications/{id}/archive", web::post().to(archive))
        .route(
            "/api/notifications/{id}/unarchive",
            web::post().to(unarchive),
        );
}

/// `GET /api/notifications`'s parameters, as given.
#[derive(Default)]
struct ListQuery {
    after: Option<String>,
    // Numbers and flags arrive as text and are parsed here, so a bad one is refused in
    // words that name it.
    limit: Option<String>,
    unread: Option<String>,
    archived: Option<String>,
    channels: Option<String>,
    wait: Option<String>,
    /// Channels to be present on for the next 30 s (SPEC section 8).
    presence: Option<String>,
}

impl ListQuery {
    /// Read by hand, not by `web::Query`, so the token a poll carries beside them is not
    /// decoded again (`crate::query`); repeated and unknown parameters are treated as before.
    fn from_query(text: &str) -> AppResult<ListQuery> {
        let mut list = ListQuery::default();
        for (key, value) in query::pairs(text) {
            let slot = match &*key {
                "after" => &mut list.after,
                "limit" => &mut list.limit,
                "unread" => &mut list.unread,
                "archived" => &mut list.archived,
                "channels" => &mut list.channels,
                "wait" => &mut list.wait,
                "presence" => &mut list.presence,
                _ => continue,
            };
            if slot.replace(query::decode(value).into_owned()).is_some() {
                return Err(AppError::bad_request(
                    "invalid_query",
                    format!("query parameter `{key}` is given more than once"),
                ));
            }
        }
        Ok(list)
    }
}

/// A `GET /api/notifications` request, checked: the page it asks for, and how long it may
/// wait for something newer than `after`.
struct Listing {
    query: PageQuery,
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
        let unread_only = flag(query.unread.as_deref(), "invalid_unread", "unread")?;
        let archived_only = flag(query.archived.as_deref(), "invalid_archived", "archived")?;
        // A cursor herald cannot read is unknown, like one from another database: reset.
        let (after, unknown) = match query.after.as_deref().map(Cursor::parse) {
            None => (None, false),
            Some(Ok(cursor)) => (Some(cursor), false),
            Some(Err(_)) => (None, true),
        };
        Ok(Listing {
            query: PageQuery {
                channels,
                after,
                unknown,
                limit,
                unread_only,
                archived_only,
            },
            wait: Duration::from_secs(wait),
        })
    }

    /// Only a wait for something newer than a known cursor parks.
    fn parks(&self) -> bool {
        self.query.after.is_some() && !self.wait.is_zero()
    }
}

/// GET /api/notifications: the newest (newest first), or what came after `after` (oldest
/// first); with `wait`, holds the request until something arrives or the wait runs out.
///
/// Answered from the hub's memory when it can tell (`hub::recent` has the contract), else
/// from the database, whose answer the hub then remembers.
async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let mut query = ListQuery::from_query(req.query_string())?;
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
        true => Some(state.hub.subscribe(
            Kind::LongPoll,
            &caller.user_id,
            &listing.query.channels,
        )?),
        false => None,
    };
    let answer = state.inbox.page(&caller.user_id, &listing.query).await?;
    match live {
        Some(live) if answer.rows == 0 && !answer.reset => {
            park(&state, &caller, &listing, live, answer).await
        }
        _ => Ok(respond(&state, &answer)),
    }
}

/// Waits for rows newer than `empty` (an empty answer) and answers with them, from memory
/// when the hub can tell, else from the database. Ends when the wait (or the token) runs out,
/// or herald shuts down, with the empty answer brought up to date.
async fn park(
    state: &AppState,
    caller: &Caller,
    listing: &Listing,
    mut live: Subscription,
    empty: Page,
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
        let query = listing.query.after(after.clone());
        let answer = state.inbox.page(&caller.user_id, &query).await?;
        if answer.rows > 0 || answer.reset {
            return Ok(respond(state, &answer));
        }
        after = answer.cursor;
    }
    let query = listing.query.after(after);
    let answer = state.inbox.page(&caller.user_id, &query).await?;
    Ok(respond(state, &answer))
}

/// A `true`/`false` query parameter (`1`/`0` too); absent is false.
fn flag(text: Option<&str>, code: &'static str, name: &str) -> AppResult<bool> {
    match text {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(AppError::bad_request(
            code,
            format!("{name} must be true or false"),
        )),
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

/// Every page's JSON: `{"notifications", "unread_count", "unseen_count", "cursor"}`, and
/// `"reset": true` when the cursor asked for was unknown. Written by hand: the notifications
/// are JSON already, and the cursor is digits, `:`, `,` and `~` only.
fn respond(state: &AppState, reply: &Page) -> HttpResponse {
    for created in &reply.created {
        state.metrics.observe_delivery(*created);
    }
    state.metrics.delivered(Transport::Poll, reply.rows as u64);
    let cursor = reply.cursor.to_string();
    let mut body = String::with_capacity(reply.notifications.len() + cursor.len() + 80);
    body.push_str("{\"notifications\":");
    body.push_str(&reply.notifications);
    body.push_str(",\"unread_count\":");
    body.push_str(&reply.counts.unread_count.to_string());
    body.push_str(",\"unseen_count\":");
    body.push_str(&reply.counts.unseen_count.to_string());
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

/// GET /api/notifications/unread_count: the caller's unread and unseen inbox notifications.
async fn unread_count(caller: Caller, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let counts = state.inbox.counts(&caller.user_id).await?;
    Ok(HttpResponse::Ok().json(counts))
}

/// POST /api/notifications/{id}/read: marks one read for the caller; 404 if they cannot see it.
async fn read(
    caller: Caller,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    act(caller, &id, Action::Read, state).await
}

/// POST /api/notifications/{id}/unread: unread again, and back in the inbox.
async fn unread(
    caller: Caller,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    act(caller, &id, Action::Unread, state).await
}

/// POST /api/notifications/{id}/archive: out of the caller's inbox (and read).
async fn archive(
    caller: Caller,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    act(caller, &id, Action::Archive, state).await
}

/// POST /api/notifications/{id}/unarchive: back in the caller's inbox.
async fn unarchive(
    caller: Caller,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    act(caller, &id, Action::Unarchive, state).await
}

/// Does `action` to notification `id` for the caller: `{"id", <what it set>, "unread_count",
/// "unseen_count"}`; 404 if they cannot see it. Other tabs hear of it through NOTIFY, from
/// whichever instance serves them.
async fn act(
    caller: Caller,
    id: &str,
    action: Action,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::bad_request("invalid_id", "a notification id is a whole number"))?;
    let counts = state
        .inbox
        .act(&caller, id, action)
        .await?
        .ok_or(AppError::NotFound)?;
    let (field, value) = match action {
        Action::Read => ("read", true),
        Action::Unread => ("read", false),
        Action::Archive => ("archived", true),
        Action::Unarchive => ("archived", false),
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": id,
        field: value,
        "unread_count": counts.unread_count,
        "unseen_count": counts.unseen_count,
    })))
}

/// POST /api/notifications/read_all: marks everything the caller can see read.
async fn read_all(caller: Caller, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let (marked, counts) = state.inbox.mark_all_read(&caller.user_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "marked": marked,
        "unread_count": counts.unread_count,
        "unseen_count": counts.unseen_count,
    })))
}

/// `{"through": "<cursor>"}`: up to where.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Through {
    through: Option<String>,
}

impl Through {
    /// The cursor, or `None` if absent; 400 if it is not one of herald's.
    fn cursor(&self) -> AppResult<Option<Cursor>> {
        self.through
            .as_deref()
            .map(|text| Cursor::parse(text).map_err(|_| invalid_cursor()))
            .transpose()
    }
}

/// POST /api/notifications/seen `{"through"}`: the caller's inbox seen up to that cursor.
async fn seen(
    caller: Caller,
    JsonBody(body): JsonBody<Through>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let through = body.cursor()?.ok_or_else(|| {
        AppError::bad_request(
            "invalid_cursor",
            "through is required: a cursor herald gave",
        )
    })?;
    let counts = state.inbox.mark_seen(&caller.user_id, through).await?;
    Ok(HttpResponse::Ok().json(counts))
}

/// POST /api/notifications/archive_all `{"through"?}`: everything the caller can see up to that
/// cursor (or now) archived and read.
async fn archive_all(
    caller: Caller,
    OptionalJsonBody(body): OptionalJsonBody<Through>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let counts = state
        .inbox
        .archive_all(&caller.user_id, body.cursor()?)
        .await?;
    Ok(HttpResponse::Ok().json(counts))
}

/// POST /api/notifications: inserts a notification (token scope `publish`); 201 with it.
async fn publish(
    _: Publisher,
    JsonBody(new): JsonBody<NewNotification>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    new.validate()
        .map_err(|message| AppError::unprocessable("invalid_text", message))?;
    let stored = state.inbox.publish(new).await?;
    Ok(HttpResponse::Created().json(stored.to_json(ReaderState::NEW)))
}
