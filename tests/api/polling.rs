//! `GET /api/notifications`: lists, cursors, long-polling.

use actix_web::http::StatusCode;

use crate::helpers::spawn_app;

fn titles(list: &serde_json::Value) -> Vec<String> {
    list["notifications"]
        .as_array()
        .expect("a notifications array")
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn without_after_the_newest_come_newest_first_from_the_inbox_only() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    for title in ["one", "two", "three"] {
        app.insert("user:1", title).await;
    }
    app.insert("user:2", "not mine").await;
    app.insert("broadcast", "everyone").await;

    let (status, list) = app.get("/api/notifications?limit=3", Some(&token)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(titles(&list), vec!["everyone", "three", "two"]);
    assert_eq!(list["unread_count"], 4);
    assert!(list["cursor"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(list.get("reset").is_none());
}

#[actix_web::test]
async fn passing_the_cursor_as_after_returns_only_what_is_newer_oldest_first() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    app.insert("user:1", "old").await;
    let (_, first) = app.get("/api/notifications", Some(&token)).await;

    app.insert("user:1", "new 1").await;
    app.insert("user:1", "new 2").await;
    app.caught_up().await;
    let after = first["cursor"].as_str().unwrap();
    let (_, second) = app
        .get(&format!("/api/notifications?after={after}"), Some(&token))
        .await;

    assert_eq!(titles(&second), vec!["new 1", "new 2"]);
    let after = second["cursor"].as_str().unwrap();
    let (_, third) = app
        .get(&format!("/api/notifications?after={after}"), Some(&token))
        .await;
    assert_eq!(titles(&third), Vec::<String>::new());
}

#[actix_web::test]
async fn paging_with_a_small_limit_visits_every_row_exactly_once() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let (_, start) = app.get("/api/notifications", Some(&token)).await;
    let mut expected = Vec::new();
    for i in 0..7 {
        app.insert("user:1", &format!("n{i}")).await;
        expected.push(format!("n{i}"));
    }
    app.caught_up().await;

    let mut cursor = start["cursor"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    loop {
        let (_, page) = app
            .get(
                &format!("/api/notifications?after={cursor}&limit=3"),
                Some(&token),
            )
            .await;
        let page_titles = titles(&page);
        cursor = page["cursor"].as_str().unwrap().to_owned();
        if page_titles.is_empty() {
            break;
        }
        seen.extend(page_titles);
    }
    assert_eq!(seen, expected);
}

#[actix_web::test]
async fn polling_after_a_cursor_picks_up_a_row_that_committed_late() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let slow = app.insert_uncommitted("user:1", "slow").await;
    app.insert("user:1", "fast").await;
    let (_, first) = app.get("/api/notifications", Some(&token)).await;
    assert_eq!(titles(&first), vec!["fast"]);

    slow.batch_execute("commit").await.unwrap();
    app.caught_up().await;
    let after = first["cursor"].as_str().unwrap();
    let (_, second) = app
        .get(&format!("/api/notifications?after={after}"), Some(&token))
        .await;

    assert_eq!(titles(&second), vec!["slow"]);
}

#[actix_web::test]
async fn a_long_poll_returns_as_soon_as_a_row_arrives() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let (_, first) = app.get("/api/notifications", Some(&token)).await;
    let after = first["cursor"].as_str().unwrap().to_owned();

    // The wait is far longer than the test's own bounded waits: only an early answer passes.
    let path = format!("/api/notifications?after={after}&wait=60");
    let poll = app.get(&path, Some(&token));
    let insert = async {
        app.wait_for_metric("herald_long_polls_parked", 1).await;
        app.insert("user:1", "arrived").await;
    };
    let ((status, list), ()) = tokio::time::timeout(crate::helpers::WAIT, async {
        futures_util::future::join(poll, insert).await
    })
    .await
    .expect("the long-poll answered before its wait ran out");

    assert_eq!(status, StatusCode::OK);
    assert_eq!(titles(&list), vec!["arrived"]);
}

