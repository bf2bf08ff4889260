//! `GET /events`: delivery, authorization, resume.

use actix_web::http::StatusCode;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_row_inserted_with_plain_sql_reaches_the_recipients_open_stream() {
    // Arrange
    let app = spawn_app().await;
    let mut events = app.open_events(&app.token_for("42"), "", None).await;
    // Act
    app.sql(
        "insert into notifications (channel, title, body, kind, level, data)
             values ('user:42', 'Order shipped', 'Order #17 is on its way',
                     'order_update', 'success', '{\"order_id\": 17}')",
    )
    .await;
    // Assert
    let event = events.next("notification").await;
    let n = event.json();
    assert_eq!(n["title"], "Order shipped");
    assert_eq!(n["body"], "Order #17 is on its way");
    assert_eq!(n["kind"], "order_update");
    assert_eq!(n["level"], "success");
    assert_eq!(n["data"]["order_id"], 17);
    assert_eq!(n["channel"], "user:42");
    assert_eq!(n["read"], false);
    assert!(n["id"].as_i64().is_some());
    assert!(chrono::DateTime::parse_from_rfc3339(n["created_at"].as_str().unwrap()).is_ok());
    assert!(
        event.id.is_some_and(|id| !id.is_empty()),
        "each notification carries a cursor"
    );
}

#[actix_web::test]
async fn a_user_never_receives_another_users_inbox() {
    let app = spawn_app().await;
    let mut events = app.open_events(&app.token_for("2"), "", None).await;

    app.insert("user:1", "for user 1").await;
    app.insert("user:22", "for user 22").await;
    app.insert("user:2", "for user 2").await;

    // In order, so had the others been sent they would have come first.
    assert_eq!(events.titles(1).await, vec!["for user 2"]);
}

