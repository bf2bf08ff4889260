//! The `herald` binary's commands, run as a cron job would.

use std::process::Command;

use crate::helpers::{SECRET, TestDb, spawn_app_on};

fn herald(db: &TestDb) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env("DATABASE_URL", &db.url)
        .env("HERALD_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn");
    command
}

#[actix_web::test]
async fn herald_migrate_then_send_inserts_a_notification_an_open_stream_receives() {
    let db = TestDb::new();
    let migrate = herald(&db).arg("migrate").output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let app = spawn_app_on(db).await;
    let mut events = app.open_events(&app.token_for("42"), "", None).await;

    let send = herald(&app.db)
        .args([
            "send",
            "--channel",
            "user:42",
            "--title",
            "Nightly report",
            "--level",
            "success",
        ])
        .args(["--data", r#"{"rows": 3}"#])
        .output()
        .unwrap();

    assert!(
        send.status.success(),
        "{}",
        String::from_utf8_lossy(&send.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&send.stdout).unwrap();
    let received = events.next("notification").await.json();
    assert_eq!(received["id"], printed["id"]);
    assert_eq!(received["data"]["rows"], 3);
}

#[actix_web::test]
async fn herald_send_refuses_a_bad_row_with_the_reason() {
    let app = spawn_app_on(TestDb::new()).await;
    let send = herald(&app.db)
        .args([
            "send",
            "--channel",
            "user:1",
            "--title",
            "x",
            "--level",
            "loud",
        ])
        .output()
        .unwrap();
    assert!(!send.status.success());
    assert!(String::from_utf8_lossy(&send.stderr).contains("level must be one of"));
}

#[actix_web::test]
async fn herald_token_mints_a_token_the_service_accepts_with_its_grants() {
    let db = TestDb::new();
    let app = spawn_app_on(db).await;
    let out = herald(&app.db)
        .args(["token", "--user", "42", "--channels", "order:*,admin"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let (status, _) = app
        .get("/api/notifications?channels=order:1,admin", Some(&token))
        .await;

    assert_eq!(status, actix_web::http::StatusCode::OK);
}
