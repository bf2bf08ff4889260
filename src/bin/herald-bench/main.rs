//! herald-bench: herald's load generator, through its public interfaces only (SQL inserts,
//! `/events`, `/api/notifications`, `/metrics`). Each scenario prints its results as text and
//! then as one JSON line. BENCHMARKS.md has the commands and the numbers.
//!
//! ```text
//! herald-bench --server 127.0.0.1:8080 --database-url postgres://... --secret S <scenario>
//! ```

mod client;
mod nchan;
mod push;
mod scenarios;
mod stats;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::{Parser, Subcommand};
use herald::auth::Auth;

/// Load generator for herald.
#[derive(Parser)]
#[command(name = "herald-bench")]
struct Cli {
    /// herald's address.
    #[arg(long, env = "HERALD_BENCH_SERVER", default_value = "127.0.0.1:8080")]
    server: SocketAddr,
    /// herald's database (writers insert here).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// herald's HS256 secret, to mint the clients' tokens.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// Connections come from 127.0.0.2 up to 127.0.0.(1+N): past the ~28k ephemeral ports of
    /// one source address.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=200))]
    sources: u8,
    /// Users are `bench<first-user>`, `bench<first-user + 1>`, ...: give generators that run side
    /// by side (one process's open-file limit) disjoint users.
    #[arg(long, default_value_t = 0)]
    first_user: u32,
    /// Streams are present (`presence=`) on `room:<user number / R>`, R users a room: what
    /// presence costs the other scenarios. 0: no presence.
    #[arg(long, default_value_t = 0)]
    presence_rooms: usize,
    /// The server speaks Nchan's protocol (nginx + Nchan, `bench/nchan.conf`, or
    /// `examples/actix_floor.rs`), not herald's: `longpoll` parks on its broadcast channel,
    /// `broadcast` streams from it, and each round publishes there. Other scenarios refuse.
    #[arg(long)]
    nchan: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

/// What to measure.
#[derive(Subcommand)]
pub enum Scenario {
    /// Open N streams and hold them: established, failed, herald's RSS per stream.
    Streams {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Seconds to hold them open once established.
        #[arg(long, default_value_t = 5)]
        hold_secs: u64,
    },
    /// N streams; writers insert RATE notifications/s to random ones of those users for
    /// DURATION s: latency from the INSERT to the stream (and its parts: until the INSERT
    /// returned committed, and after), lost, duplicated.
    Personal {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 100)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        #[arg(long, default_value_t = 4)]
        writers: usize,
        /// Also insert this many rows/s, as the writers do, into a copy of the table without
        /// herald's triggers: the same INSERT's latency in the same run, with nothing of
        /// herald's in it (`control_insert_latency`).
        #[arg(long, default_value_t = 0)]
        control_rate: u32,
    },
    /// N streams; one insert to `broadcast` per round: time until every stream has it.
    Broadcast {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// N parked long-polls; one insert to `broadcast` per round: wake latency, completeness.
    Longpoll {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// N long-polls on their own inbox, parked again once answered; writers insert RATE
    /// notifications/s to random ones of those users for DURATION s: as `personal`.
    LongpollPersonal {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 50)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        #[arg(long, default_value_t = 1)]
        writers: usize,
        /// Also insert this many rows/s, as the writers do, into a copy of the table without
        /// herald's triggers: the same INSERT's latency in the same run, with nothing of
        /// herald's in it (`control_insert_latency`).
        #[arg(long, default_value_t = 0)]
        control_rate: u32,
    },
    /// CONNECTIONS clients polling `GET /api/notifications?limit=20` for DURATION s.
    Poll {
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// Users polled in turn across the connections (at least one per connection).
        #[arg(long, default_value_t = 64)]
        users: usize,
        /// `limit` of each poll.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Request this path instead, with no token (`/healthz`: what a request costs in
        /// herald's HTTP stack alone, the floor under every poll).
        #[arg(long)]
        path: Option<String>,
        /// Insert this many notifications to the polled users in one transaction, BULK_AT_SECS
        /// into the run; report requests/s in each second of the run, when herald's listener
        /// had read the rows, and how soon after that polls were back to their rate before.
        #[arg(long, default_value_t = 0)]
        bulk: usize,
        #[arg(long, default_value_t = 5)]
        bulk_at_secs: u64,
    },
    /// N streams on one channel; SENDERS users post RATE signals/s in all for DURATION s:
    /// post-to-receive latency of `event: signal`, missing.
    Signals {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 50)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// Users sending in turn (each may send 20/s).
        #[arg(long, default_value_t = 5)]
        senders: usize,
    },
    /// N streams and M offline users with a push subscription each, on a push service this
    /// generator runs on PORT (herald needs `HERALD_PUSH_HOSTS=127.0.0.1:PORT` and VAPID
    /// keys): broadcast latency to the streams without the subscriptions, then with them
    /// (pushes of earlier rounds going out meanwhile); pushes/s; any push missing or twice.
    Push {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 10_000)]
        offline: usize,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        #[arg(long, default_value_t = 9099)]
        port: u16,
    },
    /// W writers' insert throughput into `notifications` (herald's trigger, herald running)
    /// against a copy of the table with no trigger, in alternating phases; STREAMS open meanwhile.
    Writers {
        #[arg(long, default_value_t = 8)]
        writers: usize,
        #[arg(long, default_value_t = 8)]
        duration_secs: u64,
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// SSE streams held open meanwhile, on users the writers do not write to.
        #[arg(long, default_value_t = 0)]
        streams: usize,
    },
}

