//! In-process fan-out of notification events to open streams and parked long-polls.
//!
//! # Dispatch model
//! The listener is the only publisher: it reads each wake-up's new rows in one query and
//! publishes them as one [`Batch`], so every instance sees the same rows in the same order.
//! Each row is serialized once and shared (`Arc`) by every subscriber that gets it.
//!
//! Each subscriber has a bounded queue. `publish` never waits: a subscriber whose queue is
//! full is dropped on the spot (its stream ends and its client resumes from its cursor), so a
//! slow client costs at most one full queue of memory.
//!
//! Each subscriber holds an open connection, so the hub also enforces [`Limits`]: how many one
//! user, and everyone together, may hold at once.
//!
//! The registry (`registry`) sits behind a `std::sync::Mutex` that is never held across an
//! `.await`: every critical section is plain, non-blocking code. `events` has what the hub
//! carries; `subscription` a subscriber's end of it.
//!
//! The hub also remembers what it published (`recent`), so that polls can be answered from
//! memory. A batch enters that log before it is handed to subscribers: a request that
//! subscribes, then finds nothing new in the log, is certain to be handed what comes next.

mod events;
mod recent;
mod registry;
mod subscription;

pub use events::{Batch, HubEvent, LiveRow, Signal};
pub use recent::{Answer, PageKey, Seq};
pub use registry::{Limits, Refused};
pub use subscription::{Kind, News, Reservation, Subscription};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;
use tokio::sync::mpsc;

use crate::channels;
use crate::cursor::{Cursor, Snapshot};
use crate::metrics::Metrics;
use crate::models::{Counts, PresenceChange, ReadChange};
use recent::Recent;
use registry::{Ids, Registry, Subscriber};

/// Events a subscriber can fall behind by before it is dropped.
const QUEUE: usize = 256;

/// The registry of subscribers. Cheap to clone; all clones share it.
#[derive(Clone)]
pub struct Hub {
    /// This instance, among those on one database (signals skip their sender).
    origin: u64,
    inner: Arc<Mutex<Registry>>,
    recent: Arc<Mutex<Recent>>,
    metrics: Arc<Metrics>,
    limits: Limits,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::with_limits(Limits::default(), Arc::default())
    }
}

impl Hub {
    /// A new, empty hub with default limits.
    pub fn new() -> Hub {
        Hub::default()
    }

