//! Presence (SPEC section 8): who is online on a channel, on every instance, through
//! PostgreSQL alone.

use std::time::Duration;

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    EventStream, Process, SECRET, SseEvent, TestApp, TestDb, spawn_app, spawn_app_with,
};

/// A token for `user` called `name`, granted `project:*`.
fn named(user: &str, name: &str) -> String {
    let claims = json!({
        "sub": user,
        "name": name,
        "channels": ["project:*"],
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

const PRESENT_ON_5: &str = "channels=project:5&presence=project:5";

/// The users of a `presence` snapshot, in order.
fn present(event: &SseEvent) -> Vec<String> {
    let data = event.json();
    assert_eq!(data["channel"], "project:5");
    data["present"]
        .as_array()
        .expect("a snapshot")
        .iter()
        .map(|m| m["user"].as_str().unwrap().to_owned())
        .collect()
}

/// The presence snapshot a stream opened with.
fn opened_with(events: &mut EventStream) -> SseEvent {
    events
        .take_replayed()
        .into_iter()
        .find(|e| e.event == "presence")
        .expect("a presence snapshot first")
}

/// A notification on project:5, and the next event of `events` must be it: nothing about
/// presence came before it.
async fn nothing_but_the_fence(app: &TestApp, events: &mut EventStream) {
    app.insert("project:5", "fence").await;
    let next = events.next_any().await.unwrap();
    assert_eq!(next.event, "notification", "{next:?}");
}

#[actix_web::test]
async fn two_users_see_each_other_arrive_and_leave() {
    let app = spawn_app().await;
    let mut ada = app
        .open_events(&named("1", "Ada"), PRESENT_ON_5, None)
        .await;
    let snapshot = opened_with(&mut ada);
    assert_eq!(present(&snapshot), vec!["1"]);
    let me = &snapshot.json()["present"][0];
    assert_eq!(me["name"], "Ada");
    assert!(chrono::DateTime::parse_from_rfc3339(me["since"].as_str().unwrap()).is_ok());

    let mut bob = app
        .open_events(&named("2", "Bob"), PRESENT_ON_5, None)
        .await;
    assert_eq!(present(&opened_with(&mut bob)), vec!["1", "2"]);
    let joined = ada.next("presence").await.json();
    assert_eq!(joined["joined"][0]["user"], "2");
    assert_eq!(joined["joined"][0]["name"], "Bob");
    assert_eq!(joined["left"], json!([]));

    drop(bob);
    // Within the grace (5 s) and a tick: well inside the spec's 15 s, and the helper's wait.
    let left = ada.next("presence").await.json();
    assert_eq!(left["left"], json!(["2"]));
    assert_eq!(left["joined"], json!([]));
}

#[actix_web::test]
async fn a_reload_within_the_grace_is_neither_a_leave_nor_a_join() {
    const GRACE_MS: u64 = 600;
    let app = spawn_app_with(|config| {
        config.periods.presence_grace_ms = GRACE_MS;
        config.periods.presence_tick_ms = 100;
    })
    .await;
    let mut ada = app
        .open_events(&named("1", "Ada"), PRESENT_ON_5, None)
        .await;
    let bob_token = named("2", "Bob");
    opened_with(&mut ada);
    let bob = app.open_events(&bob_token, PRESENT_ON_5, None).await;
    assert_eq!(ada.next("presence").await.json()["joined"][0]["user"], "2");

    drop(bob);
    tokio::time::sleep(Duration::from_millis(GRACE_MS / 4)).await;
    let mut bob = app.open_events(&bob_token, PRESENT_ON_5, None).await;
    assert_eq!(present(&opened_with(&mut bob)), vec!["1", "2"]);
    // Past the grace and a few ticks after the reload: had it counted as a leave, it would
    // show.
    tokio::time::sleep(Duration::from_millis(GRACE_MS + 300)).await;
    nothing_but_the_fence(&app, &mut ada).await;
}

#[actix_web::test]
async fn presence_needs_the_channel_and_the_lists_show_who_is_there() {
    let app = spawn_app().await;
    let outsider = app.token_for("3");
    let (status, body) = app.get("/events?presence=project:5", Some(&outsider)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = app
        .get("/api/presence?channels=project:5", Some(&outsider))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/api/presence", Some(&outsider)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Present on a channel not streamed: presence= alone is enough.
    let _ada = app
        .open_events(&named("1", "Ada"), "presence=project:5", None)
        .await;
    // A polling client is present for 30 s after a poll with presence=.
    let bob = named("2", "Bob");
    let (status, _) = app
        .get(
            "/api/notifications?presence=project:5,project:6",
            Some(&bob),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app
        .get(
            "/api/presence?channels=project:5,project:6,project:7",
            Some(&bob),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let users = |channel: &str| -> Vec<Value> {
        body["presence"][channel]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| json!([m["user"], m["name"]]))
            .collect()
    };
    assert_eq!(
        users("project:5"),
        vec![json!(["1", "Ada"]), json!(["2", "Bob"])]
    );
    assert_eq!(users("project:6"), vec![json!(["2", "Bob"])]);
    assert_eq!(users("project:7"), Vec::<Value>::new());
}

#[actix_web::test]
async fn presence_is_shared_by_instances_and_a_killed_instance_leaves_no_ghosts() {
    let db = TestDb::new();
    let mut other = Process::start(&db, &[]).await;
    let url = db.url.clone();
    let b = TestApp::attach(other.address.clone(), TestDb::existing(&url)).await;
    let a = crate::helpers::spawn_app_on(db).await;

    let mut ada = a.open_events(&named("1", "Ada"), PRESENT_ON_5, None).await;
    opened_with(&mut ada);
    let bob_token = named("2", "Bob");
    let mut bob = b.open_events(&bob_token, PRESENT_ON_5, None).await;
    assert_eq!(
        present(&opened_with(&mut bob)),
        vec!["1", "2"],
        "Ada is on the other one"
    );
    assert_eq!(ada.next("presence").await.json()["joined"][0]["user"], "2");

    // Bob hops from b to a within the grace: no leave, no join.
    drop(bob);
    let _bob = a.open_events(&bob_token, PRESENT_ON_5, None).await;
    let carol = b
        .open_events(&named("3", "Carol"), PRESENT_ON_5, None)
        .await;
    assert_eq!(ada.next("presence").await.json()["joined"][0]["user"], "3");

    // b dies with Carol on it: she is gone from a within 15 s (the hold, 10 s, and a tick).
    other.kill();
    let left = ada.next_within("presence", Duration::from_secs(15)).await;
    assert_eq!(
        left.json()["left"],
        json!(["3"]),
        "only Carol: Bob moved in time"
    );
    drop(carol);
    nothing_but_the_fence(&a, &mut ada).await;
}
