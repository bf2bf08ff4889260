//! Live signals (SPEC section 8): typing indicators, a courier's position. Ephemeral: never
//! replayed, no cursor.
//!
//! A signal reaches this instance's streams straight from the request (the hub), and every
//! other instance's through `NOTIFY herald_signals` on the same database: its payload carries
//! the whole event, which a signal's 4 KB limit keeps under NOTIFY's 8,000 bytes. Each
//! instance's listener skips the signals it sent itself (`origin`), which it delivered already.
//! The SQL function `herald_signal` (the `kept_signals` migration) sends the same payload with
//! origin [`SQL_ORIGIN`], which no instance has, so every instance delivers it.
//!
//! # Kept values (SPEC section 12)
//! A signal sent with `keep` is also stored as the current value of its (channel, kind) in
//! `herald_kept_signals`, until it expires or a later one replaces it. A stream starts with
//! its channels' kept values, and `GET /api/signals` answers them: each is the event as it
//! went live, marked `"kept": true` ([`kept`]).

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
/// The longest a signal may be kept, in seconds (a day).
pub const MAX_KEEP_SECS: u64 = 86_400;
/// The most kept values a stream or a poll gets of one channel: the most recently sent. Kinds
/// are the sender's to choose, and nothing else bounds how many a channel keeps.
pub const MAX_KEPT_PER_CHANNEL: i64 = 100;
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

/// `event` (a signal event: a JSON object, as stored) marked `"kept": true`, as streams and
/// polls get a kept value. Written into the text, so the event goes out as it was sent, key
/// order and number formatting included.
pub fn kept(event: &str) -> String {
    let body = event.trim_end();
    let Some(body) = body.strip_suffix('}') else {
        // Not an object: herald never stores one, and it is sent as it is.
        return event.to_owned();
    };
    let body = body.trim_end();
    let comma = if body.ends_with('{') { "" } else { "," };
    format!("{body}{comma}\"kept\":true}}")
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
    fn a_kept_value_is_its_event_with_kept_true() {
        let event =
            r#"{"channel":"order:17","kind":"location","from":"1","data":{"lat":52.50},"at":"x"}"#;
        let marked: serde_json::Value = serde_json::from_str(&kept(event)).unwrap();
        assert_eq!(marked["kept"], true);
        assert_eq!(marked["data"]["lat"], 52.5);
        assert!(kept(event).contains(r#"{"lat":52.50}"#), "sent as it was");
        assert_eq!(kept("{ }\n"), r#"{"kept":true}"#);
        assert_eq!(kept(r#"{"a": 1} "#), r#"{"a": 1,"kept":true}"#);
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
