//! Reading what committed after the listener's position, on the listener's own connection
//! (no pool, no blocking thread: this runs up to a thousand times a second while disarmed),
//! and turning each row into the [`LiveRow`] every stream shares: routed, positioned, and
//! serialized to JSON once.

use tokio_postgres::{Client, Row, Statement};

use crate::cursor::{Cursor, CursorWriter, Snapshot};
use crate::hub::{Batch, LiveRow};
use crate::models::Notification;
use crate::store;
use crate::store::listen::column;

use super::SessionError;

/// Most rows read per query; a busier wake-up reads several batches.
pub(super) const BATCH: i64 = 500;

/// The listener's reading position and its prepared query.
pub(super) struct Reader {
    /// What has been published: everything up to here.
    position: Cursor,
    since: Option<Statement>,
}

/// One read: its rows (oldest first), the channels changed otherwise and the users whose read
/// state changed, the snapshot it saw, the position after it, and whether there may be more.
pub(super) struct Read {
    pub rows: Vec<LiveRow>,
    pub changed: Vec<String>,
    pub readers: Vec<String>,
    pub snapshot: Snapshot,
    pub position: Cursor,
    pub full: bool,
}

impl Reader {
    /// A reader whose next read returns what committed after `start`.
    pub fn new(start: Cursor) -> Reader {
        Reader {
            position: start,
            since: None,
        }
    }

    /// Prepares the query on a new session's client (statements live in their session).
    pub async fn prepare(&mut self, client: &Client) -> Result<(), SessionError> {
        let since = store::listen::prepare_since(client).await?;
        if !store::listen::columns_in_place(&since) {
            return Err(SessionError::Protocol("the read's columns moved".into()));
        }
        self.since = Some(since);
        Ok(())
    }

    /// Reads the next batch after the position, and moves the position past it.
    pub async fn read(&mut self, client: &Client) -> Result<Read, SessionError> {
        let since = self
            .since
            .as_ref()
            .expect("prepared when the session began");
        let position = &self.position;
        let rows = store::listen::since(
            client,
            since,
            &position.base.to_string(),
            &position.upto().to_string(),
            position.last_id(),
            BATCH,
        )
        .await?;
        let head = rows
            .first()
            .ok_or(SessionError::Protocol("no snapshot".into()))?;
        let snapshot = head
            .get::<_, Option<&str>>(column::SNAPSHOT)
            .and_then(|text| Snapshot::parse(text).ok())
            .ok_or(SessionError::Protocol("pg_current_snapshot".into()))?;
        let mut live = Vec::with_capacity(rows.len());
        let (mut changed, mut readers) = (Vec::new(), Vec::new());
        let mut texts = CursorWriter::default();
        for row in &rows {
            if let Some(channel) = row.get::<_, Option<String>>(column::CHANGED) {
                changed.push(channel);
            } else if let Some(user_id) = row.get::<_, Option<String>>(column::READER) {
                readers.push(user_id);
            } else if let Some(n) = notification(row)? {
                let cursor = position.after_row(&snapshot, n.txid, n.id);
                live.push(LiveRow {
                    id: n.id,
                    txid: n.txid,
                    event_id: texts.text(&cursor),
                    cursor,
                    json: serde_json::to_string(&n.to_json(crate::models::ReaderState::NEW))
                        .expect("notification serializes")
                        .into(),
                    created_at: n.created_at,
                    channel: n.channel,
                });
            }
        }
        let full = live.len() as i64 == BATCH;
        self.position = match live.last() {
            Some(last) if full => last.cursor.clone(),
            _ => Cursor::at(snapshot.clone()),
        };
        Ok(Read {
            rows: live,
            changed,
            readers,
            snapshot,
            position: self.position.clone(),
            full,
        })
    }
}

impl Read {
    /// The rows and changes as the hub's batch.
    pub fn into_batch(self) -> Batch {
        Batch {
            rows: self.rows,
            changed: self.changed,
            readers: self.readers,
            after: self.position,
        }
    }
}

/// The row's notification, unless it is an empty read's lone snapshot row.
fn notification(row: &Row) -> Result<Option<Notification>, SessionError> {
    let Some(id) = row.get::<_, Option<i64>>(column::ID) else {
        return Ok(None);
    };
    let txid = row
        .get::<_, &str>(column::TXID)
        .parse()
        .map_err(|_| SessionError::Protocol("txid".into()))?;
    Ok(Some(Notification {
        id,
        channel: row.get(column::CHANNEL),
        title: row.get(column::TITLE),
        body: row.get(column::BODY),
        kind: row.get(column::KIND),
        level: row.get(column::LEVEL),
        data: row.get(column::DATA),
        created_at: row.get(column::CREATED_AT),
        txid,
    }))
}
