//! The push queue in PostgreSQL (see the push migration): filled from the committed
//! notifications, claimed by whichever instance gets there first, emptied as pushes go out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Int4, Jsonb, Nullable, Text, Timestamptz};

use crate::cursor::{Cursor, Snapshot};

/// Most notifications considered per query; a busier second reads several batches.
const SCAN_BATCH: i64 = 1000;
/// At most this many batches per scan: the rest waits for the next one.
const SCAN_BATCHES: usize = 20;

/// Whether a user has an SSE stream open on some live instance: a row in herald_presence on
/// the channel [`super::presence::STREAMS`], which no client can name. The one SQL spelling of it; a test
/// below holds it to the constant.
const STREAMING: &str = "exists (select 1 from herald_presence p
                                 join herald_presence_holders h using (holder)
                                 where p.channel = '' and p.user_id = s.user_id
                                   and h.expires > now()
                                   and (p.until is null or p.until > now()))";

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = Text)]
    position: String,
}

#[derive(QueryableByName)]
struct Committed {
    #[diesel(sql_type = Text)]
    snapshot: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    channel: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    txid: Option<String>,
}

/// Queues a push for every notification committed since the last scan, to each subscription
/// of each user whose inbox it is in and who has no stream open, due `hold` from now. Returns
/// how many pushes were queued, or `None` if another instance is scanning.
pub fn scan(conn: &mut PgConnection, hold: Duration, ttl: Duration) -> QueryResult<Option<usize>> {
    conn.transaction(|conn| {
        no_jit(conn)?;
        let Some(Position { position }) =
            diesel::sql_query("select position from herald_push_scan for update skip locked")
                .get_result::<Position>(conn)
                .optional()?
        else {
            return Ok(None);
        };
        // Not a cursor (edited by hand): start from now rather than push history.
        let mut cursor = match Cursor::parse(&position) {
            Ok(cursor) => cursor,
            Err(_) => Cursor::at(crate::store::current_snapshot(conn)?),
        };
        let mut queued = 0;
        for _ in 0..SCAN_BATCHES {
            let rows: Vec<Committed> = diesel::sql_query(
                "select s.snapshot, n.id, n.channel, n.txid::text as txid
                 from (select pg_current_snapshot()::text as snapshot) s
                 left join lateral herald_since($1::text::pg_snapshot, $2::text::pg_snapshot,
                                                $3, $4) with ordinality n on true
                 order by n.ordinality",
            )
            .bind::<Text, _>(cursor.base.to_string())
            .bind::<Text, _>(cursor.upto().to_string())
            .bind::<BigInt, _>(cursor.last_id())
            .bind::<BigInt, _>(SCAN_BATCH)
            .load(conn)?;
            let Some(first) = rows.first() else {
                break;
            };
            let now = Snapshot::parse(&first.snapshot)
                .map_err(|_| diesel::result::Error::DeserializationError("snapshot".into()))?;
            let (mut ids, mut channels) = (Vec::new(), Vec::new());
            for row in &rows {
                let (Some(id), Some(channel), Some(txid)) = (row.id, &row.channel, &row.txid)
                else {
                    continue;
                };
                let txid = txid
                    .parse()
                    .map_err(|_| diesel::result::Error::DeserializationError("txid".into()))?;
                cursor = cursor.after_row(&now, txid, id);
                ids.push(id);
                channels.push(channel.as_str());
            }
            let full = ids.len() as i64 == SCAN_BATCH;
            queued += enqueue(conn, &ids, &channels, hold, ttl)?;
            if !full {
                cursor = Cursor::at(now);
                break;
            }
        }
        diesel::sql_query("update herald_push_scan set position = $1")
            .bind::<Text, _>(cursor.to_string())
            .execute(conn)?;
        Ok(Some(queued))
    })
}

/// Queues notifications `ids` (on `channels`) for the subscriptions of their readers.
fn enqueue(
    conn: &mut PgConnection,
    ids: &[i64],
    channels: &[&str],
    hold: Duration,
    ttl: Duration,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    // Two joins rather than one with `or`: a user's rows find their subscriptions by index,
    // and only a broadcast reads them all.
    diesel::sql_query(format!(
        "insert into herald_push_queue (notification_id, subscription_id, due, expires)
         select r.id, s.id, now() + make_interval(secs => $3), now() + make_interval(secs => $4)
         from (select r.id, s.id as sid
               from unnest($1::bigint[], $2::text[]) r(id, channel)
               join herald_push_subscriptions s
                 on left(r.channel, 5) = 'user:' and s.user_id = substr(r.channel, 6)
               union all
               select r.id, s.id
               from unnest($1::bigint[], $2::text[]) r(id, channel)
               cross join herald_push_subscriptions s
               where r.channel = 'broadcast') r
         join herald_push_subscriptions s on s.id = r.sid
         where not {STREAMING}
         on conflict do nothing"
    ))
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Text>, _>(channels)
    .bind::<Double, _>(hold.as_secs_f64())
    .bind::<Double, _>(ttl.as_secs_f64())
    .execute(conn)
}