#[actix_web::test]
async fn a_long_poll_with_nothing_new_answers_empty_when_the_wait_runs_out() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let (_, first) = app.get("/api/notifications", Some(&token)).await;
    let after = first["cursor"].as_str().unwrap().to_owned();
    app.insert("user:2", "someone else's").await;

    let (status, list) = app
        .get(
            &format!("/api/notifications?after={after}&wait=1"),
            Some(&token),
        )
        .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(titles(&list), Vec::<String>::new());
    // Its cursor still works.
    app.insert("user:1", "later").await;
    app.caught_up().await;
    let after = list["cursor"].as_str().unwrap();
    let (_, next) = app
        .get(&format!("/api/notifications?after={after}"), Some(&token))
        .await;
    assert_eq!(titles(&next), vec!["later"]);
}

#[actix_web::test]
async fn an_unknown_after_cursor_answers_the_newest_with_reset() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    app.insert("user:1", "only").await;
    for after in ["garbage", "999999999:999999999:"] {
        let (status, list) = app
            .get(&format!("/api/notifications?after={after}"), Some(&token))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["reset"], true);
        assert_eq!(titles(&list), vec!["only"]);
    }
}

#[actix_web::test]
async fn unread_true_lists_only_unread() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let read = app.insert("user:1", "read").await;
    app.insert("user:1", "unread").await;
    app.post(
        &format!("/api/notifications/{read}/read"),
        Some(&token),
        None,
    )
    .await;

    let (_, list) = app
        .get("/api/notifications?unread=true", Some(&token))
        .await;

    assert_eq!(titles(&list), vec!["unread"]);
    let (_, all) = app.get("/api/notifications", Some(&token)).await;
    assert_eq!(all["notifications"][1]["read"], true);
}

#[actix_web::test]
async fn a_woken_long_poll_counts_unread_and_its_cursor_resumes_exactly_out_of_order() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    app.insert("user:1", "before").await;
    let (_, first) = app.get("/api/notifications", Some(&token)).await;
    let after = first["cursor"].as_str().unwrap().to_owned();
    // Takes its id now, commits last.
    let late = app.insert_uncommitted("user:1", "late").await;

    let path = format!("/api/notifications?after={after}&wait=60");
    let poll = app.get(&path, Some(&token));
    let insert = async {
        app.wait_for_metric("herald_long_polls_parked", 1).await;
        app.insert("user:2", "not theirs").await;
        app.insert("broadcast", "early").await;
    };
    let ((status, woken), ()) = tokio::time::timeout(crate::helpers::WAIT, async {
        futures_util::future::join(poll, insert).await
    })
    .await
    .expect("the long-poll answered");

    assert_eq!(status, StatusCode::OK, "{woken}");
    assert_eq!(titles(&woken), vec!["early"]);
    assert_eq!(woken["unread_count"], 2, "before and early");
    assert_eq!(woken["notifications"][0]["read"], false);
    late.batch_execute("commit").await.unwrap();
    app.caught_up().await;
    let cursor = woken["cursor"].as_str().unwrap();
    let (_, next) = app
        .get(&format!("/api/notifications?after={cursor}"), Some(&token))
        .await;
    assert_eq!(
        titles(&next),
        vec!["late"],
        "the late row, and nothing twice"
    );
    let cursor = next["cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/api/notifications?after={cursor}"), Some(&token))
        .await;
    assert_eq!(titles(&rest), Vec::<String>::new());
}

#[actix_web::test]
async fn a_long_poll_ends_when_its_token_expires_and_hands_out_nothing_after() {
    let app = spawn_app().await;
    let (token, exp) = app.token_expiring("1", 2);
    let after = app.list_cursor(&token, "").await;
    let path = format!("/api/notifications?after={after}&wait=60");
    let poll = app.get(&path, Some(&token));
    let insert_after_expiry = async {
        let expiry = std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp as u64);
        let wait = expiry
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(wait + std::time::Duration::from_millis(500)).await;
        app.insert("user:1", "for a token that has expired").await;
    };

    let ((status, list), ()) = tokio::time::timeout(
        crate::helpers::WAIT,
        futures_util::future::join(poll, insert_after_expiry),
    )
    .await
    .expect("the long-poll ended with its token, long before its 60 s wait");

    assert_eq!(status, StatusCode::OK);
    assert_eq!(titles(&list), Vec::<String>::new());
}
