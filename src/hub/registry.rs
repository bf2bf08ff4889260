//! Who is subscribed to what, and the limits on how many may be: the state behind the hub's
//! mutex. Plain, non-blocking code only: the mutex is never held across an `.await`.
//!
//! The maps are hashbrown's, not std's. A long-poll registers and leaves again for every
//! answer, so with thousands parked the registry is on each request's path: `entry_ref`
//! copies a channel's or user's name only when it is new, and subscriber ids, herald's own
//! counter, are hashed with foldhash. Names, which requests choose, keep std's SipHash:
//! foldhash does not claim to resist an attacker who times the hub to find colliding names.

use std::hash::RandomState;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::{HashMap, HashSet};
use tokio::sync::mpsc;

use super::HubEvent;
use crate::channels;
use crate::metrics::Metrics;

/// Subscriber ids.
pub(super) type Ids = HashSet<u64>;

/// Keyed by a name a request chose: a channel's or a user's.
type ByName<V> = HashMap<String, V, RandomState>;

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

/// Why [`super::Hub::subscribe`] said no.
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
pub(super) struct Registry {
    pub(super) next_id: u64,
    pub(super) subscribers: HashMap<u64, Subscriber>,
    pub(super) by_channel: ByName<Ids>,
    pub(super) by_user: ByName<Ids>,
    /// Streams watching each channel's presence.
    pub(super) by_presence: ByName<Ids>,
    /// Live [`Subscription`]s per user, registered or not: what the limits count. A
    /// subscriber dropped for being slow leaves the registry at once, but it holds its
    /// connection until its stream ends, so it counts until then.
    pub(super) held: ByName<usize>,
    pub(super) held_total: usize,
    pub(super) closed: bool,
}

pub(super) struct Subscriber {
    pub(super) tx: mpsc::Sender<HubEvent>,
    /// Shared with its [`super::Subscription`].
    pub(super) user_id: Arc<str>,
    /// The channels it shows, then the rest of its inbox ([`channels::with_inbox`]); shared
    /// with its [`super::Subscription`].
    pub(super) channels: Arc<[String]>,
    /// How many of `channels` it shows; 0 for a long-poll, which never gets signals.
    pub(super) signalled: usize,
    /// The channels whose presence it watches.
    pub(super) watching: Vec<String>,
    /// Set when the hub lets go of this subscriber: it must stop at once, not drain.
    pub(super) dropped: Arc<AtomicBool>,
}

impl Registry {
    pub(super) fn send(&mut self, targets: Ids, event: &HubEvent, metrics: &Metrics) {
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
    pub(super) fn inbox_subscribers(&self, channels: &[String]) -> Ids {
        let mut found = Ids::new();
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

    pub(super) fn reserve(&mut self, user_id: &str, limits: &Limits) -> Result<(), Refused> {
        if self.closed {
            return Err(Refused::Closed);
        }
        if self.held_total >= limits.total {
            return Err(Refused::TotalLimit);
        }
        if self.held.get(user_id).copied().unwrap_or(0) >= limits.per_user {
            return Err(Refused::UserLimit);
        }
        *self.held.entry_ref(user_id).or_default() += 1;
        self.held_total += 1;
        Ok(())
    }

    pub(super) fn release(&mut self, user_id: &str) {
        self.held_total -= 1;
        if let Some(held) = self.held.get_mut(user_id) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(user_id);
            }
        }
    }

    /// Registers `subscriber` under each channel it hears from and under its user; returns
    /// its id.
    pub(super) fn add(&mut self, subscriber: Subscriber) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        for channel in subscriber.channels.iter() {
            self.by_channel
                .entry_ref(channel.as_str())
                .or_default()
                .insert(id);
        }
        self.by_user
            .entry_ref(&*subscriber.user_id)
            .or_default()
            .insert(id);
        self.subscribers.insert(id, subscriber);
        id
    }

    pub(super) fn remove(&mut self, id: u64) {
        let Some(subscriber) = self.subscribers.remove(&id) else {
            return;
        };
        for channel in subscriber.channels.iter() {
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
        if let Some(ids) = self.by_user.get_mut(&*subscriber.user_id) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_user.remove(&*subscriber.user_id);
            }
        }
    }
}
