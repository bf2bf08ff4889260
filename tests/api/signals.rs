//! `POST /api/signals`: live signals to open streams, on every instance (SPEC section 8).

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, WAIT, spawn_app, spawn_configured, test_config};

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

// Kept values (SPEC section 12).

/// `GET /api/signals?<query>` as `token`: the kept values, after checking the answer is 200.
async fn kept(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/signals?{query}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["signals"].as_array().expect("a list").clone()
}

/// What `GET /api/signals?<query>` answers for each kept value: (kind, data).
async fn kept_data(app: &TestApp, token: &str, query: &str) -> Vec<(String, Value)> {
    kept(app, token, query)
        .await
        .into_iter()
        .map(|s| {
            assert_eq!(s["kept"], true, "{s}");
            (s["kind"].as_str().unwrap().to_owned(), s["data"].clone())
        })
        .collect()
}

/// The rows of `herald_kept_signals`, whether expired or not.
async fn kept_rows(app: &TestApp) -> i64 {
    app.pg()
        .await
        .query_one("select count(*) from herald_kept_signals", &[])
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn a_kept_signal_goes_live_and_a_stream_opened_later_starts_with_it_before_live_ones() {
    let app = spawn_app().await;
    let courier = app.token_with("courier", &["order:*"], false);
    let customer = app.token_with("1", &["order:17"], false);
    let mut before = app.open_events(&customer, "channels=order:17", None).await;

    let position = json!({"lat": 52.52, "lng": 13.40});
    let (status, body) = signal(
        &app,
        &courier,
        json!({"channel": "order:17", "kind": "location", "data": position, "keep": 300}),
    )
    .await;

    assert_eq!(
        (status, body),
        (StatusCode::ACCEPTED, json!({"delivered_to": 1}))
    );
    let live = before.next("signal").await.json();
    assert_eq!(live["data"], position);
    assert_eq!(live.get("kept"), None, "a live signal is not marked kept");
    // A page that opens now starts from where the courier is: first thing, no id.
    let mut later = app.open_events(&customer, "channels=order:17", None).await;
    let first = later.take_replayed();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].event, "signal");
    assert_eq!(first[0].id, None, "a kept value moves no cursor");
    let value = first[0].json();
    assert_eq!(value["kept"], true);
    assert_eq!(value["channel"], "order:17");
    assert_eq!(value["kind"], "location");
    assert_eq!(value["from"], "courier");
    assert_eq!(value["data"], position);
    assert_eq!(value["at"], live["at"], "the event as it was sent");
    // Then live signals, as usual.
    signal(
        &app,
        &courier,
        json!({"channel": "order:17", "kind": "eta", "data": 5}),
    )
    .await;
    let next = later.next_any().await.unwrap();
    assert_eq!(
        (next.event.as_str(), next.json()["kind"].clone()),
        ("signal", json!("eta"))
    );
    assert_eq!(next.json().get("kept"), None);
}

