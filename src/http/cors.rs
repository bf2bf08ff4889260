//! CORS by actix-cors: pages of `HERALD_ALLOWED_ORIGINS` may call herald with credentials;
//! any other origin is served as usual but without CORS headers, so the browser keeps the
//! answer from its page (non-browser clients are unaffected).

use actix_cors::{Cors, CorsError};
use actix_web::ResponseError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::Next;

use crate::error::AppError;
use crate::origins::Origins;

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: usize = 600;

/// The CORS middleware for `origins`.
pub fn cors(origins: Origins) -> Cors {
    Cors::default()
        .allowed_origin_fn(move |origin, _| {
            origin
                .to_str()
                .is_ok_and(|origin| origins.is_allowed(origin))
        })
        // DELETE: herald.js unsubscribes from Web Push with it (`disablePush`).
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .supports_credentials()
        .max_age(PREFLIGHT_MAX_AGE)
}

/// actix-cors refuses a preflight from an origin it does not allow in plain text; herald's
/// errors are JSON, so that answer is replaced (wrap this outside [`cors`]).
pub async fn json_cors_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let res = next.call(req).await?;
    let refusal = res
        .response()
        .error()
        .and_then(|err| err.as_error::<CorsError>());
    let Some(refusal) = refusal else {
        return Ok(res.map_into_left_body());
    };
    // Say what was refused: an allowed page asking for a method herald lacks must not be told
    // its origin is the problem.
    let (code, message) = match refusal {
        CorsError::MethodNotAllowed | CorsError::BadRequestMethod => (
            "method_not_allowed",
            "herald does not take this method cross-origin (GET, POST and DELETE only)",
        ),
        CorsError::HeadersNotAllowed | CorsError::BadRequestHeaders => (
            "headers_not_allowed",
            "herald takes only Authorization, Content-Type and Last-Event-ID cross-origin",
        ),
        _ => (
            "origin_not_allowed",
            "this origin may not call herald cross-origin (HERALD_ALLOWED_ORIGINS)",
        ),
    };
    let json = AppError::Invalid {
        status: StatusCode::FORBIDDEN,
        code,
        message: message.into(),
    }
    .error_response();
    let (req, refusal) = res.into_parts();
    let mut res = ServiceResponse::new(req, json);
    // Keep what actix-cors said about caching (`Vary`).
    for (name, value) in refusal.headers() {
        if name == header::VARY {
            res.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(res.map_into_right_body())
}
