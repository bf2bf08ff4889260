//! Read state: unread counts, mark read, mark all read, and the events that announce them.

use actix_web::http::StatusCode;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn the_unread_count_follows_inserts_and_mark_read_and_open_streams_are_told() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let mut tab = app.open_events(&token, "", None).await;
    let mut other_tab = app.open_events(&token, "", None).await;

    let id = app.insert("user:1", "hello").await;
    assert_eq!(tab.next("unread_count").await.json()["unread_count"], 1);
    let (_, count) = app
        .get("/api/notifications/unread_count", Some(&token))
        .await;
    assert_eq!(count["unread_count"], 1);

    let (status, body) = app
        .post(&format!("/api/notifications/{id}/read"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unread_count"], 0);

    let read = other_tab.next("read").await.json();
    assert_eq!(read["ids"], serde_json::json!([id]));
    assert_eq!(
        other_tab.next("unread_count").await.json()["unread_count"],
        0
    );
    assert_eq!(
        tab.next("read").await.json()["ids"],
        serde_json::json!([id])
    );
}

#[actix_web::test]
async fn marking_read_twice_changes_nothing() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let id = app.insert("user:1", "hello").await;
    app.insert("user:1", "other").await;
    for _ in 0..2 {
        let (status, body) = app
            .post(&format!("/api/notifications/{id}/read"), Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["unread_count"], 1);
    }
}

#[actix_web::test]
async fn a_broadcast_marked_read_by_one_user_stays_unread_for_the_others() {
    let app = spawn_app().await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let id = app.insert("broadcast", "Maintenance").await;

    app.post(&format!("/api/notifications/{id}/read"), Some(&alice), None)
        .await;

    let (_, alice_count) = app
        .get("/api/notifications/unread_count", Some(&alice))
        .await;
    let (_, bob_count) = app.get("/api/notifications/unread_count", Some(&bob)).await;
    assert_eq!(alice_count["unread_count"], 0);
    assert_eq!(bob_count["unread_count"], 1);
    let (_, bob_list) = app.get("/api/notifications", Some(&bob)).await;
    assert_eq!(bob_list["notifications"][0]["read"], false);
}

#[actix_web::test]
async fn another_users_notification_cannot_be_marked_read() {
    let app = spawn_app().await;
    let id = app.insert("user:1", "private").await;

    let (status, body) = app
        .post(
            &format!("/api/notifications/{id}/read"),
            Some(&app.token_for("2")),
            None,
        )
        .await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (_, count) = app
        .get("/api/notifications/unread_count", Some(&app.token_for("1")))
        .await;
    assert_eq!(count["unread_count"], 1);
    let (status, _) = app
        .post(
            "/api/notifications/999999/read",
            Some(&app.token_for("1")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn read_all_marks_the_inbox_read_and_tells_other_tabs() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let single = app.insert("user:1", "a").await;
    app.insert("user:1", "b").await;
    app.insert("broadcast", "c").await;
    app.post(
        &format!("/api/notifications/{single}/read"),
        Some(&token),
        None,
    )
    .await;
    let mut tab = app.open_events(&token, "", None).await;

    let (status, body) = app
        .post("/api/notifications/read_all", Some(&token), None)
        .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["marked"], 2);
    // A read event committed just before the tab opened may still arrive; it is idempotent.
    while tab.next("read").await.json() != serde_json::json!({"all": true}) {}
    assert_eq!(tab.next("unread_count").await.json()["unread_count"], 0);
    let (_, list) = app.get("/api/notifications", Some(&token)).await;
    assert!(
        list["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["read"] == true)
    );

    // What arrives afterwards is unread again, and counted.
    app.insert("user:1", "d").await;
    assert_eq!(tab.next("unread_count").await.json()["unread_count"], 1);
    let (_, again) = app
        .post("/api/notifications/read_all", Some(&token), None)
        .await;
    assert_eq!(again["marked"], 1);
}
