//! HTTP routes, one module per group. Each exports `configure`; `configure` here wires them
//! all, with JSON errors for malformed queries, paths and bodies, and for unknown routes.

pub mod body;
pub mod dev;
pub mod events;
pub mod notifications;
pub mod ops;
pub mod presence;
pub mod push;
pub mod signals;
pub mod tokens;
pub mod web;

use actix_web::{HttpRequest, error, web as aweb};

use crate::error::AppError;

/// Every route of the service; `dev_mode` adds the dev-only token endpoint. Bodies over
/// `max_body` bytes are refused with 413 (JSON bodies are read by [`body::JsonBody`]).
pub fn configure(
    cfg: &mut aweb::ServiceConfig,
    dev_mode: bool,
    max_body: usize,
    web_dir: Option<std::path::PathBuf>,
) {
    cfg.app_data(aweb::QueryConfig::default().error_handler(query_error))
        .app_data(aweb::PathConfig::default().error_handler(path_error))
        .app_data(aweb::PayloadConfig::default().limit(max_body))
        .configure(events::configure)
        .configure(notifications::configure)
        .configure(ops::configure)
        .configure(presence::configure)
        .configure(push::configure)
        .configure(signals::configure)
        .configure(tokens::configure)
        .configure(|cfg| web::configure(cfg, web_dir));
    if dev_mode {
        cfg.configure(dev::configure);
    }
}

/// The JSON 404 for a route that does not exist.
pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

fn query_error(err: error::QueryPayloadError, _: &HttpRequest) -> error::Error {
    let message = match &err {
        error::QueryPayloadError::Deserialize(err) => in_words(&err.to_string(), "query parameter"),
        other => other.to_string(),
    };
    AppError::bad_request("invalid_query", message).into()
}

fn path_error(err: error::PathError, _: &HttpRequest) -> error::Error {
    let error::PathError::Deserialize(err) = &err else {
        return AppError::bad_request("invalid_path", err.to_string()).into();
    };
    AppError::bad_request("invalid_path", in_words(&err.to_string(), "path segment")).into()
}

/// serde's wording for a missing or repeated field, in terms of the request.
fn in_words(serde_message: &str, what: &str) -> String {
    let field = |prefix: &str| {
        serde_message
            .strip_prefix(prefix)
            .map(|rest| rest.trim_matches('`').to_owned())
    };
    if let Some(name) = field("missing field ") {
        format!("missing {what} `{name}`")
    } else if let Some(name) = field("duplicate field ") {
        format!("{what} `{name}` is given more than once")
    } else {
        format!("invalid {what}: {serde_message}")
    }
}