#[actix_web::test]
async fn a_channel_the_token_does_not_grant_is_refused_with_403() {
    let app = spawn_app().await;
    let token = app.token_with("2", &["order:*"], false);
    for channels in ["user:1", "project:5", "admin", "order:17,admin"] {
        let (status, body) = app
            .get(&format!("/events?channels={channels}"), Some(&token))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{channels}");
        assert_eq!(body["error"]["code"], "forbidden");
        let (status, _) = app
            .get(
                &format!("/api/notifications?channels={channels}"),
                Some(&token),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{channels}");
    }
}

#[actix_web::test]
async fn a_refusal_names_every_channel_the_token_no_longer_grants() {
    let app = spawn_app().await;
    // The order was delivered: the app's fresh token no longer grants order:3.
    let token = app.token_with("2", &["order:4"], false);
    let asked = "user:2,broadcast,order:3,order:4,admin";
    for path in [
        format!("/events?channels={asked}"),
        format!("/api/notifications?channels={asked}"),
        format!("/api/notifications?presence={asked}"),
    ] {
        let (status, body) = app.get(&path, Some(&token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(
            body["error"]["channels"],
            serde_json::json!(["order:3", "admin"]),
            "{path}: {body}"
        );
    }
    // Without them, the rest streams.
    let mut events = app
        .open_events(&token, "channels=user:2,broadcast,order:4", None)
        .await;
    app.insert("user:2", "still live").await;
    assert_eq!(events.titles(1).await, vec!["still live"]);
}

#[actix_web::test]
async fn a_granted_channel_pattern_streams_that_channel() {
    let app = spawn_app().await;
    let token = app.token_with("7", &["order:*"], false);
    let mut events = app.open_events(&token, "channels=order:17", None).await;

    app.insert("order:18", "other order").await;
    app.insert("order:17", "picked").await;

    assert_eq!(events.titles(1).await, vec!["picked"]);
}

#[actix_web::test]
async fn broadcast_reaches_every_users_stream() {
    let app = spawn_app().await;
    let mut first = app.open_events(&app.token_for("1"), "", None).await;
    let mut second = app.open_events(&app.token_for("2"), "", None).await;

    app.insert("broadcast", "Maintenance at 22:00").await;

    assert_eq!(first.titles(1).await, vec!["Maintenance at 22:00"]);
    assert_eq!(second.titles(1).await, vec!["Maintenance at 22:00"]);
}

#[actix_web::test]
async fn resuming_with_last_event_id_delivers_exactly_what_was_missed() {
    let app = spawn_app().await;
    let token = app.token_for("5");
    let mut events = app.open_events(&token, "", None).await;
    app.insert("user:5", "seen").await;
    let seen = events.next("notification").await;
    drop(events);

    app.insert("user:5", "missed 1").await;
    app.insert("broadcast", "missed 2").await;
    let mut events = app.open_events(&token, "", seen.id.as_deref()).await;
    app.insert("user:5", "live").await;

    assert_eq!(events.titles(3).await, vec!["missed 1", "missed 2", "live"]);
}

#[actix_web::test]
async fn last_event_id_may_come_in_the_query_string() {
    let app = spawn_app().await;
    let token = app.token_for("5");
    let (_, list) = app.get("/api/notifications", Some(&token)).await;
    let cursor = list["cursor"].as_str().unwrap().to_owned();
    app.insert("user:5", "after the list").await;

    let mut events = app
        .open_events(&token, &format!("last_event_id={cursor}"), None)
        .await;

    assert_eq!(events.titles(1).await, vec!["after the list"]);
}

#[actix_web::test]
async fn a_row_that_commits_after_a_later_id_is_still_delivered_on_resume() {
    // Ids are taken at insert, visibility comes at commit: id 1 can appear after id 2.
    let app = spawn_app().await;
    let token = app.token_for("9");
    let mut events = app.open_events(&token, "", None).await;

    let slow = app.insert_uncommitted("user:9", "slow").await;
    app.insert("user:9", "fast").await;
    let fast = events.next("notification").await;
    assert_eq!(fast.json()["title"], "fast");
    drop(events);

    slow.batch_execute("commit").await.unwrap();
    let mut events = app.open_events(&token, "", fast.id.as_deref()).await;
    app.insert("user:9", "sentinel").await;

    assert_eq!(events.titles(2).await, vec!["slow", "sentinel"]);
}

#[actix_web::test]
async fn a_stream_delivers_rows_that_commit_out_of_id_order() {
    let app = spawn_app().await;
    let mut events = app.open_events(&app.token_for("9"), "", None).await;
    let slow = app.insert_uncommitted("user:9", "slow").await;
    app.insert("user:9", "fast").await;
    assert_eq!(events.titles(1).await, vec!["fast"]);

    slow.batch_execute("commit").await.unwrap();

    assert_eq!(events.titles(1).await, vec!["slow"]);
}

#[actix_web::test]
async fn an_unknown_cursor_gets_a_reset_event_and_the_stream_goes_on() {
    let app = spawn_app().await;
    let token = app.token_for("3");
    for unknown in ["garbage", "999999999:999999999:"] {
        let mut events = app.open_events(&token, "", Some(unknown)).await;
        let reset = events.next("reset").await;
        let cursor = reset.json()["cursor"].as_str().unwrap().to_owned();
        assert!(!cursor.is_empty());
        app.insert("user:3", unknown).await;
        assert_eq!(events.titles(1).await, vec![unknown]);
    }
}

#[actix_web::test]
async fn a_body_far_beyond_notifys_payload_limit_arrives_whole() {
    let app = spawn_app().await;
    let token = app.token_for("4");
    let mut events = app.open_events(&token, "", None).await;
    let body: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();

    app.sql(&format!(
        "insert into notifications (channel, title, body) values ('user:4', 'big', '{body}')"
    ))
    .await;

    assert_eq!(
        events.next("notification").await.json()["body"],
        body.as_str()
    );
    let (_, list) = app.get("/api/notifications", Some(&token)).await;
    assert_eq!(list["notifications"][0]["body"], body.as_str());
}

#[actix_web::test]
async fn streams_send_a_retry_hint_and_no_cache_headers() {
    let app = spawn_app().await;
    let response = awc::Client::default()
        .get(format!(
            "{}/events?token={}",
            app.address,
            app.token_for("1")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
    assert_eq!(headers.get("cache-control").unwrap(), "no-cache");
    assert_eq!(headers.get("x-accel-buffering").unwrap(), "no");
    let mut body = Box::pin(response);
    use futures_util::StreamExt;
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("retry: "));
}

#[actix_web::test]
async fn a_stream_pings_every_heartbeat_with_the_server_time_and_no_cursor() {
    let app = crate::helpers::spawn_app_with(|config| config.heartbeat_secs = 1).await;
    let mut events = app.open_events(&app.token_for("5"), "", None).await;
    let opened = chrono::Utc::now().timestamp_millis();

    let first = events.next("ping").await;
    let second = events.next("ping").await;

    let t = |event: &crate::helpers::SseEvent| event.json()["t"].as_i64().expect("t: unix ms");
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        opened - 1_000 <= t(&first) && t(&first) <= t(&second) && t(&second) <= now + 1_000,
        "server times in order, around now: {first:?} {second:?}"
    );
    // A ping is not a position: a client that resumes after it resumes where it was.
    assert_eq!(second.id, events.position);
}

#[actix_web::test]
async fn a_stream_says_auth_expired_and_closes_when_the_token_expires() {
    let app = spawn_app().await;
    let exp = chrono::Utc::now().timestamp() + 2;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "8", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(crate::helpers::SECRET.as_bytes()),
    )
    .unwrap();
    let mut events = app.open_events(&token, "", None).await;

    events.next("auth_expired").await;

    assert!(
        events.next_any().await.is_none(),
        "the stream closes after auth_expired"
    );
    let (status, _) = app.get("/events", Some(&token)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "reconnecting with it is refused"
    );
}

#[actix_web::test]
async fn publishing_over_http_reaches_streams() {
    let app = spawn_app().await;
    let mut events = app.open_events(&app.token_for("6"), "", None).await;
    let publisher = app.token_with("backend", &[], true);

    let (status, body) = app
        .post(
            "/api/notifications",
            Some(&publisher),
            Some(r#"{"channel": "user:6", "title": "Invoice paid", "level": "success", "data": {"invoice": 3}}"#),
        )
        .await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["title"], "Invoice paid");
    assert_eq!(body["kind"], "notification");
    let received = events.next("notification").await.json();
    assert_eq!(received["id"], body["id"]);
    assert_eq!(received["data"]["invoice"], 3);
}

#[actix_web::test]
async fn stopping_herald_ends_open_streams_and_answers_parked_long_polls() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let mut events = app.open_events(&token, "", None).await;
    let (_, list) = app.get("/api/notifications", Some(&token)).await;
    let path = format!(
        "/api/notifications?after={}&wait=60",
        list["cursor"].as_str().unwrap()
    );

    let poll = app.get(&path, Some(&token));
    let stop = async {
        app.wait_for_metric("herald_long_polls_parked", 1).await;
        app.stopper.as_ref().unwrap().stop().await;
    };
    let ((status, body), ()) = tokio::time::timeout(crate::helpers::WAIT, async {
        futures_util::future::join(poll, stop).await
    })
    .await
    .expect("stop answered the long-poll instead of letting it wait 60 s");

    assert!(events.next_any().await.is_none(), "the stream ended");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["notifications"], serde_json::json!([]));
}

