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
//! The registry sits behind a `std::sync::Mutex` that is never held across an `.await`:
//! every critical section below is plain, non-blocking code.
//!
//! The hub also remembers what it published ([`recent`]), so that polls can be answered from
//! memory. A batch enters that log before it is handed to subscribers: a request that
//! subscribes, then finds nothing new in the log, is certain to be handed what comes next.

mod recent;

pub use recent::{Answer, PageKey, Seq};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;
use tokio::sync::mpsc;

use crate::channels;
use crate::cursor::{Cursor, Snapshot, Xid};
use crate::metrics::Metrics;
use crate::models::{PresenceChange, ReadChange};
use prometheus_client::metrics::gauge::Gauge;
use recent::Recent;

/// Events a subscriber can fall behind by before it is dropped.
const QUEUE: usize = 256;

/// A notification as the hub carries it: routing fields, its cursor, and its JSON.
#[derive(Debug)]
pub struct LiveRow {
    /// Notification id.
    pub id: i64,
    /// Its channel.
    pub channel: String,
    /// The transaction that wrote it.
    pub txid: Xid,
    /// The position after this row, in the listener's reading.
    pub cursor: Cursor,
    /// `cursor` as text, for the SSE `id:` of most streams.
    pub event_id: String,
    /// The notification's JSON as a new (unread) notification, serialized once and shared
    /// by every stream that sends it (cloning is a reference count).
    pub json: ByteString,
    /// When it was inserted (its transaction's start): delivery latency counts from here.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl LiveRow {
    /// The position after this row, as text, for a reader that has had everything visible in
    /// `floor` (a stream's replay, a long-poll's page): the listener's own, unless that starts
    /// from an older snapshot than `floor`, which a resume must not read again.
    pub fn position_after(&self, floor: &Snapshot) -> String {
        if self.cursor.base.is_at_or_after(floor) {
            self.event_id.clone()
        } else {
            self.cursor.rebased_on(floor).to_string()
        }
    }
}

/// What one read of the listener found: new rows in reading order, the channels that were
/// deleted from, updated or truncated (`*`: every channel), and the users whose read state
/// changed (`*`: everyone's).
#[derive(Debug)]
pub struct Batch {
    /// Oldest first.
    pub rows: Vec<LiveRow>,
    /// Channels changed otherwise than by inserts.
    pub changed: Vec<String>,
    /// Users whose read state changed.
    pub readers: Vec<String>,
    /// The listener's position after this read.
    pub after: Cursor,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum HubEvent {
    /// New rows; at least one is on a channel of the subscriber.
    Rows(Arc<Batch>),
    /// The subscriber's user marked notifications read.
    Read(Arc<ReadChange>),
    /// Read-state events may have been missed (the listener reconnected): recount.
    Resync,
    /// A live signal on a channel the stream shows (streams only).
    Signal(Arc<Signal>),
    /// Who is present changed on a channel the stream watches.
    Presence(Arc<PresenceChange>),
}

/// A live signal (SPEC section 8): not stored, never replayed, no cursor.
#[derive(Debug)]
pub struct Signal {
    /// The channel it was sent on.
    pub channel: String,
    /// The `event: signal` data, serialized once for every stream.
    pub json: ByteString,
}

/// The registry of subscribers. Cheap to clone; all clones share it.
#[derive(Clone, Default)]
pub struct Hub {
    /// This instance, among those on one database (signals skip their sender).
    origin: u64,
    inner: Arc<Mutex<Registry>>,
    recent: Arc<Mutex<Recent>>,
    metrics: Arc<Metrics>,
    limits: Limits,
}

/// How many subscribers (open streams and parked long-polls) may be registered at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Per user.
    pub per_user: usize,
    /// In all.
    pub total: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_user: 20,
            total: 10_000,
        }
    }
}

/// Why [`Hub::subscribe`] said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// herald is shutting down.
    Closed,
    /// The user already holds [`Limits::per_user`].
    UserLimit,
    /// [`Limits::total`] are registered.
    TotalLimit,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    by_channel: HashMap<String, HashSet<u64>>,
    by_user: HashMap<String, HashSet<u64>>,
    /// Streams watching each channel's presence.
    by_presence: HashMap<String, HashSet<u64>>,
    /// Live [`Subscription`]s per user, registered or not: what the limits count. A
    /// subscriber dropped for being slow leaves the registry at once, but it holds its
    /// connection until its stream ends, so it counts until then.
    held: HashMap<String, usize>,
    held_total: usize,
    closed: bool,
}

