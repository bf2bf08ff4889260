//! Presence's SQL (SPEC section 8): the rows `herald_presence` and `herald_presence_holders`
//! hold for each instance, and who they say is present. What they mean, and when each query
//! runs, is [`crate::presence`]'s.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Text, Timestamptz};
use serde::Serialize;

/// The channel on which an instance holds every user with an SSE stream open on it, with or
/// without `presence=`, when Web Push is on: a push goes to users held nowhere. No client can
/// name it (it is not a channel name) and nobody watches it.
pub const STREAMS: &str = "";

/// One present user, as clients see them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// The user id.
    pub user: String,
    /// Their token's `name` claim, if it had one.
    pub name: Option<String>,
    /// Since when they have been present without a lapse.
    pub since: DateTime<Utc>,
}

/// Keeps `holder` (this instance) alive for `hold` from now.
pub fn keep_holder(conn: &mut PgConnection, holder: i64, hold: Duration) -> QueryResult<()> {
    diesel::sql_query(
        "insert into herald_presence_holders as h (holder, expires)
         values ($1, now() + make_interval(secs => $2))
         on conflict (holder) do update set expires = greatest(h.expires, excluded.expires)",
    )
    .bind::<BigInt, _>(holder)
    .bind::<Double, _>(hold.as_secs_f64())
    .execute(conn)
    .map(drop)
}

/// `holder` holds `entries` (channel, user, name): for as long as it lives (`until` `None`),
/// or for `until` from now. A row that had lapsed starts a new `since`.
pub fn hold_rows(
    conn: &mut PgConnection,
    holder: i64,
    entries: &[(String, String, Option<String>)],
    until: Option<Duration>,
) -> QueryResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (channels, users, names) = split3(entries);
    diesel::sql_query(
        "insert into herald_presence as p (channel, user_id, holder, name, since, until)
         select c, u, $3, n, now(), now() + make_interval(secs => $5)
         from unnest($1::text[], $2::text[], $4::text[]) as e(c, u, n)
         on conflict (channel, user_id, holder) do update
         set name = excluded.name,
             since = case when p.until is null or p.until > now() then p.since
                          else excluded.since end,
             until = excluded.until",
    )
    .bind::<Array<Text>, _>(channels)
    .bind::<Array<Text>, _>(users)
    .bind::<BigInt, _>(holder)
    .bind::<Array<Nullable<Text>>, _>(names)
    .bind::<Nullable<Double>, _>(until.map(|d| d.as_secs_f64()))
    .execute(conn)
    .map(drop)
}

/// Lets the rows of `entries` (channel, user) held by `holder` lapse within `grace`.
pub fn release(
    conn: &mut PgConnection,
    holder: i64,
    entries: &[(String, String)],
    grace: Duration,
) -> QueryResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let channels: Vec<&str> = entries.iter().map(|(c, _)| c.as_str()).collect();
    let users: Vec<&str> = entries.iter().map(|(_, u)| u.as_str()).collect();
    diesel::sql_query(
        "update herald_presence p
         set until = least(coalesce(p.until, 'infinity'), now() + make_interval(secs => $4))
         from unnest($1::text[], $2::text[]) as e(c, u)
         where p.channel = e.c and p.user_id = e.u and p.holder = $3",
    )
    .bind::<Array<Text>, _>(channels)
    .bind::<Array<Text>, _>(users)
    .bind::<BigInt, _>(holder)
    .bind::<Double, _>(grace.as_secs_f64())
    .execute(conn)
    .map(drop)
}

/// Lets everything `holder` holds lapse within `grace` (it is shutting down).
pub fn release_all(conn: &mut PgConnection, holder: i64, grace: Duration) -> QueryResult<()> {
    diesel::sql_query(
        "update herald_presence_holders
         set expires = least(expires, now() + make_interval(secs => $2))
         where holder = $1",
    )
    .bind::<BigInt, _>(holder)
    .bind::<Double, _>(grace.as_secs_f64())
    .execute(conn)
    .map(drop)
}

