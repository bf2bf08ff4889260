//! Test harness: a fresh database per test, herald on port 0, an HTTP client and an SSE reader.
//!
//! `TEST_DATABASE_URL` names a server to create test databases on (`scripts/test` sets it when a
//! local PostgreSQL answers). Without it, a private cluster is started under
//! `target/herald-test-pg` with the machine's PostgreSQL binaries and reused by later runs.
//! Each test creates `herald_test_<pid>_<n>` and drops it when done: tests never touch a
//! database they did not create.
//!
//! - `db`: test databases, and SQL helpers on them;
//! - `app`: herald in the test's process, and requests to it;
//! - `sse`: `/events` read event by event, as a browser's EventSource reads it;
//! - `rng`: a seedable random source for the stress tests.

mod app;
mod db;
mod process;
mod rng;
mod sse;

use std::time::Duration;

pub use app::{TestApp, spawn_app, spawn_app_on, spawn_app_with, spawn_configured, test_config};
pub use db::{TestDb, before_connecting, migrated_db, roll_up_counts};
pub use process::Process;
pub use rng::Rng;
pub use sse::{EventStream, Received, SseEvent};

/// The secret test tokens are signed with.
pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";
/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// `s` percent-encoded for a URL's query or path (unreserved characters and `:` kept).
pub fn encode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEPT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b':');
    utf8_percent_encode(s, KEPT).to_string()
}