#[actix_web::test]
async fn a_newer_kept_signal_replaces_the_older_and_an_older_one_arriving_late_does_not() {
    let app = spawn_app().await;
    let token = app.token_with("courier", &["order:17"], false);
    for (kind, data) in [("location", 1), ("eta", 10), ("location", 2)] {
        let (status, body) = signal(
            &app,
            &token,
            json!({"channel": "order:17", "kind": kind, "data": data, "keep": 60}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    // One value per kind, the newest; oldest first.
    let expected = vec![
        ("eta".to_owned(), json!(10)),
        ("location".to_owned(), json!(2)),
    ];
    assert_eq!(kept_data(&app, &token, "channels=order:17").await, expected);
    // A request that left an instance earlier than the last one, stored after it.
    app.sql(
        "select herald_keep_signal('order:17', 'location',
                '{\"channel\":\"order:17\",\"kind\":\"location\",\"from\":\"courier\",\"data\":1,\"at\":\"x\"}',
                now() - interval '1 minute', 60)",
    )
    .await;
    assert_eq!(kept_data(&app, &token, "channels=order:17").await, expected);
    let mut stream = app.open_events(&token, "channels=order:17", None).await;
    let first: Vec<Value> = stream.take_replayed().iter().map(|e| e.json()).collect();
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(
        (first[0]["kind"].clone(), first[0]["data"].clone()),
        (json!("eta"), json!(10))
    );
    assert_eq!(
        (first[1]["kind"].clone(), first[1]["data"].clone()),
        (json!("location"), json!(2))
    );
}

#[actix_web::test]
async fn an_expired_kept_value_is_never_returned_and_upkeep_deletes_it() {
    let app = spawn_app().await;
    let token = app.token_with("courier", &["order:*"], false);
    for channel in ["order:17", "order:18"] {
        signal(
            &app,
            &token,
            json!({"channel": channel, "kind": "location", "keep": 60}),
        )
        .await;
    }
    // Upkeep's delete waits for this lock; the update below does not (it changes no key).
    // So the expired row stays while we look, and what is left out is left out by the reads.
    let holder = app.pg().await;
    holder
        .batch_execute(
            "begin; select from herald_kept_signals where channel = 'order:17' for key share",
        )
        .await
        .unwrap();
    app.sql(
        "update herald_kept_signals set expires_at = now() - interval '1 millisecond'
         where channel = 'order:17'",
    )
    .await;

    let left = kept(&app, &token, "channels=order:17,order:18").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["channel"], "order:18");
    let mut stream = app.open_events(&token, "channels=order:17", None).await;
    assert!(stream.take_replayed().is_empty());
    assert_eq!(kept_rows(&app).await, 2, "still stored, only expired");

    holder.batch_execute("rollback").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while kept_rows(&app).await > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upkeep did not delete the expired value within {WAIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(kept(&app, &token, "channels=order:18").await.len(), 1);
}

#[actix_web::test]
async fn kept_values_are_shared_by_every_instance() {
    let a = spawn_app().await;
    let b = spawn_configured(TestDb::existing(&a.db.url), test_config(&a.db.url)).await;
    let token = a.token_with("1", &["order:17"], false);
    let mut live_on_b = b.open_events(&token, "channels=order:17", None).await;

    signal(
        &a,
        &token,
        json!({"channel": "order:17", "kind": "location", "data": 7, "keep": 60}),
    )
    .await;

    assert_eq!(live_on_b.next("signal").await.json()["data"], 7);
    let mut opened_on_b = b.open_events(&token, "channels=order:17", None).await;
    let first = opened_on_b.take_replayed();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        (
            first[0].json()["data"].clone(),
            first[0].json()["kept"].clone()
        ),
        (json!(7), json!(true))
    );
    assert_eq!(
        kept_data(&b, &token, "channels=order:17").await,
        vec![("location".to_owned(), json!(7))]
    );
}

#[actix_web::test]
async fn kept_values_are_never_given_to_a_token_that_cannot_read_their_channel() {
    let app = spawn_app().await;
    let courier = app.token_with("courier", &["order:*"], false);
    let owner = app.token_for("1");
    let other_order = app.token_with("2", &["order:18"], false);
    signal(
        &app,
        &courier,
        json!({"channel": "order:17", "kind": "location", "keep": 60}),
    )
    .await;
    signal(
        &app,
        &owner,
        json!({"channel": "user:1", "kind": "draft", "keep": 60}),
    )
    .await;

    // Asked for by name: refused, as everywhere.
    let (status, body) = app
        .get(
            "/api/signals?channels=order:17,order:18",
            Some(&other_order),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(body["error"]["channels"], json!(["order:17"]));
    for query in ["channels=user:1", "channels=order:17"] {
        let (status, _) = app
            .get(&format!("/api/signals?{query}"), Some(&other_order))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{query}");
        let refused = app.try_open_events(&other_order, query, None).await;
        assert_eq!(
            refused.err().as_deref(),
            Some("status 403 Forbidden"),
            "{query}"
        );
    }
    // Not asked for: not there.
    assert!(
        kept(&app, &other_order, "channels=order:18")
            .await
            .is_empty()
    );
    assert!(
        kept(&app, &other_order, "").await.is_empty(),
        "user 2's inbox"
    );
    for query in ["", "channels=order:18"] {
        let mut stream = app.open_events(&other_order, query, None).await;
        assert!(stream.take_replayed().is_empty(), "{query}");
    }
    // The inbox's own owner gets theirs, by default as on a stream.
    assert_eq!(
        kept_data(&app, &owner, "").await,
        vec![("draft".to_owned(), Value::Null)]
    );
    let mut inbox = app.open_events(&owner, "", None).await;
    assert_eq!(inbox.take_replayed()[0].json()["kind"], "draft");
}

#[actix_web::test]
async fn get_api_signals_answers_the_kept_values_of_the_channels_asked_for() {
    let app = spawn_app().await;
    let token = app.token_with("1", &["order:*"], false);
    for (channel, kind) in [
        ("order:17", "location"),
        ("order:18", "location"),
        ("order:17", "eta"),
    ] {
        signal(
            &app,
            &token,
            json!({"channel": channel, "kind": kind, "data": {"c": channel}, "keep": 60}),
        )
        .await;
    }
    // Not kept: not there.
    signal(
        &app,
        &token,
        json!({"channel": "order:17", "kind": "typing"}),
    )
    .await;

    let signals = kept(&app, &token, "channels=order:17,order:18").await;
    let seen: Vec<(Value, Value)> = signals
        .iter()
        .map(|s| (s["channel"].clone(), s["kind"].clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (json!("order:17"), json!("location")),
            (json!("order:18"), json!("location")),
            (json!("order:17"), json!("eta")),
        ],
        "oldest first"
    );
    for s in &signals {
        assert_eq!(s["kept"], true);
        assert_eq!(s["from"], "1");
        assert_eq!(s["data"], json!({"c": s["channel"]}));
        assert!(chrono::DateTime::parse_from_rfc3339(s["at"].as_str().unwrap()).is_ok());
    }
    assert_eq!(
        kept(&app, &token, "channels=order:19").await,
        Vec::<Value>::new()
    );

    for (query, status, code) in [
        ("channels=", StatusCode::BAD_REQUEST, "invalid_channels"),
        (
            "channels=order%2017",
            StatusCode::BAD_REQUEST,
            "invalid_channels",
        ),
        (
            "channels=order:*",
            StatusCode::BAD_REQUEST,
            "invalid_channels",
        ),
    ] {
        let (got, body) = app
            .get(&format!("/api/signals?{query}"), Some(&token))
            .await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{query}: {body}"
        );
    }
    let (status, body) = app.get("/api/signals?channels=order:17", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[actix_web::test]
async fn a_bad_keep_is_refused_and_nothing_is_kept_or_sent() {
    let app = spawn_app().await;
    let token = app.token_with("1", &["order:17"], false);
    let mut stream = app.open_events(&token, "channels=order:17", None).await;

    for keep in [
        json!(0),
        json!(86401),
        json!("x"),
        json!(-1),
        json!(1.5),
        json!(true),
        json!({}),
    ] {
        let (status, body) = signal(
            &app,
            &token,
            json!({"channel": "order:17", "kind": "location", "keep": keep}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{keep}: {body}");
        assert_eq!(body["error"]["code"], "invalid_signal", "{keep}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("keep"),
            "{body}"
        );
    }
    let too_large =
        json!({"channel": "order:17", "kind": "k", "data": "x".repeat(4096), "keep": 60});
    let (status, _) = signal(&app, &token, too_large).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // The limits themselves are fine; null is no keep at all.
    for (kind, keep) in [
        ("shortest", json!(1)),
        ("longest", json!(86400)),
        ("none", Value::Null),
    ] {
        let (status, body) = signal(
            &app,
            &token,
            json!({"channel": "order:17", "kind": kind, "keep": keep}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{keep}: {body}");
    }

    // None of the refused ones went out before the accepted ones.
    for kind in ["shortest", "longest", "none"] {
        assert_eq!(stream.next("signal").await.json()["kind"], kind);
    }
    let kinds: Vec<String> = kept_data(&app, &token, "channels=order:17")
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    // `shortest` may have expired already.
    assert!(kinds.contains(&"longest".to_owned()), "{kinds:?}");
    assert!(
        kinds.iter().all(|k| k == "shortest" || k == "longest"),
        "{kinds:?}"
    );
    assert!(kept_rows(&app).await <= 2);
}

// herald_signal: signals sent with SQL.

#[actix_web::test]
async fn herald_signal_is_delivered_when_its_transaction_commits_and_never_if_it_rolls_back() {
    let a = spawn_app().await;
    let b = spawn_configured(TestDb::existing(&a.db.url), test_config(&a.db.url)).await;
    let token = a.token_with("1", &["order:17"], false);
    let mut on_a = a.open_events(&token, "channels=order:17", None).await;
    let mut on_b = b.open_events(&token, "channels=order:17", None).await;
    let marker = |name: &str| format!("select herald_signal('order:17', 'marker', '\"{name}\"')");

    let tx = a.pg().await;
    tx.batch_execute("begin; select herald_signal('order:17', 'location', '{\"lat\": 52.5}', 60)")
        .await
        .unwrap();
    // Sent with SQL too, after it but committed first: it must be the first to arrive.
    a.sql(&marker("before commit")).await;
    for events in [&mut on_a, &mut on_b] {
        let first = events.next("signal").await.json();
        assert_eq!(
            (first["kind"].clone(), first["data"].clone()),
            (json!("marker"), json!("before commit"))
        );
    }
    assert!(
        kept(&a, &token, "channels=order:17").await.is_empty(),
        "not kept before commit"
    );
    tx.batch_execute("commit").await.unwrap();

    for events in [&mut on_a, &mut on_b] {
        let event = events.next("signal").await;
        assert_eq!(event.id, events.position, "no cursor move");
        let s = event.json();
        assert_eq!(s["channel"], "order:17");
        assert_eq!(s["kind"], "location");
        assert_eq!(s["data"], json!({"lat": 52.5}));
        assert_eq!(s["from"], Value::Null, "no user sent it");
        assert!(chrono::DateTime::parse_from_rfc3339(s["at"].as_str().unwrap()).is_ok());
        assert_eq!(s.get("kept"), None);
    }
    assert_eq!(
        kept_data(&a, &token, "channels=order:17").await,
        vec![("location".to_owned(), json!({"lat": 52.5}))]
    );

    tx.batch_execute(
        "begin; select herald_signal('order:17', 'location', '{\"lat\": 0}', 60); rollback",
    )
    .await
    .unwrap();
    a.sql(&marker("after rollback")).await;
    for events in [&mut on_a, &mut on_b] {
        let next = events.next("signal").await.json();
        assert_eq!(
            next["data"], "after rollback",
            "the rolled back signal never comes"
        );
    }
    assert_eq!(
        kept_data(&a, &token, "channels=order:17").await,
        vec![("location".to_owned(), json!({"lat": 52.5}))],
        "nor is it kept"
    );
    // A stream opened now starts with the committed value.
    let mut opened = b.open_events(&token, "channels=order:17", None).await;
    let first = opened.take_replayed();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].json()["from"], Value::Null);
    assert_eq!(first[0].json()["kept"], true);
}

#[actix_web::test]
async fn herald_signal_refuses_what_post_api_signals_refuses() {
    let app = spawn_app().await;
    let token = app.token_with("1", &["order:17"], false);
    let mut stream = app.open_events(&token, "channels=order:17", None).await;
    let pg = app.pg().await;
    let big = "x".repeat(4096);
    let cases: [(&str, &[&(dyn tokio_postgres::types::ToSql + Sync)], &str); 9] = [
        (
            "select herald_signal('order 17', 'k', null)",
            &[],
            "channel",
        ),
        ("select herald_signal('order:*', 'k', null)", &[], "channel"),
        ("select herald_signal(null, 'k', null)", &[], "channel"),
        ("select herald_signal('order:17', '', null)", &[], "kind"),
        (
            "select herald_signal('order:17', repeat('k', 65), null)",
            &[],
            "kind",
        ),
        (
            "select herald_signal('order:17', E'a\\nb', null)",
            &[],
            "kind",
        ),
        (
            "select herald_signal('order:17', 'k', null, 0)",
            &[],
            "keep_secs",
        ),
        (
            "select herald_signal('order:17', 'k', null, 86401)",
            &[],
            "keep_secs",
        ),
        (
            "select herald_signal('order:17', 'k', to_jsonb($1::text), 60)",
            &[&big],
            "4096",
        ),
    ];
    for (sql, params, names) in cases {
        let err = pg.execute(sql, params).await.expect_err(sql);
        let db = err
            .as_db_error()
            .unwrap_or_else(|| panic!("{sql}: {err:?}"));
        assert_eq!(
            db.code(),
            &tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE,
            "{sql}"
        );
        assert!(
            db.message().starts_with("herald_signal: "),
            "{sql}: {}",
            db.message()
        );
        assert!(db.message().contains(names), "{sql}: {}", db.message());
    }
    // Just within the limits.
    let data = json!("x".repeat(3900));
    pg.execute(
        "select herald_signal('order:17', $1, $2, 86400)",
        &[&"k".repeat(64), &data],
    )
    .await
    .expect("64 characters, under 4 KB, a day");

    let event = stream.next("signal").await.json();
    assert_eq!(event["data"], data, "the refused ones sent nothing");
    assert_eq!(kept_rows(&app).await, 1, "and kept nothing");
}

#[actix_web::test]
async fn herald_signal_needs_execute_which_the_writer_role_is_granted() {
    use crate::managed::{OWNER, WRITER, managed};
    let managed = managed();
    let (db, name) = managed.database();
    let mut config = test_config(&db.url);
    config.database.database_url = Some(herald::config::DatabaseUrl::new(managed.tls_url(
        OWNER,
        &name,
        &managed.ca,
    )));
    let app = spawn_configured(db, config).await;
    let token = app.token_with("1", &["order:17"], false);
    let mut stream = app.open_events(&token, "channels=order:17", None).await;
    let writer = managed.connect(WRITER, &name).await;
    let send = "select herald_signal('order:17', 'location', '{\"lat\": 52.5}', 60)";

    let refused = writer
        .batch_execute(send)
        .await
        .expect_err("no EXECUTE yet");
    let code = refused.as_db_error().map(|e| e.code().clone());
    assert_eq!(
        code,
        Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{refused:?}"
    );

    // README's grant line.
    managed.superuser_sql(
        &name,
        &format!("grant execute on function herald_signal(text, text, jsonb, integer) to {WRITER}"),
    );
    writer.batch_execute(send).await.expect("granted");

    let event = stream.next("signal").await.json();
    assert_eq!(event["data"], json!({"lat": 52.5}));
    assert_eq!(kept(&app, &token, "channels=order:17").await.len(), 1);
    // The function runs as its owner; the writer gets no other way in.
    for sql in [
        "select * from herald_kept_signals",
        "delete from herald_kept_signals",
        "select herald_keep_signal('order:17', 'location', '{}', now(), 60)",
    ] {
        let err = writer.batch_execute(sql).await.expect_err(sql);
        let code = err.as_db_error().map(|e| e.code().clone());
        assert_eq!(
            code,
            Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}"
        );
    }
}
