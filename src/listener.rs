//! The LISTEN connection: turns commits into hub batches.
//!
//! # Dispatch model
//! One dedicated tokio-postgres connection (never a pooled one) LISTENs on `herald` (rows) and
//! `herald_reads` (read state). Wake-ups carry no payload: on each, the listener reads every
//! row committed since its position (a [`Cursor`]) in one query, and publishes them to the hub
//! as one batch. Rows of any size arrive whole, and nothing depends on NOTIFY payloads.
//!
//! # Not slowing writers down
//! A transaction that NOTIFYs takes a global lock at commit, so writers that all NOTIFY commit
//! one at a time (SPEC section 1). The insert trigger only NOTIFYs while some instance is
//! *armed*, which it reads from the `herald_armed` sequence (the `stamp_txid` migration).
//! Under sustained load this listener *disarms* and polls instead (it would be reading
//! anyway), and re-arms after a quiet spell.
//!
//! Re-arming must not miss a row: a writer that read "disarmed" just before the switch commits
//! without a NOTIFY, perhaps after our last poll. A sequence is not transactional, so every
//! writer that reads it after the switch sees "armed", whatever its snapshot; and the trigger
//! reads it only once its transaction holds an id. So the writers that may have read the old
//! value are exactly the transactions that held an id at the switch. After arming, the
//! listener notes them ([`Stragglers`]) and keeps polling, with backoff, until all of them
//! have finished and its reads have covered them. Only then does it rely on NOTIFY alone.
//! While idle it still reads every [`SAFETY_READ`], so a wake-up lost to something not
//! foreseen here delays a row, never loses it.
//!
//! # Failures
//! If the connection drops, `/readyz` says not ready, the listener reconnects with backoff,
//! LISTENs again, and reads from its position: what was committed meanwhile is delivered.
//! Read-state NOTIFYs sent meanwhile are lost, so streams are told to recount.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::web;
use futures_util::future::poll_fn;
use postgres_native_tls::TlsStream;
use tokio::sync::{Notify, mpsc, watch};
use tokio_postgres::AsyncMessage;

use crate::cursor::{Cursor, Snapshot, Xid};
use crate::hub::{Batch, Hub, LiveRow};
use crate::metrics::Metrics;
use crate::models::ReadChange;
use crate::pgtls::Connector;
use crate::store::{self, DbPool, reads::READS_CHANNEL};

/// The NOTIFY channel the trigger wakes herald on.
pub const ROWS_CHANNEL: &str = "herald";