/// Of `watched`, the channels whose lists may have changed since `checked` (all of them the
/// first time), and the database's clock now. A join starts a row (or revives a lapsed one)
/// with `since` = its transaction's start; a leave is a row's `until`, or its holder's
/// `expires`, passing. Both are looked for from a little before `checked`: a transaction
/// that started before the last check may have committed after it. Reading a channel again
/// costs nothing but the read.
pub fn changed(
    conn: &mut PgConnection,
    watched: &[String],
    checked: Option<DateTime<Utc>>,
) -> QueryResult<(Vec<String>, DateTime<Utc>)> {
    #[derive(QueryableByName)]
    struct Changed {
        #[diesel(sql_type = Array<Text>)]
        channels: Vec<String>,
        #[diesel(sql_type = Timestamptz)]
        now: DateTime<Utc>,
    }
    let found: Changed = diesel::sql_query(
        "select now() as now,
                array(select distinct p.channel
                      from herald_presence p join herald_presence_holders h using (holder)
                      where p.channel = any($1)
                        and ($2::timestamptz is null
                             or p.since > $2 - interval '5 seconds'
                             or (p.until > $2 - interval '5 seconds' and p.until <= now())
                             or (h.expires > $2 - interval '5 seconds' and h.expires <= now())))
                  as channels",
    )
    .bind::<Array<Text>, _>(watched)
    .bind::<Nullable<Timestamptz>, _>(checked)
    .get_result(conn)?;
    // A watched channel with no rows at all is also news the first time (everyone left).
    let channels = if checked.is_none() {
        watched.to_vec()
    } else {
        found.channels
    };
    Ok((channels, found.now))
}

/// Deletes rows that lapsed more than a minute ago, and holders gone as long with nothing
/// left (any instance may: they mean nothing).
pub fn sweep(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query(
        "delete from herald_presence p
         using herald_presence_holders h
         where h.holder = p.holder
           and (p.until < now() - interval '1 minute' or h.expires < now() - interval '1 minute')",
    )
    .execute(conn)?;
    diesel::sql_query(
        "delete from herald_presence_holders h
         where h.expires < now() - interval '1 minute'
           and not exists (select 1 from herald_presence p where p.holder = h.holder)",
    )
    .execute(conn)
    .map(drop)
}

#[derive(QueryableByName)]
struct PresentRow {
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    since: DateTime<Utc>,
}

/// Who is present on each of `channels` now, by the table: each user once (the earliest
/// `since` of their live rows, the name of the latest).
pub fn present(
    conn: &mut PgConnection,
    channels: &[String],
) -> QueryResult<HashMap<String, Vec<Member>>> {
    let mut lists: HashMap<String, Vec<Member>> = HashMap::new();
    if channels.is_empty() {
        return Ok(lists);
    }
    let rows: Vec<PresentRow> = diesel::sql_query(
        "select channel, user_id,
                (array_agg(name order by since desc) filter (where name is not null))[1] as name,
                min(since) as since
         from herald_presence p join herald_presence_holders h using (holder)
         where channel = any($1) and h.expires > now() and (p.until is null or p.until > now())
         group by channel, user_id
         order by channel, min(since), user_id",
    )
    .bind::<Array<Text>, _>(channels)
    .load(conn)?;
    for row in rows {
        lists.entry(row.channel).or_default().push(Member {
            user: row.user_id,
            name: row.name,
            since: row.since,
        });
    }
    Ok(lists)
}

fn split3(
    entries: &[(String, String, Option<String>)],
) -> (Vec<&str>, Vec<&str>, Vec<Option<&str>>) {
    let mut channels = Vec::with_capacity(entries.len());
    let mut users = Vec::with_capacity(entries.len());
    let mut names = Vec::with_capacity(entries.len());
    for (channel, user, name) in entries {
        channels.push(channel.as_str());
        users.push(user.as_str());
        names.push(name.as_deref());
    }
    (channels, users, names)
}
