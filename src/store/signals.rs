//! Signals' SQL (SPEC sections 8 and 12): relaying them to every instance by NOTIFY, and the
//! kept values in `herald_kept_signals` (the `kept_signals` migration has the table and the
//! replacing rule, `herald_keep_signal`).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz};

use crate::cursor::Snapshot;
use crate::models::Counts;
use crate::signals::{MAX_KEPT_PER_CHANNEL, SIGNALS_CHANNEL, kept};
use crate::store::reads::CountsRow;

/// Hands `payload` (a [`crate::signals::Wire`] as JSON) to every instance's listener, at
/// once: `pg_notify` outside an explicit transaction commits with the statement.
pub fn relay(conn: &mut PgConnection, payload: &str) -> QueryResult<()> {
    diesel::sql_query("select pg_notify($1, $2)")
        .bind::<Text, _>(SIGNALS_CHANNEL)
        .bind::<Text, _>(payload)
        .execute(conn)
        .map(drop)
}

/// A signal to keep as its channel's current value of its kind.
pub struct Keep<'a> {
    /// Its channel.
    pub channel: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// The event as streams got it.
    pub event: &'a str,
    /// The event's `at`: a value sent later is never replaced by this one.
    pub sent_at: DateTime<Utc>,
    /// How long to keep it.
    pub keep_secs: i32,
}

/// Keeps `signal` (unless a value sent later is kept already) and relays `payload` as
/// [`relay`] does, in one statement: both or neither, and one round trip.
pub fn keep_and_relay(conn: &mut PgConnection, signal: &Keep, payload: &str) -> QueryResult<()> {
    diesel::sql_query("select herald_keep_signal($1, $2, $3::json, $4, $5), pg_notify($6, $7)")
        .bind::<Text, _>(signal.channel)
        .bind::<Text, _>(signal.kind)
        .bind::<Text, _>(signal.event)
        .bind::<Timestamptz, _>(signal.sent_at)
        .bind::<Integer, _>(signal.keep_secs)
        .bind::<Text, _>(SIGNALS_CHANNEL)
        .bind::<Text, _>(payload)
        .execute(conn)
        .map(drop)
}

/// The kept values of the channels `$1` that have not expired: per channel the
/// [`MAX_KEPT_PER_CHANNEL`] (`$2`) sent last, all of them oldest first.
const KEPT: &str = "select k.event::text
     from unnest($1::text[]) as c(channel)
     cross join lateral (select k.event, k.sent_at from herald_kept_signals k
                         where k.channel = c.channel and k.expires_at > now()
                         order by k.sent_at desc
                         limit $2) k
     order by k.sent_at";

/// The kept values of `channels`, each marked `"kept": true` ([`kept`]), oldest first.
pub fn kept_values(conn: &mut PgConnection, channels: &[String]) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        event: String,
    }
    let rows: Vec<Row> = diesel::sql_query(KEPT)
        .bind::<Array<Text>, _>(channels)
        .bind::<BigInt, _>(MAX_KEPT_PER_CHANNEL)
        .load(conn)?;
    Ok(rows.iter().map(|row| kept(&row.event)).collect())
}

/// What a stream starts with: the snapshot and `user_id`'s counts in it (as
/// [`crate::store::reads::counts`]), and the kept values of `channels` (as [`kept_values`]).
/// One statement, so a stream's start costs one round trip, as it did before kept values.
pub struct Opening {
    /// The statement's snapshot: the counts are exact in it.
    pub snapshot: Snapshot,
    /// The counts.
    pub counts: Counts,
    /// The kept values, marked, oldest first.
    pub kept: Vec<String>,
}

/// See [`Opening`].
pub fn opening(
    conn: &mut PgConnection,
    user_id: &str,
    channels: &[String],
) -> QueryResult<Opening> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "select pg_current_snapshot()::text as snapshot,
                    herald_unread_count($3) as unread_count,
                    herald_unseen_count($3) as unseen_count,
                    array({KEPT}) as kept"
        )
    });
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        counts: CountsRow,
        #[diesel(sql_type = Array<Text>)]
        kept: Vec<String>,
    }
    let row: Row = diesel::sql_query(SQL.as_str())
        .bind::<Array<Text>, _>(channels)
        .bind::<BigInt, _>(MAX_KEPT_PER_CHANNEL)
        .bind::<Text, _>(user_id)
        .get_result(conn)?;
    let (counts, snapshot) = row.counts.parse()?;
    Ok(Opening {
        snapshot,
        counts,
        kept: row.kept.iter().map(|event| kept(event)).collect(),
    })
}

/// Deletes the kept values that have expired (reads skip them already); how many went.
pub fn prune_kept(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::sql_query("delete from herald_kept_signals where expires_at <= now()").execute(conn)
}
