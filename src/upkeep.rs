//! Background upkeep on timers, on a pool of its own (never the query pool, never the
//! listener's connection): the
//! unread-count roll-up every second, with the repair of rows whose txid is from the future
//! and the pruning of the change log, and pruning every hour when `HERALD_PRUNE_OLDER_THAN` is set. Every instance runs them; an
//! instance that finds another at the same job skips its turn (and pruning instances share
//! the rows).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::result::QueryResult;
use tokio::sync::watch;

use crate::store::{self, DbPool};

/// How often unread counts are rolled up.
const ROLL_UP_EVERY: Duration = Duration::from_secs(1);
/// Turns a roll-up skips (another instance at it, or deleters at work) before it waits for
/// its turn: under a steady stream of deletions it would otherwise never get one.
const PATIENT_AFTER_SKIPS: u64 = 10;
/// How often `serve` prunes when `HERALD_PRUNE_OLDER_THAN` is set.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs every job until `shutdown` changes.
pub async fn run(
    pool: DbPool,
    prune_older_than: Option<Duration>,
    shutdown: watch::Receiver<bool>,
) {
    let roll_up = roll_up_counts(pool.clone(), shutdown.clone());
    match prune_older_than {
        Some(age) => {
            tokio::join!(roll_up, prune(pool, age, shutdown));
        }
        None => roll_up.await,
    }
}

/// Keeps `notification_counts` within about [`ROLL_UP_EVERY`] of the table, so unread counts
/// only count a short tail of rows (see the `unread_counts` migration), after giving rows with
/// a txid from the future a real one (`herald_repair_txids`).
async fn roll_up_counts(pool: DbPool, shutdown: watch::Receiver<bool>) {
    let mut failing = false;
    // Turns skipped in a row because deleters were at work; shared by the job's runs.
    let skipped = Arc::new(AtomicU64::new(0));
    let job = move |conn: &mut PgConnection| {
        let repaired = store::notifications::repair_txids(conn)?;
        store::retention::prune_change_log(conn)?;
        let patient = skipped.load(Ordering::Relaxed) >= PATIENT_AFTER_SKIPS;
        if store::reads::roll_up_counts(conn, patient)? {
            skipped.store(0, Ordering::Relaxed);
        } else {
            skipped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(repaired)
    };
    every(pool, ROLL_UP_EVERY, shutdown, job, |result| match result {
        Ok(repaired) => {
            if repaired > 0 {
                log::warn!(
                    "rows with a txid from the future got one of their own count={repaired} \
                     (restored with triggers off? see README, Restores)"
                );
            }
            if failing {
                log::info!("unread count roll-up recovered");
                failing = false;
            }
        }
        // Counts stay right without it (the tail is counted); they only get slower.
        Err(err) if !failing => {
            log::warn!("unread count roll-up failed error={err}");
            failing = true;
        }
        Err(_) => {}
    })
    .await;
}

/// Prunes at once, then every [`PRUNE_EVERY`].
async fn prune(pool: DbPool, age: Duration, shutdown: watch::Receiver<bool>) {
    let job =
        move |conn: &mut PgConnection| store::retention::prune(conn, age, store::retention::BATCH);
    every(pool, PRUNE_EVERY, shutdown, job, |result| match result {
        Ok(deleted) => log::info!("pruned deleted={deleted} older_than_secs={}", age.as_secs()),
        Err(err) => log::warn!("prune failed error={err}"),
    })
    .await;
}

/// Runs `job` on a pooled connection every `period` (the first time at once, on the blocking
/// pool) until `shutdown` changes, and hands each outcome to `report`. Background upkeep:
/// the unread-count roll-up and scheduled pruning.
async fn every<T: Send + 'static>(
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
        let result = crate::store::run(&pool, job.clone()).await;
        report(result.map_err(|err| crate::error::describe(&err)));
    }
}
