//! Bad input gets a 4xx JSON error, never a 500.

use actix_web::http::StatusCode;

use crate::helpers::{encode, spawn_app};

fn assert_json_error(
    status: StatusCode,
    body: &serde_json::Value,
    expected: StatusCode,
    what: &str,
) {
    assert_eq!(status, expected, "{what}: {body}");
    assert!(body["error"]["code"].is_string(), "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

#[actix_web::test]
async fn malformed_query_values_get_400_json() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    for query in [
        "limit=abc",
        "limit=0",
        "limit=201",
        "limit=-5",
        "limit=99999999999999999999999",
        "wait=61",
        "wait=-1",
        "wait=soon",
        "unread=maybe",
        "channels=",
        "channels=a%20b",
        "channels=a,,b",
        "channels=order:*",
        "channels=%00",
        // Not UTF-8, and Unicode spaces: refused, not read as U+FFFD or trimmed away.
        "channels=a%FFb",
        "channels=%C3",
        "channels=%C2%A0order:1",
        "channels=user:1%E2%80%83",
        "after=%FF",
        // Given twice, however spelled.
        "limit=5&limit=6",
        "after=1:1:&%61fter=2:2:",
    ] {
        let (status, body) = app
            .get(&format!("/api/notifications?{query}"), Some(&token))
            .await;
        assert_json_error(status, &body, StatusCode::BAD_REQUEST, query);
    }
    for query in ["channels=a%0Ab", "channels=a%FFb", "channels=%C2%A0user:1"] {
        let (status, body) = app.get(&format!("/events?{query}"), Some(&token)).await;
        assert_json_error(status, &body, StatusCode::BAD_REQUEST, query);
    }
}

#[actix_web::test]
async fn malformed_paths_get_400_and_unknown_routes_404_json() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    for path in [
        "/api/notifications/abc/read",
        "/api/notifications/1.5/read",
        "/api/notifications/99999999999999999999/read",
    ] {
        let (status, body) = app.post(path, Some(&token), None).await;
        assert_json_error(status, &body, StatusCode::BAD_REQUEST, path);
    }
    let (status, body) = app.get("/no/such/route", None).await;
    assert_json_error(status, &body, StatusCode::NOT_FOUND, "unknown route");
}

