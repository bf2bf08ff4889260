//! Presence (SPEC section 8): who is online on a channel, across every instance.
//!
//! The truth is the `herald_presence` table (see its migration): a user is present on a
//! channel while some live holder's row there has not lapsed. Each instance keeps its own
//! holder alive, [`HOLD`] ahead, every tick (`HERALD_PRESENCE_TICK_MS`, 1 s): one row however
//! many users it holds. In memory it keeps:
//! - `held`: the (channel, user) pairs its open streams hold, with how many streams; a pair
//!   whose last stream closed has its row lapse the grace later (`HERALD_PRESENCE_GRACE_MS`,
//!   5 s: a reload, or a hop to another instance, within the grace is neither a leave nor a
//!   join);
//! - `known`: for each channel some local stream watches, who the table said was present at
//!   the last read, with a version. Each tick finds the watched channels whose rows started or
//!   lapsed since the last one, reads those again, and hands the difference (`joined`, `left`)
//!   to the watching streams through the hub.
//!
//! So a join shows within a tick everywhere (at once on the joining instance), a close within
//! the grace plus a tick, and an instance killed outright within [`HOLD`] plus a tick: all
//! inside the spec's 3 and 15 seconds. A stream starts from a snapshot of `known` with its
//! version and ignores changes up to that version, so it sees each change once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use tokio::sync::watch;

use crate::config::Periods;
use crate::hub::Hub;
use crate::jobs::Job;
use crate::models::PresenceChange;
use crate::store::presence::{self as rows, Member, STREAMS};
use crate::store::{DbPool, StoreResult};

/// Rows that lapsed long ago are swept about this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How far ahead each tick pushes this instance's `expires`: an instance that dies is gone
/// from every list within this plus a tick.
pub const HOLD: Duration = Duration::from_secs(10);
/// How long one poll with `presence=` keeps its user present.
pub const POLL_HOLD: Duration = Duration::from_secs(30);
/// The holder of polling clients' rows (instances are never 0).
pub const POLLING_HOLDER: i64 = 0;
/// The most users a presence list shows.
pub const MAX_LISTED: usize = 1000;
/// A channel's list as one stream starts from.
pub struct Snapshot {
    /// Changes up to this version are in it.
    pub version: u64,
    /// The `event: presence` data: `{"channel", "present": [...]}` (plus `"truncated": true`).
    pub json: String,
}

/// This instance's presence: what it holds and what its streams watch.
pub struct Presence {
    holder: i64,
    /// For requests: streams entering, polls, `GET /api/presence`.
    pool: DbPool,
    /// For the tick, on upkeep's connections: a burst of requests that drains the query pool
    /// must not delay the refresh, or held rows would lapse and users flap.
    tick_pool: DbPool,
    hub: Hub,
    /// How often it refreshes and reads.
    tick: Duration,
    /// How long a user stays present after their last stream here closes.
    grace: Duration,
    state: Mutex<State>,
    /// Held across each read of the table and the applying of what it found. Reads run one
    /// at a time, so a later read never started before an earlier one: applied in order,
    /// they never take back a join or a leave that a read running alongside had seen.
    reading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    held: HashMap<(String, String), Held>,
    /// Users held on [`STREAMS`] since the last written tick, which writes them.
    pending: HashSet<String>,
    /// (channel, user) pairs whose last stream closed, to let lapse after the grace (or at
    /// once, on [`STREAMS`]) at the next written tick. Kept until written: a row left
    /// unreleased would show its user present, on [`STREAMS`] unpushed, until a restart.
    releasing: Vec<(String, String)>,
    known: HashMap<String, Known>,
    /// The database's clock at the last tick's read: what changed since is read again.
    checked: Option<DateTime<Utc>>,
}

struct Held {
    streams: usize,
    name: Option<String>,
}

#[derive(Default)]
struct Known {
    watchers: usize,
    version: u64,
    members: BTreeMap<String, Member>,
}