    /// A new, empty hub with `limits`, counting into `metrics`.
    pub fn with_limits(limits: Limits, metrics: Arc<Metrics>) -> Hub {
        Hub {
            origin: draw_origin(),
            inner: Arc::default(),
            recent: Arc::default(),
            metrics,
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated in a way
        // that matters more than losing every stream, so keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes `user_id` to rows on `shows` (the channels they asked for) and on their
    /// inbox (to keep their unread count), and to their own read-state changes, unless the hub
    /// is closed or a limit is reached.
    pub fn subscribe(
        &self,
        kind: Kind,
        user_id: &str,
        shows: &[String],
    ) -> Result<Subscription, Refused> {
        // Made before the lock is taken, to keep the section the listener's fan-out waits on
        // short.
        let channels: Arc<[String]> = channels::with_inbox(user_id, shows).into();
        let user_id: Arc<str> = user_id.into();
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicBool::new(false));
        let mut registry = self.lock();
        registry.reserve(&user_id, &self.limits)?;
        let id = registry.add(Subscriber {
            tx,
            user_id: user_id.clone(),
            channels: channels.clone(),
            signalled: if kind == Kind::Stream { shows.len() } else { 0 },
            watching: Vec::new(),
            dropped: dropped.clone(),
        });
        drop(registry);
        // A stream is open from here; a long-poll counts once it parks (`mark_parked`).
        let counted = kind == Kind::Stream;
        if counted {
            self.metrics.gauge_of(kind).inc();
        }
        Ok(Subscription {
            id,
            kind,
            counted,
            user_id,
            channels,
            showing: shows.len(),
            rx,
            dropped,
            hub: self.clone(),
        })
    }

    /// A place under the limits for `user_id` without a subscription: a request whose body
    /// is still arriving holds one, so stalled uploads count like open streams.
    pub fn reserve(&self, user_id: &str) -> Result<Reservation, Refused> {
        self.lock().reserve(user_id, &self.limits)?;
        self.metrics.request_bodies_pending.inc();
        Ok(Reservation {
            hub: self.clone(),
            user_id: user_id.to_owned(),
        })
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listener reads what committed after `start`.
    pub fn start_at(&self, start: Cursor) {
        self.recent().start_at(start);
    }

    /// Where the log of what was published ends: take it before a query whose answer is
    /// then remembered.
    pub fn position(&self) -> Seq {
        self.recent().position()
    }

    /// Remembers `user_id`'s counts, `counts` at snapshot `at`, from a query that started at
    /// log position `seq`.
    pub fn remember_count(&self, user_id: &str, counts: Counts, at: Snapshot, seq: Seq) {
        self.recent().fill_count(user_id, counts, at, seq);
    }

    /// Remembers the newest page `key` asked for: its JSON array and how many notifications
    /// it holds, read at snapshot `at` by a query that started at log position `seq`.
    pub fn remember_page(&self, key: PageKey, page: (ByteString, usize), at: Snapshot, seq: Seq) {
        self.recent().fill_page(key, page, at, seq);
    }

    /// `user_id`'s counts now, if the hub knows them.
    pub fn counts(&self, user_id: &str) -> Option<Counts> {
        self.recent().counts(user_id)
    }

    /// The newest page `key` asks for, if the hub knows it.
    pub fn newest(&self, key: &PageKey) -> Option<Answer> {
        self.recent().newest(key)
    }

    /// What `user_id`, reading `shows`, has not had after `cursor`, if the hub can tell
    /// (at most `limit` rows).
    pub fn after(
        &self,
        user_id: &str,
        shows: &[String],
        cursor: &Cursor,
        limit: i64,
    ) -> Option<Answer> {
        self.recent().after(user_id, shows, cursor, limit)
    }

    /// `user_id` changed their read state through this instance, and it committed: what the
    /// hub remembers of them is out of date.
    pub fn forget_reader(&self, user_id: &str) {
        self.recent().forget_reader(user_id);
    }

    /// A notification on `channel` was published through this instance, and it committed:
    /// what the hub remembers of that channel is out of date.
    pub fn forget_channel(&self, channel: &str) {
        self.recent().forget_channel(channel);
    }

    /// Hands `batch`'s rows to every subscriber of any of their channels, and tells the
    /// subscribers whose inbox changed otherwise (a deletion, an update, a truncate of read
    /// state) to recount. An empty batch only moves the log's head.
    pub fn publish(&self, batch: Batch) {
        let rows = batch.rows.len() as u64;
        let summary = recent::Summary::of(&batch);
        let batch = Arc::new(batch);
        self.recent().published(batch.clone(), summary);
        if batch.rows.is_empty() && batch.changed.is_empty() && batch.readers.is_empty() {
            return;
        }
        let mut registry = self.lock();
        let mut targets = Ids::new();
        for row in &batch.rows {
            if let Some(ids) = registry.by_channel.get(&row.channel) {
                targets.extend(ids.iter().copied());
            }
        }
        // A user's own read-state changes reach their streams on `herald_reads`, with ids;
        // only a truncate does not.
        let recount = if batch.readers.iter().any(|r| r == "*") {
            registry.subscribers.keys().copied().collect()
        } else {
            registry.inbox_subscribers(&batch.changed)
        };
        if !targets.is_empty() {
            registry.send(targets, &HubEvent::Rows(batch), &self.metrics);
        }
        if !recount.is_empty() {
            registry.send(recount, &HubEvent::Resync, &self.metrics);
        }
        drop(registry);
        self.metrics.notifications_received.inc_by(rows);
    }

    /// Hands `signal` to the open streams that show its channel; returns how many took it.
    ///
    /// A signal never costs a stream its place: one whose queue is half full skips it (the
    /// rest of the queue is kept for notifications, which a full queue would drop the stream
    /// for), and signals are ephemeral.
    pub fn signal(&self, signal: Signal) -> usize {
        let registry = self.lock();
        let Some(ids) = registry.by_channel.get(&signal.channel) else {
            return 0;
        };
        let signal = Arc::new(signal);
        let event = HubEvent::Signal(signal.clone());
        let mut delivered = 0;
        for id in ids {
            let Some(subscriber) = registry.subscribers.get(id) else {
                continue;
            };
            let shows = &subscriber.channels[..subscriber.signalled];
            if shows.contains(&signal.channel)
                && subscriber.tx.capacity() > QUEUE / 2
                && subscriber.tx.try_send(event.clone()).is_ok()
            {
                delivered += 1;
            }
        }
        delivered
    }

    /// Hands a presence change to the streams watching its channel.
    pub fn presence_changed(&self, change: PresenceChange) {
        let mut registry = self.lock();
        let Some(ids) = registry.by_presence.get(&change.channel) else {
            return;
        };
        let targets = ids.clone();
        registry.send(
            targets,
            &HubEvent::Presence(Arc::new(change)),
            &self.metrics,
        );
    }

    /// Tells every subscriber of `change.user_id` about it, after forgetting what is
    /// remembered of that user: a tab that hears the change and asks for its list at once must
    /// not get the answer from before it (the listener records the same change from
    /// `herald_changes` only at its next read).
    pub fn publish_read(&self, change: ReadChange) {
        self.recent().forget_reader(&change.user_id);
        let mut registry = self.lock();
        let targets: Ids = registry
            .by_user
            .get(&change.user_id)
            .cloned()
            .unwrap_or_default();
        registry.send(targets, &HubEvent::Read(Arc::new(change)), &self.metrics);
    }

    /// Tells every subscriber to recount, and forgets every remembered count and page
    /// (changes may have been missed).
    pub fn resync_all(&self) {
        self.recent().forget_everything();
        let mut registry = self.lock();
        let targets: Ids = registry.subscribers.keys().copied().collect();
        registry.send(targets, &HubEvent::Resync, &self.metrics);
    }

    /// Refuses new subscribers at once, then drops the ones there are (streams end, parked
    /// long-polls answer) one at a time, evenly over `spread`, oldest first: their clients
    /// reconnect (to another instance, behind a proxy) over as long, not all in the same
    /// second. Returns when the last is dropped.
    pub async fn close_over(&self, spread: std::time::Duration) {
        let ids: Vec<u64> = {
            let mut registry = self.lock();
            registry.closed = true;
            let mut ids: Vec<u64> = registry.subscribers.keys().copied().collect();
            ids.sort_unstable();
            ids
        };
        let start = tokio::time::Instant::now();
        let count = ids.len().max(1) as u32;
        for (i, id) in (0..).zip(ids) {
            tokio::time::sleep_until(start + spread * i / count).await;
            let mut registry = self.lock();
            if let Some(subscriber) = registry.subscribers.get(&id) {
                subscriber.dropped.store(true, Ordering::Release);
            }
            registry.remove(id);
        }
    }

    /// How many subscribers are registered now.
    pub fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// This instance's id among those sharing the database: random, for telling its own
    /// signals apart when they come back through the database. Never
    /// [`crate::signals::SQL_ORIGIN`].
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// The metrics the hub keeps.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// A random origin that is not [`crate::signals::SQL_ORIGIN`]: an instance with that one
/// would take `herald_signal`'s signals for its own, and drop them. Two instances drawing the
/// same 64 bits would only miss each other's signals; if the system has no randomness to
/// give, the clock and the process id stand in.
fn draw_origin() -> u64 {
    let drawn = getrandom::u64().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 32)
    });
    if drawn == crate::signals::SQL_ORIGIN {
        drawn.wrapping_add(1)
    } else {
        drawn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rows: Vec<LiveRow>) -> Batch {
        Batch {
            rows,
            changed: Vec::new(),
            readers: Vec::new(),
            after: Cursor::at(Snapshot::parse("3:3:").unwrap()),
        }
    }

