//! `POST /api/signals`: a live signal to a channel's open streams on every instance (SPEC
//! section 8; how it travels is in [`crate::signals`]).

use std::time::Instant;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::Caller;
use crate::channels;
use crate::error::{AppError, AppResult};
use crate::hub::Signal;
use crate::routes::body::JsonBody;
use crate::signals::{MAX_BODY_BYTES, MAX_KIND_CHARS, Wire};
use crate::state::AppState;
use crate::store;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/signals", web::post().to(send));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSignal {
    channel: String,
    kind: String,
    #[serde(default)]
    data: Option<Box<RawValue>>,
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

/// POST /api/signals: `{"channel", "kind", "data"}` → `202 {"delivered_to": N}`.
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
    authorize(&caller, &new.channel)?;
    state
        .signal_limits
        .take(&caller.user_id, Instant::now())
        .map_err(|wait| AppError::RateLimited(wait.as_secs_f64().ceil().max(1.0) as u64))?;

    let null = RawValue::NULL;
    let event = serde_json::to_string(&SignalEvent {
        channel: &new.channel,
        kind: &new.kind,
        from: &caller.user_id,
        data: new.data.as_deref().unwrap_or(null),
        at: chrono::Utc::now(),
    })
    .expect("a signal serializes");
    let payload = serde_json::to_string(&Wire {
        origin: state.hub.origin(),
        channel: new.channel.clone(),
        event: &RawValue::from_string(event.clone()).expect("serde_json wrote JSON"),
    })
    .expect("a signal serializes");
    let delivered_to = state.hub.signal(Signal {
        channel: new.channel,
        json: event.into(),
    });
    // The other instances' streams, through the database they share.
    state
        .db(move |conn| store::signals::relay(conn, &payload))
        .await?;
    state.metrics.signals_sent.inc();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "delivered_to": delivered_to })))
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
