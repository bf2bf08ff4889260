//! Synchronous diesel queries, and the pool and migrations they run on.
//!
//! Nothing here knows about HTTP or the hub: routes call in through `AppState::db`, which runs
//! the closure on the blocking pool with a pooled connection. Every query a user's request can
//! reach takes that user as a parameter.

pub mod notifications;
pub mod reads;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sql_types::Text;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tokio::sync::watch;

use crate::cursor::Snapshot;

/// The pool of query connections.
pub type DbPool = Pool<ConnectionManager<PgConnection>>;

/// The migrations in `migrations/`, compiled in so the binary works from any directory.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A pool of `size` connections to `url`.
pub fn pool(url: &str, size: u32) -> Result<DbPool, diesel::r2d2::PoolError> {
    Pool::builder()
        .connection_customizer(Box::new(SessionSettings))
        .max_size(size)
        .min_idle(Some(size.min(2)))
        .connection_timeout(Duration::from_secs(5))
        .build(ConnectionManager::new(url))
}

/// Runs `job` on a pooled connection every `period` (the first time at once, on the blocking
/// pool) until `shutdown` changes, and hands each outcome to `report`. Background upkeep:
/// the unread-count roll-up and scheduled pruning.
pub async fn every<T: Send + 'static>(
    pool: DbPool,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    job: impl Fn(&mut PgConnection) -> QueryResult<T> + Clone + Send + 'static,
    mut report: impl FnMut(Result<T, String>),
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let (pool, job) = (pool.clone(), job.clone());
        let result = actix_web::web::block(move || {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            job(&mut conn).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        report(result);
    }
}

/// Settings for every pooled connection.
#[derive(Debug)]
struct SessionSettings;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        // herald's queries are small, indexed lookups. JIT compiling one costs a few hundred
        // milliseconds, and PostgreSQL decides to from cost estimates that a skewed statistic
        // can inflate (measured: 300 ms of JIT for a 1 ms read of new rows).
        conn.batch_execute("set jit = off")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Applies pending migrations; returns how many ran.
pub fn migrate(conn: &mut PgConnection) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    // Concurrent instances starting together must not race on the same migration.
    diesel::sql_query("select pg_advisory_lock(7454512)").execute(conn)?;
    let result = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|done| done.len());
    diesel::sql_query("select pg_advisory_unlock(7454512)").execute(conn)?;
    result
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
