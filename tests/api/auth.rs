//! Tokens: where they come from, which are refused.

use actix_web::http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::helpers::{SECRET, spawn_app};

fn sign(claims: serde_json::Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn in_ten_minutes() -> i64 {
    chrono::Utc::now().timestamp() + 600
}

#[actix_web::test]
async fn a_django_simplejwt_access_token_is_accepted() {
    let app = spawn_app().await;
    // The shape djangorestframework-simplejwt mints: numeric user_id, token_type, jti.
    let token = sign(
        json!({"token_type": "access", "exp": in_ten_minutes(), "iat": 1_700_000_000,
               "jti": "9f3c2a7e", "user_id": 42}),
        SECRET,
    );
    app.insert("user:42", "for django user 42").await;

    let (status, list) = app.get("/api/notifications", Some(&token)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["notifications"][0]["title"], "for django user 42");
    let mut events = app.open_events(&token, "", None).await;
    app.insert("user:42", "live").await;
    assert_eq!(events.titles(1).await, vec!["live"]);
}

#[actix_web::test]
async fn bad_tokens_get_401_json() {
    let app = spawn_app().await;
    let expired = sign(
        json!({"sub": "1", "exp": chrono::Utc::now().timestamp() - 10}),
        SECRET,
    );
    let wrong_key = sign(
        json!({"sub": "1", "exp": in_ten_minutes()}),
        "another secret",
    );
    let refresh = sign(
        json!({"token_type": "refresh", "user_id": 1, "exp": in_ten_minutes()}),
        SECRET,
    );
    let no_exp = sign(json!({"sub": "1"}), SECRET);
    let not_yet = sign(
        json!({"sub": "1", "exp": in_ten_minutes(), "nbf": in_ten_minutes()}),
        SECRET,
    );
    // {"alg":"none"} with the same claims and no signature.
    let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
    for token in [
        expired.as_str(),
        &wrong_key,
        &refresh,
        &no_exp,
        &not_yet,
        unsigned,
        "garbage",
        "",
    ] {
        for path in [
            "/api/notifications",
            "/events",
            "/api/notifications/unread_count",
        ] {
            let (status, body) = app.get(&format!("{path}?token={token}"), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with {token:?}");
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    let (status, _) = app.get("/api/notifications", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_token_is_read_from_the_header_the_query_or_the_cookie() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let client = awc::Client::default();
    let url = format!("{}/api/notifications/unread_count", app.address);

    let header = client.get(&url).bearer_auth(&token).send().await.unwrap();
    let query = client
        .get(format!("{url}?token={token}"))
        .send()
        .await
        .unwrap();
    let cookie = client
        .get(&url)
        .insert_header(("cookie", format!("herald_token={token}")))
        .send()
        .await
        .unwrap();

    assert_eq!(header.status(), StatusCode::OK);
    assert_eq!(query.status(), StatusCode::OK);
    assert_eq!(cookie.status(), StatusCode::OK);
    // A site's own Basic auth is not ours: the query token still counts.
    let basic_and_query = client
        .get(format!("{url}?token={token}"))
        .insert_header(("authorization", "Basic dXNlcjpwYXNz"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic_and_query.status(), StatusCode::OK);
    let basic_alone = client
        .get(&url)
        .insert_header(("authorization", "Basic dXNlcjpwYXNz"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic_alone.status(), StatusCode::UNAUTHORIZED);
    let empty = client
        .get(&url)
        .insert_header(("authorization", "Bearer "))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn publishing_needs_the_publish_scope() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/notifications",
            Some(&app.token_for("1")),
            Some(r#"{"channel": "user:1", "title": "x"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
}
