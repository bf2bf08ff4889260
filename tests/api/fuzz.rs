//! Property test: any request at all, in any field, gets an answer that is not a 5xx, within a
//! bound, and every 4xx is a JSON error. Methods, paths, path segments, query parameters,
//! headers (tokens, cursors, cookies, origins, content types) and bodies (raw bytes and JSON
//! with the real field names) are all generated; a valid token is used often enough that the
//! handlers behind authentication are reached too.
//!
//! herald runs in a thread of its own; each case is sent from a fresh runtime, so proptest can
//! shrink a failure to a minimal request. `PROPTEST_CASES` runs more.

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::helpers::{SECRET, WAIT, encode, spawn_app_with};

#[derive(Debug, Clone)]
struct Request {
    method: &'static str,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

/// Any text, weighted towards what breaks parsers: SQL, cursor and JSON punctuation, control
/// characters, non-ASCII, long runs.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,30}",
        ".{0,20}",
        "[0-9:~,*-]{0,40}",
        Just(String::new()),
        Just("9999999999999999999999".to_owned()),
        Just("-1".to_owned()),
        Just("1:2:".to_owned()),
        Just("3:3:~3:3:~1".to_owned()),
        Just("' or 1=1 --".to_owned()),
        Just("\u{0}".to_owned()),
        Just("user:1,broadcast,team:a".to_owned()),
        "[a-z:*]{180,260}",
    ]
}

/// `s` without the bytes a header value cannot carry (control characters but tab).
fn header_safe(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(|b| (*b >= 0x20 && *b != 0x7f) || *b == b'\t')
        .collect()
}

/// Bytes a header value may carry (visible ASCII, space, tab, obs-text).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        text().prop_map(|s| header_safe(&s)),
        proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..64),
    ]
}

fn token() -> impl Strategy<Value = String> {
    let auth = herald::auth::Auth::new(SECRET.as_bytes(), None);
    let valid = auth.mint("1", &["team:*".into()], true, 600);
    let expired = auth.mint("1", &[], false, -10);
    prop_oneof![
        6 => Just(valid.clone()),
        1 => Just(expired),
        1 => text(),
        1 => (0..valid.len()).prop_map(move |cut| valid[..cut].to_owned()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("/api/notifications".to_owned()),
        2 => Just("/events".to_owned()),
        1 => Just("/api/notifications/unread_count".to_owned()),
        1 => Just("/api/notifications/read_all".to_owned()),
        2 => text().prop_map(|seg| format!("/api/notifications/{}/read", encode(&seg))),
        1 => (0i64..10).prop_map(|id| format!("/api/notifications/{id}/read")),
        1 => Just("/healthz".to_owned()),
        1 => Just("/readyz".to_owned()),
        1 => Just("/metrics".to_owned()),
        1 => Just("/herald.js".to_owned()),
        1 => Just("/api/push/key".to_owned()),
        3 => Just("/api/push/subscriptions".to_owned()),
        1 => text().prop_map(|p| format!("/{}", encode(&p))),
    ]
}

/// `cursor` is a real one, so that some requests resume, and some long-polls park.
fn query(cursor: String) -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        Just("after".to_owned()),
        Just("limit".to_owned()),
        Just("unread".to_owned()),
        Just("channels".to_owned()),
        Just("wait".to_owned()),
        Just("last_event_id".to_owned()),
        Just("token".to_owned()),
        text(),
    ];
    let value = prop_oneof![
        3 => text(),
        2 => (0u64..80).prop_map(|n| n.to_string()),
        1 => Just("true".to_owned()),
        1 => Just(cursor),
        1 => Just("team:a,user:1".to_owned()),
    ];
    proptest::collection::vec((key, value), 0..5)
}

