//! Live signals (SPEC section 8): typing indicators, a courier's position. Ephemeral: never
//! stored, never replayed, no cursor.
//!
//! A signal reaches this instance's streams straight from the request (the hub), and every
//! other instance's through `NOTIFY herald_signals` on the same database: its payload carries
//! the whole event, which a signal's 4 KB limit keeps under NOTIFY's 8,000 bytes. Each
//! instance's listener skips the signals it sent itself (`origin`), which it delivered already.
//! The SQL function `herald_signal` (the `kept_signals` migration) sends the same payload with
//! origin [`SQL_ORIGIN`], which no instance has, so every instance delivers it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The NOTIFY channel signals travel on between instances.
pub const SIGNALS_CHANNEL: &str = "herald_signals";
/// The largest signal request body, in bytes (`413` past it).
pub const MAX_BODY_BYTES: usize = 4096;
/// The longest `kind`, in characters.
pub const MAX_KIND_CHARS: usize = 64;
/// The `origin` of signals sent with SQL (`herald_signal`): no instance's
/// ([`crate::hub::Hub::origin`] is never this), so no instance skips them.
pub const SQL_ORIGIN: u64 = 0;
/// Signals per second each user may send to one instance, on average.
pub const RATE_PER_SEC: f64 = 20.0;
/// Signals each user may send at once.
pub const BURST: f64 = 40.0;

/// What travels on [`SIGNALS_CHANNEL`].
#[derive(Serialize, Deserialize)]
pub struct Wire<'a> {
    /// The instance that sent it (and delivered it to its own streams already), or
    /// [`SQL_ORIGIN`].
    pub origin: u64,
    /// The channel it is on.
    pub channel: String,
    /// The `event: signal` data, as streams send it.
    #[serde(borrow)]
    pub event: &'a RawValue,
}

/// Per-user token buckets: [`RATE_PER_SEC`] signals per second, [`BURST`] at once.
pub struct RateLimiter {
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_user: HashMap<String, Bucket>,
    /// When the buckets were last swept of users who have a full bucket again.
    swept: Instant,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for RateLimiter {
    fn default() -> RateLimiter {
        RateLimiter {
            buckets: Mutex::new(Buckets {
                by_user: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }
}

impl RateLimiter {
    /// Takes one signal from `user_id`'s bucket at `now`, or says how long until one is
    /// there.
    pub fn take(&self, user_id: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // A user whose bucket has refilled is no different from one never seen: forget them,
        // so the map holds only recent senders.
        if now.duration_since(buckets.swept) > Duration::from_secs(10) {
            buckets.swept = now;
            buckets
                .by_user
                .retain(|_, bucket| bucket.refilled(now).tokens < BURST);
        }
        let bucket = buckets.by_user.entry(user_id.to_owned()).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        *bucket = bucket.refilled(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / RATE_PER_SEC,
            ))
        }
    }
}

impl Bucket {
    fn refilled(self, now: Instant) -> Bucket {
        let earned = now.duration_since(self.at).as_secs_f64() * RATE_PER_SEC;
        Bucket {
            tokens: (self.tokens + earned).min(BURST),
            at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..40 {
            assert!(limiter.take("1", start).is_ok());
        }
        let wait = limiter.take("1", start).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(50),
            "{wait:?}"
        );
        // Another user has a bucket of their own.
        assert!(limiter.take("2", start).is_ok());
        // One second later, 20 more and no more.
        let later = start + Duration::from_secs(1);
        for _ in 0..20 {
            assert!(limiter.take("1", later).is_ok());
        }
        assert!(limiter.take("1", later).is_err());
    }

    #[test]
    fn idle_users_are_forgotten() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        limiter.take("1", start).unwrap();
        limiter.take("2", start + Duration::from_secs(11)).unwrap();
        let buckets = limiter.buckets.lock().unwrap();
        assert_eq!(buckets.by_user.len(), 1);
        assert!(buckets.by_user.contains_key("2"));
    }
}