struct Subscriber {
    tx: mpsc::Sender<HubEvent>,
    user_id: String,
    /// The channels it shows, then the rest of its inbox.
    channels: Vec<String>,
    /// How many of `channels` it shows; 0 for a long-poll, which never gets signals.
    signalled: usize,
    /// The channels whose presence it watches.
    watching: Vec<String>,
    /// Set when the hub lets go of this subscriber: it must stop at once, not drain.
    dropped: Arc<AtomicBool>,
}

/// Who is subscribing, for the gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An SSE stream.
    Stream,
    /// A parked long-poll.
    LongPoll,
}

/// A subscriber's end. Dropping it unsubscribes and frees its place under the limits.
pub struct Subscription {
    id: u64,
    kind: Kind,
    /// Counted in its kind's gauge (a long-poll only once it parks).
    counted: bool,
    user_id: String,
    /// The channels whose rows it shows (the rest of what it hears is its inbox).
    shows: Vec<String>,
    rx: mpsc::Receiver<HubEvent>,
    dropped: Arc<AtomicBool>,
    hub: Hub,
}

/// What a batch holds for one subscriber: [`Subscription::news`].
#[derive(Debug)]
pub struct News<'a> {
    /// The rows it shows and has not had, in reading order.
    pub rows: Vec<&'a LiveRow>,
    /// Inbox rows it has not counted: what its unread count grows by.
    pub unread_added: i64,
}

impl Subscription {
    /// What `batch` holds for this subscriber, which has had every row visible in `shown`
    /// and counted every inbox row visible in `counted`. Streams and long-polls both take
    /// their rows and counts from here.
    pub fn news<'a>(&self, batch: &'a Batch, shown: &Snapshot, counted: &Snapshot) -> News<'a> {
        let mut news = News {
            rows: Vec::new(),
            unread_added: 0,
        };
        for row in &batch.rows {
            if channels::is_inbox(&self.user_id, &row.channel) && !counted.is_visible(row.txid) {
                news.unread_added += 1;
            }
            if !shown.is_visible(row.txid) && self.shows.contains(&row.channel) {
                news.rows.push(row);
            }
        }
        news
    }

    /// True if `batch` holds a row this subscriber shows that `after` does not cover.
    pub fn has_news(&self, batch: &Batch, after: &Cursor) -> bool {
        batch
            .rows
            .iter()
            .any(|row| self.shows.contains(&row.channel) && !after.covers(row.txid, row.id))
    }

    /// A long-poll that found nothing new and now waits: from here on it counts as parked
    /// (`herald_long_polls_parked`). Before, it was still reading its first page.
    pub fn mark_parked(&mut self) {
        if !self.counted {
            self.counted = true;
            self.hub.metrics.gauge_of(self.kind).inc();
        }
    }

    /// The next event; `None` once the hub dropped this subscriber (slow, or shutting down),
    /// even with events still queued: a subscriber that fell behind resumes from its cursor
    /// on a new connection instead of draining the old one.
    pub async fn recv(&mut self) -> Option<HubEvent> {
        if self.dropped.load(Ordering::Acquire) {
            return None;
        }
        let event = self.rx.recv().await;
        if self.dropped.load(Ordering::Acquire) {
            return None;
        }
        event
    }
}

/// A place under the limits held by [`Hub::reserve`]; dropping it frees the place.
pub struct Reservation {
    hub: Hub,
    user_id: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.hub.lock().release(&self.user_id);
        self.hub.metrics.request_bodies_pending.dec();
    }
}