impl Presence {
    /// Presence for the instance `hub` belongs to: requests query `pool`, the tick
    /// `tick_pool`, at the tick and with the grace of `periods`.
    pub fn new(pool: DbPool, tick_pool: DbPool, hub: Hub, periods: &Periods) -> Presence {
        Presence {
            // Never the polling holder.
            holder: hub.origin() as i64 | 1,
            pool,
            tick_pool,
            hub,
            tick: periods.presence_tick(),
            grace: periods.presence_grace(),
            state: Mutex::default(),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `user` opens a stream present on `channel`: held from now until the [`Hold`] drops.
    /// Returns the channel's list with the user in it.
    pub async fn enter(
        self: &Arc<Self>,
        channel: &str,
        user: &str,
        name: Option<&str>,
    ) -> StoreResult<(Hold, Snapshot)> {
        {
            let mut state = self.lock();
            let held = state
                .held
                .entry((channel.to_owned(), user.to_owned()))
                .or_insert(Held {
                    streams: 0,
                    name: None,
                });
            held.streams += 1;
            held.name = name.map(str::to_owned);
            state.known.entry(channel.to_owned()).or_default().watchers += 1;
        }
        // From here the hold is released however this ends.
        let hold = Hold {
            presence: self.clone(),
            channel: channel.to_owned(),
            user: user.to_owned(),
        };
        let holder = self.holder;
        let entry = vec![(channel.to_owned(), user.to_owned(), name.map(str::to_owned))];
        self.db(move |conn| {
            rows::keep_holder(conn, holder, HOLD)?;
            rows::hold_rows(conn, holder, &entry, None)
        })
        .await?;
        let _reading = self.reading.lock().await;
        let channels = vec![channel.to_owned()];
        let lists = self.db(move |conn| rows::present(conn, &channels)).await?;
        let mut state = self.lock();
        state.apply(lists, &self.hub, &[channel.to_owned()]);
        let known = state.known.get(channel).expect("watched while held");
        Ok((hold, snapshot(channel, known)))
    }

    /// A stream of `user` opened: held on [`STREAMS`] from the next tick until the [`Hold`]
    /// drops. Costs no query of its own: a thousand streams opening in a second are one
    /// write.
    pub fn hold_stream(self: &Arc<Self>, user: &str) -> Hold {
        let mut state = self.lock();
        let key = (STREAMS.to_owned(), user.to_owned());
        match state.held.get_mut(&key) {
            Some(held) => held.streams += 1,
            None => {
                state.held.insert(
                    key,
                    Held {
                        streams: 1,
                        name: None,
                    },
                );
                state.pending.insert(user.to_owned());
            }
        }
        Hold {
            presence: self.clone(),
            channel: STREAMS.to_owned(),
            user: user.to_owned(),
        }
    }

    /// A poll with `presence=channel`: `user` is present there for [`POLL_HOLD`].
    pub async fn touch(
        &self,
        channels: Vec<String>,
        user: &str,
        name: Option<&str>,
    ) -> StoreResult<()> {
        let entries: Vec<_> = channels
            .into_iter()
            .map(|channel| (channel, user.to_owned(), name.map(str::to_owned)))
            .collect();
        self.db(move |conn| rows::hold_rows(conn, POLLING_HOLDER, &entries, Some(POLL_HOLD)))
            .await
    }

    /// Who is present on each of `channels` now, from the table.
    pub async fn lists(&self, channels: Vec<String>) -> StoreResult<HashMap<String, Vec<Member>>> {
        self.db(move |conn| rows::present(conn, &channels)).await
    }

    /// Refreshes what this instance holds, lets go of what it no longer holds, and tells
    /// watching streams what changed; every tick until `shutdown` changes. On the way out,
    /// every row it holds lapses after the grace: its clients reconnect elsewhere in time.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let job = Job {
            name: "presence",
            period: self.tick,
        };
        let sweep_every = (SWEEP_EVERY.as_millis() / self.tick.as_millis()).max(1) as u64;
        let mut ticks = 0u64;
        job.run(shutdown, async || {
            let sweep = ticks.is_multiple_of(sweep_every);
            ticks += 1;
            self.refresh(sweep).await
        })
        .await;
        let (holder, grace) = (self.holder, self.grace);
        if let Err(err) = self
            .db_on(&self.tick_pool, move |conn| {
                rows::release_all(conn, holder, grace)
            })
            .await
        {
            log::warn!("presence not released at shutdown error={err}");
        }
    }

