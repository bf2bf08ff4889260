//! The access log: one line per request, with every credential taken out of it.

use actix_web::middleware::{Condition, Logger};

/// One line per request: method, path and query (tokens redacted from both), route, status,
/// duration (for a stream, until it ends). Never a token.
///
/// Left out of the chain when its lines would be filtered out anyway (`RUST_LOG=warn`): actix
/// renders every line before `log` discards it, which cost long-polls a tenth of their CPU.
pub fn access_log() -> Condition<Logger> {
    let enabled = log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
    Condition::new(enabled, logger())
}

fn logger() -> Logger {
    Logger::new("%{request}xi route=%{route}xo status=%s %Dms")
        .custom_request_replace("request", |req| {
            let query = redact_query(req.query_string());
            let sep = if query.is_empty() { "" } else { "?" };
            format!("{} {}{sep}{query}", req.method(), redact_path(req.path()))
        })
        .custom_response_replace("route", |res| {
            res.request()
                .match_pattern()
                .unwrap_or_else(|| "-".to_owned())
        })
}

/// The query string with every value that may be a credential replaced: a parameter named like
/// one (`token`, `access_token`, `Token`, `jwt`, `password`, ...; keys compared decoded and in
/// any case, as an extractor could read them), and any value shaped like a JWT.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if is_secret_key(&decoded_key(pair)) || looks_like_jwt(value) {
                format!("{key}=<redacted>")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "token",
        "jwt",
        "secret",
        "password",
        "passwd",
        "auth",
        "key",
        "session",
        "signature",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// The path with every segment shaped like a JWT replaced: a token pasted into a URL where an
/// id belongs (`/api/notifications/<token>/read`) is answered 400, and must not be logged.
fn redact_path(path: &str) -> std::borrow::Cow<'_, str> {
    // Every JWT starts `eyJ`: most paths are passed through after one scan.
    if !path.contains("eyJ") || !path.split('/').any(looks_like_jwt) {
        return path.into();
    }
    path.split('/')
        .map(|segment| {
            if looks_like_jwt(segment) {
                "<redacted>"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
        .into()
}

/// Three dot-separated base64url parts, the first of them a JSON object (`eyJ` is `{"`).
fn looks_like_jwt(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'%' | b'='))
        })
}

/// The key of a `key=value` pair as an extractor reads it (`+` and `%XX` decoded).
fn decoded_key(pair: &str) -> String {
    crate::query::pairs(pair)
        .next()
        .map(|(key, _)| key.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_logged_queries() {
        assert_eq!(
            redact_query("channels=a&token=eyJ.secret.x&after=1"),
            "channels=a&token=<redacted>&after=1"
        );
        assert_eq!(redact_query(""), "");
        // Encoded keys are the same key to the extractor that reads the token.
        assert_eq!(
            redact_query("%74oken=eyJ.secret.x&%74%6F%6B%65%6E=b&to%6"),
            "%74oken=<redacted>&%74%6F%6B%65%6E=<redacted>&to%6"
        );
    }

    #[test]
    fn tokens_are_redacted_from_logged_paths() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(
            redact_path(&format!("/api/notifications/{jwt}/read")),
            "/api/notifications/<redacted>/read"
        );
        assert_eq!(
            redact_path("/api/notifications/17/read"),
            "/api/notifications/17/read"
        );
    }

    #[test]
    fn credentials_under_any_name_or_case_are_redacted() {
        for key in [
            "access_token",
            "Token",
            "TOKEN",
            "id_token",
            "jwt",
            "api_key",
            "password",
        ] {
            let query = format!("a=1&{key}=hunter2&b=2");
            assert_eq!(redact_query(&query), format!("a=1&{key}=<redacted>&b=2"));
        }
        // A JWT is redacted whatever the parameter is called.
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(redact_query(&format!("t={jwt}")), "t=<redacted>");
        // Cursors and channel lists are not secrets.
        assert_eq!(
            redact_query("after=734:736:735&channels=user:1,broadcast&limit=5"),
            "after=734:736:735&channels=user:1,broadcast&limit=5"
        );
    }
}
