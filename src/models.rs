//! Row structs for the tables in `schema.rs`, and the notification's JSON shape (SPEC 4).

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cursor::Xid;
use crate::schema::{notifications, sql_types::Xid8};

/// A stored notification.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = notifications, check_for_backend(Pg))]
pub struct Notification {
    /// Assigned by the database.
    pub id: i64,
    /// Who reads it: `user:<id>`, `broadcast`, or a granted channel.
    pub channel: String,
    /// Headline.
    pub title: String,
    /// Text under the headline.
    pub body: String,
    /// What it is about, for the client to route on (`order_update`).
    pub kind: String,
    /// `info`, `success`, `warning` or `error`.
    pub level: String,
    /// Free-form JSON object for the client.
    pub data: serde_json::Value,
    /// When it was inserted.
    pub created_at: DateTime<Utc>,
    /// The transaction that wrote it; cursors compare it with snapshots. Never sent.
    pub txid: Xid,
}

/// A notification with the reader's state of it.
#[derive(Debug, Clone)]
pub struct ReadableNotification {
    /// The row.
    pub notification: Notification,
    /// Read, seen, archived.
    pub state: ReaderState,
}

/// One reader's state of one notification (SPEC section 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReaderState {
    /// Read (which implies seen).
    pub read: bool,
    /// Seen: read, or shown when the bell was opened.
    pub seen: bool,
    /// Cleared from the inbox (and read).
    pub archived: bool,
}

impl ReaderState {
    /// A notification nobody has done anything with yet, as the live ones are.
    pub const NEW: ReaderState = ReaderState {
        read: false,
        seen: false,
        archived: false,
    };
}

/// A user's inbox counts (SPEC sections 4 and 12), named as every answer names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Inbox notifications not read.
    pub unread_count: i64,
    /// Inbox notifications neither read nor seen.
    pub unseen_count: i64,
}

impl Counts {
    /// After `added` new inbox notifications (new ones are unread and unseen).
    pub fn add(&mut self, added: i64) {
        self.unread_count += added;
        self.unseen_count += added;
    }
}

/// The JSON every endpoint shows a notification as.
#[derive(Serialize)]
pub struct NotificationJson<'a> {
    id: i64,
    channel: &'a str,
    kind: &'a str,
    title: &'a str,
    body: &'a str,
    level: &'a str,
    data: &'a serde_json::Value,
    created_at: String,
    read: bool,
    seen: bool,
    archived: bool,
}

impl Notification {
    /// This notification as JSON, as a reader whose `state` of it that is sees it.
    pub fn to_json(&self, state: ReaderState) -> NotificationJson<'_> {
        NotificationJson {
            id: self.id,
            channel: &self.channel,
            kind: &self.kind,
            title: &self.title,
            body: &self.body,
            level: &self.level,
            data: &self.data,
            created_at: self
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            read: state.read,
            seen: state.seen,
            archived: state.archived,
        }
    }
}

/// A notification to insert (SQL interface, `POST /api/notifications`, `herald send`). Unset
/// fields take the table's defaults; the table's constraints are the validation.
#[derive(Debug, Clone, Default, Deserialize, Insertable)]
#[diesel(table_name = notifications)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    /// Required.
    pub channel: String,
    /// Required.
    pub title: String,
    /// Default `''`.
    pub body: Option<String>,
    /// Default `notification`.
    pub kind: Option<String>,
    /// Default `info`.
    pub level: Option<String>,
    /// Default `{}`.
    pub data: Option<serde_json::Value>,
}

impl NewNotification {
    /// Checks what the table's constraints cannot express: PostgreSQL refuses the NUL
    /// character in text and jsonb with an encoding error, not a constraint violation.
    pub fn validate(&self) -> Result<(), String> {
        let texts = [
            Some(&self.channel),
            Some(&self.title),
            self.body.as_ref(),
            self.kind.as_ref(),
            self.level.as_ref(),
        ];
        if texts.into_iter().flatten().any(|t| t.contains('\0'))
            || self.data.as_ref().is_some_and(json_has_nul)
        {
            return Err("text may not contain the NUL character (\\u0000)".into());
        }
        Ok(())
    }
}

fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v))
        }
        _ => false,
    }
}

impl FromSql<Xid8, Pg> for Xid {
    /// `xid8`'s binary form is a big-endian u64.
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let bytes: [u8; 8] = value
            .as_bytes()
            .try_into()
            .map_err(|_| "xid8 is not 8 bytes")?;
        Ok(u64::from_be_bytes(bytes))
    }
}

/// A change of a channel's presence list, as presence makes it and the hub hands it to the
/// streams watching that channel.
#[derive(Debug)]
pub struct PresenceChange {
    /// The channel.
    pub channel: String,
    /// Streams whose snapshot has this version or a later one have it already.
    pub version: u64,
    /// The `event: presence` data: `{"channel", "joined": [...], "left": [...]}`.
    pub json: bytestring::ByteString,
}

/// A change to one user's state of their notifications (read, seen, archived), as the
/// triggers announce it on `herald_reads` (the `change_log` and `inbox_states` migrations),
/// and the hub carries it to the user's streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadChange {
    /// Whose state changed.
    pub user_id: String,
    /// What happened. Absent in the payloads of herald before the `inbox_states` migration:
    /// `read` if `ids` or `all` say what, else `changed`.
    #[serde(default)]
    pub event: Option<ChangeEvent>,
    /// These notifications...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<i64>,
    /// ...or every one up to `through` (or now, for a `read`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// The mark's snapshot (`seen`, `archived` with `all`), in PostgreSQL's text form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<String>,
}

/// What a [`ReadChange`] did; each but `Changed` is the name of the stream event that tells
/// the user's other tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeEvent {
    /// Marked read.
    Read,
    /// Seen up to `through`.
    Seen,
    /// Archived.
    Archived,
    /// Back in the inbox.
    Unarchived,
    /// Unread again.
    Unread,
    /// Something went back that has no event (a mark deleted, too many ids): counts are
    /// redone, nothing else.
    Changed,
}

impl ChangeEvent {
    /// The stream event's name.
    pub fn name(self) -> &'static str {
        match self {
            ChangeEvent::Read => "read",
            ChangeEvent::Seen => "seen",
            ChangeEvent::Archived => "archived",
            ChangeEvent::Unarchived => "unarchived",
            ChangeEvent::Unread => "unread",
            ChangeEvent::Changed => "changed",
        }
    }
}

impl ReadChange {
    /// What happened, also for the payloads that do not say.
    pub fn event(&self) -> ChangeEvent {
        match self.event {
            Some(event) => event,
            None if self.all || !self.ids.is_empty() => ChangeEvent::Read,
            None => ChangeEvent::Changed,
        }
    }
}
