//! Web Push subscriptions (SPEC section 11; how pushes are sent is in [`crate::push`]).

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::push::{MAX_PER_USER, Push};
use crate::routes::body::JsonBody;
use crate::state::AppState;
use crate::store::push as queue;

/// The largest subscription body: a `PushSubscription`'s JSON is an endpoint of at most
/// [`crate::push::endpoint::MAX_ENDPOINT_LEN`] bytes and two short keys.
const MAX_BODY_BYTES: usize = 4096;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/push/key", web::get().to(key))
        .route("/api/push/subscriptions", web::post().to(subscribe))
        .route("/api/push/subscriptions", web::delete().to(unsubscribe));
}

fn push(state: &AppState) -> AppResult<&Push> {
    state.push.as_deref().ok_or_else(|| AppError::Invalid {
        status: actix_web::http::StatusCode::NOT_FOUND,
        code: "push_disabled",
        message: "Web Push is off on this herald: set HERALD_VAPID_PRIVATE_KEY and \
                  HERALD_VAPID_SUBJECT"
            .into(),
    })
}

/// GET /api/push/key → `{"public_key"}`: what `pushManager.subscribe` takes as
/// `applicationServerKey`. Public, so a service worker can ask without a token.
async fn key(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let push = push(&state)?;
    Ok(HttpResponse::Ok().json(json!({ "public_key": push.public_key() })))
}

/// POST /api/push/subscriptions with a `PushSubscription`'s JSON → 201 (new) or 200 (known).
async fn subscribe(
    caller: Caller,
    JsonBody(body): JsonBody<Value, MAX_BODY_BYTES>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let push = push(&state)?;
    let endpoint = endpoint_of(&body)?;
    push.hosts()
        .check(&endpoint)
        .map_err(|message| AppError::unprocessable("endpoint_not_allowed", message))?;
    let keys = body.get("keys");
    let p256dh = key_field(keys, "p256dh", 65)?;
    let auth = key_field(keys, "auth", 16)?;
    // Checked now, so a bad key is the subscriber's 422 rather than a push failing later.
    let point = URL_SAFE_NO_PAD
        .decode(p256dh.trim_end_matches('='))
        .unwrap_or_default();
    if !is_p256_point(&point) {
        return Err(AppError::unprocessable(
            "invalid_subscription",
            "keys.p256dh is not a P-256 public key",
        ));
    }
    let user = caller.user_id.clone();
    let stored = endpoint.clone();
    let result = state
        .db(move |conn| queue::subscribe(conn, &user, &stored, &p256dh, &auth, MAX_PER_USER))
        .await?;
    let status = match result {
        Ok(true) => actix_web::http::StatusCode::CREATED,
        Ok(false) => actix_web::http::StatusCode::OK,
        Err(queue::Refused::TooMany) => {
            return Err(AppError::unprocessable(
                "too_many_subscriptions",
                format!(
                    "at most {MAX_PER_USER} push subscriptions per user; remove one first \
                     (DELETE /api/push/subscriptions)"
                ),
            ));
        }
        Err(queue::Refused::Taken) => {
            return Err(AppError::Invalid {
                status: actix_web::http::StatusCode::CONFLICT,
                code: "endpoint_taken",
                message: "another user has this endpoint with other keys; a browser's own \
                          subscription (PushSubscription.toJSON()) takes it over"
                    .into(),
            });
        }
    };
    Ok(HttpResponse::build(status).json(json!({ "endpoint": endpoint })))
}

/// DELETE /api/push/subscriptions with `{"endpoint"}` → 204, whether or not the caller had it
/// (unsubscribing twice is no error).
async fn unsubscribe(
    caller: Caller,
    JsonBody(body): JsonBody<Value, MAX_BODY_BYTES>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    push(&state)?;
    let endpoint = endpoint_of(&body)?;
    let user = caller.user_id.clone();
    state
        .db(move |conn| queue::unsubscribe(conn, &user, &endpoint))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn endpoint_of(body: &Value) -> AppResult<String> {
    match body.get("endpoint") {
        Some(Value::String(endpoint)) if !endpoint.is_empty() => Ok(endpoint.clone()),
        _ => Err(AppError::unprocessable(
            "invalid_subscription",
            "endpoint is required: send PushSubscription.toJSON()",
        )),
    }
}

/// `keys.<name>`: base64url of exactly `len` bytes.
fn key_field(keys: Option<&Value>, name: &str, len: usize) -> AppResult<String> {
    let value = keys.and_then(|k| k.get(name)).and_then(Value::as_str);
    let decoded = value.and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok());
    match (value, decoded) {
        (Some(value), Some(bytes)) if bytes.len() == len => Ok(value.to_owned()),
        _ => Err(AppError::unprocessable(
            "invalid_subscription",
            format!("keys.{name} must be {len} bytes, base64url (PushSubscription.toJSON())"),
        )),
    }
}

fn is_p256_point(bytes: &[u8]) -> bool {
    use openssl::bn::BigNumContext;
    use openssl::ec::{EcGroup, EcPoint};
    use openssl::nid::Nid;
    let (Ok(group), Ok(mut ctx)) = (
        EcGroup::from_curve_name(Nid::X9_62_PRIME256V1),
        BigNumContext::new(),
    ) else {
        return false;
    };
    bytes.first() == Some(&4) && EcPoint::from_bytes(&group, bytes, &mut ctx).is_ok()
}
