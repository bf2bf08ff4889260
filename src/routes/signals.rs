//! `POST /api/signals`: a live signal to a channel's open streams on every instance (SPEC
//! section 8), kept as the channel's current value of its kind when asked (`keep`, SPEC
//! section 12); `GET /api/signals`: the kept values, for polling clients. How signals travel
//! is in [`crate::signals`].

use std::time::Instant;

use actix_web::{HttpResponse, web};
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::Caller;
use crate::channels;
use crate::error::{AppError, AppResult};
use crate::hub::Signal;
use crate::routes::body::JsonBody;
use crate::signals::{MAX_BODY_BYTES, MAX_KEEP_SECS, MAX_KIND_CHARS, Wire};
use crate::state::AppState;
use crate::store;
use crate::store::signals::Keep;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/signals", web::post().to(send))
        .route("/api/signals", web::get().to(kept));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSignal {
    channel: String,
    kind: String,
    #[serde(default)]
    data: Option<Box<RawValue>>,
    /// Seconds to keep it; any JSON, checked here, so that a bad one is refused as
    /// `invalid_signal` in words, like the other fields. `null` is the same as none.
    #[serde(default)]
    keep: Option<serde_json::Value>,
}

/// What streams receive as `event: signal`.
#[derive(Serialize)]
struct SignalEvent<'a> {
    channel: &'a str,
    kind: &'a str,
    from: &'a str,
    data: &'a RawValue,
    at: chrono::DateTime<chrono::Utc>,
}

/// POST /api/signals: `{"channel", "kind", "data", "keep"}` → `202 {"delivered_to": N}`.
async fn send(
    caller: Caller,
    JsonBody(new): JsonBody<NewSignal, MAX_BODY_BYTES>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    if !channels::is_valid_name(&new.channel) {
        return Err(invalid(
            "channel must be a channel name (1-200 characters, no spaces, commas or '*')",
        ));
    }
    let kind_chars = new.kind.chars().count();
    if !(1..=MAX_KIND_CHARS).contains(&kind_chars) || new.kind.chars().any(char::is_control) {
        return Err(invalid(
            "kind must be 1-64 characters, none of them control characters",
        ));
    }
    let keep_secs = keep_secs(new.keep.as_ref())?;
    authorize(&caller, &new.channel)?;
    state
        .signal_limits
        .take(&caller.user_id, Instant::now())
        .map_err(|wait| AppError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64))?;

    let null = RawValue::NULL;
    let sent_at = chrono::Utc::now();
    let event = serde_json::to_string(&SignalEvent {
        channel: &new.channel,
        kind: &new.kind,
        from: &caller.user_id,
        data: new.data.as_deref().unwrap_or(null),
        at: sent_at,
    })
    .expect("a signal serializes");
    let payload = serde_json::to_string(&Wire {
        origin: state.hub.origin(),
        channel: new.channel.clone(),
        event: &RawValue::from_string(event.clone()).expect("serde_json wrote JSON"),
    })
    .expect("a signal serializes");
    let event = ByteString::from(event);
    let signal = Signal {
        channel: new.channel.clone(),
        json: event.clone(),
    };
    let delivered_to = match keep_secs {
        None => {
            let delivered_to = state.hub.signal(signal);
            // The other instances' streams, through the database they share.
            state
                .db(move |conn| store::signals::relay(conn, &payload))
                .await?;
            delivered_to
        }
        Some(keep_secs) => {
            // Kept before this instance's streams get it: a stream opening meanwhile
            // subscribes, then reads kept values, so it has the signal one way or the other
            // (perhaps both), never neither. Nothing is sent if it cannot be kept.
            state
                .db(move |conn| {
                    let keep = Keep {
                        channel: &new.channel,
                        kind: &new.kind,
                        event: &event,
                        sent_at,
                        keep_secs,
                    };
                    store::signals::keep_and_relay(conn, &keep, &payload)
                })
                .await?;
            state.hub.signal(signal)
        }
    };
    state.metrics.signals_sent.inc();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "delivered_to": delivered_to })))
}

/// `keep` as whole seconds, 1 to [`MAX_KEEP_SECS`], or `None` if absent.
fn keep_secs(keep: Option<&serde_json::Value>) -> AppResult<Option<i32>> {
    let Some(keep) = keep else {
        return Ok(None);
    };
    match keep.as_u64() {
        Some(secs @ 1..=MAX_KEEP_SECS) => Ok(Some(secs as i32)),
        _ => Err(invalid(
            "keep must be a whole number of seconds from 1 to 86400 (a day)",
        )),
    }
}

#[derive(Deserialize)]
struct KeptQuery {
    channels: Option<String>,
}

/// GET /api/signals?channels=a,b → `{"signals": [...]}`: the kept values of those channels
/// (of the caller's inbox without `channels`), oldest first, each with `"kept": true`.
/// Channels are checked as everywhere: one the token does not grant is a `403` naming it.
async fn kept(
    caller: Caller,
    query: web::Query<KeptQuery>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let channels = caller.channels(query.into_inner().channels.as_deref())?;
    let events = state
        .db(move |conn| store::signals::kept_values(conn, &channels))
        .await?;
    // Each is JSON already: written into the answer as it is.
    let body = format!(r#"{{"signals":[{}]}}"#, events.join(","));
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// Who may signal where: anyone who may read the channel, except that `broadcast` and
/// other users' inboxes need the `publish` scope (and an app token, not a stream token).
fn authorize(caller: &Caller, channel: &str) -> AppResult<()> {
    let someone_elses_inbox = channels::owner(channel).is_some_and(|owner| owner != caller.user_id);
    if channel == channels::BROADCAST || someone_elses_inbox {
        if caller.can_publish && !caller.stream_token {
            return Ok(());
        }
        return Err(AppError::Forbidden(format!(
            "signals to {channel:?} need a token with the publish scope"
        )));
    }
    caller.require(channel)
}

fn invalid(message: &str) -> AppError {
    AppError::unprocessable("invalid_signal", message)
}
