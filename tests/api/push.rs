//! Web Push (SPEC section 11), against a push service of the test's own that does what a real
//! one does on receipt: checks the VAPID JWT against herald's public key (RFC 8292) and
//! decrypts the payload with the private key of a subscription the test made as a browser
//! would (RFC 8291). Real cryptography on both sides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald::config::Config;
use herald::push::keys::Vapid;
use serde_json::{Value, json};

use tokio::io::AsyncWriteExt;

use crate::helpers::{
    Process, TestApp, TestDb, WAIT, spawn_app_with, spawn_configured, test_config,
};
use crate::limits::read_until_closed;

/// Long enough for the 5 s a notification waits to be read, the scan and the send.
const PUSH_WAIT: Duration = Duration::from_secs(20);

/// One push as the push service received it.
#[derive(Debug, Clone)]
struct Received {
    /// Which subscription (the endpoint's last segment).
    subscription: String,
    ttl: i64,
    urgency: String,
    payload: Value,
}

/// A browser's subscription, as it sends it to herald (the push service keeps the private
/// keys, to decrypt what arrives as the browser would).
struct Browser {
    endpoint: String,
    json: Value,
}

#[derive(Default)]
struct Inbox {
    browsers: HashMap<String, (ece::EcKeyComponents, [u8; 16])>,
    received: Vec<Received>,
    /// Statuses to answer a subscription with, first to last; then 201.
    answers: HashMap<String, Vec<u16>>,
    /// Pushes refused by the checks, with why.
    refused: Vec<String>,
}

/// The push service: `POST /push/{subscription}`.
struct PushService {
    address: String,
    inbox: Arc<Mutex<Inbox>>,
    /// The VAPID public key every push must be signed for.
    _server: actix_web::dev::ServerHandle,
}

impl PushService {
    async fn start(vapid_public_key: String) -> PushService {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let shared = web::Data::new((inbox.clone(), vapid_public_key));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::default().limit(64 * 1024))
                .route("/push/{subscription}", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let address = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        PushService {
            address,
            inbox,
            _server: handle,
        }
    }

    /// `HERALD_PUSH_HOSTS` for this service.
    fn host(&self) -> String {
        self.address.trim_start_matches("http://").to_owned()
    }

