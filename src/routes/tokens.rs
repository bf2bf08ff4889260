//! `POST /api/stream-token`: trades the app's token for a short-lived stream token, so a
//! page never puts the app's own token into a URL (see [`crate::auth`], "Stream tokens").

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::auth::{Auth, Caller};
use crate::error::{AppError, AppResult};

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/stream-token", web::post().to(stream_token));
}

/// POST /api/stream-token (Bearer or cookie): `{"token", "expires_in"}`.
async fn stream_token(caller: Caller, auth: web::Data<Auth>) -> AppResult<HttpResponse> {
    if caller.stream_token {
        // Else a stolen stream token could be renewed for ever.
        return Err(AppError::Forbidden(
            "a stream token cannot mint another; use the app's token".into(),
        ));
    }
    let (token, expires_in) = auth.mint_stream_token(&caller);
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(serde_json::json!({ "token": token, "expires_in": expires_in })))
}
