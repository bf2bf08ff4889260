//! The `herald` binary's commands, run as a cron job would.

use std::process::Command;

use crate::helpers::{Process, SECRET, TestApp, TestDb, WAIT, spawn_app_on};

pub fn herald(db: &TestDb) -> Command {
    herald_on(&db.url)
}

/// The `herald` binary with `DATABASE_URL` set to `url`.
pub fn herald_on(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env("DATABASE_URL", url)
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
    let db = TestDb::new();
    // actix's own debug lines too: they echo every refused request's error.
    let mut process = Process::start(&db, &[("RUST_LOG", "info,actix_web=debug")]).await;
    let address = process.address.clone();
    let app = TestApp::attach(address, db).await;
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
    // Credentials under other names, in any case, are kept out of the log too.
    for name in ["access_token", "Token", "TOKEN"] {
        app.get(&format!("/healthz?{name}={token}"), None).await;
    }
    // A token pasted where a channel list or an id belongs is refused, and not logged either.
    let (status, _) = app
        .get(
            &format!("/api/notifications?channels={token}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, actix_web::http::StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            &format!("/api/notifications/{token}/read"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, actix_web::http::StatusCode::BAD_REQUEST);
    let terminate = async {
        app.wait_for_metric("herald_long_polls_parked", 1).await;
        process.terminate();
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
    let exit = process.exit().await;
    assert!(exit.success(), "{exit}");
    let logged = &process.logged;
    assert!(logged.contains("token=<redacted>"), "{logged}");
    assert!(logged.contains("access_token=<redacted>"), "{logged}");
    assert!(
        logged.contains("/api/notifications/<redacted>/read"),
        "{logged}"
    );
    assert!(
        !logged.contains(&token),
        "a token reached the log:\n{logged}"
    );
    assert!(
        app.client.get(&app.address).send().await.is_err(),
        "nothing listens after exit"
    );
}

#[test]
fn unsafe_settings_refuse_to_start_with_exit_code_2_and_a_sentence() {
    let long_enough = "a-secret-of-at-least-thirty-two-bytes!";
    for (settings, says) in [
        (vec![("HERALD_JWT_SECRET", "")], "at least 32 bytes"),
        (vec![("HERALD_JWT_SECRET", "s3cret")], "at least 32 bytes"),
        (
            vec![
                ("HERALD_JWT_SECRET", long_enough),
                ("HERALD_ALLOWED_ORIGINS", "null"),
            ],
            "HERALD_ALLOWED_ORIGINS",
        ),
        (
            vec![
                ("HERALD_JWT_SECRET", long_enough),
                ("HERALD_ALLOWED_ORIGINS", "*"),
            ],
            "HERALD_ALLOWED_ORIGINS",
        ),
        (
            vec![
                ("HERALD_JWT_SECRET", long_enough),
                ("HERALD_ALLOWED_ORIGINS", "https://a.com:99999"),
            ],
            "is not a port",
        ),
        (
            vec![
                ("HERALD_JWT_SECRET", long_enough),
                ("HERALD_PUSH_HOSTS", "fcm.googleapis.com:65536"),
            ],
            "is not a port",
        ),
        // A forgotten secret on a real database is no reason to hand out tokens.
        (
            vec![],
            "HERALD_JWT_SECRET is not set and DATABASE_URL is set",
        ),
        (
            vec![("HERALD_JWT_SECRET", long_enough), ("HERALD_DEV", "true")],
            "HERALD_DEV",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            // Unreachable: a herald that got past its checks would fail differently.
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .envs(settings.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{settings:?}: {stderr}");
        assert!(stderr.contains(says), "{settings:?}: {stderr}");
        assert!(
            !stderr.contains("s3cret"),
            "the secret was printed: {stderr}"
        );
    }
    let token = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["token", "--user", "1"])
        .env("HERALD_JWT_SECRET", "short")
        .output()
        .unwrap();
    assert_eq!(token.status.code(), Some(2), "herald token refuses it too");
}

#[test]
fn without_a_secret_dev_mode_needs_a_loopback_address_and_nothing_configured() {
    let data = tempdir("herald-dev-refused");
    for bind in ["0.0.0.0:0", "[::]:0"] {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env_remove("HERALD_JWT_SECRET")
            .env("HERALD_BIND", bind)
            .env("HERALD_DATA_DIR", &data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bind}: {stderr}");
        assert!(stderr.contains("is not a loopback address"), "{stderr}");
        assert!(
            stderr.contains("--dev"),
            "it says how to ask for dev mode: {stderr}"
        );
    }
    assert!(
        !data.join("pg").exists(),
        "no private cluster was started for a start that is refused"
    );
}

#[actix_web::test]
async fn dev_mode_on_a_real_database_runs_only_when_asked_for() {
    let db = TestDb::new();
    let mut process = Process::start_unset(
        &db,
        &[
            ("HERALD_DEV", "true"),
            ("HERALD_DATA_DIR", tempdir("herald-dev").to_str().unwrap()),
        ],
        &["HERALD_JWT_SECRET"],
    )
    .await;
    let app = TestApp::attach(process.address.clone(), db).await;
    let (status, body) = app.get("/dev/token?user=7", None).await;
    assert_eq!(status, actix_web::http::StatusCode::OK, "{body}");
    assert!(body["token"].is_string(), "{body}");
    process.terminate();
    assert!(process.exit().await.success());
    assert!(process.logged.contains("DEV MODE"), "{}", process.logged);
}

/// A fresh directory under target/ for this test.
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_startup_failure_is_one_sentence_not_a_debug_dump() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("HERALD_DATA_DIR", "/proc/herald-cannot-write-here")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let said = stderr.lines().last().unwrap_or_default();
    assert!(
        said.starts_with("herald: could not start the private PostgreSQL cluster"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Custom {") && !stderr.contains("kind:"),
        "{stderr}"
    );
}

#[actix_web::test]
async fn a_storm_of_refusals_is_summarised_at_warn_not_logged_as_errors() {
    let db = TestDb::new();
    let mut process = Process::start(&db, &[("HERALD_MAX_STREAMS_PER_USER", "1")]).await;
    let app = TestApp::attach(process.address.clone(), db).await;
    let token = app.token_for("1");
    let _held = app.open_events(&token, "", None).await;

    for _ in 0..30 {
        let (status, _) = app.get("/events", Some(&token)).await;
        assert_eq!(status, actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
    }
    process.terminate();
    process.exit().await;

    let logged = &process.logged;
    assert!(!logged.contains(" ERROR "), "{logged}");
    let summaries = logged.matches("refusing requests with 503").count();
    assert!(
        (1..=3).contains(&summaries),
        "{summaries} lines for 30 refusals:\n{logged}"
    );
}
