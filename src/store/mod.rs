//! herald's queries (diesel's, and the LISTEN connection's), and the pool and migrations.
//!
//! The floor, and all of herald's SQL: nothing here knows about HTTP, the web server or the
//! hub. [`run`] puts a diesel query on tokio's blocking pool with a pooled connection (routes
//! through `AppState::db`, presence, push and upkeep alike) and answers with [`StoreError`],
//! which the HTTP layer turns into its own error; [`listen`] has the LISTEN connection's
//! statements (tokio-postgres, async). Every query a user's request can reach takes that user
//! as a parameter.

pub mod listen;
pub mod notifications;
pub mod presence;
pub mod push;
pub mod reads;
pub mod retention;
pub mod signals;

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sql_types::Text;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::cursor::Snapshot;

/// The pool of query connections.
pub type DbPool = Pool<ConnectionManager<PgConnection>>;

/// The migrations in `migrations/`, compiled in so the binary works from any directory.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A pool of `size` connections to `url`, its sessions named `name` (see [`named`]).
pub fn pool(url: &str, size: u32, name: &str) -> Result<DbPool, diesel::r2d2::PoolError> {
    Pool::builder()
        .connection_customizer(Box::new(SessionSettings))
        .max_size(size)
        .min_idle(Some(size.min(2)))
        .connection_timeout(Duration::from_secs(5))
        .build(ConnectionManager::new(named(url, name)))
}

/// `url` (a `postgres://` URL or libpq `key=value` pairs) with `name` as its libpq
/// `fallback_application_name`, so that `pg_stat_activity` tells herald's pools apart (the
/// LISTEN session is `herald-listener`), and so does a pooler's `SHOW CLIENTS`. A fallback
/// only: an `application_name` in the URL, or `PGAPPNAME`, still wins. A URL that sets a
/// fallback itself is left as it is.
fn named(url: &str, name: &str) -> String {
    const KEY: &str = "fallback_application_name";
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The query read as `pgtls` reads it for the LISTEN connection.
        let query = url.split_once('?').map_or("", |(_, query)| query);
        if form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == KEY) {
            return url.to_owned();
        }
        let join = if !url.contains('?') {
            "?"
        } else if url.ends_with(['?', '&']) {
            ""
        } else {
            "&"
        };
        format!("{url}{join}{KEY}={name}")
    } else if url.contains(KEY) {
        url.to_owned()
    } else {
        // In front: libpq takes a key's last value, and a string may end in a backslash that
        // would escape a space put after it.
        format!("{KEY}={name} {url}")
    }
}

/// Settings for every connection herald makes through diesel.
#[derive(Debug)]
struct SessionSettings;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        settle(conn);
        Ok(())
    }
}

/// What every connection needs to work behind a pooler in transaction mode (PgBouncer): no
/// session state. diesel's named prepared statements live in one server session, which the
/// pooler may swap between two queries; unnamed ones are sent with their parameters in one
/// message (diesel does so). No `SET` either: the settings herald's reads need (`jit`,
/// `plan_cache_mode`) are on its functions (the `function_settings` migration).
fn settle(conn: &mut PgConnection) {
    conn.set_prepared_statement_cache_size(diesel::connection::CacheSize::Disabled);
}

/// Why a query run through [`run`] did not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had from the pool in time.
    #[error(transparent)]
    Pool(#[from] diesel::r2d2::PoolError),
    /// The query itself failed (a refused row, a lost connection, ...).
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// The blocking task panicked or was cancelled.
    #[error("the query's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What [`run`] answers.
pub type StoreResult<T> = Result<T, StoreError>;

/// Runs `query` with a connection of `pool` on the blocking pool, so diesel never blocks an
/// async task. Never wait for a notification in here: that would pin a connection.
pub async fn run<T, F>(pool: &DbPool, query: F) -> StoreResult<T>
where
    F: FnOnce(&mut PgConnection) -> QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        Ok(query(&mut conn)?)
    })
    .await?
}

