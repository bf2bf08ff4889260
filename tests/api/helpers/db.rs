//! Test databases: one per test, on the test server, dropped when the test ends.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use herald::devdb::Cluster;

use super::WAIT;

/// Call before any database connection: OpenSSL (libpq's and native-tls's) set up without its
/// exit handler. With it, a herald pool thread of an earlier test, reconnecting to a database
/// already dropped, could be inside OpenSSL as the test binary exits, and crash it after every
/// test passed (diesel-rs/diesel#3441).
pub fn before_connecting() {
    openssl::init();
}

/// The maintenance database of the server test databases are created on.
fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    before_connecting();
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
