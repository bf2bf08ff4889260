//! Background upkeep on [`crate::jobs`]' runner, on a pool of its own (never the query pool,
//! never the listener's connection): the unread-count roll-up every second
//! (`HERALD_ROLL_UP_MS`), with the repair of rows whose txid is from the future, the pruning
//! of the change log and of expired kept signals, and pruning every hour
//! (`HERALD_PRUNE_EVERY_SECS`) when `HERALD_PRUNE_OLDER_THAN` is set. Every instance runs
//! them; an instance that finds another at the same job skips its turn (and pruning
//! instances share the rows).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Periods;
use crate::jobs::Job;
use crate::store::{self, DbPool};

/// Turns a roll-up skips (another instance at it, or deleters at work) before it waits for
/// its turn: under a steady stream of deletions it would otherwise never get one.
const PATIENT_AFTER_SKIPS: u64 = 10;

/// Runs every job until `shutdown` changes.
pub async fn run(
    pool: DbPool,
    prune_older_than: Option<Duration>,
    periods: Periods,
    shutdown: watch::Receiver<bool>,
) {
    let roll_up = roll_up_counts(pool.clone(), periods.roll_up(), shutdown.clone());
    match prune_older_than {
        Some(age) => {
            tokio::join!(roll_up, prune(pool, age, periods.prune_every(), shutdown));
        }
        None => roll_up.await,
    }
}

/// Keeps `notification_counts` within about a period of the table, so unread counts only
/// count a short tail of rows (see the `unread_counts` migration), after giving rows with a
/// txid from the future a real one (`herald_repair_txids`) and pruning the change log and
/// expired kept signals. Counts stay right while it fails (the tail is counted); they only
/// get slower.
async fn roll_up_counts(pool: DbPool, period: Duration, shutdown: watch::Receiver<bool>) {
    // Turns skipped in a row because deleters were at work; shared by the job's runs.
    let skipped = Arc::new(AtomicU64::new(0));
    let query = move |conn: &mut diesel::PgConnection| {
        let repaired = store::notifications::repair_txids(conn)?;
        store::retention::prune_change_log(conn)?;
        // Reads skip expired values already; this only keeps the table small, and with its
        // index on `expires_at` costs next to nothing when none has expired.
        store::signals::prune_kept(conn)?;
        let patient = skipped.load(Ordering::Relaxed) >= PATIENT_AFTER_SKIPS;
        if store::reads::roll_up_counts(conn, patient)? {
            skipped.store(0, Ordering::Relaxed);
        } else {
            skipped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(repaired)
    };
    let job = Job {
        name: "unread count roll-up",
        period,
    };
    job.run(shutdown, async || {
        let repaired = store::run(&pool, query.clone()).await?;
        if repaired > 0 {
            log::warn!(
                "rows with a txid from the future got one of their own count={repaired} \
                 (restored with triggers off? see README, Restores)"
            );
        }
        Ok::<_, store::StoreError>(())
    })
    .await;
}

/// Prunes at once, then every `period`.
async fn prune(pool: DbPool, age: Duration, period: Duration, shutdown: watch::Receiver<bool>) {
    let job = Job {
        name: "prune",
        period,
    };
    job.run(shutdown, async || {
        let deleted = store::run(&pool, move |conn| {
            store::retention::prune(conn, age, store::retention::BATCH)
        })
        .await?;
        log::info!("pruned deleted={deleted} older_than_secs={}", age.as_secs());
        Ok::<_, store::StoreError>(())
    })
    .await;
}
