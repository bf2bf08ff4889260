//! The LISTEN connection: turns commits into hub batches.
//!
//! # Dispatch model
//! One dedicated tokio-postgres connection (never a pooled one) LISTENs on `herald` (rows) and
//! `herald_reads` (read state). Wake-ups carry no payload: on each, the listener reads every
//! row committed since its position (a [`Cursor`]) in one query on that same connection, and
//! publishes them to the hub as one batch. Rows of any size arrive whole, and nothing depends
//! on NOTIFY payloads. The listener is the hub's only publisher of rows.
//!
//! - `session`: connecting, and sorting what the connection brings;
//! - `arming`: whether writers NOTIFY, or the listener polls;
//! - `reader`: reading new rows, each serialized once for every stream.
//!
//! # Not slowing writers down
//! A transaction that NOTIFYs takes a global lock at commit, so writers that all NOTIFY commit
//! one at a time (SPEC section 1). The insert trigger only NOTIFYs while some instance is
//! *armed*, which its `WHEN` condition reads from the `herald_armed` sequence at the end of
//! each writing statement (the `stamp_txid` and `insert_triggers_when` migrations): while
//! disarmed, an INSERT runs no PL/pgSQL at all.
//! Under sustained load this listener *disarms* and polls instead (it would be reading
//! anyway), and re-arms after a quiet spell. It reads again after ~1 ms (tokio's shortest
//! sleep) while someone waits for rows, and every 20 ms while nobody does: a read's cost is
//! taken from the writers.
//!
//! Re-arming must not miss a row: a writer that read "disarmed" just before the switch commits
//! without a NOTIFY, perhaps after our last poll. A sequence is not transactional, so every
//! writer that reads it after the switch sees "armed", whatever its snapshot; and the trigger
//! reads it only once its statement's rows are in, so its transaction holds an id. So the writers that may have read the old
//! value are exactly the transactions that held an id at the switch. After arming, the
//! listener notes them (the "stragglers") and keeps polling, with backoff, until all of them
//! have finished and its reads have covered them. Only then does it rely on NOTIFY alone.
//! While idle it still reads every 30 s, so a wake-up lost to something not
//! foreseen here delays a row, never loses it.
//!
//! # Failures
//! If the connection drops, `/readyz` says not ready, the listener reconnects with backoff,
//! LISTENs again, and reads from its position: what was committed meanwhile is delivered.
//! Read-state NOTIFYs sent meanwhile are lost, so streams are told to recount.
//! The backoff doubles from 100 ms to at most 5 s (jitter included) while sessions keep
//! failing, and starts again from 100 ms after a session that stayed live for the healthy
//! period (`HERALD_LISTENER_HEALTHY_MS`): drops weeks apart are each a first drop.

mod arming;
mod reader;
mod session;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::Client;

use crate::cursor::{Cursor, Snapshot};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::models::ReadChange;
use crate::pgtls::Connector;

use arming::Switch;
use reader::Reader;
use session::Messages;

pub use session::check;

/// The NOTIFY channel the trigger wakes herald on.
pub const ROWS_CHANNEL: &str = "herald";

/// Reconnect backoff: the first delay, and the most any delay is, jitter included.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The listener task; see the module docs.
pub struct Listener {
    connector: Connector,
    hub: Hub,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    reader: Reader,
    /// A session live this long resets the backoff.
    healthy: Duration,
    /// When the current session went live.
    live_since: Option<Instant>,
}

/// Why a session ended (it is then started again).
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("unexpected reply: {0}")]
    Protocol(String),
    #[error("connection closed")]
    Closed,
}

impl Listener {
    /// A listener on `connector`'s URL that publishes everything committed after `start`
    /// to `hub`.
    ///
    /// `start` must be taken before the server accepts its first request: a stream that
    /// opens then replays up to a later snapshot and relies on the hub for the rest. A
    /// session that stays live for `healthy` resets the reconnect backoff.
    pub fn new(
        connector: Connector,
        hub: Hub,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
        start: Cursor,
        healthy: Duration,
    ) -> Listener {
        hub.start_at(start.clone());
        Listener {
            connector,
            hub,
            metrics,
            shutdown,
            reader: Reader::new(start),
            healthy,
            live_since: None,
        }
    }

