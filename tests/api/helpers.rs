//! Test harness: a fresh database per test, herald on port 0, an HTTP client and an SSE reader.
//!
//! `TEST_DATABASE_URL` names a server to create test databases on (`.ci/run` sets it when a
//! local PostgreSQL answers). Without it, a private cluster is started under
//! `target/herald-test-pg` with the machine's PostgreSQL binaries and reused by later runs.
//! Each test creates `herald_test_<pid>_<n>` and drops it when done: tests never touch a
//! database they did not create.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use diesel::prelude::*;
use futures_util::StreamExt;
use herald::auth::Auth;
use herald::config::{Config, DatabaseArgs, DatabaseUrl, SecretArgs};
use herald::devdb::Cluster;
use herald::startup::{Application, Stopper};
use serde_json::Value;

/// The secret test tokens are signed with.
pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";
/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The maintenance database of the server test databases are created on.
fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let root =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/herald-test-pg");
            // Left running for later runs (starting one costs seconds); `.ci/run` stops it.
            Cluster::start(&root)
                .expect("private test cluster")
                .url("postgres")
        }
    })
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, params) = url
        .split_once('?')
        .map_or((url, None), |(b, p)| (b, Some(p)));
    let (scheme, rest) = base.split_once("://").expect("a URL with a scheme");
    let authority = rest.split('/').next().unwrap_or_default();
    let params = params.map(|p| format!("?{p}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{params}")
}

/// A database of the test's own, dropped (with force) when the test ends.
pub struct TestDb {
    /// Connect here.
    pub url: String,
    name: String,
    /// The maintenance database of its server, to drop it from.
    server: String,
}

impl TestDb {
    /// Creates an empty database; herald migrates it on start.
    pub fn new() -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "herald_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::establish(server()).expect("test database server reachable");
        diesel::sql_query(format!("create database {name}"))
            .execute(&mut conn)
            .expect("create test database");
        TestDb {
            url: with_database(server(), &name),
            name,
            server: server().to_owned(),
        }
    }

    /// Database `name`, made by the test on another server (`server` is its maintenance
    /// database); dropped like any other.
    pub fn on_server(url: &str, server: &str, name: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
            name: name.to_owned(),
            server: server.to_owned(),
        }
    }
}