/// What a scenario, or a step of one, returns.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// What every scenario needs.
pub struct Bench {
    server: SocketAddr,
    host: String,
    database_url: String,
    auth: Auth,
    sources: u8,
    first_user: u32,
    presence_rooms: usize,
    nchan: bool,
}

impl Bench {
    /// The user id of client `i`.
    pub fn user(&self, i: usize) -> String {
        format!("bench{}", self.first_user as usize + i)
    }

    /// A token for client `i`'s user, valid for an hour, granting `room:*` and `signal:*`.
    pub fn token(&self, i: usize) -> String {
        let grants = ["room:*".to_owned(), "signal:*".to_owned()];
        self.auth.mint(&self.user(i), &grants, false, 3600)
    }

    /// The `presence=` of client `i`'s stream, if streams are present.
    pub fn presence(&self, i: usize) -> Option<String> {
        (self.presence_rooms > 0).then(|| format!("room:{}", i / self.presence_rooms))
    }

    /// The source address for connection `i`.
    pub fn source(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            2 + (i % self.sources as usize) as u8,
        ))
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let bench = Bench {
        server: cli.server,
        host: cli.server.to_string(),
        database_url: cli.database_url,
        auth: Auth::new(cli.secret.as_bytes(), None),
        sources: cli.sources,
        first_user: cli.first_user,
        presence_rooms: cli.presence_rooms,
        nchan: cli.nchan,
    };
    // One thread: the generator stays off the core herald and PostgreSQL share the rest of.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run(&bench, cli.scenario))
}

/// Runs `scenario` and prints its report.
async fn run(bench: &Bench, scenario: Scenario) -> Result<()> {
    use scenarios::{
        Writes, broadcast, longpoll, longpoll_personal, personal, poll, signals, streams,
        writers_scenario,
    };
    if bench.nchan
        && !matches!(
            scenario,
            Scenario::Longpoll { .. } | Scenario::Broadcast { .. }
        )
    {
        return Err("--nchan: only longpoll and broadcast run against Nchan".into());
    }
    let report = match scenario {
        Scenario::Streams { n, hold_secs } => streams(bench, n, hold_secs).await?,
        Scenario::Personal {
            n,
            rate,
            duration_secs,
            writers,
            control_rate,
        } => {
            let writes = Writes::new(rate, duration_secs, writers, control_rate);
            personal(bench, n, writes).await?
        }
        Scenario::Broadcast { n, rounds } => broadcast(bench, n, rounds).await?,
        Scenario::Longpoll { n, rounds } => longpoll(bench, n, rounds).await?,
        Scenario::LongpollPersonal {
            n,
            rate,
            duration_secs,
            writers,
            control_rate,
        } => {
            let writes = Writes::new(rate, duration_secs, writers, control_rate);
            longpoll_personal(bench, n, writes).await?
        }
        Scenario::Poll {
            connections,
            duration_secs,
            users,
            limit,
            path,
            bulk,
            bulk_at_secs,
        } => {
            let bulk = (bulk > 0).then_some(scenarios::Bulk {
                rows: bulk,
                at_secs: bulk_at_secs,
            });
            poll(
                bench,
                connections,
                duration_secs,
                users.max(connections),
                limit,
                path,
                bulk,
            )
            .await?
        }
        Scenario::Writers {
            writers,
            duration_secs,
            rounds,
            streams,
        } => writers_scenario(bench, writers, duration_secs, rounds, streams).await?,
        Scenario::Signals {
            n,
            rate,
            duration_secs,
            senders,
        } => signals(bench, n, rate, duration_secs, senders).await?,
        Scenario::Push {
            n,
            offline,
            rounds,
            port,
        } => push::push(bench, n, offline, rounds, port).await?,
    };
    report.print();
    Ok(())
}
