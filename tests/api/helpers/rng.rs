//! A small, seedable random source for the stress tests.

use std::time::Duration;

/// A small, seedable random source for stress tests (SplitMix64). The seed is printed, and
/// `HERALD_TEST_SEED` replays a failing run.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `HERALD_TEST_SEED`, else the clock; prints the seed.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("HERALD_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{what}: HERALD_TEST_SEED={seed}");
        Rng(seed)
    }

    /// An independent stream for one task.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A duration in `0..max_ms` milliseconds.
    pub fn millis(&mut self, max_ms: u64) -> Duration {
        Duration::from_millis(self.below(max_ms))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