#[actix_web::test]
async fn metrics_count_open_streams_and_deliveries() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let mut events = app.open_events(&token, "", None).await;
    assert_eq!(app.metric("herald_streams_open").await, 1);
    assert_eq!(app.metric("herald_listener_up").await, 1);

    app.insert("user:1", "counted").await;
    app.wait_for_metric("herald_notifications_received_total", 1)
        .await;
    assert_eq!(events.titles(1).await, vec!["counted"]);
    // Queued to the stream, then timed: one live delivery, in the histogram.
    app.wait_for_metric("herald_events_delivered_total{transport=\"sse\"}", 1)
        .await;
    assert_eq!(app.metric("herald_delivery_latency_seconds_count").await, 1);
    assert_eq!(
        app.metric("herald_delivery_latency_seconds_bucket{le=\"+Inf\"}")
            .await,
        1
    );
    // (Bucket bounds are floats: Prometheus reads `le="10.0"` as 10.)
    assert_eq!(
        app.metric("herald_delivery_latency_seconds_bucket{le=\"10.0\"}")
            .await,
        1
    );

    // Requests by route pattern (never the raw path) and status.
    for _ in 0..3 {
        app.get("/api/notifications?limit=5", Some(&token)).await;
    }
    for id in [17, 18] {
        let path = format!("/api/notifications/{id}/read");
        assert_eq!(app.post(&path, Some(&token), None).await.0, 404);
    }
    app.get("/no/such/page", None).await;
    assert_eq!(
        app.metric("herald_http_requests_total{route=\"/api/notifications\",status=\"200\"}")
            .await,
        3
    );
    assert_eq!(
        app.metric("herald_events_delivered_total{transport=\"poll\"}")
            .await,
        3
    );
    assert_eq!(
        app.metric(
            "herald_http_requests_total{route=\"/api/notifications/{id}/read\",status=\"404\"}"
        )
        .await,
        2
    );
    assert_eq!(
        app.metric("herald_http_requests_total{route=\"unmatched\",status=\"404\"}")
            .await,
        1
    );

    drop(events);
    app.wait_for_metric("herald_streams_open", 0).await;
}

