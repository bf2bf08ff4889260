//! The NOTIFY switch: whether writers wake this listener, or it polls because it would be
//! reading anyway (see "Not slowing writers down" in the listener's docs).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::cursor::{Snapshot, Xid};
use crate::store;

use super::SessionError;

/// Sustained load, which stops NOTIFY for polling: one pass of reads that finds rows of this
/// many transactions (they committed while the last pass ran: writers commit faster than the
/// listener reads), or [`BUSY_READS`] passes that find rows within [`BUSY_WINDOW`] (~200 a
/// second). Less is cheaper woken by NOTIFY than polled for about every millisecond, and its
/// writers hardly queue on NOTIFY's lock. Transactions, not rows: one statement's thousand
/// rows are one NOTIFY. (The rule was once any two passes with rows within 20 ms, which
/// random arrivals at 50 a second meet within a second: the listener then polled ~400 times a
/// second for 50 rows, and each row waited for a poll.)
const BUSY_TRANSACTIONS: usize = 3;
const BUSY_READS: usize = 10;
const BUSY_WINDOW: Duration = Duration::from_millis(50);
/// Poll interval while disarmed, when someone waits for rows (an open stream, a long-poll):
/// none asked for, because their latency is the point. tokio's timer rounds a sleep up to
/// whole milliseconds from when the runtime parks, so a zero sleep lasts ~1.05 ms and a 1 ms
/// one ~2.1 ms: at 1,000 rows/s a read came every ~2.6 ms, now every ~1.5 ms, for ~0.35 ms of
/// database CPU per extra read (BENCHMARKS.md, "The listener polls at its shortest while
/// someone waits").
const BUSY_POLL: Duration = Duration::ZERO;
/// Poll interval while disarmed, when nobody waits. Reads then only keep up the memory that
/// polls and unread counts are answered from, which promises "as of herald's last read". A
/// read costs the database and herald about half a millisecond of CPU whatever it finds,
/// taken from the writers: polling every 1 ms cost 8 writers a sixth of their inserts
/// (`herald-bench writers`, BENCHMARKS.md).
const BUSY_POLL_UNWATCHED: Duration = Duration::from_millis(20);
/// Disarmed and nothing new for this long: re-arm.
const QUIET_FOR: Duration = Duration::from_millis(100);
/// Poll backoff while waiting for transactions that may have missed the re-arm.
const SETTLE_FIRST: Duration = Duration::from_millis(5);
const SETTLE_MAX: Duration = Duration::from_secs(1);
/// Armed and idle: read anyway this often. Longer than any test waits, so a broken NOTIFY
/// path still fails the tests.
const SAFETY_READ: Duration = Duration::from_secs(30);

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
    /// Armed, still polling until the stragglers are done.
    Settling {
        stragglers: Stragglers,
        delay: Duration,
    },
}

/// What one pass of reads found: how many rows and changes, and of how many transactions the
/// rows are (counted up to [`BUSY_TRANSACTIONS`]).
#[derive(Default)]
pub(super) struct Found {
    /// Rows and changes.
    pub items: usize,
    transactions: Vec<Xid>,
}

impl Found {
    /// Adds one read's rows, by their transactions, and `changes` other changes.
    pub fn add(&mut self, txids: impl Iterator<Item = Xid>, changes: usize) {
        for txid in txids {
            self.items += 1;
            if self.transactions.len() < BUSY_TRANSACTIONS && !self.transactions.contains(&txid) {
                self.transactions.push(txid);
            }
        }
        self.items += changes;
    }
}

/// The switch of one LISTEN session.
pub(super) struct Switch {
    mode: Mode,
    /// When the latest passes that found rows ended, the newest last; at most [`BUSY_READS`].
    found: VecDeque<Instant>,
}

impl Switch {
    /// Arms this listener (forgetting instances that died without saying so). Until the
    /// transactions that may have missed the switch are done, it keeps polling.
    pub async fn arm(client: &Client) -> Result<Switch, SessionError> {
        set_armed(client, true).await?;
        Ok(Switch {
            mode: Mode::Settling {
                stragglers: probe(client).await?,
                delay: SETTLE_FIRST,
            },
            found: VecDeque::with_capacity(BUSY_READS),
        })
    }