/// Most rows read per query; a busier wake-up reads several batches.
const BATCH: i64 = 500;
/// Two reads that find rows this close together mean sustained load: stop NOTIFY, poll.
const BUSY_AFTER: Duration = Duration::from_millis(20);
/// Poll interval while disarmed.
const BUSY_POLL: Duration = Duration::from_millis(1);
/// Disarmed and nothing new for this long: re-arm.
const QUIET_FOR: Duration = Duration::from_millis(100);
/// Poll backoff while waiting for transactions that may have missed the re-arm.
const SETTLE_FIRST: Duration = Duration::from_millis(5);
const SETTLE_MAX: Duration = Duration::from_secs(1);
/// Armed and idle: read anyway this often. Longer than any test waits, so a broken NOTIFY
/// path still fails the tests.
const SAFETY_READ: Duration = Duration::from_secs(30);
/// How often unread counts are rolled up.
const ROLL_UP_EVERY: Duration = Duration::from_secs(1);
/// Turns a roll-up skips (another instance at it, or deleters at work) before it waits for
/// its turn: under a steady stream of deletions it would otherwise never get one.
const PATIENT_AFTER_SKIPS: u64 = 10;
/// Reconnect backoff.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The listener task; see the module docs.
pub struct Listener {
    connector: Connector,
    pool: DbPool,
    hub: Hub,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    /// What has been published: everything up to here.
    position: Cursor,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("query: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("blocking pool failed")]
    Blocking(#[from] actix_web::error::BlockingError),
    #[error("unexpected reply: {0}")]
    Protocol(String),
    #[error("connection closed")]
    Closed,
}

/// The transactions that may have read "disarmed" just before we armed, and so may commit
/// without a NOTIFY: those that held a transaction id at the switch.
struct Stragglers {
    /// Each of these must have finished...
    xids: Option<Vec<Xid>>,
    /// ...or every transaction below this must have.
    below: Xid,
}

impl Stragglers {
    fn settled(&self, now: &Snapshot) -> bool {
        now.xmin() >= self.below
            || self
                .xids
                .as_ref()
                .is_some_and(|xids| xids.iter().all(|x| now.is_visible(*x)))
    }
}

enum Mode {
    /// Armed; NOTIFY wakes us.
    Idle,
    /// Disarmed; polling.
    Busy { quiet_since: Option<Instant> },
    /// Armed, still polling until the watched transactions are done.
    Settling {
        stragglers: Stragglers,
        delay: Duration,
    },
}

impl Listener {
    /// A listener on `url` that reads with `pool` and publishes everything committed after
    /// `start` to `hub`.
    ///
    /// `start` must be taken before the server accepts its first request: a stream that
    /// opens then replays up to a later snapshot and relies on the hub for the rest.
    pub fn new(
        connector: Connector,
        pool: DbPool,
        hub: Hub,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
        start: Cursor,
    ) -> Listener {
        Listener {
            connector,
            pool,
            hub,
            metrics,
            shutdown,
            position: start,
        }
    }

    /// Runs until shutdown, reconnecting with backoff whenever the connection fails; rolls
    /// the unread counts up meanwhile.
    pub async fn run(mut self) {
        let roll_up = roll_up_counts(self.pool.clone(), self.shutdown.clone());
        tokio::join!(self.sessions(), roll_up);
    }

    async fn sessions(&mut self) {
        let mut failures: u32 = 0;
        loop {
            let result = self.session(failures > 0).await;
            self.metrics.listener_up.set(0);
            match result {
                Ok(()) => {
                    log::info!("listener stopped");
                    return;
                }
                Err(err) => {
                    failures += 1;
                    self.metrics.listener_reconnects.inc();
                    let delay = backoff(failures);
                    log::warn!(
                        "listener reconnecting attempt={failures} delay_ms={} error={err}",
                        delay.as_millis()
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// One connection's life. `Ok` only on shutdown.
    async fn session(&mut self, reconnected: bool) -> Result<(), SessionError> {
        let (client, mut connection) = connect(&self.connector).await?;

        // Notifications only surface through poll_message; the usual `spawn(connection)`
        // would drop them. Wake-ups coalesce in a Notify: one read covers any number.
        let wake = Arc::new(Notify::new());
        let (reads_tx, mut reads_rx) = mpsc::unbounded_channel::<String>();
        let driver_wake = wake.clone();
        let metrics = self.metrics.clone();
        let mut driver = actix_web::rt::spawn(async move {
            loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == READS_CHANNEL => {
                        let _ = reads_tx.send(n.payload().to_owned());
                    }
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        metrics.listener_wakeups.inc();
                        driver_wake.notify_one();
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Err(err),
                    None => return Ok(()),
                }
            }
        });

        client
            .batch_execute(&format!("listen {ROWS_CHANNEL}; listen {READS_CHANNEL};"))
            .await?;
        // Say we are here and armed (forgetting instances that died without saying so).
        set_armed(&client, true).await?;
        let mut mode = Mode::Settling {
            stragglers: probe(&client).await?,
            delay: SETTLE_FIRST,
        };
        let mut last_found: Option<Instant> = None;

        // Catch up on whatever committed while we were away, then we are live.
        let (found, now) = self.read_and_publish().await?;
        if found > 0 {
            last_found = Some(Instant::now());
        }
        self.metrics.listener_up.set(1);
        log::info!("listener live reconnected={reconnected} caught_up={found}");
        if reconnected {
            self.hub.resync_all();
        }
        mode = self
            .next_mode(mode, found, &now, &mut last_found, &client)
            .await?;

        loop {
            let delay = match &mode {
                Mode::Idle => Some(SAFETY_READ),
                Mode::Busy { .. } => Some(BUSY_POLL),
                Mode::Settling { delay, .. } => Some(*delay),
            };
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => {
                    // Best effort: a listener that vanishes is forgotten by the next switch.
                    let _ = client.batch_execute("select herald_arm(null)").await;
                    return Ok(());
                }
                result = &mut driver => {
                    return Err(match result {
                        Ok(Err(err)) => err.into(),
                        _ => SessionError::Closed,
                    });
                }
                Some(payload) = reads_rx.recv() => {
                    match serde_json::from_str::<ReadChange>(&payload) {
                        Ok(change) => self.hub.publish_read(change),
                        Err(err) => log::warn!("ignored read-state notification error={err}"),
                    }
                    continue;
                }
                _ = wake.notified() => {}
                _ = sleep_opt(delay) => {}
            }
            let (found, now) = self.read_and_publish().await?;
            mode = self
                .next_mode(mode, found, &now, &mut last_found, &client)
                .await?;
        }
    }

    /// Decides polling versus NOTIFY after a read that found `found` rows at snapshot `now`.
    async fn next_mode(
        &self,
        mode: Mode,
        found: usize,
        now: &Snapshot,
        last_found: &mut Option<Instant>,
        client: &tokio_postgres::Client,
    ) -> Result<Mode, SessionError> {
        let at = Instant::now();
        let sustained = found > 0 && last_found.is_some_and(|t| at - t < BUSY_AFTER);
        if found > 0 {
            *last_found = Some(at);
        }
        Ok(match mode {
            Mode::Idle | Mode::Settling { .. } if sustained => {
                set_armed(client, false).await?;
                log::info!("listener disarmed: polling under load");
                Mode::Busy { quiet_since: None }
            }
            Mode::Idle => Mode::Idle,
            Mode::Settling { stragglers, delay } => {
                if stragglers.settled(now) {
                    Mode::Idle
                } else {
                    Mode::Settling {
                        stragglers,
                        delay: (delay * 2).min(SETTLE_MAX),
                    }
                }
            }
            Mode::Busy { .. } if found > 0 => Mode::Busy { quiet_since: None },
            Mode::Busy { quiet_since } => {
                let since = quiet_since.unwrap_or(at);
                if at - since >= QUIET_FOR {
                    set_armed(client, true).await?;
                    log::info!("listener re-armed: load is over");
                    Mode::Settling {
                        stragglers: probe(client).await?,
                        delay: SETTLE_FIRST,
                    }
                } else {
                    Mode::Busy {
                        quiet_since: Some(since),
                    }
                }
            }
        })
    }

    /// Reads everything after the position and publishes it; returns how many rows there were
    /// and the snapshot of the last read.
    async fn read_and_publish(&mut self) -> Result<(usize, Snapshot), SessionError> {
        let mut found = 0;
        loop {
            let position = self.position.clone();
            let pool = self.pool.clone();
            let from = position.clone();
            let (rows, now) = web::block(move || {
                let mut conn = pool.get()?;
                Ok::<_, SessionError>(store::notifications::since(&mut conn, &from, BATCH)?)
            })
            .await??;
            self.metrics.listener_reads.inc();
            let full = rows.len() as i64 == BATCH;
            found += rows.len();
            let live: Vec<LiveRow> = rows
                .iter()
                .map(|n| {
                    let cursor = position.after_row(&now, n.txid, n.id);
                    LiveRow {
                        id: n.id,
                        channel: n.channel.clone(),
                        txid: n.txid,
                        event_id: cursor.to_string(),
                        cursor,
                        json: serde_json::to_string(&n.to_json(false))
                            .expect("notification serializes")
                            .into(),
                        created_at: n.created_at,
                    }
                })
                .collect();
            self.position = match live.last() {
                Some(last) if full => last.cursor.clone(),
                _ => Cursor::at(now.clone()),
            };
            if !live.is_empty() {
                self.hub.publish_rows(Batch { rows: live });
            }
            if !full {
                return Ok((found, now));
            }
        }
    }
}

/// A new LISTEN connection: set up to notice a half-open TCP connection within a minute.
async fn connect(
    connector: &Connector,
) -> Result<
    (
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, TlsStream<tokio_postgres::Socket>>,
    ),
    tokio_postgres::Error,
> {
    let mut config = connector.config.clone();
    config
        .application_name("herald-listener")
        .connect_timeout(Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(15))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(30));
    config.connect(connector.tls.clone()).await
}

/// Connects once and closes again: at startup, a URL that cannot work (a wrong CA, a server
/// that refuses TLS) is a clear error instead of a listener retrying for ever.
pub async fn check(connector: &Connector) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = connect(connector).await?;
    let driver = actix_web::rt::spawn(connection);
    let result = client.simple_query("select 1").await.map(drop);
    drop(client);
    let _ = driver.await;
    result
}

/// Arms or disarms this listener; the trigger reads the outcome at once (`herald_arm`).
async fn set_armed(client: &tokio_postgres::Client, armed: bool) -> Result<(), SessionError> {
    client.execute("select herald_arm($1)", &[&armed]).await?;
    Ok(())
}

/// Right after arming: which transactions may still commit rows without a NOTIFY. Those
/// running now, i.e. in progress in a fresh snapshot or newer than its xmax, up to a fresh
/// transaction id (every transaction that read the old value had an older one).
async fn probe(client: &tokio_postgres::Client) -> Result<Stragglers, SessionError> {
    let row = client
        .query_one(
            "select pg_current_snapshot()::text, pg_current_xact_id()::text",
            &[],
        )
        .await?;
    let snapshot = Snapshot::parse(row.get(0))
        .map_err(|_| SessionError::Protocol("pg_current_snapshot".into()))?;
    let probe: Xid = row
        .get::<_, &str>(1)
        .parse()
        .map_err(|_| SessionError::Protocol("pg_current_xact_id".into()))?;
    let newer = snapshot.xmax()..probe;
    // Normally a handful; if a burst of transactions started in between, wait for all.
    let xids = (newer.end - newer.start <= 10_000).then(|| {
        snapshot
            .in_progress()
            .iter()
            .copied()
            .chain(newer)
            .collect()
    });
    Ok(Stragglers { xids, below: probe })
}

/// Keeps `notification_counts` within about [`ROLL_UP_EVERY`] of the table, so unread counts
/// only count a short tail of rows (see the `unread_counts` migration), after giving rows with
/// a txid from the future a real one (`herald_repair_txids`). Every instance runs this; one
/// that finds another rolling up skips its turn.
async fn roll_up_counts(pool: DbPool, shutdown: watch::Receiver<bool>) {
    let mut failing = false;
    // Turns skipped in a row because deleters were at work; shared by the job's runs.
    let skipped = Arc::new(AtomicU64::new(0));
    let job = move |conn: &mut diesel::PgConnection| {
        let repaired = store::notifications::repair_txids(conn)?;
        let patient = skipped.load(Ordering::Relaxed) >= PATIENT_AFTER_SKIPS;
        if store::reads::roll_up_counts(conn, patient)? {
            skipped.store(0, Ordering::Relaxed);
        } else {
            skipped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(repaired)
    };
    store::every(pool, ROLL_UP_EVERY, shutdown, job, |result| match result {
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

async fn sleep_opt(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

/// Exponential backoff with jitter, so many instances do not reconnect in step.
fn backoff(failures: u32) -> Duration {
    let base = RECONNECT_FIRST.saturating_mul(1 << failures.min(10).saturating_sub(1));
    let base = base.min(RECONNECT_MAX);
    let mut byte = [0u8; 1];
    let jitter = getrandom::fill(&mut byte).map_or(0, |()| byte[0]) as u32;
    base + base * jitter / 512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arming_settles_once_every_straggler_is_done() {
        let stragglers = Stragglers {
            xids: Some(vec![11, 15]),
            below: 16,
        };
        assert!(!stragglers.settled(&Snapshot::parse("11:16:11").unwrap()));
        assert!(!stragglers.settled(&Snapshot::parse("12:15:").unwrap()));
        assert!(stragglers.settled(&Snapshot::parse("12:20:12,16").unwrap()));
        assert!(stragglers.settled(&Snapshot::parse("16:16:").unwrap()));
        let too_many = Stragglers {
            xids: None,
            below: 16,
        };
        assert!(!too_many.settled(&Snapshot::parse("12:20:12").unwrap()));
        assert!(too_many.settled(&Snapshot::parse("17:20:").unwrap()));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= RECONNECT_FIRST && backoff(1) < RECONNECT_FIRST * 2);
        assert!(backoff(3) >= RECONNECT_FIRST * 4);
        assert!(backoff(30) <= RECONNECT_MAX * 2);
    }
}