/// A push this instance has claimed, with what sending it needs.
#[derive(QueryableByName, Debug)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub notification_id: i64,
    #[diesel(sql_type = BigInt)]
    pub subscription_id: i64,
    /// How many times it has been claimed, this time included.
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    pub expires: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub endpoint: String,
    #[diesel(sql_type = Text)]
    pub p256dh: String,
    #[diesel(sql_type = Text)]
    pub auth: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub title: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub body: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub level: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub data: Option<serde_json::Value>,
    /// Not to be sent: the notification is gone or read, its user has a stream open now, or
    /// the subscription has another owner than when it was queued.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub skip: bool,
}

/// Claims up to `limit` due pushes for `lease`: no other instance claims them before the
/// lease is up, and if this one dies they come due again then.
pub fn claim(conn: &mut PgConnection, limit: i64, lease: Duration) -> QueryResult<Vec<Claimed>> {
    conn.transaction(|conn| {
        no_jit(conn)?;
        claim_due(conn, limit, lease)
    })
}

/// Turns JIT off for the transaction. With a long queue the planner's estimates for these
/// statements cross JIT's threshold, and compiling them took 850 ms of a 900 ms claim (seen
/// with 100,000 pushes queued); they touch a few hundred rows each.
fn no_jit(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("set local jit = off")
        .execute(conn)
        .map(drop)
}

fn claim_due(conn: &mut PgConnection, limit: i64, lease: Duration) -> QueryResult<Vec<Claimed>> {
    diesel::sql_query(format!(
        "with claimed as (
             update herald_push_queue q
             set due = now() + make_interval(secs => $2), attempts = q.attempts + 1
             where (q.notification_id, q.subscription_id) in (
                 select notification_id, subscription_id from herald_push_queue
                 where due <= now()
                 order by due
                 limit $1
                 for update skip locked)
             returning q.notification_id, q.subscription_id, q.attempts, q.expires)
         select c.notification_id, c.subscription_id, c.attempts, c.expires,
                s.endpoint, s.p256dh, s.auth, n.title, n.body, n.level, n.data,
                (n.id is null
                 -- The browser changed hands since it was queued: not the new owner's to see.
                 or not (n.channel = 'broadcast' or n.channel = 'user:' || s.user_id)
                 or exists (select 1 from notification_reads r
                            where r.user_id = s.user_id and r.notification_id = n.id)
                 or exists (select 1 from notification_read_marks m
                            where m.user_id = s.user_id
                              and pg_visible_in_snapshot(n.txid, m.read_through))
                 or {STREAMING}) as skip
         from claimed c
         join herald_push_subscriptions s on s.id = c.subscription_id
         left join notifications n on n.id = c.notification_id"
    ))
    .bind::<BigInt, _>(limit)
    .bind::<Double, _>(lease.as_secs_f64())
    .load(conn)
}

/// What became of claimed pushes, each named by (notification, subscription, attempts): a row
/// another instance claimed since (its lease ran out, `attempts` moved on) is that instance's
/// to settle, not this one's.
#[derive(Default)]
pub struct Outcomes {
    /// Sent, skipped or given up: off the queue.
    pub done: Vec<(i64, i64, i32)>,
    /// To try again at the given time.
    pub retry: Vec<(i64, i64, i32, DateTime<Utc>)>,
    /// Subscriptions whose push service said they are gone (their queued pushes go too).
    pub gone: Vec<i64>,
}