fn headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    // Most requests authenticate, so that the handlers behind authentication see the rest.
    let authorization = prop_oneof![
        6 => token().prop_map(|t| Some(("authorization", header_safe(&format!("Bearer {t}"))))),
        1 => header_value().prop_map(|v| Some(("authorization", v))),
        2 => Just(None),
    ];
    let header = prop_oneof![
        2 => header_value().prop_map(|v| ("last-event-id", v)),
        1 => token().prop_map(|t| ("cookie", header_safe(&format!("herald_token={t}")))),
        1 => header_value().prop_map(|v| ("cookie", v)),
        1 => header_value().prop_map(|v| ("origin", v)),
        1 => Just(("origin", b"https://evil.example.com".to_vec())),
        1 => header_value().prop_map(|v| ("content-type", v)),
        1 => Just(("content-type", b"application/json".to_vec())),
        1 => Just(("access-control-request-method", b"POST".to_vec())),
    ];
    (authorization, proptest::collection::vec(header, 0..4)).prop_map(|(auth, mut rest)| {
        rest.extend(auth);
        rest
    })
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    let json_value = prop_oneof![
        text().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::json!({"k": [1, "\u{0}", {"x": null}]})),
        Just(serde_json::json!([])),
        Just(serde_json::json!("http://127.0.0.1:9/push/1")),
        Just(serde_json::json!({"p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"})),
    ];
    let field = prop_oneof![
        Just("channel".to_owned()),
        Just("title".to_owned()),
        Just("body".to_owned()),
        Just("kind".to_owned()),
        Just("level".to_owned()),
        Just("data".to_owned()),
        Just("endpoint".to_owned()),
        Just("keys".to_owned()),
        text(),
    ];
    prop_oneof![
        1 => Just(None),
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Some),
        3 => proptest::collection::btree_map(field, json_value, 0..7).prop_map(|fields| {
            Some(serde_json::to_vec(&fields).unwrap())
        }),
    ]
}

fn request(cursor: String) -> impl Strategy<Value = Request> {
    let method = prop_oneof![
        8 => Just("GET"),
        6 => Just("POST"),
        1 => Just("PUT"),
        1 => Just("DELETE"),
        1 => Just("OPTIONS"),
        1 => Just("HEAD"),
    ];
    (method, path(), query(cursor), headers(), body()).prop_map(
        |(method, path, query, headers, body)| Request {
            method,
            path,
            query,
            headers,
            body,
        },
    )
}

/// Sends `request`; `Err` says what was wrong with the answer.
async fn check(address: &str, request: &Request) -> Result<(), String> {
    let query: Vec<String> = request
        .query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let url = format!("{address}{}?{}", request.path, query.join("&"));
    let client = awc::Client::builder().disable_timeout().finish();
    let method = actix_web::http::Method::from_bytes(request.method.as_bytes()).unwrap();
    let mut builder = client.request(method, &url);
    for (name, value) in &request.headers {
        let value = actix_web::http::header::HeaderValue::from_bytes(value)
            .map_err(|e| format!("test generated a bad header: {e}"))?;
        builder = builder.insert_header((*name, value));
    }
    let sent = match &request.body {
        Some(body) => builder.send_body(body.clone()),
        None => builder.send(),
    };
    let mut response = tokio::time::timeout(WAIT, sent)
        .await
        .map_err(|_| "no answer within the bound (a hang)".to_owned())?
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if status.is_server_error() {
        let body = response.body().await.unwrap_or_default();
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    let streaming = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    if status.is_client_error() && request.method != "HEAD" {
        let body = tokio::time::timeout(WAIT, response.body())
            .await
            .map_err(|_| "error body never ended".to_owned())?
            .map_err(|e| format!("error body: {e}"))?;
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| format!("{status} body is not JSON: {body:?}"))?;
        if !json["error"]["code"].is_string() || !json["error"]["message"].is_string() {
            return Err(format!("{status} body is not a JSON error: {json}"));
        }
    } else if status.is_success() && !streaming && request.method != "HEAD" {
        tokio::time::timeout(WAIT, response.body().limit(16 * 1024 * 1024))
            .await
            .map_err(|_| "body never ended".to_owned())?
            .map_err(|e| format!("body: {e}"))?;
    }
    Ok(())
}

#[test]
fn any_request_gets_a_bounded_non_5xx_answer_and_4xx_are_json() {
    let (address_tx, address_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = spawn_app_with(|config| {
                // Long-polls are part of the space; a short cap keeps each case quick.
                config.max_wait_secs = 1;
                // Push on, so its routes are in the space past `push_disabled`.
                config.vapid_private_key = Some(
                    herald::push::keys::Vapid::generate_private_key()
                        .unwrap()
                        .into(),
                );
                config.vapid_subject = Some("mailto:fuzz@example.com".into());
                config.push_hosts = vec!["127.0.0.1:9".into()];
            })
            .await;
            app.insert("user:1", "seed").await;
            let (_, list) = app
                .get("/api/notifications", Some(&app.token_for("1")))
                .await;
            let cursor = list["cursor"].as_str().unwrap().to_owned();
            address_tx.send((app.address.clone(), cursor)).unwrap();
            let _ = stop_rx.await;
        })
    });
    let (address, cursor) = address_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("herald starts");

    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&request(cursor), |request| {
        actix_web::rt::System::new()
            .block_on(check(&address, &request))
            .map_err(TestCaseError::fail)
    });
    let _ = stop_tx.send(());
    server.join().unwrap();
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
