//! A subscriber's end of the hub: what it receives, what of a batch is news to it, and the
//! place under the limits it holds until dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;

use super::{Batch, Hub, HubEvent, LiveRow};
use crate::channels;
use crate::cursor::{Cursor, Snapshot};
use crate::metrics::Metrics;

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
    pub(super) id: u64,
    pub(super) kind: Kind,
    /// Counted in its kind's gauge (a long-poll only once it parks).
    pub(super) counted: bool,
    pub(super) user_id: Arc<str>,
    /// Every channel it hears from: the first [`Self::showing`] are those whose rows it
    /// shows, the rest its inbox (to keep its unread count).
    pub(super) channels: Arc<[String]>,
    pub(super) showing: usize,
    pub(super) rx: mpsc::Receiver<HubEvent>,
    pub(super) dropped: Arc<AtomicBool>,
    pub(super) hub: Hub,
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
            if !shown.is_visible(row.txid) && self.shows().contains(&row.channel) {
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
            .any(|row| self.shows().contains(&row.channel) && !after.covers(row.txid, row.id))
    }

    /// The channels whose rows it shows.
    fn shows(&self) -> &[String] {
        &self.channels[..self.showing]
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
    pub(super) hub: Hub,
    pub(super) user_id: String,
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
                .entry_ref(channel.as_str())
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
    pub(super) fn gauge_of(&self, kind: Kind) -> &Gauge {
        match kind {
            Kind::Stream => &self.streams_open,
            Kind::LongPoll => &self.long_polls_parked,
        }
    }
}
