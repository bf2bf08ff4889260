//! The LISTEN connection's statements (tokio-postgres, async: the listener's own session,
//! never a pooled one). What they mean is [`crate::listener`]'s; the SQL is here, with the
//! rest of herald's.

use tokio_postgres::{Client, Error, Row, Statement};

/// Every channel's rows after the cursor, at most `$4`, in cursor order (`herald_since`), then
/// the channels deleted from, updated or truncated and the users whose read state changed
/// since the cursor's base (`herald_changes`, one row each, `changed` or `reader` set), and the
/// statement's snapshot on the first row only (alone on it when there is no row to read):
/// rows, changes and snapshot describe one instant, without a transaction around them. (A
/// change read again after a full batch is harmless.) Only once, because it lists every
/// transaction in progress: with 32 writers it was more than half of each row's bytes.
const SINCE: &str = "
    with s as (select pg_current_snapshot()::text as snapshot)
    select * from (
        select case when coalesce(n.ordinality, 1) = 1 then s.snapshot end as snapshot,
               n.id, n.channel, n.title, n.body, n.kind, n.level, n.data,
               n.created_at, n.txid::text as txid, null::text as changed,
               null::text as reader, n.ordinality
        from s left join lateral herald_since($1::text::pg_snapshot, $2::text::pg_snapshot,
                                              $3, $4) with ordinality n on true
        union all
        select null::text, null::bigint, null::text, null::text, null::text, null::text,
               null::text, null::jsonb, null::timestamptz, null::text, c.channel, c.reader,
               null::bigint
        from (select distinct channel, reader
              from herald_changes_after($1::text::pg_snapshot)) c
    ) r
    order by r.changed nulls first, r.reader nulls first, r.ordinality";

/// Where each of `SINCE`'s columns is in its rows: a read takes up to eleven from each row
/// (the first also gives the snapshot), and looking each up by name compares it with the
/// names before it.
pub mod column {
    pub const SNAPSHOT: usize = 0;
    pub const ID: usize = 1;
    pub const CHANNEL: usize = 2;
    pub const TITLE: usize = 3;
    pub const BODY: usize = 4;
    pub const KIND: usize = 5;
    pub const LEVEL: usize = 6;
    pub const DATA: usize = 7;
    pub const CREATED_AT: usize = 8;
    pub const TXID: usize = 9;
    pub const CHANGED: usize = 10;
    pub const READER: usize = 11;

    /// The name at each place, as `SINCE` writes it.
    pub(super) const NAMES: [(usize, &str); 12] = [
        (SNAPSHOT, "snapshot"),
        (ID, "id"),
        (CHANNEL, "channel"),
        (TITLE, "title"),
        (BODY, "body"),
        (KIND, "kind"),
        (LEVEL, "level"),
        (DATA, "data"),
        (CREATED_AT, "created_at"),
        (TXID, "txid"),
        (CHANGED, "changed"),
        (READER, "reader"),
    ];
}

/// Whether a prepared `SINCE` has its columns where [`column`] says: checked once a session,
/// so that an edit of one without the other ends every session before it goes live (logged
/// at each reconnect, and `/readyz` says not ready) instead of misreading rows.
pub fn columns_in_place(statement: &Statement) -> bool {
    column::NAMES.iter().all(|(at, name)| {
        statement
            .columns()
            .get(*at)
            .is_some_and(|column| column.name() == *name)
    })
}

/// Prepares `SINCE` on a new session (statements live in their session).
pub async fn prepare_since(client: &Client) -> Result<Statement, Error> {
    client.prepare(SINCE).await
}

/// Runs `SINCE`: rows after (`base`, `upto`, `last_id`), at most `limit`, then the changes.
pub async fn since(
    client: &Client,
    statement: &Statement,
    base: &str,
    upto: &str,
    last_id: i64,
    limit: i64,
) -> Result<Vec<Row>, Error> {
    client
        .query(statement, &[&base, &upto, &last_id, &limit])
        .await
}

/// LISTENs on `channels` (herald's own names: plain identifiers).
pub async fn listen(client: &Client, channels: &[&str]) -> Result<(), Error> {
    let statements: String = channels.iter().map(|c| format!("listen {c};")).collect();
    client.batch_execute(&statements).await
}

/// Arms (`Some(true)`), disarms (`Some(false)`) or forgets (`None`) this listener
/// (`herald_arm`, which the insert trigger reads at once).
pub async fn arm(client: &Client, armed: Option<bool>) -> Result<(), Error> {
    client
        .execute("select herald_arm($1)", &[&armed])
        .await
        .map(drop)
}

/// A fresh snapshot and a fresh transaction id, as text.
pub async fn snapshot_and_xact(client: &Client) -> Result<(String, String), Error> {
    let row = client
        .query_one(
            "select pg_current_snapshot()::text, pg_current_xact_id()::text",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Whether the session answers at all.
pub async fn ping(client: &Client) -> Result<(), Error> {
    client.simple_query("select 1").await.map(drop)
}
