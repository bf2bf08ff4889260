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

/// A notification with the reader's read state.
#[derive(Debug, Clone, QueryableByName)]
pub struct ReadableNotification {
    /// The row.
    #[diesel(embed)]
    pub notification: Notification,
    /// Whether this reader has read it.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub read: bool,
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
}

impl Notification {
    /// This notification as JSON, as seen by a reader for whom it is `read` or not.
    pub fn to_json(&self, read: bool) -> NotificationJson<'_> {
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
            read,
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

/// A change to one user's read state, as the read-state triggers announce it on `herald_reads`
/// (the `change_log` migration), and the hub carries it to the user's streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadChange {
    /// Whose read state changed.
    pub user_id: String,
    /// These notifications were marked read...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<i64>,
    /// ...or everything was.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Read state went back (a single read or a mark was deleted): counts must be redone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
}

impl ReadChange {
    /// True if something was marked read (what a stream's `read` event tells other tabs).
    pub fn marked(&self) -> bool {
        self.all || !self.ids.is_empty()
    }
}
