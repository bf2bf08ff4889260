//! Who a request is from: the token's source (Bearer header, `?token=`, cookie), and the
//! extractors that make a handler authenticated by its signature.

use std::borrow::Cow;
use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};

use super::{Auth, COOKIE, Caller};
use crate::error::{AppError, AppResult};
use crate::origins::Origins;
use crate::query;

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `Authorization: Bearer`.
    Header,
    /// `?token=`.
    Query,
    /// The `herald_token` cookie, which browsers attach by themselves: the one source a
    /// cross-site page can make a browser send (CSRF).
    Cookie,
}

/// The token a request carries: a Bearer header, else `?token=`, else cookie. Another scheme
/// (a site behind HTTP Basic auth sends its credentials with every EventSource request) is
/// not ours and is skipped; a Bearer header that is there but empty is an error.
fn token_of(req: &HttpRequest) -> AppResult<Option<(Cow<'_, str>, Source)>> {
    if let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION)
        && let Some((scheme, token)) = value.to_str().unwrap_or_default().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
    {
        let token = token.trim();
        if token.is_empty() {
            return Err(AppError::Unauthorized("empty bearer token"));
        }
        return Ok(Some((Cow::Borrowed(token), Source::Header)));
    }
    // Given twice, neither counts: the cookie decides, if any.
    if let Ok(Some(token)) = query::unique(req.query_string(), "token") {
        return Ok(Some((token, Source::Query)));
    }
    Ok(req
        .cookie(COOKIE)
        .map(|c| (Cow::Owned(c.value().to_owned()), Source::Cookie)))
}

impl FromRequest for Caller {
    type Error = AppError;
    type Future = Ready<AppResult<Caller>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            // Cached: a handler may ask twice (extractor and guard) without verifying twice.
            if let Some(caller) = req.extensions().get::<Caller>() {
                return Ok(caller.clone());
            }
            let auth = req
                .app_data::<web::Data<Auth>>()
                .expect("Auth is registered by startup");
            let (token, source) =
                token_of(req)?.ok_or(AppError::Unauthorized("authentication required"))?;
            let caller = auth.verify(&token)?;
            // A page elsewhere can make the browser POST here with the cookie attached, but
            // it cannot forge the Origin header: state changes by cookie need a trusted one.
            // `?presence=` is one on a GET (it shows the user online to others), which any
            // page can make with an <img> or an EventSource.
            if source == Source::Cookie && (!req.method().is_safe() || asks_presence(req)) {
                let trusted = req
                    .app_data::<web::Data<Origins>>()
                    .is_some_and(|origins| origins.request_is_trusted(req));
                if !trusted {
                    return Err(AppError::Invalid {
                        status: actix_web::http::StatusCode::FORBIDDEN,
                        code: "untrusted_origin",
                        message: "a request authenticated by cookie must come from herald's own \
                                  origin or one in HERALD_ALLOWED_ORIGINS (or send a Bearer token)"
                            .into(),
                    });
                }
            }
            req.extensions_mut().insert(caller.clone());
            Ok(caller)
        })())
    }
}

/// True if the query has a `presence` parameter (however its name is percent-encoded).
fn asks_presence(req: &HttpRequest) -> bool {
    query::pairs(req.query_string()).any(|(key, _)| key == "presence")
}

/// A caller whose token has the `publish` scope. Checked before any body is read: a handler
/// takes it before its body, and extractors run in order.
pub struct Publisher(pub Caller);

impl FromRequest for Publisher {
    type Error = AppError;
    type Future = Ready<AppResult<Publisher>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(
            Caller::from_request(req, payload)
                .into_inner()
                .and_then(|caller| {
                    if caller.can_publish {
                        Ok(Publisher(caller))
                    } else if caller.stream_token {
                        Err(AppError::Forbidden(
                            "a stream token cannot publish; use the app's token".into(),
                        ))
                    } else {
                        Err(AppError::Forbidden(
                            "publishing needs a token with scope \"publish\"".into(),
                        ))
                    }
                }),
        )
    }
}