    async fn refresh(&self, sweep: bool) -> StoreResult<()> {
        if sweep {
            self.db_on(&self.tick_pool, rows::sweep).await?;
        }
        let (pending, releasing, idle) = {
            let mut state = self.lock();
            let state = &mut *state;
            let releasing = &mut state.releasing;
            state.held.retain(|(channel, user), h| {
                if h.streams == 0 {
                    releasing.push((channel.clone(), user.clone()));
                }
                h.streams > 0
            });
            state.known.retain(|_, known| known.watchers > 0);
            // A pair held again since (a failed tick's leftovers) is not let go; a user no
            // longer held is not written.
            let held = &state.held;
            let releasing: Vec<_> = std::mem::take(&mut state.releasing)
                .into_iter()
                .filter(|pair| !held.contains_key(pair))
                .collect();
            let pending: Vec<String> = std::mem::take(&mut state.pending)
                .into_iter()
                .filter(|user| held.contains_key(&(STREAMS.to_owned(), user.clone())))
                .collect();
            let idle = releasing.is_empty() && state.held.is_empty() && state.known.is_empty();
            (pending, releasing, idle)
        };
        // No stream here uses presence: nothing to keep alive, let go of or read. (The holder
        // row lapses; the next stream that enters revives it before writing its own row.)
        if idle {
            return Ok(());
        }
        let (holder, grace) = (self.holder, self.grace);
        let (written, let_go) = (pending.clone(), releasing.clone());
        let wrote = self
            .db_on(&self.tick_pool, move |conn| {
                conn.transaction(|conn| {
                    rows::keep_holder(conn, holder, HOLD)?;
                    // A closed tab is no reload of a presence list: the push its user is now
                    // owed must not wait out a grace.
                    let (closed, released): (Vec<_>, Vec<_>) = let_go
                        .into_iter()
                        .partition(|(channel, _)| channel == STREAMS);
                    rows::release(conn, holder, &released, grace)?;
                    rows::release(conn, holder, &closed, Duration::ZERO)?;
                    let streams: Vec<_> = written
                        .into_iter()
                        .map(|user| (STREAMS.to_owned(), user, None))
                        .collect();
                    rows::hold_rows(conn, holder, &streams, None)
                })
            })
            .await;
        if wrote.is_err() {
            // Written next time: a stream no row shows would have its user pushed to, and a
            // row never let go would keep its user present.
            let mut state = self.lock();
            state.pending.extend(pending);
            state.releasing.extend(releasing);
        }
        wrote?;
        let _reading = self.reading.lock().await;
        let watched: Vec<String> = self.lock().known.keys().cloned().collect();
        if watched.is_empty() {
            return Ok(());
        }
        let checked = self.lock().checked;
        let (lists, channels, now) = self
            .db_on(&self.tick_pool, move |conn| {
                let (changed, now) = rows::changed(conn, &watched, checked)?;
                Ok((rows::present(conn, &changed)?, changed, now))
            })
            .await?;
        let mut state = self.lock();
        state.apply(lists, &self.hub, &channels);
        state.checked = Some(now);
        Ok(())
    }

    fn release(&self, channel: &str, user: &str) {
        let mut state = self.lock();
        if let Some(held) = state.held.get_mut(&(channel.to_owned(), user.to_owned())) {
            // Kept at zero until the next tick lets the row lapse, unless a stream comes back.
            held.streams = held.streams.saturating_sub(1);
        }
        if let Some(known) = state.known.get_mut(channel) {
            known.watchers = known.watchers.saturating_sub(1);
        }
    }

    async fn db<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut PgConnection) -> QueryResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.db_on(&self.pool, query).await
    }

    async fn db_on<T: Send + 'static>(
        &self,
        pool: &DbPool,
        query: impl FnOnce(&mut PgConnection) -> QueryResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        crate::store::run(pool, query).await
    }
}

