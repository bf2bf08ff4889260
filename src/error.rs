//! The one error type of the HTTP API, and its JSON rendering.
//!
//! Every error reaches the client as `{"error": {"code": "...", "message": "..."}}`. Bad input
//! is a 4xx with a message that is safe to show; only failures of our own are 5xx, and their
//! cause is logged, never sent.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An error and its causes as one sentence, "a: b: c" (a cause already in the text is not
/// repeated): for logs and startup failures, where a bare "error performing TLS handshake"
/// would hide the reason that follows it.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// `"a", "b"` for the messages that list names.
fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
    format!(
        "channel{} {}",
        if names.len() == 1 { "" } else { "s" },
        quoted.join(", ")
    )
}

/// Handlers return this and use `?`.
pub type AppResult<T> = Result<T, AppError>;

/// Everything that can go wrong while answering a request.
///
/// Its `Debug` (which actix logs at debug level for every error answer) leaves out the
/// messages of 4xx errors: they quote the request (a refused channel list may be a pasted
/// token), and the client has them anyway.
#[derive(thiserror::Error)]
pub enum AppError {
    /// 401: missing, malformed, badly signed or expired token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: the token does not grant this channel (or this action).
    #[error("{0}")]
    Forbidden(String),
    /// 403: the token does not grant these channels; the answer names them
    /// (`"channels": [...]` beside `code` and `message`).
    #[error("this token does not grant {}", quoted(.0))]
    ChannelsRefused(Vec<String>),
    /// 404: missing, or not visible to the caller (we don't say which).
    #[error("not found")]
    NotFound,
    /// 400/422: bad input; the message is safe to show. Constraint violations land here.
    #[error("{message}")]
    Invalid {
        /// 400 for malformed input, 422 for well-formed input that breaks a rule.
        status: StatusCode,
        /// Machine-readable reason.
        code: &'static str,
        /// Human-readable reason, safe to show.
        message: String,
    },
    /// 503: shutting down, or the database is busy; try again shortly.
    #[error("{0}")]
    Unavailable(&'static str),
    /// 503: a limit on open connections is reached; try again later.
    #[error("{0}")]
    TooManyStreams(&'static str),
    /// 429: too many requests of this kind; try again after this long (seconds).
    #[error(
        "too many signals: at most {rate} per second ({burst} at once); try again in {0} s",
        rate = crate::signals::RATE_PER_SEC,
        burst = crate::signals::BURST
    )]
    RateLimited(u64),
    /// 500: a query failed. `diesel::NotFound` becomes 404 instead.
    #[error("database error")]
    Db(#[source] DieselError),
    /// 503: no database connection could be had.
    #[error("database unavailable")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// 500: the blocking thread pool failed us.
    #[error("internal error")]
    Blocking(#[source] tokio::task::JoinError),
}

impl AppError {
    /// A 400 for malformed input.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// A 422 for well-formed input that breaks a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message: message.into(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) | AppError::ChannelsRefused(_) => "forbidden",
            AppError::NotFound => "not_found",
            AppError::Invalid { code, .. } => code,
            AppError::Unavailable(_) | AppError::Pool(_) => "unavailable",
            AppError::TooManyStreams(_) => "too_many_streams",
            AppError::RateLimited(_) => "rate_limited",
            AppError::Db(_) | AppError::Blocking(_) => "internal",
        }
    }
}

impl std::fmt::Debug for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Db(err) => f.debug_tuple("Db").field(err).finish(),
            AppError::Pool(err) => f.debug_tuple("Pool").field(err).finish(),
            AppError::Blocking(err) => f.debug_tuple("Blocking").field(err).finish(),
            client => write!(f, "AppError({} {})", client.status_code(), client.code()),
        }
    }
}

