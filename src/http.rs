//! HTTP-level policy that sits in front of every route: which origins may call herald (CORS),
//! how big a request head may be, and how connections are tuned and counted.
//!
//! The CSRF rule (a cookie-authenticated POST must come from an allowed origin) lives in
//! [`crate::auth`], where the token's source is known; it asks [`Origins`] here.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::error::AppError;
use crate::metrics::Metrics;
use crate::state::AppState;
use prometheus_client::metrics::gauge::Gauge;

/// Methods a cross-origin page may use.
const ALLOW_METHODS: &str = "GET, POST";
/// Request headers a cross-origin page may send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";
/// Response headers a cross-origin page may read.
const EXPOSE_HEADERS: &str = "Retry-After";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The origins trusted besides herald's own: they may call herald cross-origin (CORS, with
/// credentials) and send cookie-authenticated state changes.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    allowed: Vec<String>,
}

impl Origins {
    /// `allowed` as configured (`https://app.example.com`); case and a trailing `/` ignored.
    pub fn new(allowed: &[String]) -> Origins {
        Origins {
            allowed: allowed
                .iter()
                .map(|o| normalize(o))
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }

    /// True if `origin` is one of the configured origins.
    pub fn is_allowed(&self, origin: &str) -> bool {
        let origin = normalize(origin);
        self.allowed.contains(&origin)
    }

    /// True if the request demonstrably comes from a page of herald's own origin or of an
    /// allowed one. Browsers send `Origin` on every POST, and when it is there it decides;
    /// `Referer` is the fallback for old ones. Neither (or `Origin: null`, from sandboxed
    /// frames and redirects): false.
    ///
    /// herald's own origin is the scheme and host the client used, as a proxy reports them
    /// (`Forwarded`, `X-Forwarded-Proto`/`-Host`) or else as seen here. A page that makes a
    /// browser post cross-site can set neither header, so trusting them is sound here.
    pub fn request_is_trusted(&self, req: &HttpRequest) -> bool {
        let headers = req.headers();
        let origin = match headers.get(header::ORIGIN) {
            Some(origin) => match origin.to_str() {
                Ok(origin) => origin.to_owned(),
                Err(_) => return false,
            },
            None => match header_str(headers, &header::REFERER).and_then(origin_of_url) {
                Some(origin) => origin,
                None => return false,
            },
        };
        if self.is_allowed(&origin) {
            return true;
        }
        let info = req.connection_info();
        let own = format!("{}://{}", info.scheme(), info.host());
        normalize(&origin) == normalize(&own)
    }
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `scheme://host[:port]` of a URL, if it has one.
fn origin_of_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// CORS: answers preflights and marks responses readable by allowed origins. A request from
/// any other origin is served as usual, without CORS headers, so the browser keeps the answer
/// from the page; a preflight from one is refused with a JSON 403.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let origins = req
        .app_data::<web::Data<Origins>>()
        .expect("Origins is registered by startup")
        .clone();
    let origin = header_str(req.headers(), &header::ORIGIN)
        .filter(|origin| origins.is_allowed(origin))
        .and_then(|origin| HeaderValue::from_str(origin).ok());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);

    if preflight {
        let response = match origin {
            Some(origin) => {
                let mut response = HttpResponse::NoContent();
                response
                    .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
                    .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE));
                let mut response = response.finish();
                allow(response.headers_mut(), origin);
                response
            }
            None => AppError::Invalid {
                status: StatusCode::FORBIDDEN,
                code: "origin_not_allowed",
                message: "this origin may not call herald cross-origin (HERALD_ALLOWED_ORIGINS)"
                    .into(),
            }
            .error_response(),
        };
        let mut response = req.into_response(response);
        vary_on_origin(response.headers_mut());
        return Ok(response.map_into_right_body());
    }

    let mut response = next.call(req).await?;
    if let Some(origin) = origin {
        allow(response.headers_mut(), origin);
    }
    vary_on_origin(response.headers_mut());
    Ok(response.map_into_left_body())
}

