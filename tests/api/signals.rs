//! `POST /api/signals`: live signals to open streams, on every instance (SPEC section 8).

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, spawn_app, spawn_configured, test_config};

async fn signal(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.post("/api/signals", Some(token), Some(&body.to_string()))
        .await
}

#[actix_web::test]
async fn a_signal_reaches_every_open_stream_on_its_channel_and_moves_no_cursor() {
    let app = spawn_app().await;
    let ada = app.token_with("1", &["project:5"], false);
    let bob = app.token_with("2", &["project:5"], false);
    let mut ada_events = app.open_events(&ada, "channels=project:5", None).await;
    let mut bob_events = app.open_events(&bob, "channels=project:5", None).await;

    let (status, body) = signal(
        &app,
        &ada,
        json!({"channel": "project:5", "kind": "typing", "data": {"task": 17}}),
    )
    .await;

    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"delivered_to": 2}));
    for events in [&mut ada_events, &mut bob_events] {
        let event = events.next("signal").await;
        let s = event.json();
        assert_eq!(s["channel"], "project:5");
        assert_eq!(s["kind"], "typing");
        assert_eq!(s["from"], "1");
        assert_eq!(s["data"], json!({"task": 17}));
        assert!(chrono::DateTime::parse_from_rfc3339(s["at"].as_str().unwrap()).is_ok());
        assert_eq!(event.id, events.position, "a signal carries no id");
    }
}

#[actix_web::test]
async fn a_signal_is_never_stored_replayed_or_polled() {
    let app = spawn_app().await;
    let ada = app.token_with("1", &["project:5"], false);
    let mut events = app.open_events(&ada, "channels=project:5", None).await;
    signal(
        &app,
        &ada,
        json!({"channel": "project:5", "kind": "typing"}),
    )
    .await;
    let first = events.next("signal").await;
    assert_eq!(first.json()["data"], Value::Null, "data defaults to null");
    app.insert("project:5", "after the signal").await;
    let resume_from = events.next("notification").await.id;
    drop(events);

    let (_, list) = app
        .get("/api/notifications?channels=project:5", Some(&ada))
        .await;
    let titles: Vec<&str> = list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["after the signal"]);
    let mut resumed = app
        .open_events(&ada, "channels=project:5", resume_from.as_deref())
        .await;
    assert!(resumed.take_replayed().is_empty(), "nothing to replay");
    let before = app.list_cursor(&ada, "channels=project:5").await;
    let mut from_before = app
        .open_events(&ada, "channels=project:5", Some(&before))
        .await;
    assert!(from_before.take_replayed().is_empty());
    app.insert("project:5", "next").await;
    assert_eq!(from_before.next_any().await.unwrap().event, "notification");
    assert_eq!(resumed.next_any().await.unwrap().event, "notification");
}

