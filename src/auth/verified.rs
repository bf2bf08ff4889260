//! Tokens verified lately. A legacy client polls with the same token many times a second,
//! and checking its signature and claims was a fifth of what a poll answered from memory
//! cost (`perf`, BENCHMARKS.md "Issue 14, step 3"). What a token says cannot change: its
//! signature, claims and herald's settings are fixed, and only time moves, which can only
//! expire it. So a token verified once is taken at its word again until it expires, checked
//! on every use.
//!
//! Only a token seen twice is kept: a stream's token is verified once per connection, and
//! ten thousand open streams should not hold ten thousand tokens they never show again.
//! Memory is bounded by two generations of [`GENERATION`] tokens: when the newer fills, the
//! older is dropped, and a token used from the older moves to the newer.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use super::Caller;

/// Tokens in one generation.
const GENERATION: usize = 8192;

/// The cache: keyed by the whole token, so only the very same token is ever taken as verified.
#[derive(Default)]
pub(super) struct Verified {
    generations: Mutex<Generations>,
    /// Keyed at random per process: which tokens were seen cannot be steered by their makers.
    hasher: RandomState,
}

#[derive(Default)]
struct Generations {
    /// Hashes of tokens verified once: a second verification keeps the token.
    seen: HashSet<u64>,
    fresh: HashMap<Box<str>, Caller>,
    old: HashMap<Box<str>, Caller>,
}

impl Verified {
    /// What `token` was verified to say, if it was lately (it may have expired since).
    pub(super) fn get(&self, token: &str) -> Option<Caller> {
        let mut generations = self.lock();
        if let Some(caller) = generations.fresh.get(token) {
            return Some(caller.clone());
        }
        let (token, caller) = generations.old.remove_entry(token)?;
        generations.keep(token, caller.clone());
        Some(caller)
    }

    /// `token` was just verified to say `caller`: kept if it was seen before.
    pub(super) fn verified(&self, token: &str, caller: &Caller) {
        let hash = self.hasher.hash_one(token);
        let mut generations = self.lock();
        if generations.seen.insert(hash) {
            if generations.seen.len() > 2 * GENERATION {
                generations.seen.clear();
            }
            return;
        }
        generations.keep(token.into(), caller.clone());
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        // Nothing here can be left half-done by a panic that matters more than a miss.
        self.generations.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        let generations = self.lock();
        generations.fresh.len() + generations.old.len()
    }
}

impl Generations {
    fn keep(&mut self, token: Box<str>, caller: Caller) {
        if self.fresh.len() >= GENERATION {
            self.old = std::mem::take(&mut self.fresh);
        }
        self.fresh.insert(token, caller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;

    fn caller(user_id: &str) -> Caller {
        Caller::from(Identity {
            user_id: user_id.into(),
            grants: Vec::new(),
            can_publish: false,
            expires_at: i64::MAX,
            stream_token: false,
            name: None,
        })
    }

    #[test]
    fn a_token_is_kept_once_seen_twice_and_only_that_token_matches() {
        let verified = Verified::default();
        verified.verified("token-a", &caller("a"));
        assert!(verified.get("token-a").is_none(), "seen once: not kept");
        verified.verified("token-a", &caller("a"));
        assert_eq!(verified.get("token-a").unwrap().user_id, "a");
        assert!(verified.get("token-a.").is_none());
        assert!(verified.get("token-").is_none());
        assert!(verified.get("token-b").is_none());
    }

    #[test]
    fn memory_stays_within_two_generations_and_recent_tokens_survive() {
        let verified = Verified::default();
        let token = |i: usize| format!("token-{i}");
        verified.verified("busy", &caller("busy"));
        for i in 0..3 * GENERATION {
            verified.verified(&token(i), &caller(&i.to_string()));
            verified.verified(&token(i), &caller(&i.to_string()));
            // One token in constant use is never dropped.
            verified.verified("busy", &caller("busy"));
            assert_eq!(verified.get("busy").unwrap().user_id, "busy");
        }
        assert!(verified.kept() <= 2 * GENERATION);
        let last = 3 * GENERATION - 1;
        assert_eq!(
            verified.get(&token(last)).unwrap().user_id,
            last.to_string()
        );
        assert!(verified.get(&token(0)).is_none(), "the oldest were dropped");
        assert!(verified.lock().seen.len() <= 2 * GENERATION + 1);
    }
}