/// Caches must not hand one origin's answer (with or without CORS headers) to another.
fn vary_on_origin(headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

/// The most request-head bytes (target and headers) herald reads, as configured.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimit(pub usize);

/// Refuses a request whose head is over [`HeadLimit`] with a JSON 431. (actix itself cuts
/// off at 128 KiB or 96 headers, with an empty 431, before this runs.)
pub async fn limit_head(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<HeadLimit>>()
        .map_or(usize::MAX, |limit| limit.0);
    let size = req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > limit {
        let response = AppError::Invalid {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            code: "headers_too_large",
            message: format!("request headers are over {limit} bytes"),
        }
        .error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Tunes each accepted connection's socket and counts it (`herald_http_connections_open`)
/// until it closes. `write_timeout` is TCP_USER_TIMEOUT: a client that stops reading stops
/// acknowledging, and the kernel then drops the connection, which actix alone never would
/// while a stream is stuck writing to it.
pub fn on_connect(
    io: &dyn std::any::Any,
    extensions: &mut actix_web::dev::Extensions,
    write_timeout: Duration,
    metrics: &Metrics,
) {
    if let Some(tcp) = io.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let socket = socket2::SockRef::from(tcp);
        if let Err(err) = socket.set_tcp_user_timeout(Some(write_timeout)) {
            log::debug!("TCP_USER_TIMEOUT not set: {err}");
        }
    }
    metrics.http_connections_open.inc();
    extensions.insert(OpenConnection(metrics.http_connections_open.clone()));
}

/// Lives in a connection's extensions; dropped when actix drops the connection.
struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts every answer by route pattern and status, for `/metrics`.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let (route, status) = match &result {
            Ok(res) => (
                res.request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_owned()),
                res.status(),
            ),
            // Errors from middleware (handlers' errors are responses by now).
            Err(err) => (
                "unmatched".to_owned(),
                err.as_response_error().status_code(),
            ),
        };
        metrics.count_request(route, status.as_u16());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn origins() -> Origins {
        Origins::new(&["https://App.example.com/".into()])
    }

    #[test]
    fn configured_origins_match_exactly_ignoring_case_and_trailing_slash() {
        let origins = origins();
        assert!(origins.is_allowed("https://app.example.com"));
        assert!(!origins.is_allowed("http://app.example.com"));
        assert!(!origins.is_allowed("https://app.example.com.evil.io"));
        assert!(!origins.is_allowed("null"));
    }

    #[test]
    fn a_request_is_trusted_from_its_own_host_or_an_allowed_origin_only() {
        let origins = origins();
        let request = |headers: &[(&'static str, &'static str)]| {
            let mut req = TestRequest::post()
                .insert_header(("host", "herald.example.com"))
                .insert_header(("x-forwarded-proto", "https"));
            for header in headers {
                req = req.insert_header(*header);
            }
            req.to_http_request()
        };
        let trusted = |headers| origins.request_is_trusted(&request(headers));
        assert!(trusted(&[("origin", "https://herald.example.com")]));
        assert!(trusted(&[("origin", "https://app.example.com")]));
        assert!(trusted(&[(
            "referer",
            "https://herald.example.com/page?x=1"
        )]));
        assert!(!trusted(&[("origin", "https://evil.example.com")]));
        assert!(
            !trusted(&[("origin", "http://herald.example.com")]),
            "another scheme"
        );
        assert!(
            !trusted(&[("origin", "https://herald.example.com:8443")]),
            "another port"
        );
        assert!(
            !trusted(&[
                ("origin", "https://evil.example.com"),
                ("referer", "https://herald.example.com/")
            ]),
            "Origin decides when present"
        );
        assert!(!trusted(&[("origin", "null")]));
        assert!(!trusted(&[(
            "referer",
            "https://evil.example.com/herald.example.com"
        )]));
        assert!(!trusted(&[]));
    }
}