impl From<crate::hub::Refused> for AppError {
    fn from(refused: crate::hub::Refused) -> AppError {
        use crate::hub::Refused;
        match refused {
            Refused::Closed => AppError::Unavailable("shutting down"),
            Refused::UserLimit => AppError::TooManyStreams(
                "this user has too many open streams, long-polls and unfinished requests",
            ),
            Refused::TotalLimit => AppError::TooManyStreams("herald is at its stream limit"),
        }
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(err: crate::store::StoreError) -> AppError {
        use crate::store::StoreError;
        match err {
            StoreError::Pool(err) => AppError::Pool(err),
            StoreError::Query(err) => AppError::from(err),
            StoreError::Task(err) => AppError::Blocking(err),
        }
    }
}

impl From<DieselError> for AppError {
    /// The database's own checks are input validation: a refused row is the caller's 422.
    fn from(err: DieselError) -> AppError {
        match err {
            DieselError::NotFound => AppError::NotFound,
            DieselError::DatabaseError(
                kind @ (DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation),
                info,
            ) => {
                let (code, message) = match (kind, info.constraint_name(), info.column_name()) {
                    (_, Some(constraint), _) => {
                        let (code, message) = constraint_rule(constraint);
                        (code, message.to_owned())
                    }
                    (_, None, Some(column)) => ("missing_field", format!("{column} is required")),
                    _ => ("invalid_row", info.message().to_owned()),
                };
                AppError::unprocessable(code, message)
            }
            // Repeated conflicts with the same user's concurrent request: retry later.
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AppError::Unavailable("busy, try again")
            }
            other => AppError::Db(other),
        }
    }
}

/// What each named constraint in `migrations/` asks of a row: the error code that names the
/// field at fault, and the rule in words.
fn constraint_rule(constraint: &str) -> (&'static str, &'static str) {
    match constraint {
        "notifications_channel_valid" => (
            "invalid_channel",
            "channel must be 1-200 characters with no spaces, commas, control characters or '*'",
        ),
        "notifications_kind_valid" => (
            "invalid_kind",
            "kind must be 1-100 characters with no control characters",
        ),
        "notifications_level_valid" => (
            "invalid_level",
            "level must be one of info, success, warning, error",
        ),
        "notifications_data_is_object" => ("invalid_data", "data must be a JSON object"),
        _ => ("invalid_row", "the row breaks a rule of its table"),
    }
}

/// Logs a 503 at warn, at most once per [`UNAVAILABLE_LOG_EVERY`]: they come in storms (a
/// reconnect wave after a deploy, a client hammering at a limit), and one line per refusal
/// would bury everything else. `herald_http_requests_total` counts every one.
fn note_unavailable(code: &str, message: &str) {
    static LAST: Mutex<Option<(Instant, u64)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    match &mut *last {
        Some((since, suppressed)) if since.elapsed() < UNAVAILABLE_LOG_EVERY => *suppressed += 1,
        _ => {
            let more = last.map_or(0, |(_, suppressed)| suppressed);
            log::warn!(
                "refusing requests with 503 code={code} reason=\"{message}\" since_last_line={more}"
            );
            *last = Some((Instant::now(), 0));
        }
    }
}

/// How often a storm of 503s is summarised in the log.
const UNAVAILABLE_LOG_EVERY: Duration = Duration::from_secs(10);

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::ChannelsRefused(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Invalid { status, .. } => *status,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::Pool(_) | AppError::TooManyStreams(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Db(_) | AppError::Blocking(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            note_unavailable(self.code(), &self.to_string());
        } else if status.is_server_error() {
            log::error!("{self}: {self:?}");
        }
        let mut response = HttpResponse::build(status);
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a stalled body may still come: the connection cannot be reused.
            response.force_close();
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        match self {
            AppError::RateLimited(secs) => {
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            // Streams are long-lived: a slot frees up in tens of seconds, not at once.
            AppError::TooManyStreams(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("30")));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("2")));
            }
            _ => {}
        }
        let mut error = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        if let AppError::ChannelsRefused(channels) = self {
            error["channels"] = channels.clone().into();
        }
        response.json(serde_json::json!({ "error": error }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_form_of_a_client_error_does_not_quote_the_request() {
        let pasted = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let forbidden = AppError::Forbidden(format!("channel not granted: {pasted}"));
        let invalid = AppError::bad_request("invalid_query", format!("bad: {pasted}"));
        for err in [forbidden, invalid] {
            let debug = format!("{err:?}");
            assert!(!debug.contains(pasted), "{debug}");
            assert!(debug.contains(err.code()), "{debug}");
        }
    }
}
