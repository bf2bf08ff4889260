//! The `herald` binary's commands, run as a cron job would.

use std::process::Command;

use crate::helpers::{SECRET, TestApp, TestDb, WAIT, spawn_app_on};

pub fn herald(db: &TestDb) -> Command {
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

#[actix_web::test]
async fn on_sigterm_herald_ends_streams_answers_long_polls_and_exits_and_never_logs_a_token() {
    use tokio::io::AsyncBufReadExt;
    let db = TestDb::new();
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("HERALD_JWT_SECRET", SECRET)
        .env("HERALD_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = tokio::io::BufReader::new(process.stderr.take().unwrap()).lines();
    let mut logged = String::new();
    let port = tokio::time::timeout(WAIT, async {
        while let Some(line) = log.next_line().await.unwrap() {
            logged.push_str(&line);
            logged.push('\n');
            if let Some((_, port)) = line.split_once("listening port=") {
                return port.trim().to_owned();
            }
        }
        panic!("herald exited before listening:\n{logged}");
    })
    .await
    .expect("herald listens");
    let app = TestApp::attach(format!("http://127.0.0.1:{port}"), db).await;
    let token = app.token_for("1");
    let mut events = app.open_events(&token, "", None).await;
    // Through the query string, which the access log shows: the token must not be in it.
    let (_, list) = app
        .get(&format!("/api/notifications?token={token}"), None)
        .await;
    let parked = format!(
        "/api/notifications?after={}&wait=60",
        list["cursor"].as_str().unwrap()
    );
    let poll = app.get(&parked, Some(&token));
    let terminate = async {
        app.wait_for_metric("herald_long_polls_parked", 1).await;
        let pid = process.id().unwrap().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(kill.success());
    };

    let ((status, body), ()) =
        tokio::time::timeout(WAIT, futures_util::future::join(poll, terminate))
            .await
            .expect("SIGTERM answered the parked long-poll");
    assert_eq!(status, actix_web::http::StatusCode::OK);
    assert_eq!(body["notifications"], serde_json::json!([]));
    assert!(
        events.next_any().await.is_none(),
        "the stream ended cleanly"
    );
    let exit = tokio::time::timeout(WAIT, process.wait())
        .await
        .expect("herald exits within its bound")
        .unwrap();
    assert!(exit.success(), "{exit}");
    while let Some(line) = log.next_line().await.unwrap() {
        logged.push_str(&line);
        logged.push('\n');
    }
    assert!(logged.contains("token=<redacted>"), "{logged}");
    assert!(
        !logged.contains(&token),
        "a token reached the log:\n{logged}"
    );
    assert!(
        app.client.get(&app.address).send().await.is_err(),
        "nothing listens after exit"
    );
}