/// Whether the database answers `select 1` on a pool connection had within `wait`: a probe
/// must hear "no" before its own timeout, not after the pool's 5 s.
pub async fn ping(pool: &DbPool, wait: Duration) -> bool {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_timeout(wait).ok()?;
        diesel::sql_query("select 1").execute(&mut conn).ok()
    })
    .await
    .ok()
    .flatten()
    .is_some()
}

/// One connection, as the pool's are (migrations and the command-line tools).
pub fn connect(url: &str) -> ConnectionResult<PgConnection> {
    let mut conn = PgConnection::establish(url)?;
    settle(&mut conn);
    Ok(conn)
}

/// Creates database `name` on `conn`'s server unless it exists (dev mode's private cluster).
pub fn create_database(conn: &mut PgConnection, name: &str) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = Text)]
        #[allow(dead_code)]
        datname: String,
    }
    let found: Vec<Found> = diesel::sql_query("select datname from pg_database where datname = $1")
        .bind::<Text, _>(name)
        .load(conn)?;
    if found.is_empty() {
        // Identifiers cannot be bind parameters; the name is ours, quote it anyway.
        diesel::sql_query(format!("create database \"{}\"", name.replace('"', "\"\"")))
            .execute(conn)?;
    }
    Ok(())
}

/// Applies pending migrations; returns how many ran.
pub fn migrate(conn: &mut PgConnection) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    // Concurrent instances starting together must not race on the same migration. The lock
    // is the transaction's, not the session's, so a pooler cannot strand it on a server
    // connection; the migrations run inside that transaction (diesel nests each one's).
    conn.transaction(|conn| {
        // herald_migrations_lock(), by its number: before the first migration no function
        // exists (the one_after_predicate migration lists herald's lock keys).
        diesel::sql_query("select pg_advisory_xact_lock(7454512)").execute(conn)?;
        conn.run_pending_migrations(MIGRATIONS)
            .map(|done| done.len())
    })
}

#[derive(QueryableByName)]
struct SnapshotRow {
    #[diesel(sql_type = Text)]
    snapshot: String,
}

/// The current transaction's snapshot. In a repeatable-read transaction, called first, it is
/// the snapshot every later query of the transaction sees.
pub fn current_snapshot(conn: &mut PgConnection) -> QueryResult<Snapshot> {
    let row: SnapshotRow =
        diesel::sql_query("select pg_current_snapshot()::text as snapshot").get_result(conn)?;
    Snapshot::parse(&row.snapshot)
        .map_err(|e| diesel::result::Error::DeserializationError(e.into()))
}

#[cfg(test)]
mod tests {
    use super::named;

    #[test]
    fn a_pool_names_its_sessions_as_a_fallback_in_either_form_of_url() {
        let cases = [
            (
                "postgres://u@db/x",
                "postgres://u@db/x?fallback_application_name=herald-upkeep",
            ),
            (
                "postgresql://u@db/x?sslmode=require&application_name=mine",
                "postgresql://u@db/x?sslmode=require&application_name=mine\
                 &fallback_application_name=herald-upkeep",
            ),
            // Separators already there, which libpq accepts, are not doubled.
            (
                "postgres://u@db/x?",
                "postgres://u@db/x?fallback_application_name=herald-upkeep",
            ),
            (
                "postgres://u@db/x?sslmode=require&",
                "postgres://u@db/x?sslmode=require&fallback_application_name=herald-upkeep",
            ),
            (
                "host=db dbname=x password=a\\",
                "fallback_application_name=herald-upkeep host=db dbname=x password=a\\",
            ),
            // A fallback of the URL's own stays; a password that mentions one is no fallback.
            (
                "postgres://u@db/x?fallback_application_name=ours",
                "postgres://u@db/x?fallback_application_name=ours",
            ),
            (
                "host=db fallback_application_name=ours",
                "host=db fallback_application_name=ours",
            ),
            (
                "postgres://u:fallback_application_name@db/x",
                "postgres://u:fallback_application_name@db/x\
                 ?fallback_application_name=herald-upkeep",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(named(url, "herald-upkeep"), expected, "{url}");
        }
    }
}
