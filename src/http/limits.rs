//! Limits on what a connection may cost before a route runs: the size of a request head, and
//! how a connection is tuned and counted from accept to close.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use prometheus_client::metrics::gauge::Gauge;

use crate::error::AppError;
use crate::metrics::Metrics;

/// The most request-head bytes (target and headers) herald reads, as configured.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimit(pub usize);

/// Refuses a request whose head is over [`HeadLimit`] with a JSON 431 (actix itself cuts
/// off at 128 KiB or 96 headers, with an empty 431, before this runs), and one whose query
/// is not UTF-8 once percent-decoded with a JSON 400: the extractors would read `%FF` as
/// U+FFFD, a different value from the one sent.
pub async fn limit_head(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<HeadLimit>>()
        .map_or(usize::MAX, |limit| limit.0);
    // The target's length as sent, without rendering it into a new string for every request.
    let uri = req.uri();
    let target = uri.scheme_str().map_or(0, |scheme| scheme.len() + 3)
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len())
        + uri
            .path_and_query()
            .map_or(0, |target| target.as_str().len());
    let size = target
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
    if !query_is_utf8(req.query_string()) {
        let response = AppError::bad_request(
            "invalid_query",
            "the query string is not UTF-8 once percent-decoded",
        )
        .error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

fn query_is_utf8(query: &str) -> bool {
    // Only an escape of a byte past ASCII (`%80`-`%FF`) can make it invalid; cursors and
    // channel lists have none, so polls pay for a scan, not for a decoded copy.
    if !query.contains('%') {
        return true;
    }
    let high_escape = query
        .as_bytes()
        .windows(2)
        .any(|pair| pair[0] == b'%' && matches!(pair[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'));
    !high_escape
        || percent_encoding::percent_decode_str(query)
            .decode_utf8()
            .is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_must_decode_to_utf8() {
        assert!(query_is_utf8("channels=order:1,user:2&after=1:2:"));
        assert!(query_is_utf8("channels=caf%C3%A9&x=%20"));
        assert!(!query_is_utf8("channels=a%FFb"));
        assert!(!query_is_utf8("channels=%C3"));
        assert!(query_is_utf8("after=1%3A2%3A&channels=user%3A1"));
        assert!(!query_is_utf8("a=%e9"));
    }
}
