//! Limits a public service needs, and who may call it from which origin.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, WAIT, spawn_app_with};

/// A raw GET of `path`; status, the `Retry-After` header and the JSON body.
async fn get_with_retry_after(app: &TestApp, path: &str) -> (StatusCode, Option<String>, Value) {
    let mut response = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("answers");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    // A stream that was let in would never end its body: say so instead of waiting.
    let body = match tokio::time::timeout(WAIT, response.body()).await {
        Ok(body) => body.unwrap_or_default(),
        Err(_) => return (response.status(), retry_after, Value::Null),
    };
    (
        response.status(),
        retry_after,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[actix_web::test]
async fn past_the_per_user_limit_streams_and_long_polls_get_503_with_retry_after() {
    let app = spawn_app_with(|config| config.max_streams_per_user = 2).await;
    let token = app.token_for("1");
    let first = app.open_events(&token, "", None).await;
    let _second = app.open_events(&token, "", None).await;

    let (status, retry_after, body) =
        get_with_retry_after(&app, &format!("/events?token={token}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry_after.as_deref(), Some("30"));
    assert_eq!(body["error"]["code"], "too_many_streams");

    let (_, list) = app.get("/api/notifications", Some(&token)).await;
    let cursor = list["cursor"].as_str().unwrap();
    let (status, _, body) = get_with_retry_after(
        &app,
        &format!("/api/notifications?token={token}&after={cursor}&wait=5"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // Plain requests are not held open, so they are not counted.
    let (status, _) = app.get("/api/notifications", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    // Another user is not affected.
    let _other = app.open_events(&app.token_for("2"), "", None).await;

    drop(first);
    app.wait_for_metric("herald_streams_open", 2).await;
    app.open_events(&token, "", None).await;
}

#[actix_web::test]
async fn past_the_total_limit_everyone_gets_503() {
    let app = spawn_app_with(|config| config.max_streams = 2).await;
    let _a = app.open_events(&app.token_for("1"), "", None).await;
    let _b = app.open_events(&app.token_for("2"), "", None).await;

    let token = app.token_for("3");
    let (status, retry_after, body) =
        get_with_retry_after(&app, &format!("/events?token={token}")).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(retry_after.is_some());
    assert_eq!(body["error"]["code"], "too_many_streams");
}

#[actix_web::test]
async fn the_long_poll_wait_is_capped_as_configured() {
    let app = spawn_app_with(|config| config.max_wait_secs = 5).await;
    let token = app.token_for("1");
    let (_, list) = app.get("/api/notifications", Some(&token)).await;
    let cursor = list["cursor"].as_str().unwrap().to_owned();
    app.insert("user:1", "already there").await;

    let (status, body) = app
        .get(
            &format!("/api/notifications?after={cursor}&wait=6"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_wait");

    let (status, body) = app
        .get(
            &format!("/api/notifications?after={cursor}&wait=5"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["notifications"][0]["title"], "already there");
}

#[actix_web::test]
async fn a_request_head_over_the_limit_gets_431_json() {
    let app = spawn_app_with(|config| config.max_header_bytes = 4096).await;
    let mut response = app
        .client
        .get(format!("{}/api/notifications", app.address))
        .insert_header(("cookie", format!("junk={}", "x".repeat(5000))))
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();

    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(body["error"]["code"], "headers_too_large");
    let (status, _) = app
        .get(&format!("/healthz?pad={}", "y".repeat(1000)), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Reads from `socket` until the server closes it; what it sent. Panics after [`WAIT`].
pub async fn read_until_closed(socket: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&received).into_owned()
}

/// True if the server has not closed `socket` (nor sent anything) for `quiet`.
async fn still_open_after(socket: &mut TcpStream, quiet: Duration) -> bool {
    let mut buf = [0u8; 1];
    tokio::time::timeout(quiet, socket.read(&mut buf))
        .await
        .is_err()
}

// The two timeout tests set a timeout above actix's 5 s default and check the connection is
// still open past the default: a setting that was not applied fails them (load can only make
// a close later, never earlier).
const CONFIGURED: u64 = 7;
const PAST_THE_DEFAULT: Duration = Duration::from_millis(6000);

#[actix_web::test]
async fn a_client_too_slow_to_send_its_request_is_cut_off_as_configured() {
    let app = spawn_app_with(|config| config.request_timeout_secs = CONFIGURED).await;
    let mut socket = app.raw_socket().await;
    // Half a request head, then nothing: a slowloris.
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();

    assert!(still_open_after(&mut socket, PAST_THE_DEFAULT).await);
    let answer = read_until_closed(&mut socket).await;

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

#[actix_web::test]
async fn an_idle_keep_alive_connection_is_closed_as_configured() {
    let app = spawn_app_with(|config| config.keep_alive_secs = CONFIGURED).await;
    let mut socket = app.raw_socket().await;
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 1024];
    let n = socket.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));

    assert!(still_open_after(&mut socket, PAST_THE_DEFAULT).await);
    let rest = read_until_closed(&mut socket).await;

    assert_eq!(rest, "", "closed without another word");
}

const APP_ORIGIN: &str = "https://app.example.com";

async fn spawn_with_app_origin() -> TestApp {
    spawn_app_with(|config| config.allowed_origins = vec![APP_ORIGIN.into()]).await
}

#[actix_web::test]
async fn cors_lets_allowed_origins_in_and_no_one_else() {
    let app = spawn_with_app_origin().await;
    let preflight_for = |origin: &'static str, method: &'static str| {
        app.client
            .request(
                actix_web::http::Method::OPTIONS,
                format!("{}/api/notifications/read_all", app.address),
            )
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", method))
            .insert_header(("access-control-request-headers", "authorization"))
            .send()
    };
    let preflight = |origin: &'static str| preflight_for(origin, "POST");

    let allowed = preflight(APP_ORIGIN).await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        APP_ORIGIN
    );
    let methods = allowed
        .headers()
        .get("access-control-allow-methods")
        .unwrap();
    assert!(methods.to_str().unwrap().contains("POST"));
    let headers = allowed
        .headers()
        .get("access-control-allow-headers")
        .unwrap();
    // Header names are case-insensitive; actix-cors lists them in lower case.
    assert!(
        headers
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("authorization")
    );

    let mut refused = preflight("https://evil.example.com").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let body: Value = serde_json::from_slice(&refused.body().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    // herald.js's disablePush sends DELETE; a method herald lacks is named as such.
    let delete = preflight_for(APP_ORIGIN, "DELETE").await.unwrap();
    assert!(delete.status().is_success(), "{}", delete.status());
    let mut put = preflight_for(APP_ORIGIN, "PUT").await.unwrap();
    assert_eq!(put.status(), StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_slice(&put.body().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    let token = app.token_for("1");
    for (origin, readable) in [(APP_ORIGIN, true), ("https://evil.example.com", false)] {
        let response = app
            .client
            .get(format!("{}/api/notifications", app.address))
            .bearer_auth(&token)
            .insert_header(("origin", origin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let allow = response.headers().get("access-control-allow-origin");
        assert_eq!(allow.is_some(), readable, "{origin}");
        assert!(response.headers().get("vary").is_some());
    }
}

#[actix_web::test]
async fn a_cookie_authenticated_post_needs_a_trusted_origin() {
    let app = spawn_with_app_origin().await;
    let token = app.token_for("1");
    let own_origin = app.address.clone();
    let read_all = async |origin: Option<&str>, bearer: bool| {
        let path = "/api/notifications/read_all";
        if bearer {
            return app.post(path, Some(&token), None).await;
        }
        let headers: Vec<_> = origin
            .map(|origin| ("origin", origin))
            .into_iter()
            .collect();
        by_cookie(&app, Method::POST, path, &token, &headers).await
    };
    app.insert("user:1", "unread").await;

    // What a page on another site can make the browser send: the cookie rides along.
    for origin in [Some("https://evil.example.com"), Some("null"), None] {
        let (status, body) = read_all(origin, false).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?}: {body}");
        assert_eq!(body["error"]["code"], "untrusted_origin");
    }
    let (_, count) = app
        .get("/api/notifications/unread_count", Some(&token))
        .await;
    assert_eq!(count["unread_count"], 1, "refused requests changed nothing");

    // The demo page on herald itself, the app's own origin, and any Bearer caller may.
    let (status, body) = read_all(Some(&own_origin), false).await;
    assert_eq!((status, &body["marked"]), (StatusCode::OK, &1.into()));
    for (origin, bearer) in [(Some(APP_ORIGIN), false), (None, true)] {
        let (status, body) = read_all(origin, bearer).await;
        assert_eq!(status, StatusCode::OK, "{origin:?} bearer={bearer}: {body}");
    }
    // Reading by cookie needs no Origin: another site cannot read the answer anyway.
    let path = "/api/notifications/unread_count";
    let (status, body) = by_cookie(&app, Method::GET, path, &token, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_web::test]
async fn presence_by_cookie_needs_a_trusted_origin_too() {
    let app = spawn_with_app_origin().await;
    let token = app.token_with("1", &["room:5"], false);
    let path = "/api/notifications?channels=room:5&presence=room:5";
    let watcher = app.token_with("2", &["room:5"], false);
    let who = async || {
        let (status, body) = app
            .get("/api/presence?channels=room:5", Some(&watcher))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["presence"]["room:5"].clone()
    };

    // An <img> or an EventSource on another site: the cookie rides along, Origin does not
    // lie, and a page may send no Referer at all.
    for headers in [
        &[("origin", "https://evil.example.com")][..],
        &[("referer", "https://evil.example.com/page")],
        &[],
    ] {
        let (status, body) = by_cookie(&app, Method::GET, path, &token, headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        assert_eq!(body["error"]["code"], "untrusted_origin");
    }
    assert_eq!(
        who().await,
        serde_json::json!([]),
        "nobody was made present"
    );

    // The app's own page may; so may any page reading without presence.
    let (status, body) =
        by_cookie(&app, Method::GET, path, &token, &[("origin", APP_ORIGIN)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(who().await[0]["user"], "1");
    let (status, body) = by_cookie(&app, Method::GET, "/api/notifications", &token, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A request authenticated by the `herald_token` cookie alone, with `headers` added.
async fn by_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .insert_header(("cookie", format!("herald_token={token}")));
    for &(name, value) in headers {
        request = request.insert_header((name, value));
    }
    let mut response = request.send().await.unwrap();
    let body = serde_json::from_slice(&response.body().await.unwrap()).unwrap_or(Value::Null);
    (response.status(), body)
}

/// Sends a POST /api/notifications head promising 1,000 bytes of body, then only `{`.
async fn stalled_publish(app: &TestApp, token: &str) -> TcpStream {
    let mut socket = app.raw_socket().await;
    let head = format!(
        "POST /api/notifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
}

#[actix_web::test]
async fn a_body_is_never_waited_for_without_the_publish_scope() {
    let app = spawn_app_with(|config| config.request_timeout_secs = 60).await;
    let mut socket = stalled_publish(&app, &app.token_for("1")).await;

    // Refused from the head alone: well before the 60 s the body could take.
    let answer = read_until_closed(&mut socket).await;

    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains(r#""code":"forbidden""#), "{answer}");
}

#[actix_web::test]
async fn a_stalled_body_is_cut_off_with_408_and_holds_a_place_under_the_limits_until_then() {
    let app = spawn_app_with(|config| {
        config.request_timeout_secs = 3;
        config.max_streams_per_user = 2;
    })
    .await;
    let publisher = app.token_with("backend", &[], true);
    let mut first = stalled_publish(&app, &publisher).await;
    let mut second = stalled_publish(&app, &publisher).await;
    app.wait_for_metric("herald_request_bodies_pending", 2)
        .await;

    let (status, body) = app
        .post("/api/notifications", Some(&publisher), Some("{}"))
        .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams");

    for socket in [&mut first, &mut second] {
        let answer = read_until_closed(socket).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    }
    // Their places are free again.
    let (status, body) = app
        .post(
            "/api/notifications",
            Some(&publisher),
            Some(r#"{"channel": "user:1", "title": "after the stall"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