    /// Runs until shutdown, reconnecting with backoff whenever the connection fails.
    pub async fn run(mut self) {
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
                    let was_healthy = self
                        .live_since
                        .take()
                        .is_some_and(|since| since.elapsed() >= self.healthy);
                    if was_healthy {
                        failures = 0;
                    }
                    failures += 1;
                    let delay = backoff(failures);
                    // The delay first: whoever sees the count move sees its delay.
                    self.metrics
                        .listener_reconnect_delay
                        .set(delay.as_secs_f64());
                    self.metrics.listener_reconnects.inc();
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
        let (client, connection) = session::connect(&self.connector).await?;
        let Messages {
            wake,
            mut reads,
            reads_lost,
            mut driver,
        } = session::pump(connection, self.metrics.clone(), self.hub.clone());
        session::listen(&client).await?;
        self.reader.prepare(&client).await?;
        let mut switch = Switch::arm(&client).await?;

        // Catch up on whatever committed while we were away, then we are live.
        let (found, now) = self.read_and_publish(&client).await?;
        self.metrics.listener_up.set(1);
        self.live_since = Some(Instant::now());
        log::info!(
            "listener live reconnected={reconnected} caught_up={}",
            found.items
        );
        if reconnected {
            // Read-state notifications sent meanwhile are lost.
            self.hub.resync_all();
        }
        // What piled up while we were away says nothing of the load now.
        switch
            .after_read(&arming::Found::default(), &now, &client)
            .await?;

        // When to read anyway. Kept across the read-state notifications handled meanwhile:
        // a sleep begun anew after each would let a steady flow of them (50 a second, against
        // a 20 ms patience) hold the next read of rows off for as long as it lasts.
        let mut read_by = None;
        loop {
            let deadline = *read_by.get_or_insert_with(|| {
                tokio::time::Instant::now() + switch.patience(self.hub.subscribers() > 0)
            });
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => {
                    arming::leave(&client).await;
                    return Ok(());
                }
                result = &mut driver => {
                    return Err(match result {
                        Ok(Err(err)) => err.into(),
                        _ => SessionError::Closed,
                    });
                }
                Some(payload) = reads.recv() => {
                    match serde_json::from_str::<ReadChange>(&payload) {
                        Ok(change) => self.hub.publish_read(change),
                        Err(err) => log::warn!("ignored read-state notification error={err}"),
                    }
                    continue;
                }
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            read_by = None;
            if reads_lost.swap(false, Ordering::AcqRel) {
                log::warn!("read-state notifications overflowed: streams recount");
                self.hub.resync_all();
            }
            let (found, now) = self.read_and_publish(&client).await?;
            switch.after_read(&found, &now, &client).await?;
        }
    }

    /// Reads everything after the position and publishes it; returns what there was and the
    /// snapshot of the last read.
    async fn read_and_publish(
        &mut self,
        client: &Client,
    ) -> Result<(arming::Found, Snapshot), SessionError> {
        let mut found = arming::Found::default();
        loop {
            let read = self.reader.read(client).await?;
            self.metrics.listener_reads.inc();
            found.add(read.rows.iter().map(|r| r.txid), read.changed.len());
            let (snapshot, full) = (read.snapshot.clone(), read.full);
            // Even an empty read moves the hub's head: polls answered from memory are
            // answered as of it.
            self.hub.publish(read.into_batch());
            if !full {
                return Ok((found, snapshot));
            }
        }
    }
}

/// The delay before reconnect attempt `failures` (1 for the first): exponential, with up to
/// half again of jitter so many instances do not reconnect in step, and never over
/// [`RECONNECT_MAX`].
fn backoff(failures: u32) -> Duration {
    let mut byte = [0u8; 1];
    let jitter = getrandom::fill(&mut byte).map_or(0, |()| byte[0]);
    backoff_with(failures, jitter)
}

fn backoff_with(failures: u32, jitter: u8) -> Duration {
    let base = RECONNECT_FIRST.saturating_mul(1 << (failures.clamp(1, 10) - 1));
    (base + base * u32::from(jitter) / 512).min(RECONNECT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_delay_and_never_passes_the_cap_jitter_included() {
        for jitter in [0, 1, 128, 255] {
            let first = backoff_with(1, jitter);
            assert!(first >= RECONNECT_FIRST && first < RECONNECT_FIRST * 3 / 2);
            assert!(backoff_with(3, jitter) >= RECONNECT_FIRST * 4);
            for failures in [0, 6, 7, 10, 11, 30, u32::MAX] {
                assert!(
                    backoff_with(failures, jitter) <= RECONNECT_MAX,
                    "{failures}"
                );
            }
        }
        assert_eq!(backoff_with(30, 255), RECONNECT_MAX);
    }
}