#[actix_web::test]
async fn bad_notification_bodies_get_4xx_json_and_store_nothing() {
    let app = spawn_app().await;
    let publisher = app.token_with("backend", &[], true);
    let cases: &[(&str, StatusCode)] = &[
        ("", StatusCode::BAD_REQUEST),
        ("{", StatusCode::BAD_REQUEST),
        ("[]", StatusCode::UNPROCESSABLE_ENTITY),
        (
            r#"{"title": "no channel"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (r#"{"channel": "user:1"}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (
            r#"{"channel": "", "title": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"channel": "has space", "title": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"channel": "user:1", "title": "x", "level": "loud"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"channel": "user:1", "title": "x", "data": [1]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"channel": "user:1", "title": "x", "kind": ""}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"channel": "user:1", "title": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"channel": "user:1", "title": "x", "colour": "red"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"channel": "user:1", "title": "nul \u0000 inside"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"channel": "user:1", "title": "x", "data": {"k": ["\u0000"]}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (body, expected) in cases {
        let (status, response) = app
            .post("/api/notifications", Some(&publisher), Some(body))
            .await;
        assert_json_error(status, &response, *expected, body);
    }
    // The code names what was wrong.
    for (body, code) in [
        (
            r#"{"channel": "has space", "title": "x"}"#,
            "invalid_channel",
        ),
        (
            r#"{"channel": "user:1", "title": "x", "level": "loud"}"#,
            "invalid_level",
        ),
        (
            r#"{"channel": "user:1", "title": "x", "data": [1]}"#,
            "invalid_data",
        ),
        (
            r#"{"channel": "user:1", "title": "x", "kind": ""}"#,
            "invalid_kind",
        ),
        (
            r#"{"channel": "user:1", "title": "nul \u0000 inside"}"#,
            "invalid_text",
        ),
        (r#"{"channel": "user:1"}"#, "invalid_body"),
    ] {
        let (_, response) = app
            .post("/api/notifications", Some(&publisher), Some(body))
            .await;
        assert_eq!(response["error"]["code"], code, "{body}: {response}");
    }
    let big = format!(
        r#"{{"channel": "user:1", "title": "{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let (status, response) = app
        .post("/api/notifications", Some(&publisher), Some(&big))
        .await;
    assert_json_error(
        status,
        &response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "2 MiB body",
    );

    let client = app.pg().await;
    let stored: i64 = client
        .query_one("select count(*) from notifications", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
}

#[actix_web::test]
async fn the_database_itself_refuses_bad_rows_with_a_clear_message() {
    let app = spawn_app().await;
    let client = app.pg().await;
    for (sql, constraint) in [
        (
            "insert into notifications (channel, title) values ('', 'x')",
            "notifications_channel_valid",
        ),
        (
            "insert into notifications (channel, title, level) values ('a', 'x', 'loud')",
            "notifications_level_valid",
        ),
        (
            "insert into notifications (channel, title, data) values ('a', 'x', '[]')",
            "notifications_data_is_object",
        ),
        ("insert into notifications (channel) values ('a')", "title"),
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        let message = err
            .as_db_error()
            .map(|e| format!("{} {:?} {:?}", e.message(), e.constraint(), e.column()))
            .unwrap();
        assert!(message.contains(constraint), "{sql}: {message}");
    }
}

#[actix_web::test]
async fn quotes_and_odd_characters_are_data_not_sql() {
    let app = spawn_app().await;
    let user = "o'brien\";--";
    let token = app.token_for(user);
    let publisher = app.token_with("backend", &[], true);
    let title = "'); drop table notifications; -- \u{1F514} <b>";
    let body = serde_json::json!({"channel": format!("user:{user}"), "title": title}).to_string();

    let (status, created) = app
        .post("/api/notifications", Some(&publisher), Some(&body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, list) = app.get("/api/notifications", Some(&token)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["notifications"][0]["title"], title);
    assert_eq!(list["unread_count"], 1);
}

#[actix_web::test]
async fn hostile_strings_in_every_field_are_data_never_sql() {
    let app = spawn_app().await;
    let publisher = app.token_with("backend", &[], true);
    let channel = r#"team:'";--\$$x$$"#;
    let reader = app.token_with("1", &["team:*"], false);
    let long_title = format!(
        "{}{}",
        "'; delete from notifications; --",
        "'\"\\".repeat(30_000)
    );
    let body = serde_json::json!({
        "channel": channel,
        "title": long_title,
        "body": "$$; drop table notifications; $$",
        "kind": "x'); select pg_sleep(10); --",
        "data": {"'; --": "\"\\u0000", "nested": {"a'b": ["--", "/*"]}},
    })
    .to_string();

    let (status, created) = app
        .post("/api/notifications", Some(&publisher), Some(&body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let (status, list) = app
        .get(
            &format!("/api/notifications?channels={}", encode(channel)),
            Some(&reader),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let got = &list["notifications"][0];
    assert_eq!(got["channel"], channel);
    assert_eq!(got["title"], long_title.as_str());
    assert_eq!(got["kind"], "x'); select pg_sleep(10); --");
    assert_eq!(got["data"]["nested"]["a'b"][1], "/*");

    // Cursors, ids and channel lists that look like SQL are bad input or unknown, never SQL.
    let injected = encode("1' or '1'='1");
    for (path, expected) in [
        (
            format!("/api/notifications?after={injected}"),
            StatusCode::OK,
        ),
        (
            format!("/api/notifications?channels={injected}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!(
                "/api/notifications?channels=user:1,{}",
                encode("user:2')--")
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            format!(
                "/api/notifications?channels={}",
                encode(&"team:'".repeat(100))
            ),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = app.get(&path, Some(&reader)).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    let (status, _) = app
        .post(
            &format!(
                "/api/notifications/{}/read",
                encode("1;drop table notifications")
            ),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut events = app.open_events(&reader, "", Some("1' or '1'='1")).await;
    assert_eq!(events.next("reset").await.event, "reset");

    let stored: i64 = app
        .pg()
        .await
        .query_one(
            "select count(*) from notifications where channel = $1",
            &[&channel],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored, 1,
        "the table is intact and holds exactly the one row"
    );
}

#[actix_web::test]
async fn the_table_and_herald_agree_on_every_channel_name() {
    // Every boundary of the forbidden ranges, and characters next to them.
    let mut probes: Vec<char> = vec![',', '*', 'a', '\u{200b}', '\u{feff}', '\u{2060}'];
    for &(lo, hi) in herald::channels::FORBIDDEN {
        for c in [lo as u32, hi as u32, hi as u32 + 1]
            .into_iter()
            .chain((lo as u32).checked_sub(1))
        {
            // PostgreSQL text cannot hold NUL at all.
            probes.extend(char::from_u32(c).filter(|&c| c != '\0'));
        }
    }
    let app = spawn_app().await;
    let client = app.pg().await;
    let token = app.token_with("1", &["x*"], false);

    for c in probes {
        let channel = format!("x{c}y");
        let stored = client
            .execute(
                "insert into notifications (channel, title) values ($1, 'probe')",
                &[&channel],
            )
            .await
            .is_ok();
        let (status, list) = app
            .get(
                &format!("/api/notifications?channels={}", encode(&channel)),
                Some(&token),
            )
            .await;
        let readable = status == StatusCode::OK;

        assert_eq!(stored, readable, "U+{:04X}: {status} {list}", c as u32);
        if readable {
            assert_eq!(list["notifications"][0]["channel"], channel.as_str());
        }
    }
}