#[actix_web::test]
async fn a_stream_opened_without_a_cursor_still_gives_a_position_to_resume_from() {
    let app = spawn_app().await;
    let token = app.token_for("5");
    let events = app.open_events(&token, "", None).await;
    let position = events.position.clone();
    drop(events); // dropped before any notification arrived

    app.insert("user:5", "while away").await;
    let mut events = app.open_events(&token, "", position.as_deref()).await;

    assert_eq!(events.titles(1).await, vec!["while away"]);
}

#[actix_web::test]
async fn a_cursor_too_far_behind_replays_at_most_a_thousand_then_resets() {
    let app = spawn_app().await;
    let token = app.token_for("5");
    let old = app.open_events(&token, "", None).await.position.unwrap();
    app.sql(
        "insert into notifications (channel, title)
         select 'user:5', 'n' || i from generate_series(1, 1100) i",
    )
    .await;

    let mut events = app.open_events(&token, "", Some(&old)).await;

    let mut titles = Vec::new();
    loop {
        let event = events.next_any().await.expect("stream stays open");
        match event.event.as_str() {
            "notification" => titles.push(event.json()["title"].as_str().unwrap().to_owned()),
            "reset" => break,
            other => panic!("unexpected {other} before reset"),
        }
    }
    assert_eq!(titles.len(), 1000);
    assert_eq!(titles.first().map(String::as_str), Some("n1"));
    app.insert("user:5", "live after reset").await;
    assert_eq!(events.titles(1).await, vec!["live after reset"]);
}

#[actix_web::test]
async fn a_shutdown_ends_streams_one_by_one_over_the_spread_and_delivers_until_then() {
    let app = crate::helpers::spawn_app_with(|config| config.shutdown_spread_secs = 3).await;
    let mut streams = Vec::new();
    for user in 0..12 {
        let token = app.token_for(&user.to_string());
        streams.push(app.open_events(&token, "", None).await);
    }
    let stopper = app.stopper.clone().unwrap();
    let started = tokio::time::Instant::now();

    actix_web::rt::spawn(async move { stopper.stop().await });
    app.insert("broadcast", "during the shutdown").await;
    let ends = futures_util::future::join_all(streams.iter_mut().map(|stream| async {
        let mut titles = Vec::new();
        while let Some(event) = stream.next_any().await {
            if event.event == "notification" {
                titles.push(event.json()["title"].as_str().unwrap().to_owned());
            }
        }
        (started.elapsed(), titles)
    }))
    .await;

    let first = ends.iter().map(|(at, _)| *at).min().unwrap();
    let last = ends.iter().map(|(at, _)| *at).max().unwrap();
    // 12 closes, 3 s / 12 apart: the last comes 2.75 s after the first.
    assert!(
        last - first >= std::time::Duration::from_millis(1500),
        "the streams ended together: {ends:?}"
    );
    let (_, latest) = ends.iter().max_by_key(|(at, _)| *at).unwrap();
    assert_eq!(latest, &vec!["during the shutdown".to_owned()], "{ends:?}");
}