/// A stream's presence on one channel; dropping it lets go.
pub struct Hold {
    presence: Arc<Presence>,
    channel: String,
    user: String,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.presence.release(&self.channel, &self.user);
    }
}

impl State {
    /// Sets the lists of `channels` from a read of the table, and hands each change to the
    /// streams watching it.
    fn apply(&mut self, mut lists: HashMap<String, Vec<Member>>, hub: &Hub, channels: &[String]) {
        for channel in channels {
            let Some(known) = self.known.get_mut(channel) else {
                continue;
            };
            let now: BTreeMap<String, Member> = lists
                .remove(channel)
                .unwrap_or_default()
                .into_iter()
                .map(|m| (m.user.clone(), m))
                .collect();
            let joined: Vec<&Member> = now
                .values()
                .filter(|m| !known.members.contains_key(&m.user))
                .collect();
            let left: Vec<&String> = known
                .members
                .keys()
                .filter(|user| !now.contains_key(*user))
                .collect();
            if joined.is_empty() && left.is_empty() {
                continue;
            }
            known.version += 1;
            let json = serde_json::json!({ "channel": channel, "joined": joined, "left": left });
            let change = PresenceChange {
                channel: channel.clone(),
                version: known.version,
                json: json.to_string().into(),
            };
            known.members = now;
            hub.presence_changed(change);
        }
    }
}

fn snapshot(channel: &str, known: &Known) -> Snapshot {
    let mut members: Vec<&Member> = known.members.values().collect();
    members.sort_by(|a, b| (a.since, &a.user).cmp(&(b.since, &b.user)));
    let truncated = members.len() > MAX_LISTED;
    members.truncate(MAX_LISTED);
    let mut json = serde_json::json!({ "channel": channel, "present": members });
    if truncated {
        json["truncated"] = true.into();
    }
    Snapshot {
        version: known.version,
        json: json.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: usize) -> Member {
        Member {
            user: format!("{user:04}"),
            name: None,
            since: DateTime::<Utc>::from_timestamp(1_800_000_000 + user as i64, 0).unwrap(),
        }
    }

    fn known(users: usize) -> Known {
        Known {
            watchers: 1,
            version: 7,
            members: (0..users)
                .map(|u| (member(u).user.clone(), member(u)))
                .collect(),
        }
    }

    #[test]
    fn a_snapshot_lists_the_oldest_thousand_and_says_it_left_some_out() {
        assert_eq!(snapshot("c", &known(1001)).version, 7);
        let json = snapshot_json(&known(1001));
        assert_eq!(json["present"].as_array().unwrap().len(), 1000);
        assert_eq!(json["present"][0]["user"], "0000");
        assert_eq!(json["present"][999]["user"], "0999");
        assert_eq!(json["truncated"], true);

        let whole = snapshot_json(&known(1000));
        assert_eq!(whole["present"].as_array().unwrap().len(), 1000);
        assert!(whole.get("truncated").is_none());
    }

    fn snapshot_json(known: &Known) -> serde_json::Value {
        serde_json::from_str(&snapshot("c", known).json).unwrap()
    }

    #[test]
    fn applying_a_read_reports_who_joined_and_who_left_once() {
        let hub = Hub::default();
        let mut state = State::default();
        state.known.insert("c".into(), known(3));
        let read = |users: &[usize]| {
            HashMap::from([("c".to_owned(), users.iter().map(|&u| member(u)).collect())])
        };

        state.apply(read(&[1, 2, 3]), &hub, &["c".to_owned()]);
        let known = &state.known["c"];
        assert_eq!(known.version, 8, "one change: 0 left, 3 joined");
        assert_eq!(
            known.members.keys().collect::<Vec<_>>(),
            ["0001", "0002", "0003"]
        );

        state.apply(read(&[1, 2, 3]), &hub, &["c".to_owned()]);
        assert_eq!(state.known["c"].version, 8, "no change, no version");
    }
}