/// Records `outcomes` in one transaction.
pub fn settle(conn: &mut PgConnection, outcomes: &Outcomes) -> QueryResult<()> {
    conn.transaction(|conn| {
        no_jit(conn)?;
        if !outcomes.done.is_empty() {
            let n: Vec<i64> = outcomes.done.iter().map(|r| r.0).collect();
            let s: Vec<i64> = outcomes.done.iter().map(|r| r.1).collect();
            let a: Vec<i32> = outcomes.done.iter().map(|r| r.2).collect();
            diesel::sql_query(
                "delete from herald_push_queue q
                 using unnest($1::bigint[], $2::bigint[], $3::int[]) k(n, s, a)
                 where q.notification_id = k.n and q.subscription_id = k.s
                   and q.attempts = k.a",
            )
            .bind::<Array<BigInt>, _>(n)
            .bind::<Array<BigInt>, _>(s)
            .bind::<Array<Int4>, _>(a)
            .execute(conn)?;
        }
        if !outcomes.retry.is_empty() {
            let n: Vec<i64> = outcomes.retry.iter().map(|r| r.0).collect();
            let s: Vec<i64> = outcomes.retry.iter().map(|r| r.1).collect();
            let a: Vec<i32> = outcomes.retry.iter().map(|r| r.2).collect();
            let due: Vec<DateTime<Utc>> = outcomes.retry.iter().map(|r| r.3).collect();
            diesel::sql_query(
                "update herald_push_queue q set due = k.due
                 from unnest($1::bigint[], $2::bigint[], $3::int[], $4::timestamptz[])
                      k(n, s, a, due)
                 where q.notification_id = k.n and q.subscription_id = k.s
                   and q.attempts = k.a",
            )
            .bind::<Array<BigInt>, _>(n)
            .bind::<Array<BigInt>, _>(s)
            .bind::<Array<Int4>, _>(a)
            .bind::<Array<Timestamptz>, _>(due)
            .execute(conn)?;
        }
        if !outcomes.gone.is_empty() {
            diesel::sql_query("delete from herald_push_subscriptions where id = any($1)")
                .bind::<Array<BigInt>, _>(&outcomes.gone)
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Stores `user`'s subscription; `Ok(true)` if it is new, `Ok(false)` if herald had it (for
/// them, or for whoever used that browser before).
///
/// A browser's endpoint belongs to whoever registered it last (a shared computer gets only
/// its current user's pushes), but only a caller who sends the subscription's own keys may
/// take it from another user: the endpoint alone can leak (a log, a proxy), the `auth`
/// secret the browser made with it does not. Otherwise [`Refused::Taken`].
pub fn subscribe(
    conn: &mut PgConnection,
    user: &str,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    max: i64,
) -> QueryResult<Result<bool, Refused>> {
    conn.transaction(|conn| {
        // One user's subscribes take turns, so two at once cannot both pass the limit.
        diesel::sql_query("select pg_advisory_xact_lock(7454515, hashtext($1))")
            .bind::<Text, _>(user)
            .execute(conn)?;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            others: i64,
            #[diesel(sql_type = diesel::sql_types::Bool)]
            known: bool,
        }
        let count: Count = diesel::sql_query(
            "select count(*) filter (where endpoint <> $2) as others,
                    coalesce(bool_or(endpoint = $2), false) as known
             from herald_push_subscriptions where user_id = $1",
        )
        .bind::<Text, _>(user)
        .bind::<Text, _>(endpoint)
        .get_result(conn)?;
        if !count.known && count.others >= max {
            return Ok(Err(Refused::TooMany));
        }
        #[derive(QueryableByName)]
        struct Stored {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            inserted: bool,
        }
        let stored: Option<Stored> = diesel::sql_query(
            "insert into herald_push_subscriptions as s (user_id, endpoint, p256dh, auth)
             values ($1, $2, $3, $4)
             on conflict (endpoint) do update
             set user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth
             where s.user_id = excluded.user_id
                or (s.p256dh = excluded.p256dh and s.auth = excluded.auth)
             returning (xmax = 0) as inserted",
        )
        .bind::<Text, _>(user)
        .bind::<Text, _>(endpoint)
        .bind::<Text, _>(p256dh)
        .bind::<Text, _>(auth)
        .get_result(conn)
        .optional()?;
        Ok(stored.map(|s| s.inserted).ok_or(Refused::Taken))
    })
}

/// Why a subscription was not stored.
#[derive(Debug)]
pub enum Refused {
    /// The user is at the per-user limit.
    TooMany,
    /// Another user holds the endpoint, and the keys sent are not its keys.
    Taken,
}

/// Removes `user`'s subscription with `endpoint`, if they have it.
pub fn unsubscribe(conn: &mut PgConnection, user: &str, endpoint: &str) -> QueryResult<usize> {
    diesel::sql_query("delete from herald_push_subscriptions where user_id = $1 and endpoint = $2")
        .bind::<Text, _>(user)
        .bind::<Text, _>(endpoint)
        .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::presence::STREAMS;

    #[test]
    fn the_streaming_check_looks_for_the_streams_channel() {
        let quoted = format!("p.channel = '{}'", STREAMS.replace('\'', "''"));
        assert!(STREAMING.contains(&quoted), "{STREAMING}");
    }
}
