//! What the hub carries: a batch of rows the listener read, and the events a subscriber
//! receives.

use std::sync::Arc;

use bytestring::ByteString;

use crate::cursor::{Cursor, Snapshot, Xid};
use crate::models::{PresenceChange, ReadChange};

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