impl Subscription {
    /// From now on, this subscriber hears presence changes on `channels`.
    pub fn watch_presence(&self, channels: &[String]) {
        let mut registry = self.hub.lock();
        let Some(subscriber) = registry.subscribers.get_mut(&self.id) else {
            return; // already dropped: the stream ends on its next receive
        };
        subscriber.watching.extend(channels.iter().cloned());
        for channel in channels {
            registry
                .by_presence
                .entry(channel.clone())
                .or_default()
                .insert(self.id);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut registry = self.hub.lock();
        registry.remove(self.id);
        registry.release(&self.user_id);
        drop(registry);
        if self.counted {
            self.hub.metrics.gauge_of(self.kind).dec();
        }
    }
}

impl Metrics {
    fn gauge_of(&self, kind: Kind) -> &Gauge {
        match kind {
            Kind::Stream => &self.streams_open,
            Kind::LongPoll => &self.long_polls_parked,
        }
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
            // Two instances drawing the same 64 bits would only miss each other's signals.
            origin: getrandom::u64().unwrap_or_default(),
            limits,
            metrics,
            ..Hub::default()
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
        let mut channels = shows.to_vec();
        for channel in channels::inbox(user_id) {
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        let mut registry = self.lock();
        registry.reserve(user_id, &self.limits)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicBool::new(false));
        registry.next_id += 1;
        let id = registry.next_id;
        for channel in &channels {
            registry
                .by_channel
                .entry(channel.clone())
                .or_default()
                .insert(id);
        }
        registry
            .by_user
            .entry(user_id.to_owned())
            .or_default()
            .insert(id);
        registry.subscribers.insert(
            id,
            Subscriber {
                tx,
                user_id: user_id.to_owned(),
                channels,
                signalled: if kind == Kind::Stream { shows.len() } else { 0 },
                watching: Vec::new(),
                dropped: dropped.clone(),
            },
        );
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
            user_id: user_id.to_owned(),
            shows: shows.to_vec(),
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

    /// Remembers `user_id`'s unread count, `count` at snapshot `at`, from a query that
    /// started at log position `seq`.
    pub fn remember_count(&self, user_id: &str, count: i64, at: Snapshot, seq: Seq) {
        self.recent().fill_count(user_id, count, at, seq);
    }

    /// Remembers the newest page `key` asked for: its JSON array and how many notifications
    /// it holds, read at snapshot `at` by a query that started at log position `seq`.
    pub fn remember_page(&self, key: PageKey, page: (ByteString, usize), at: Snapshot, seq: Seq) {
        self.recent().fill_page(key, page, at, seq);
    }

    /// `user_id`'s unread count now, if the hub knows it.
    pub fn unread_count(&self, user_id: &str) -> Option<i64> {
        self.recent().unread_count(user_id)
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
        let batch = Arc::new(batch);
        self.recent().published(batch.clone());
        if batch.rows.is_empty() && batch.changed.is_empty() && batch.readers.is_empty() {
            return;
        }
        let mut registry = self.lock();
        let mut targets = HashSet::new();
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

    /// Tells every subscriber of `change.user_id` about it.
    pub fn publish_read(&self, change: ReadChange) {
        let mut registry = self.lock();
        let targets: HashSet<u64> = registry
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
        let targets: HashSet<u64> = registry.subscribers.keys().copied().collect();
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
    /// signals apart when they come back through the database.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// The metrics the hub keeps.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Registry {
    fn send(&mut self, targets: HashSet<u64>, event: &HubEvent, metrics: &Metrics) {
        for id in targets {
            let Some(subscriber) = self.subscribers.get(&id) else {
                continue;
            };
            match subscriber.tx.try_send(event.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    log::warn!(
                        "stream dropped reason=slow_client user_id={}",
                        subscriber.user_id
                    );
                    metrics.slow_clients_dropped.inc();
                    subscriber.dropped.store(true, Ordering::Release);
                    self.remove(id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => self.remove(id),
            }
        }
    }

    /// The subscribers whose inbox includes one of `channels` (`*`: everyone's does).
    fn inbox_subscribers(&self, channels: &[String]) -> HashSet<u64> {
        let mut found = HashSet::new();
        for channel in channels {
            if channel == "*" || channel == channels::BROADCAST {
                return self.subscribers.keys().copied().collect();
            }
            if let Some(ids) = channels::owner(channel).and_then(|user| self.by_user.get(user)) {
                found.extend(ids.iter().copied());
            }
        }
        found
    }

    fn reserve(&mut self, user_id: &str, limits: &Limits) -> Result<(), Refused> {
        if self.closed {
            return Err(Refused::Closed);
        }
        if self.held_total >= limits.total {
            return Err(Refused::TotalLimit);
        }
        if self.held.get(user_id).copied().unwrap_or(0) >= limits.per_user {
            return Err(Refused::UserLimit);
        }
        *self.held.entry(user_id.to_owned()).or_default() += 1;
        self.held_total += 1;
        Ok(())
    }

    fn release(&mut self, user_id: &str) {
        self.held_total -= 1;
        if let Some(held) = self.held.get_mut(user_id) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(user_id);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(subscriber) = self.subscribers.remove(&id) else {
            return;
        };
        for channel in &subscriber.channels {
            if let Some(ids) = self.by_channel.get_mut(channel) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_channel.remove(channel);
                }
            }
        }
        for channel in &subscriber.watching {
            if let Some(ids) = self.by_presence.get_mut(channel) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_presence.remove(channel);
                }
            }
        }
        if let Some(ids) = self.by_user.get_mut(&subscriber.user_id) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_user.remove(&subscriber.user_id);
            }
        }
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