    /// How long to wait for a wake-up before reading anyway; `watched` if someone waits for
    /// rows.
    pub fn patience(&self, watched: bool) -> Duration {
        match &self.mode {
            Mode::Idle => SAFETY_READ,
            Mode::Busy { .. } if watched => BUSY_POLL,
            Mode::Busy { .. } => BUSY_POLL_UNWATCHED,
            Mode::Settling { delay, .. } => *delay,
        }
    }

    /// After a pass of reads that found `found`, the last at snapshot `now`: polling or
    /// NOTIFY from here.
    pub async fn after_read(
        &mut self,
        found: &Found,
        now: &Snapshot,
        client: &Client,
    ) -> Result<(), SessionError> {
        let at = Instant::now();
        let sustained = self.sustained(found, at);
        let found = found.items;
        let mode = std::mem::replace(&mut self.mode, Mode::Idle);
        self.mode = match mode {
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
        };
        Ok(())
    }

    /// Notes a pass of reads that found `found` and ended `at`: true if it shows sustained
    /// load.
    fn sustained(&mut self, found: &Found, at: Instant) -> bool {
        if found.items == 0 {
            return false;
        }
        if self.found.len() == BUSY_READS {
            self.found.pop_front();
        }
        self.found.push_back(at);
        found.transactions.len() >= BUSY_TRANSACTIONS
            || (self.found.len() == BUSY_READS
                && self
                    .found
                    .front()
                    .is_some_and(|first| at - *first < BUSY_WINDOW))
    }
}

/// This session's listener leaves (herald stopping). Best effort: a listener that vanishes is
/// forgotten by the next switch of any instance.
pub(super) async fn leave(client: &Client) {
    let _ = store::listen::arm(client, None).await;
}

/// Arms or disarms this listener; the trigger reads the outcome at once (`herald_arm`).
async fn set_armed(client: &Client, armed: bool) -> Result<(), SessionError> {
    store::listen::arm(client, Some(armed)).await?;
    Ok(())
}

/// Right after arming: which transactions may still commit rows without a NOTIFY. Those
/// running now, i.e. in progress in a fresh snapshot or newer than its xmax, up to a fresh
/// transaction id (every transaction that read the old value had an older one).
async fn probe(client: &Client) -> Result<Stragglers, SessionError> {
    let (snapshot, xact) = store::listen::snapshot_and_xact(client).await?;
    let snapshot = Snapshot::parse(&snapshot)
        .map_err(|_| SessionError::Protocol("pg_current_snapshot".into()))?;
    let probe: Xid = xact
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

#[cfg(test)]
mod tests {
    use super::*;

    fn switch() -> Switch {
        Switch {
            mode: Mode::Idle,
            found: VecDeque::new(),
        }
    }

    /// What a pass found: one row of each of `txids`.
    fn rows(txids: &[Xid]) -> Found {
        let mut found = Found::default();
        found.add(txids.iter().copied(), 0);
        found
    }

    #[test]
    fn load_is_sustained_when_transactions_pile_up_or_passes_come_200_a_second() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut busy = switch();
        assert!(
            !busy.sustained(&rows(&[7; 1000]), ms(0)),
            "one bulk statement"
        );
        assert!(!busy.sustained(&rows(&[8, 9, 8]), ms(1)));
        assert!(
            busy.sustained(&rows(&[10, 11, 12]), ms(2)),
            "three transactions"
        );

        let mut steady = switch();
        let sustained: Vec<bool> = (0..BUSY_READS as u64)
            .map(|i| steady.sustained(&rows(&[i]), ms(i * 4)))
            .collect();
        assert_eq!(sustained.iter().filter(|s| **s).count(), 1);
        assert!(sustained[BUSY_READS - 1], "the tenth pass in 36 ms");

        // 50 rows a second, some of them close together: not load, NOTIFY stays.
        let mut light = switch();
        let mut at = 0;
        for gap in [1, 30, 2, 15, 40, 1, 25, 3, 20, 19, 1, 60, 2, 2, 35, 10] {
            at += gap;
            assert!(!light.sustained(&rows(&[at]), ms(at)), "at {at} ms");
        }
        assert!(
            !light.sustained(&Found::default(), ms(at + 1)),
            "a pass that found nothing"
        );
    }

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
}
