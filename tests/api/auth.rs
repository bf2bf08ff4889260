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
    // A percent-encoded name is the same name; given twice, the query has no token and the
    // cookie decides.
    let encoded = client
        .get(format!("{url}?%74oken={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(encoded.status(), StatusCode::OK);
    let twice = format!("{url}?token={token}&%74oken={token}");
    let twice_alone = client.get(&twice).send().await.unwrap();
    assert_eq!(twice_alone.status(), StatusCode::UNAUTHORIZED);
    let twice_and_cookie = client
        .get(&twice)
        .insert_header(("cookie", format!("herald_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(twice_and_cookie.status(), StatusCode::OK);
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

/// A token assembled by hand: any header, any claims, signed HMAC-SHA256 with `secret`.
fn forge(header: serde_json::Value, claims: serde_json::Value, secret: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

#[actix_web::test]
async fn forged_tokens_are_refused() {
    let app = spawn_app().await;
    let claims = json!({"sub": "1", "exp": in_ten_minutes()});
    let genuine = forge(
        json!({"alg": "HS256", "typ": "JWT"}),
        claims.clone(),
        SECRET,
    );
    let (status, _) = app.get("/api/notifications", Some(&genuine)).await;
    assert_eq!(status, StatusCode::OK, "the forging itself is sound");

    // Claims swapped after signing: user 1's signature on user 2's claims.
    let (head, rest) = genuine.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let other = forge(
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"sub": "2", "exp": in_ten_minutes()}),
        SECRET,
    );
    let other_claims = other.split('.').nth(1).unwrap();
    let tampered = format!("{head}.{other_claims}.{signature}");
    let attacks = [
        ("tampered claims", tampered),
        // Key confusion: "verify this RS256 token with the key you have", the HMAC secret.
        (
            "RS256 header",
            forge(
                json!({"alg": "RS256", "typ": "JWT"}),
                claims.clone(),
                SECRET,
            ),
        ),
        (
            "none with a signature",
            forge(json!({"alg": "none"}), claims.clone(), SECRET),
        ),
        (
            "HS512 header",
            forge(json!({"alg": "HS512"}), claims.clone(), SECRET),
        ),
        (
            "no user",
            forge(
                json!({"alg": "HS256"}),
                json!({"exp": in_ten_minutes()}),
                SECRET,
            ),
        ),
        (
            "null user",
            forge(
                json!({"alg": "HS256"}),
                json!({"sub": null, "exp": in_ten_minutes()}),
                SECRET,
            ),
        ),
        (
            "user with a space",
            forge(
                json!({"alg": "HS256"}),
                json!({"sub": "1 OR 1=1", "exp": in_ten_minutes()}),
                SECRET,
            ),
        ),
        (
            "exp as a string",
            forge(
                json!({"alg": "HS256"}),
                json!({"sub": "1", "exp": "tomorrow"}),
                SECRET,
            ),
        ),
        ("a fourth part", format!("{genuine}.x")),
        (
            "signature removed",
            format!("{head}.{}.", rest.split_once('.').unwrap().0),
        ),
    ];
    for (what, token) in attacks {
        let (status, body) = app.get("/api/notifications", Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
        let (status, _) = app.get(&format!("/events?token={token}"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} on /events");
    }
}

/// The claims of a token, unverified.
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[actix_web::test]
async fn a_stream_token_does_what_a_page_does_and_nothing_more() {
    let app = spawn_app().await;
    let app_token = app.token_with("5", &["order:*"], true);

    let (status, minted) = app.post("/api/stream-token", Some(&app_token), None).await;

    assert_eq!(status, StatusCode::OK, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let expires_in = minted["expires_in"].as_i64().unwrap();
    assert!((1..=300).contains(&expires_in), "{minted}");
    let claims = claims_of(&token);
    assert_eq!(claims["aud"], "herald:stream");
    assert_eq!(claims["sub"], "5");
    assert_eq!(claims["channels"], json!(["order:*"]));
    assert!(claims["exp"].as_i64().unwrap() <= chrono::Utc::now().timestamp() + 300);

    // What a page needs: a stream in the URL, its list, read state.
    let id = app.insert("order:17", "for the stream token").await;
    let mut events = app.open_events(&token, "channels=order:17", None).await;
    let (status, list) = app
        .get("/api/notifications?channels=order:17", Some(&token))
        .await;
    assert_eq!(
        (status, list["notifications"][0]["id"].as_i64()),
        (StatusCode::OK, Some(id))
    );
    let (status, _) = app
        .post(&format!("/api/notifications/{id}/read"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    app.insert("order:17", "live").await;
    assert_eq!(events.titles(1).await, vec!["live"]);

    // Not what only the app's own token may do.
    let (status, _) = app
        .post(
            "/api/notifications",
            Some(&token),
            Some(r#"{"channel": "user:5", "title": "x"}"#),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a stream token cannot publish"
    );
    let (status, _) = app.post("/api/stream-token", Some(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nor renew itself");
}

#[actix_web::test]
async fn a_stream_token_by_cookie_needs_a_trusted_origin() {
    let app = spawn_app().await;
    let url = format!("{}/api/stream-token", app.address);
    let cookie = format!("herald_token={}", app.token_for("1"));
    let client = awc::Client::default();

    let foreign = client
        .post(&url)
        .insert_header(("cookie", cookie.as_str()))
        .insert_header(("origin", "https://evil.example.com"))
        .send()
        .await
        .unwrap();
    let own = client
        .post(&url)
        .insert_header(("cookie", cookie.as_str()))
        .insert_header(("origin", app.address.as_str()))
        .send()
        .await
        .unwrap();

    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(own.status(), StatusCode::OK);
}