    /// A new browser subscription to this service.
    fn browser(&self, name: &str) -> Browser {
        let (pair, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        let keys = pair.raw_components().unwrap();
        let endpoint = format!("{}/push/{name}", self.address);
        self.inbox
            .lock()
            .unwrap()
            .browsers
            .insert(name.to_owned(), (keys, auth));
        Browser {
            json: json!({
                "endpoint": endpoint,
                "expirationTime": null,
                "keys": {
                    "p256dh": URL_SAFE_NO_PAD.encode(pair.pub_as_raw().unwrap()),
                    "auth": URL_SAFE_NO_PAD.encode(auth),
                },
            }),
            endpoint,
        }
    }

    fn answer(&self, subscription: &str, statuses: &[u16]) {
        self.inbox
            .lock()
            .unwrap()
            .answers
            .insert(subscription.to_owned(), statuses.to_vec());
    }

    fn received(&self) -> Vec<Received> {
        let inbox = self.inbox.lock().unwrap();
        assert!(inbox.refused.is_empty(), "bad pushes: {:?}", inbox.refused);
        inbox.received.clone()
    }

    /// Waits (bounded) until `count` pushes have arrived in all.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + PUSH_WAIT;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} pushes expected within {PUSH_WAIT:?}, got {received:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

type Shared = web::Data<(Arc<Mutex<Inbox>>, String)>;

async fn receive(
    req: HttpRequest,
    subscription: web::Path<String>,
    body: web::Bytes,
    shared: Shared,
) -> HttpResponse {
    let (inbox, public_key) = shared.get_ref();
    let mut inbox = inbox.lock().unwrap();
    let subscription = subscription.into_inner();
    let answer = match inbox.answers.get_mut(&subscription) {
        Some(statuses) if !statuses.is_empty() => statuses.remove(0),
        _ => 201,
    };
    let checked = check(&req, &body, public_key, &subscription, &inbox);
    match checked {
        Ok(received) if answer == 201 => inbox.received.push(received),
        Ok(_) => {}
        Err(why) => {
            inbox.refused.push(why);
            return HttpResponse::BadRequest().finish();
        }
    }
    let mut response = HttpResponse::build(StatusCode::from_u16(answer).unwrap());
    if answer == 429 {
        response.insert_header(("Retry-After", "1"));
    }
    response.finish()
}

/// What a push service and then the browser check: the VAPID JWT, then the decryption.
fn check(
    req: &HttpRequest,
    body: &[u8],
    public_key: &str,
    subscription: &str,
    inbox: &Inbox,
) -> Result<Received, String> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(format!("no {name} header"))
    };
    if header("content-encoding")? != "aes128gcm" {
        return Err("Content-Encoding is not aes128gcm".into());
    }
    if body.len() > 4096 {
        return Err(format!("{} bytes: push services take 4096", body.len()));
    }
    let authorization = header("authorization")?;
    let (jwt, k) = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .ok_or(format!("not a VAPID Authorization: {authorization}"))?;
    if k != public_key {
        return Err("k is not herald's public key".into());
    }
    let point = URL_SAFE_NO_PAD.decode(k).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    let audience = format!("http://{}", header("host")?);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_ec_der(&point),
        &validation,
    )
    .map_err(|e| format!("VAPID JWT refused: {e}"))?
    .claims;
    let exp = claims["exp"].as_i64().unwrap_or_default();
    if exp > chrono::Utc::now().timestamp() + 24 * 3600 {
        return Err("exp more than 24 hours ahead (RFC 8292)".into());
    }
    if claims["sub"] != "mailto:ops@example.com" {
        return Err(format!("sub: {}", claims["sub"]));
    }
    let (keys, auth) = inbox
        .browsers
        .get(subscription)
        .ok_or("no such subscription")?;
    let plaintext = ece::decrypt(keys, auth, body).map_err(|e| format!("decrypt: {e}"))?;
    Ok(Received {
        subscription: subscription.to_owned(),
        ttl: header("ttl")?.parse().map_err(|_| "TTL is not seconds")?,
        urgency: header("urgency")?,
        payload: serde_json::from_slice(&plaintext).map_err(|e| e.to_string())?,
    })
}

/// A key pair for herald; the tests' push service checks against its public half.
fn vapid_key() -> String {
    Vapid::generate_private_key().unwrap()
}

fn with_push(config: &mut Config, key: &str, service: &PushService) {
    config.vapid_private_key = Some(key.to_owned().into());
    config.vapid_subject = Some("mailto:ops@example.com".into());
    config.push_hosts = vec![service.host()];
}

/// herald with push on, the push service it may send to, and its VAPID private key (for a
/// second instance).
async fn app_with_push() -> (TestApp, PushService, String) {
    app_with_push_tuned(|_| {}).await
}

/// [`app_with_push`] with its settings changed by `tune`.
async fn app_with_push_tuned(tune: impl FnOnce(&mut Config)) -> (TestApp, PushService, String) {
    let key = vapid_key();
    let public = Vapid::from_private_key(&key, "mailto:x").unwrap();
    let service = PushService::start(public.public_key().to_owned()).await;
    let db = TestDb::new();
    let mut config = test_config(&db.url);
    with_push(&mut config, &key, &service);
    tune(&mut config);
    (spawn_configured(db, config).await, service, key)
}

async fn subscribe(app: &TestApp, user: &str, browser: &Browser) -> StatusCode {
    let token = app.token_for(user);
    let body = browser.json.to_string();
    app.post("/api/push/subscriptions", Some(&token), Some(&body))
        .await
        .0
}

async fn unsubscribe(app: &TestApp, user: &str, endpoint: &str) -> StatusCode {
    let body = json!({ "endpoint": endpoint }).to_string();
    app.client
        .delete(format!("{}/api/push/subscriptions", app.address))
        .bearer_auth(app.token_for(user))
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .unwrap()
        .status()
}