    fn row(channel: &str, id: i64) -> LiveRow {
        let cursor = Cursor::at(Snapshot::parse("3:3:").unwrap());
        LiveRow {
            id,
            channel: channel.into(),
            txid: 3,
            event_id: cursor.to_string(),
            cursor,
            json: "{}".into(),
            created_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn rows_reach_subscribers_of_their_channel_only() {
        let hub = Hub::new();
        let mut a = hub
            .subscribe(Kind::Stream, "1", &["user:1".into()])
            .unwrap();
        let mut b = hub
            .subscribe(Kind::Stream, "2", &["user:2".into()])
            .unwrap();
        hub.publish(batch(vec![row("user:1", 1)]));
        assert!(matches!(a.recv().await, Some(HubEvent::Rows(_))));
        assert!(b.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn news_are_the_shown_rows_not_had_and_the_inbox_rows_not_counted() {
        let hub = Hub::new();
        let sub = hub
            .subscribe(Kind::Stream, "1", &["order:7".into()])
            .unwrap();
        let at = |txid| LiveRow {
            txid,
            ..row("user:1", txid as i64)
        };
        let batch = batch(vec![
            at(5),
            LiveRow {
                channel: "order:7".into(),
                ..at(6)
            },
            LiveRow {
                channel: "order:7".into(),
                ..at(9)
            },
            at(9),
        ]);
        // Had everything below 7; counted everything below 9.
        let news = sub.news(
            &batch,
            &Snapshot::parse("7:7:").unwrap(),
            &Snapshot::parse("9:9:").unwrap(),
        );
        let shown: Vec<i64> = news.rows.iter().map(|r| r.id).collect();
        assert_eq!(
            shown,
            vec![9],
            "order:7 rows after 7 only; user:1 is not shown"
        );
        assert_eq!(news.unread_added, 1, "user:1's row 9 is new to the count");
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_not_waited_for() {
        let hub = Hub::new();
        let mut slow = hub
            .subscribe(Kind::Stream, "1", &["broadcast".into()])
            .unwrap();
        for id in 0..=QUEUE as i64 {
            hub.publish(batch(vec![row("broadcast", id)]));
        }
        assert_eq!(hub.subscribers(), 0);
        assert_eq!(hub.metrics().slow_clients_dropped.get(), 1);
        assert!(
            slow.recv().await.is_none(),
            "a dropped subscriber ends at once, without draining what it fell behind on"
        );
    }

    #[tokio::test]
    async fn dropping_a_subscription_unsubscribes_and_close_ends_the_rest() {
        let hub = Hub::new();
        let first = hub.subscribe(Kind::Stream, "1", &["a".into()]).unwrap();
        let mut second = hub.subscribe(Kind::Stream, "2", &["a".into()]).unwrap();
        drop(first);
        assert_eq!(hub.subscribers(), 1);
        hub.close_over(std::time::Duration::ZERO).await;
        assert!(second.recv().await.is_none());
        assert_eq!(
            hub.subscribe(Kind::Stream, "3", &["a".into()]).err(),
            Some(Refused::Closed)
        );
    }

    #[tokio::test]
    async fn limits_count_per_user_and_in_all_and_free_up_on_drop() {
        let hub = Hub::with_limits(
            Limits {
                per_user: 2,
                total: 3,
            },
            Default::default(),
        );
        let inbox = ["user:1".to_string()];
        let a = hub.subscribe(Kind::Stream, "1", &inbox).unwrap();
        let _b = hub.subscribe(Kind::LongPoll, "1", &inbox).unwrap();
        assert_eq!(
            hub.subscribe(Kind::Stream, "1", &inbox).err(),
            Some(Refused::UserLimit)
        );
        let _c = hub.subscribe(Kind::Stream, "2", &inbox).unwrap();
        assert_eq!(
            hub.subscribe(Kind::Stream, "3", &inbox).err(),
            Some(Refused::TotalLimit)
        );
        drop(a);
        assert!(hub.subscribe(Kind::Stream, "1", &inbox).is_ok());
    }

    #[tokio::test]
    async fn a_slow_subscriber_holds_its_place_until_its_stream_lets_go() {
        let hub = Hub::with_limits(
            Limits {
                per_user: 1,
                total: 10,
            },
            Default::default(),
        );
        let slow = hub
            .subscribe(Kind::Stream, "1", &["broadcast".into()])
            .unwrap();
        for id in 0..=QUEUE as i64 {
            hub.publish(batch(vec![row("broadcast", id)]));
        }
        assert_eq!(hub.subscribers(), 0, "dropped from fan-out");
        assert_eq!(
            hub.subscribe(Kind::Stream, "1", &["broadcast".into()])
                .err(),
            Some(Refused::UserLimit),
            "its connection is still open"
        );
        drop(slow);
        assert!(
            hub.subscribe(Kind::Stream, "1", &["broadcast".into()])
                .is_ok()
        );
    }
}