#[actix_web::test]
async fn only_streams_that_show_the_channel_get_a_signal() {
    let app = spawn_app().await;
    let granted = app.token_with("1", &["project:*"], false);
    let outsider = app.token_for("3");
    // User 1's inbox stream, and user 3's: neither shows project:5.
    let mut inbox = app.open_events(&granted, "", None).await;
    let mut other = app.open_events(&outsider, "", None).await;
    let mut shown = app.open_events(&granted, "channels=project:5", None).await;

    let (status, body) = signal(
        &app,
        &outsider,
        json!({"channel": "project:5", "kind": "typing"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = signal(
        &app,
        &granted,
        json!({"channel": "project:5", "kind": "typing"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::ACCEPTED, json!({"delivered_to": 1}))
    );
    shown.next("signal").await;

    // A notification after the signal is the next thing the others see.
    app.insert("broadcast", "fence").await;
    for events in [&mut inbox, &mut other] {
        let next = events.next_any().await.unwrap();
        assert_eq!(next.event, "notification", "{next:?}");
    }
}

#[actix_web::test]
async fn broadcast_and_other_inboxes_need_the_publish_scope() {
    let app = spawn_app().await;
    let plain = app.token_for("1");
    let publisher = app.token_with("ops", &[], true);
    let mut listener = app.open_events(&app.token_for("2"), "", None).await;

    for channel in ["broadcast", "user:2"] {
        let (status, body) = signal(&app, &plain, json!({"channel": channel, "kind": "k"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{channel}: {body}");
    }
    let (status, _) = signal(&app, &plain, json!({"channel": "user:1", "kind": "k"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "one's own inbox is one's own");
    for channel in ["broadcast", "user:2"] {
        let (status, body) = signal(
            &app,
            &publisher,
            json!({"channel": channel, "kind": channel}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{channel}: {body}");
        let event = listener.next("signal").await;
        assert_eq!(event.json()["kind"], channel);
        assert_eq!(event.json()["from"], "ops");
    }
}

#[actix_web::test]
async fn bad_signals_get_clear_errors() {
    let app = spawn_app().await;
    let token = app.token_with("1", &["project:5"], false);
    let cases = [
        (
            json!({"channel": "project:5", "kind": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_signal",
        ),
        (
            json!({"channel": "project:5", "kind": "k".repeat(65)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_signal",
        ),
        (
            json!({"channel": "project:5", "kind": "a\nb"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_signal",
        ),
        (
            json!({"channel": "no spaces", "kind": "k"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_signal",
        ),
        (
            json!({"channel": "project:5"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"channel": "project:5", "kind": "k", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"channel": "project:5", "kind": "k", "data": "x".repeat(4096)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = signal(&app, &token, body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let (status, answer) = app
        .post("/api/signals", Some(&token), Some("{not json"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = app
        .post(
            "/api/signals",
            None,
            Some(r#"{"channel": "broadcast", "kind": "k"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Just under the limit is fine.
    let data = "x".repeat(4096 - 60);
    let body = json!({"channel": "project:5", "kind": "k", "data": data}).to_string();
    assert!(body.len() <= 4096);
    let (status, answer) = app.post("/api/signals", Some(&token), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

#[actix_web::test]
async fn past_the_burst_a_user_gets_429_with_retry_after_and_others_do_not() {
    let app = spawn_app().await;
    let token = app.token_with("1", &["project:5"], false);
    let body = json!({"channel": "project:5", "kind": "typing"}).to_string();
    // Sent at once: the bucket holds 40 and refills 20 per second, far fewer than 60 arrive
    // while the rest are sent.
    let answers = futures_util::future::join_all((0..60).map(|_| {
        app.client
            .post(format!("{}/api/signals", app.address))
            .bearer_auth(&token)
            .insert_header(("content-type", "application/json"))
            .send_body(body.clone())
    }))
    .await;
    let mut accepted = 0;
    let mut limited = None;
    for answer in answers {
        let mut answer = answer.expect("answers");
        match answer.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = answer.headers().get("retry-after").cloned();
                let body: Value = serde_json::from_slice(&answer.body().await.unwrap()).unwrap();
                limited = Some((retry_after, body));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(accepted >= 40, "the burst is allowed: {accepted}");
    let (retry_after, body) = limited.expect("some were refused");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(retry_after.unwrap(), "1");
    // Another user's budget is their own.
    let other = app.token_with("2", &["project:5"], false);
    let (status, _) = app
        .post("/api/signals", Some(&other), Some(&body_for("project:5")))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

fn body_for(channel: &str) -> String {
    json!({"channel": channel, "kind": "typing"}).to_string()
}

#[actix_web::test]
async fn a_signal_sent_to_one_instance_reaches_streams_on_another() {
    let a = spawn_app().await;
    let b = spawn_configured(TestDb::existing(&a.db.url), test_config(&a.db.url)).await;
    let token = a.token_with("1", &["order:17"], false);
    let mut on_a = a.open_events(&token, "channels=order:17", None).await;
    let mut on_b = b.open_events(&token, "channels=order:17", None).await;

    for i in 0..3 {
        let data = json!({"lat": 52.5 + f64::from(i) / 100.0, "lng": 13.4});
        let (status, body) = signal(
            &a,
            &token,
            json!({"channel": "order:17", "kind": "location", "data": data}),
        )
        .await;
        // Counted on the instance that took the request.
        assert_eq!(
            (status, body),
            (StatusCode::ACCEPTED, json!({"delivered_to": 1}))
        );
        for events in [&mut on_a, &mut on_b] {
            // Once each, in the order sent: never twice on the sender's own instance.
            assert_eq!(events.next_any().await.unwrap().json()["data"], data);
        }
    }
}