/// How many pushes are still queued.
async fn queued(app: &TestApp) -> i64 {
    let pg = app.pg().await;
    pg.query_one("select count(*) from herald_push_queue", &[])
        .await
        .unwrap()
        .get(0)
}

/// Waits (bounded) until nothing is left to send (nor to send again).
async fn until_sent(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while queued(app).await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "queue never drains");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until `user` is known to have a stream open on some instance.
async fn until_streaming(app: &TestApp, user: &str) {
    let pg = app.pg().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let held: i64 = pg
            .query_one(
                "select count(*) from herald_presence where channel = '' and user_id = $1",
                &[&user],
            )
            .await
            .unwrap()
            .get(0);
        if held > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user}'s stream not recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_user_with_no_tab_open_gets_the_notification_once_encrypted_and_signed() {
    let (app, service, _) = app_with_push().await;
    let browser = service.browser("ann-laptop");
    assert_eq!(subscribe(&app, "ann", &browser).await, StatusCode::CREATED);

    let pg = app.pg().await;
    let id: i64 = pg
        .query_one(
            "insert into notifications (channel, title, body, level, data)
             values ('user:ann', 'Order #17 shipped', 'Arrives tomorrow', 'success',
                     '{\"url\": \"/orders/17\"}') returning id",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let received = service.wait_for(1).await;
    let push = &received[0];
    assert_eq!(push.subscription, "ann-laptop");
    assert_eq!(
        push.payload,
        json!({"id": id, "title": "Order #17 shipped", "body": "Arrives tomorrow",
               "level": "success", "data": {"url": "/orders/17"}})
    );
    assert!(
        (23 * 3600..=24 * 3600).contains(&push.ttl),
        "TTL is what is left of a day: {}",
        push.ttl
    );
    assert_eq!(push.urgency, "normal");
    assert_eq!(app.metric("herald_pushes_sent_total").await, 1);
    // Sent once: nothing is left to send it again.
    assert_eq!(queued(&app).await, 0);
    assert_eq!(service.received().len(), 1);
}

