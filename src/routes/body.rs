//! Request bodies, read the one safe way: only once the caller is authenticated and allowed
//! (a handler takes its `Caller` or `Publisher` before its [`JsonBody`], and extractors run in
//! order), within `HERALD_REQUEST_TIMEOUT_SECS`, at most `HERALD_MAX_BODY_BYTES`, and counted
//! under the caller's connection limits while it arrives. So a client that opens a body and
//! goes quiet holds one of its own slots for a few seconds, not a socket for ever.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::auth::Caller;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// A JSON body of type `T`, read as the module docs say: at most `LIMIT` bytes, or
/// `HERALD_MAX_BODY_BYTES` if that is less (or `LIMIT` is 0).
pub struct JsonBody<T, const LIMIT: usize = 0>(pub T);

impl<T: DeserializeOwned + 'static, const LIMIT: usize> FromRequest for JsonBody<T, LIMIT> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, AppResult<JsonBody<T, LIMIT>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            let caller = Caller::extract(&req).await?;
            let state = req
                .app_data::<web::Data<AppState>>()
                .expect("AppState is registered by startup")
                .clone();
            let configured = state.config.max_body_bytes as usize;
            let limit = if LIMIT == 0 {
                configured
            } else {
                LIMIT.min(configured)
            };
            let bytes = read(&req, payload, &caller, &state, limit).await?;
            serde_json::from_slice(&bytes)
                .map(JsonBody)
                .map_err(|err| match err.classify() {
                    serde_json::error::Category::Data => {
                        AppError::unprocessable("invalid_body", err.to_string())
                    }
                    _ => AppError::bad_request("invalid_json", format!("invalid JSON: {err}")),
                })
        })
    }
}

/// As [`JsonBody`], but a request with no body (`Content-Length: 0`, or neither a length nor a
/// `Content-Type`) is `T::default()`: for bodies whose every field is optional
/// (`archive_all`).
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, AppResult<OptionalJsonBody<T>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = req.headers();
        let length = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok());
        let empty = length.is_some_and(|n| n.trim() == "0")
            || (length.is_none()
                && !headers.contains_key(CONTENT_TYPE)
                && !headers.contains_key(actix_web::http::header::TRANSFER_ENCODING));
        if empty {
            let req = req.clone();
            return Box::pin(async move {
                // The caller is still checked first, as every body's is.
                Caller::extract(&req).await?;
                Ok(OptionalJsonBody(T::default()))
            });
        }
        let body = JsonBody::<T>::from_request(req, payload);
        Box::pin(async move { body.await.map(|JsonBody(t)| OptionalJsonBody(t)) })
    }
}

async fn read(
    req: &HttpRequest,
    mut payload: Payload,
    caller: &Caller,
    state: &AppState,
    limit: usize,
) -> AppResult<Vec<u8>> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || mime.to_ascii_lowercase().ends_with("+json")
        });
    if !is_json {
        return Err(AppError::bad_request(
            "invalid_json",
            "Content-Type must be application/json",
        ));
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    // Counted like a stream while it arrives: one user's stalled uploads cannot pile up.
    let _slot = state.hub.reserve(&caller.user_id)?;
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let body = async {
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(64 * 1024) as usize);
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|err| {
                AppError::bad_request("invalid_body", format!("the body was cut short: {err}"))
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, body)
        .await
        .map_err(|_| AppError::Invalid {
            status: StatusCode::REQUEST_TIMEOUT,
            code: "request_timeout",
            message: format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
        })?
}

fn too_large(limit: usize) -> AppError {
    AppError::Invalid {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "body_too_large",
        message: format!("request body is over {limit} bytes"),
    }
}
