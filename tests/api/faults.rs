//! SPEC section 5 when things fail: PostgreSQL restarting under load, a client that stops
//! reading, a client hopping between two herald instances.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use herald::devdb::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    Received, TestApp, TestDb, WAIT, spawn_app, spawn_app_with, spawn_configured, test_config,
};

/// A PostgreSQL cluster of the test's own, which it may stop and start; stopped and deleted
/// when the test ends, however it ends.
struct OwnCluster {
    root: PathBuf,
    cluster: Option<Cluster>,
}

impl OwnCluster {
    async fn start(name: &str) -> OwnCluster {
        crate::helpers::before_connecting();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut own = OwnCluster {
            root,
            cluster: None,
        };
        own.restart().await;
        own.cluster
            .as_ref()
            .unwrap()
            .create_database("herald")
            .expect("create database");
        own
    }

    fn url(&self) -> String {
        self.cluster.as_ref().unwrap().url("herald")
    }

    async fn stop(&mut self) {
        let mut cluster = self.cluster.take().expect("running");
        actix_web::web::block(move || cluster.stop())
            .await
            .unwrap()
            .expect("pg_ctl stop");
    }

    async fn restart(&mut self) {
        let root = self.root.clone();
        let cluster = actix_web::web::block(move || Cluster::start(&root))
            .await
            .unwrap()
            .expect("pg_ctl start");
        self.cluster = Some(cluster);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        if let Some(mut cluster) = self.cluster.take() {
            let _ = cluster.stop();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Inserts a row every few milliseconds, alternating users 1 and 2, reconnecting whenever the
/// database goes away, until `stop`. Counts the inserts that returned success.
async fn keep_writing(url: String, stop: Rc<Cell<bool>>, written: Arc<AtomicU64>) {
    let mut n = 0u64;
    while !stop.get() {
        let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        actix_web::rt::spawn(connection);
        while !stop.get() {
            n += 1;
            let channel = format!("user:{}", 1 + n % 2);
            let inserted = client
                .execute(
                    "insert into notifications (channel, title) values ($1, $2)",
                    &[&channel, &format!("n{n}")],
                )
                .await;
            if inserted.is_err() {
                break;
            }
            written.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + 3 * WAIT;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The titles on `channel`, sorted: what a client of it must end with.
async fn titles_on(app: &TestApp, channel: &str) -> Vec<String> {
    let rows = app
        .pg()
        .await
        .query(
            "select title from notifications where channel = $1 order by title",
            &[&channel],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

fn sorted(received: &Received) -> Vec<String> {
    let mut titles = received.borrow().clone();
    titles.sort();
    titles
}

#[actix_web::test]
async fn after_postgresql_restarts_under_load_every_stream_has_every_row_exactly_once() {
    let mut pg = OwnCluster::start("herald-restart-pg").await;
    let app = Rc::new(spawn_configured(TestDb::existing(&pg.url()), test_config(&pg.url())).await);
    let stop = Rc::new(Cell::new(false));
    let (one, two) = (Received::default(), Received::default());
    let mut followers = Vec::new();
    for (user, received) in [("1", one.clone()), ("2", two.clone())] {
        let (app, stop, token) = (app.clone(), stop.clone(), app.token_for(user));
        let cursor = app.list_cursor(&token, "").await;
        followers.push(actix_web::rt::spawn(async move {
            app.follow_events(&token, "", cursor, received, stop, None)
                .await
        }));
    }
    let written = Arc::new(AtomicU64::new(0));
    let writer = actix_web::rt::spawn(keep_writing(pg.url(), stop.clone(), written.clone()));
    let count = || written.load(Ordering::Relaxed);
    wait_for("writes before the restart", async || count() >= 30).await;

    pg.stop().await;
    wait_for("/readyz to report the outage", async || {
        app.get("/readyz", None).await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    // A load balancer's probe gives up after a second or so: it must hear "not ready", not
    // wait for the pool's 5 s to run out.
    let (status, body) = tokio::time::timeout(Duration::from_secs(1), app.get("/readyz", None))
        .await
        .expect("/readyz answers a 1 s probe while the database is down");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["listener"], false, "{body}");
    let before_restart = count();
    pg.restart().await;
    wait_for("/readyz to recover", async || {
        app.get("/readyz", None).await.0 == StatusCode::OK
    })
    .await;
    wait_for("writes after the restart", async || {
        count() >= before_restart + 30
    })
    .await;
    stop.set(true);
    writer.await.unwrap();

    let expected = [
        titles_on(&app, "user:1").await,
        titles_on(&app, "user:2").await,
    ];
    wait_for("streams to catch up", async || {
        one.borrow().len() >= expected[0].len() && two.borrow().len() >= expected[1].len()
    })
    .await;
    for follower in followers {
        follower.await.unwrap();
    }
    assert!(app.metric("herald_listener_reconnects_total").await >= 1);
    assert_eq!(sorted(&one), expected[0], "user 1: every row exactly once");
    assert_eq!(sorted(&two), expected[1], "user 2: every row exactly once");
}

/// The `id:` of the last complete notification event in raw SSE text, and how many complete
/// notification events it holds.
fn last_complete_notification(raw: &str) -> (Option<String>, usize) {
    let (mut last, mut count) = (None, 0);
    let complete = &raw[..raw.rfind("\n\n").map_or(0, |end| end + 2)];
    for block in complete.split("\n\n") {
        if block.lines().any(|l| l == "event: notification") {
            count += 1;
            last = block
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .map(str::to_owned);
        }
    }
    (last, count)
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_cut_off_and_resumes_from_its_cursor() {
    let app = spawn_app_with(|config| config.write_timeout_secs = 2).await;
    let token = app.token_for("1");
    let mut socket = app.raw_socket().await;
    socket
        .write_all(format!("GET /events?token={token} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 4096];
    let n = socket.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    app.wait_for_metric("herald_streams_open", 1).await;

    // The client reads no more. 22 MB of notifications: far more than every buffer between
    // herald and it (both sockets', actix's, the stream's and the hub's queues) can hold,
    // in fewer rows than a resume replays before it says `reset`.
    let body = "x".repeat(24 * 1024);
    let pg = app.pg().await;
    for batch in 0..30 {
        pg.execute(
            "insert into notifications (channel, title, body)
             select 'user:1', 'b' || $1::int || '-' || lpad(i::text, 3, '0'), $2
             from generate_series(1, 30) i",
            &[&batch, &body],
        )
        .await
        .unwrap();
    }

    // herald lets go of the stream and of the connection, though the client never closed it:
    // reading on, the client gets what its buffers hold, then the end (or a reset).
    app.wait_for_metric("herald_streams_open", 0).await;
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(WAIT, async {
        while let Ok(n @ 1..) = socket.read(&mut buf).await {
            raw.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(closed.is_ok(), "herald kept the connection open");
    let raw = String::from_utf8_lossy(&raw);
    let (last_id, had) = last_complete_notification(&raw);
    assert!(had < 900, "the client cannot have had everything: {had}");

    let mut resumed = app.open_events(&token, "", last_id.as_deref()).await;
    let rest = resumed.titles(900 - had).await;
    let expected: Vec<String> = (0..30)
        .flat_map(|b| (1..=30).map(move |i| format!("b{b}-{i:03}")))
        .skip(had)
        .collect();
    assert_eq!(rest, expected, "the rest, in order, once");
}

#[actix_web::test]
async fn a_client_hopping_between_two_instances_with_its_cursor_loses_nothing() {
    let a = spawn_app().await;
    let b = spawn_configured(TestDb::existing(&a.db.url), test_config(&a.db.url)).await;
    let token = a.token_for("7");
    let mut expected = Vec::new();
    let mut got = Vec::new();
    let mut last_id: Option<String> = None;

    for hop in 0..6 {
        let app = if hop % 2 == 0 { &a } else { &b };
        let mut stream = app.open_events(&token, "", last_id.as_deref()).await;
        for event in stream.take_replayed() {
            got.push(event.json()["title"].as_str().unwrap().to_owned());
        }
        // Written while the client is connected; `away` below, while it is not.
        for i in 0..3 {
            let title = format!("hop{hop}-{i}");
            a.insert("user:7", &title).await;
            expected.push(title);
        }
        let mut last = None;
        for _ in 0..3 {
            let event = stream.next("notification").await;
            got.push(event.json()["title"].as_str().unwrap().to_owned());
            last = event.id;
        }
        last_id = last;
        let away = format!("away{hop}");
        a.insert("user:7", &away).await;
        expected.push(away);
    }
    let mut stream = a.open_events(&token, "", last_id.as_deref()).await;
    for event in stream.take_replayed() {
        got.push(event.json()["title"].as_str().unwrap().to_owned());
    }
    assert_eq!(got.len(), expected.len(), "{got:?}");
    let (mut got_sorted, mut expected_sorted) = (got.clone(), expected.clone());
    got_sorted.sort();
    expected_sorted.sort();
    assert_eq!(got_sorted, expected_sorted);

    // Polling hops too: a cursor from one instance is good on the other.
    let mut cursor: Option<String> = None;
    let mut polled = Vec::new();
    for hop in 0..4 {
        let app = if hop % 2 == 0 { &a } else { &b };
        let after = cursor
            .as_deref()
            .map(|c| format!("&after={c}"))
            .unwrap_or_default();
        app.caught_up().await;
        let (status, page) = app
            .get(&format!("/api/notifications?limit=7{after}"), Some(&token))
            .await;
        assert_eq!(status, StatusCode::OK);
        if cursor.is_some() {
            for n in page["notifications"].as_array().unwrap() {
                polled.push(n["title"].as_str().unwrap().to_owned());
            }
        }
        cursor = Some(page["cursor"].as_str().unwrap().to_owned());
        let title = format!("poll{hop}");
        b.insert("user:7", &title).await;
    }
    assert_eq!(polled, vec!["poll0", "poll1", "poll2"]);
}