#[actix_web::test]
async fn only_users_without_a_stream_who_did_not_read_it_are_pushed() {
    let (app, service, _) = app_with_push().await;
    for user in ["online", "reader", "away"] {
        let browser = service.browser(user);
        assert_eq!(subscribe(&app, user, &browser).await, StatusCode::CREATED);
    }
    // A stream without presence= counts: the tab shows notifications.
    let mut stream = app.open_events(&app.token_for("online"), "", None).await;
    until_streaming(&app, "online").await;

    let to_online = app.insert("user:online", "seen in the tab").await;
    let to_reader = app.insert("user:reader", "read at once").await;
    let (status, _) = app
        .post(
            &format!("/api/notifications/{to_reader}/read"),
            Some(&app.token_for("reader")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let to_away = app.insert("user:away", "pushed").await;
    assert_eq!(stream.next("notification").await.json()["id"], to_online);

    // The last inserted, due last: once it is pushed, the others were decided.
    let received = service.wait_for(1).await;
    assert_eq!(received[0].subscription, "away");
    assert_eq!(received[0].payload["id"], to_away);
    until_sent(&app).await;
    assert_eq!(service.received().len(), 1, "{:?}", service.received());
    assert_eq!(app.metric("herald_pushes_sent_total").await, 1);
}

#[actix_web::test]
async fn a_gone_subscription_is_removed_and_a_busy_service_is_retried() {
    let (app, service, _) = app_with_push().await;
    let gone = service.browser("gone");
    let busy = service.browser("busy");
    assert_eq!(subscribe(&app, "gone", &gone).await, StatusCode::CREATED);
    assert_eq!(subscribe(&app, "busy", &busy).await, StatusCode::CREATED);
    service.answer("gone", &[410]);
    service.answer("busy", &[429, 503]);

    app.insert("user:gone", "to a browser that unsubscribed")
        .await;
    let id = app.insert("user:busy", "third time lucky").await;

    let received = service.wait_for(1).await;
    assert_eq!(received[0].subscription, "busy");
    assert_eq!(received[0].payload["id"], id);
    assert_eq!(
        app.metric("herald_push_subscriptions_removed_total").await,
        1
    );
    assert_eq!(app.metric("herald_pushes_sent_total").await, 1);
    assert_eq!(app.metric("herald_pushes_failed_total").await, 0);
    let pg = app.pg().await;
    let left: Vec<String> = pg
        .query("select endpoint from herald_push_subscriptions", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, [busy.endpoint.as_str()]);
    // Subscribing it again (the browser made a new one) works as new.
    assert_eq!(subscribe(&app, "gone", &gone).await, StatusCode::CREATED);
}

#[actix_web::test]
async fn two_instances_send_each_push_once() {
    let (first, service, key) = app_with_push().await;
    let host = service.host();
    let _second = Process::start(
        &first.db,
        &[
            ("HERALD_VAPID_PRIVATE_KEY", key.as_str()),
            ("HERALD_VAPID_SUBJECT", "mailto:ops@example.com"),
            ("HERALD_PUSH_HOSTS", host.as_str()),
        ],
    )
    .await;

    let users: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    for user in &users {
        let browser = service.browser(user);
        assert_eq!(subscribe(&first, user, &browser).await, StatusCode::CREATED);
    }
    let broadcast = first.insert("broadcast", "maintenance tonight").await;
    for user in &users[..10] {
        first.insert(&format!("user:{user}"), "yours").await;
    }

    let received = service.wait_for(users.len() + 10).await;
    until_sent(&first).await;
    let received = service.received().len().max(received.len());
    assert_eq!(received, users.len() + 10, "every push exactly once");
    let mut seen = HashMap::new();
    for push in service.received() {
        let id = push.payload["id"].as_i64().unwrap();
        *seen.entry((push.subscription, id)).or_insert(0) += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    for user in &users {
        assert_eq!(seen.get(&(user.clone(), broadcast)), Some(&1), "{user}");
    }
}

#[actix_web::test]
async fn subscriptions_are_checked_and_limited() {
    let (app, service, _) = app_with_push().await;
    let token = app.token_for("cat");

    let (status, key) = app.get("/api/push/key", None).await;
    assert_eq!(status, StatusCode::OK);
    let point = URL_SAFE_NO_PAD
        .decode(key["public_key"].as_str().unwrap())
        .unwrap();
    assert_eq!((point.len(), point[0]), (65, 4));

    let browser = service.browser("cat-1");
    let body = browser.json.to_string();
    let (status, _) = app.post("/api/push/subscriptions", None, Some(&body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(subscribe(&app, "cat", &browser).await, StatusCode::CREATED);
    assert_eq!(subscribe(&app, "cat", &browser).await, StatusCode::OK);

    let refused = |json: Value, code: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            let (status, body) = app
                .post(
                    "/api/push/subscriptions",
                    Some(&token),
                    Some(&json.to_string()),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}: {body}");
            assert_eq!(body["error"]["code"], code, "{json}: {body}");
        }
    };
    let keys = browser.json["keys"].clone();
    for endpoint in [
        "http://169.254.169.254/latest/meta-data",
        "https://internal.example/push",
        "http://127.0.0.1:1/push/x",
        "not a url",
    ] {
        refused(
            json!({"endpoint": endpoint, "keys": keys}),
            "endpoint_not_allowed",
        )
        .await;
    }
    let endpoint = format!("{}/push/cat-2", service.address);
    refused(json!({"endpoint": endpoint}), "invalid_subscription").await;
    refused(
        json!({"endpoint": endpoint, "keys": {"p256dh": "AAAA", "auth": keys["auth"]}}),
        "invalid_subscription",
    )
    .await;
    let not_on_the_curve = URL_SAFE_NO_PAD.encode([4u8; 65]);
    refused(
        json!({"endpoint": endpoint, "keys": {"p256dh": not_on_the_curve, "auth": keys["auth"]}}),
        "invalid_subscription",
    )
    .await;
    refused(json!({"keys": keys}), "invalid_subscription").await;

    for i in 2..=10 {
        let browser = service.browser(&format!("cat-{i}"));
        assert_eq!(subscribe(&app, "cat", &browser).await, StatusCode::CREATED);
    }
    let eleventh = service.browser("cat-11");
    let (status, body) = app
        .post(
            "/api/push/subscriptions",
            Some(&token),
            Some(&eleventh.json.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "too_many_subscriptions");
    // Another user's limit is their own.
    assert_eq!(subscribe(&app, "dan", &eleventh).await, StatusCode::CREATED);

    assert_eq!(
        unsubscribe(&app, "cat", &browser.endpoint).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        unsubscribe(&app, "cat", &browser.endpoint).await,
        StatusCode::NO_CONTENT,
        "twice is no error"
    );
    assert_eq!(subscribe(&app, "cat", &browser).await, StatusCode::CREATED);
}

#[actix_web::test]
async fn without_keys_push_is_off_and_says_so() {
    let app = spawn_app_with(|_| {}).await;
    let (status, body) = app.get("/api/push/key", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "push_disabled");
    let (status, body) = app
        .post(
            "/api/push/subscriptions",
            Some(&app.token_for("ann")),
            Some(r#"{"endpoint": "https://fcm.googleapis.com/fcm/send/x"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "push_disabled");
}

#[actix_web::test]
async fn a_browser_that_changes_hands_gets_none_of_the_previous_users_pushes() {
    let (app, service, _) = app_with_push().await;
    let shared = service.browser("shared-laptop");
    assert_eq!(subscribe(&app, "ann", &shared).await, StatusCode::CREATED);
    app.insert("user:ann", "for ann's eyes only").await;
    // Bob signs in on the same browser and switches push on within the 5 s.
    assert_eq!(subscribe(&app, "bob", &shared).await, StatusCode::OK);
    let for_bob = app.insert("user:bob", "for bob").await;

    let received = service.wait_for(1).await;
    assert_eq!(received[0].payload["id"], for_bob);
    until_sent(&app).await;
    assert_eq!(service.received().len(), 1, "{:?}", service.received());
}

#[actix_web::test]
async fn an_endpoint_alone_does_not_take_another_users_subscription() {
    let (app, service, _) = app_with_push().await;
    let anns = service.browser("anns-laptop");
    assert_eq!(subscribe(&app, "ann", &anns).await, StatusCode::CREATED);
    // Mallory learnt ann's endpoint (a log, a proxy) and registers it with keys of her own.
    let mut forged = service.browser("mallorys-keys").json;
    forged["endpoint"] = anns.endpoint.clone().into();
    let (status, body) = app
        .post(
            "/api/push/subscriptions",
            Some(&app.token_for("mallory")),
            Some(&forged.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "endpoint_taken");

    // Ann's pushes still reach ann's browser, readable with ann's keys.
    let for_ann = app.insert("user:ann", "still ann's").await;
    let received = service.wait_for(1).await;
    assert_eq!(received[0].subscription, "anns-laptop");
    assert_eq!(received[0].payload["id"], for_ann);
}

#[actix_web::test]
async fn a_stalled_subscription_body_is_cut_off_with_408_and_counted_under_the_limits() {
    let (app, _service, _) = app_with_push_tuned(|config| {
        config.request_timeout_secs = 3;
        config.max_streams_per_user = 2;
    })
    .await;
    let token = app.token_with("ann", &[], true);

    // Heads, then one byte of body, for both methods the route has.
    let mut stalled = Vec::new();
    for method in ["POST", "DELETE"] {
        let mut socket = app.raw_socket().await;
        let head = format!(
            "{method} /api/push/subscriptions HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        stalled.push(socket);
    }
    app.wait_for_metric("herald_request_bodies_pending", 2)
        .await;
    let (status, body) = app
        .post("/api/notifications", Some(&token), Some("{}"))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams");

    for socket in &mut stalled {
        let answer = read_until_closed(socket).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    }
    app.wait_for_metric("herald_request_bodies_pending", 0)
        .await;
}