impl TestDb {
    /// A database the test set up itself elsewhere (a cluster of its own); not dropped here.
    pub fn existing(url: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
            name: String::new(),
            server: String::new(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        if let Ok(mut conn) = PgConnection::establish(&self.server) {
            let _ = diesel::sql_query(format!(
                "drop database if exists {} with (force)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// A running herald on its own database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// Its database.
    pub db: TestDb,
    /// Stops it as SIGTERM would (`None` for a herald process the test started).
    pub stopper: Option<Stopper>,
    auth: Auth,
    /// An HTTP client without timeouts, for requests the helpers below do not cover.
    pub client: awc::Client,
}

/// Starts herald on a fresh database and waits until it is ready.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(TestDb::new()).await
}

/// The config tests run herald with, on `db`.
pub fn test_config(db_url: &str) -> Config {
    Config {
        database: DatabaseArgs {
            database_url: Some(DatabaseUrl::new(db_url)),
            data_dir: std::env::temp_dir().join("herald-test-data"),
        },
        listen_database_url: None,
        bind: "127.0.0.1:0".into(),
        secret: SecretArgs {
            jwt_secret: Some(SECRET.into()),
        },
        jwt_audience: None,
        heartbeat_secs: 15,
        db_pool_size: 4,
        max_body_bytes: 256 * 1024,
        max_header_bytes: 16 * 1024,
        max_streams_per_user: 20,
        max_streams: 10_000,
        max_wait_secs: 60,
        request_timeout_secs: 10,
        keep_alive_secs: 30,
        write_timeout_secs: 30,
        shutdown_spread_secs: 1,
        web_dir: None,
        allowed_origins: Vec::new(),
        prune_older_than: None,
    }
}

/// Starts herald on a fresh database with [`test_config`] changed by `tune`.
pub async fn spawn_app_with(tune: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDb::new();
    let mut config = test_config(&db.url);
    tune(&mut config);
    spawn_configured(db, config).await
}

/// Starts herald on `db` and waits until `/readyz` says ready.
pub async fn spawn_app_on(db: TestDb) -> TestApp {
    let config = test_config(&db.url);
    spawn_configured(db, config).await
}

/// Starts herald with `config` (on `db`, which the app owns from then on).
pub async fn spawn_configured(db: TestDb, config: Config) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let app = Application::build(config).await.expect("herald builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let stopper = app.stopper();
    actix_web::rt::spawn(app.run_until_stopped());
    let test_app = TestApp {
        address,
        db,
        stopper: Some(stopper),
        auth: Auth::new(SECRET.as_bytes(), None),
        client: awc::Client::builder().disable_timeout().finish(),
    };
    test_app.wait_until_ready().await;
    test_app
}

impl TestApp {
    /// A herald already listening at `address` (a process of the test's own) on `db`.
    pub async fn attach(address: String, db: TestDb) -> TestApp {
        let app = TestApp {
            address,
            db,
            stopper: None,
            auth: Auth::new(SECRET.as_bytes(), None),
            client: awc::Client::builder().disable_timeout().finish(),
        };
        app.wait_until_ready().await;
        app
    }

    /// Waits (bounded) until `/readyz` answers 200.
    pub async fn wait_until_ready(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, body) = self.get("/readyz", None).await;
            if status == StatusCode::OK {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "herald not ready within {WAIT:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of a `/metrics` series.
    pub async fn metric(&self, name: &str) -> i64 {
        let mut response = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("GET /metrics answers");
        let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }

    /// Waits (bounded) until a `/metrics` series reaches `value`.
    pub async fn wait_for_metric(&self, name: &str, value: i64) {
        self.wait_for_metric_to(name, |v| v == value, &format!("{value}"))
            .await
    }

    async fn wait_for_metric_to(&self, name: &str, wanted: impl Fn(i64) -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let current = self.metric(name).await;
            if wanted(current) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} stayed {current}, expected {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A token for `user` with no extra grants.
    pub fn token_for(&self, user: &str) -> String {
        self.auth.mint(user, &[], false, 600)
    }

    /// A token for `user` that expires `secs` seconds from now; with its `exp`.
    pub fn token_expiring(&self, user: &str, secs: i64) -> (String, i64) {
        let token = self.auth.mint(user, &[], false, secs);
        (token, chrono::Utc::now().timestamp() + secs)
    }

    /// A token for `user` with `grants` and maybe `publish`.
    pub fn token_with(&self, user: &str, grants: &[&str], publish: bool) -> String {
        let grants: Vec<String> = grants.iter().map(|g| g.to_string()).collect();
        self.auth.mint(user, &grants, publish, 600)
    }

    /// Runs SQL on the app's database, as a cron job or `psql` would (autocommit).
    pub async fn sql(&self, sql: &str) {
        let client = self.pg().await;
        client.batch_execute(sql).await.expect("SQL runs");
    }

    /// A plain database connection to the app's database.
    pub async fn pg(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.db.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        actix_web::rt::spawn(connection);
        client
    }

    /// A plain TCP connection to herald, for what an HTTP client would not do.
    pub async fn raw_socket(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(self.address.trim_start_matches("http://"))
            .await
            .expect("herald accepts")
    }

    /// The `cursor` of `GET /api/notifications?<query>` as `token`: the position now.
    pub async fn list_cursor(&self, token: &str, query: &str) -> String {
        let (status, list) = self
            .get(&format!("/api/notifications?{query}"), Some(token))
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["cursor"].as_str().unwrap().to_owned()
    }

    /// Inserts a notification with plain SQL; returns its id.
    pub async fn insert(&self, channel: &str, title: &str) -> i64 {
        let client = self.pg().await;
        let row = client
            .query_one(
                "insert into notifications (channel, title) values ($1, $2) returning id",
                &[&channel, &title],
            )
            .await
            .expect("insert");
        row.get(0)
    }

    /// Inserts a notification in a transaction left open: its id is taken now, but it
    /// becomes visible only when the returned connection runs `commit`.
    pub async fn insert_uncommitted(&self, channel: &str, title: &str) -> tokio_postgres::Client {
        let client = self.pg().await;
        client.batch_execute("begin").await.expect("begin");
        client
            .execute(
                "insert into notifications (channel, title) values ($1, $2)",
                &[&channel, &title],
            )
            .await
            .expect("insert");
        client
    }

    /// Rolls the unread counts up now (`herald_roll_up_counts()`), retrying while herald's
    /// own roll-up, or a deletion, holds the counts lock.
    pub async fn roll_up_counts(&self) {
        roll_up_counts(&self.pg().await).await;
    }

    /// `user`'s unread count, from `GET /api/notifications/unread_count`.
    pub async fn unread_count(&self, user: &str) -> i64 {
        let (status, body) = self
            .get(
                "/api/notifications/unread_count",
                Some(&self.token_for(user)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["unread_count"].as_i64().expect("a number")
    }

    /// GET `path` with a bearer token; status and JSON body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.expect("GET answers");
        let body = response.body().limit(64 * 1024 * 1024).await.expect("body");
        (
            response.status(),
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    /// POST `path` with a bearer token and a JSON body (or raw text); status and JSON body.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .insert_header(("content-type", "application/json"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send_body(body.unwrap_or("").to_owned())
            .await
            .expect("POST answers");
        let body = response.body().await.expect("body");
        (
            response.status(),
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    /// Opens `/events?token=...&<query>`, optionally with `Last-Event-ID`; panics unless 200.
    pub async fn open_events(
        &self,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> EventStream {
        match self.try_open_events(token, query, last_event_id).await {
            Ok(stream) => stream,
            Err(why) => panic!("GET /events: {why}"),
        }
    }

    /// Like [`TestApp::open_events`], but says why it could not (as a browser would retry).
    pub async fn try_open_events(
        &self,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, String> {
        let mut request = self
            .client
            .get(format!("{}/events?token={token}&{query}", self.address));
        if let Some(id) = last_event_id {
            request = request.insert_header(("Last-Event-ID", id));
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("status {}", response.status()));
        }
        let mut stream = EventStream {
            body: Box::pin(response),
            buffer: String::new(),
            pending: VecDeque::new(),
            position: None,
        };
        // Every stream sends its unread count once subscribed and replayed; what it replayed
        // before that stays queued for the test to read.
        let mut replayed = VecDeque::new();
        loop {
            let Some(event) = stream.next_any().await else {
                return Err("stream ended before its unread count".into());
            };
            if event.event == "unread_count" {
                assert!(
                    event.id.is_some(),
                    "the first unread count carries the position"
                );
                stream.position = event.id.clone();
                break;
            }
            replayed.push_back(event);
        }
        stream.pending = replayed;
        Ok(stream)
    }

    /// Follows `/events` as herald.js does until `stop`: starts from `cursor` (a list's, so
    /// nothing falls between the list and the stream), keeps the last event id, and when the
    /// stream ends (or `drops` says so, after a random while) reconnects with it. Pushes every
    /// notification's title to `received`.
    pub async fn follow_events(
        &self,
        token: &str,
        query: &str,
        cursor: String,
        received: Received,
        stop: Rc<Cell<bool>>,
        mut drops: Option<Rng>,
    ) {
        let mut last_id = Some(cursor);
        let title = |event: &SseEvent| {
            received
                .borrow_mut()
                .push(event.json()["title"].as_str().unwrap().to_owned())
        };
        while !stop.get() {
            let mut stream = match self.try_open_events(token, query, last_id.as_deref()).await {
                Ok(stream) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let drop_at = drops.as_mut().map(|rng| {
                tokio::time::Instant::now() + Duration::from_millis(20) + rng.millis(300)
            });
            for event in stream.take_replayed() {
                assert_eq!(event.event, "notification", "{event:?}");
                title(&event);
            }
            last_id = stream.position.clone();
            loop {
                let until = drop_at
                    .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_millis(200));
                let event = match tokio::time::timeout_at(until, stream.read_event()).await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    // Time to drop the connection, or quiet for a while: look at `stop` again.
                    Err(_) if drop_at.is_some() || stop.get() => break,
                    Err(_) => continue,
                };
                match event.event.as_str() {
                    "notification" => title(&event),
                    "reset" => panic!("a resume within the replay window was reset: {event:?}"),
                    _ => {}
                }
                if event.id.is_some() {
                    last_id = event.id;
                }
            }
        }
    }
}

/// What a following client has received, in order.
pub type Received = Rc<RefCell<Vec<String>>>;

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `event:` (`message` if absent).
    pub event: String,
    /// `id:`, if any.
    pub id: Option<String>,
    /// `data:` lines joined.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

type Body = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>>,
>;

/// An open SSE response, read event by event.
pub struct EventStream {
    body: Body,
    buffer: String,
    pending: VecDeque<SseEvent>,
    /// The `id` of the first unread count: the stream's position after its replay.
    pub position: Option<String>,
}

impl EventStream {
    /// The next event of any kind, or `None` when the stream ended; panics after [`WAIT`].
    pub async fn next_any(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(WAIT, self.read_event())
            .await
            .unwrap_or_else(|_| panic!("no event within {WAIT:?}"))
    }

    /// The next event named `kind`, skipping others; panics (listing them) after [`WAIT`].
    pub async fn next(&mut self, kind: &str) -> SseEvent {
        let mut skipped = Vec::new();
        let found = tokio::time::timeout(WAIT, async {
            while let Some(event) = self.read_event().await {
                if event.event == kind {
                    return Some(event);
                }
                skipped.push(event);
            }
            None
        })
        .await;
        match found {
            Ok(Some(event)) => event,
            Ok(None) => panic!("stream ended before a {kind:?} event; got {skipped:#?}"),
            Err(_) => panic!("no {kind:?} event within {WAIT:?}; got {skipped:#?}"),
        }
    }

    /// The events replayed before the first unread count, taken out of the stream (a client
    /// that reads them has then seen [`EventStream::position`] as its last id).
    pub fn take_replayed(&mut self) -> Vec<SseEvent> {
        self.pending.drain(..).collect()
    }

    /// The titles of the next `n` notification events, in order.
    pub async fn titles(&mut self, n: usize) -> Vec<String> {
        let mut titles = Vec::new();
        for _ in 0..n {
            let event = self.next("notification").await;
            titles.push(event.json()["title"].as_str().unwrap().to_owned());
        }
        titles
    }

    async fn read_event(&mut self) -> Option<SseEvent> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut has_data = false;
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => event.event = value.to_owned(),
                        "id" => event.id = Some(value.to_owned()),
                        "data" => {
                            if has_data {
                                event.data.push('\n');
                            }
                            event.data.push_str(value);
                            has_data = true;
                        }
                        _ => {} // comments (keep-alive), retry
                    }
                }
                if has_data {
                    return Some(event);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}

/// A small, seedable random source for stress tests (SplitMix64). The seed is printed, and
/// `HERALD_TEST_SEED` replays a failing run.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `HERALD_TEST_SEED`, else the clock; prints the seed.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("HERALD_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{what}: HERALD_TEST_SEED={seed}");
        Rng(seed)
    }

    /// An independent stream for one task.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A duration in `0..max_ms` milliseconds.
    pub fn millis(&mut self, max_ms: u64) -> Duration {
        Duration::from_millis(self.below(max_ms))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A fresh database migrated by `herald migrate` (as a deploy's release step would) with no
/// herald serving it yet, and a connection to it.
pub async fn migrated_db() -> (TestDb, tokio_postgres::Client) {
    let db = TestDb::new();
    let migrate = crate::cli::herald(&db).arg("migrate").output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let (pg, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    actix_web::rt::spawn(connection);
    (db, pg)
}

/// `herald_roll_up_counts()` on `pg` until it gets its turn (bounded by [`WAIT`]).
pub async fn roll_up_counts(pg: &tokio_postgres::Client) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let done: bool = pg
            .query_one("select herald_roll_up_counts()", &[])
            .await
            .expect("roll up")
            .get(0);
        if done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the roll-up never got its turn"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `s` percent-encoded for a URL's query or path (unreserved characters and `:` kept).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
