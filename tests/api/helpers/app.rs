//! herald in the test's own process (or attached to one the test started), and requests to it.

use std::time::Duration;

use actix_web::http::StatusCode;
use herald::auth::Auth;
use herald::config::{Config, DatabaseArgs, DatabaseUrl, SecretArgs};
use herald::startup::{Application, Stopper};
use serde_json::Value;

use super::{SECRET, TestDb, WAIT, roll_up_counts};

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
    /// The stream [`TestApp::caught_up`] waits on, opened on first use.
    pub(super) fence: tokio::sync::Mutex<Option<super::sse::EventStream>>,
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
        dev: false,
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
        listener_healthy_ms: 10_000,
        periods: Default::default(),
        web_dir: None,
        allowed_origins: Vec::new(),
        prune_older_than: None,
        vapid_private_key: None,
        vapid_subject: None,
        push_hosts: vec![],
        push_ttl_secs: 24 * 3600,
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
        fence: Default::default(),
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
            fence: Default::default(),
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
        let value = self.metric_f64(name).await;
        assert_eq!(value.fract(), 0.0, "{name} is not a whole number: {value}");
        value as i64
    }

    /// The value of a `/metrics` series that may have a fraction (seconds).
    pub async fn metric_f64(&self, name: &str) -> f64 {
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
}
