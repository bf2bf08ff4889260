//! Retention: `herald prune --older-than` and the built-in schedule delete old notifications
//! and their read state, and leave every unread count exact.

use actix_web::http::StatusCode;

use crate::cli::herald;
use crate::helpers::{
    TestApp, TestDb, WAIT, migrated_db, spawn_app, spawn_configured, test_config,
};

/// Rows of `channel` created `days` ago (autocommit, as an app's history would be).
async fn insert_aged(app: &TestApp, channel: &str, count: i32, days: i32) {
    insert_aged_with(&app.pg().await, channel, count, days).await;
}

async fn insert_aged_with(pg: &tokio_postgres::Client, channel: &str, count: i32, days: i32) {
    pg.execute(
        "insert into notifications (channel, title, created_at)
             select $1, 'aged', now() - make_interval(days => $3) from generate_series(1, $2)",
        &[&channel, &count, &days],
    )
    .await
    .expect("insert aged rows");
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.pg().await.query_one(sql, &[]).await.expect(sql).get(0)
}

#[actix_web::test]
async fn herald_prune_deletes_old_notifications_and_their_reads_in_batches_and_counts_stay_exact() {
    let app = spawn_app().await;
    insert_aged(&app, "user:1", 25, 120).await;
    insert_aged(&app, "broadcast", 7, 100).await;
    insert_aged(&app, "user:1", 4, 10).await;
    insert_aged(&app, "broadcast", 2, 1).await;
    // Let a roll-up count the old rows, so the prune must take them out of the totals too.
    app.roll_up_counts().await;
    // User 1 reads two old rows and one recent one; user 2 marks everything read, then a
    // recent row comes.
    let token = app.token_for("1");
    for sql in [
        "select min(id) from notifications where channel = 'user:1'",
        "select min(id) from notifications where channel = 'broadcast'",
        "select max(id) from notifications where channel = 'user:1'",
    ] {
        let id = count(&app, sql).await;
        let (status, _) = app
            .post(&format!("/api/notifications/{id}/read"), Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    app.post(
        "/api/notifications/read_all",
        Some(&app.token_for("2")),
        None,
    )
    .await;
    insert_aged(&app, "broadcast", 1, 0).await;
    assert_eq!(
        (app.unread_count("1").await, app.unread_count("2").await),
        (36, 1)
    );

    let prune = herald(&app.db)
        .args(["prune", "--older-than", "90d", "--batch-size", "10"])
        .output()
        .unwrap();
    assert!(
        prune.status.success(),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&prune.stdout).trim(), "pruned: 32");

    assert_eq!(
        count(
            &app,
            "select count(*) from notifications where created_at < now() - interval '90 days'"
        )
        .await,
        0
    );
    assert_eq!(count(&app, "select count(*) from notifications").await, 7);
    // The reads of pruned rows went with them; the recent one stays.
    assert_eq!(
        count(&app, "select count(*) from notification_reads").await,
        1
    );
    // User 1: 4 + 3 recent inbox rows, one of them read. User 2: the one after their mark.
    assert_eq!(
        (app.unread_count("1").await, app.unread_count("2").await),
        (6, 1)
    );
    let list = app.get("/api/notifications?limit=50", Some(&token)).await.1;
    assert_eq!(list["notifications"].as_array().unwrap().len(), 7);
}

#[actix_web::test]
async fn prune_refuses_an_age_without_a_unit() {
    let db = TestDb::new();
    let prune = herald(&db)
        .args(["prune", "--older-than", "90"])
        .output()
        .unwrap();
    assert!(!prune.status.success());
    assert!(
        String::from_utf8_lossy(&prune.stderr).contains("unit"),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
}

#[actix_web::test]
async fn serve_with_herald_prune_older_than_prunes_on_its_own() {
    // Old rows already there when herald starts; the schedule's first run is at start.
    let (db, pg) = migrated_db().await;
    let mut config = test_config(&db.url);
    config.prune_older_than = Some(std::time::Duration::from_secs(30 * 86_400));
    insert_aged_with(&pg, "user:1", 5, 45).await;
    insert_aged_with(&pg, "user:1", 2, 5).await;
    drop(pg);
    let app = spawn_configured(db, config).await;

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = count(&app, "select count(*) from notifications").await;
        if left == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} rows left, expected the 5 old ones pruned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.unread_count("1").await, 2);
}
