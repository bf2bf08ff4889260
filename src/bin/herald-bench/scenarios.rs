//! The scenarios. Clients are tasks on one thread; writers are plain SQL connections.

use std::cell::Cell;
use std::collections::HashMap;
use std::error::Error;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::Bench;
use crate::client::{self, Connection, EventStream};
use crate::nchan;
use crate::stats::{Report, now_micros, percentiles};

use crate::Result;

/// How long to wait for stragglers once the load has stopped.
const GRACE: Duration = Duration::from_secs(5);
/// Streams being opened at once (the server's accept backlog is 4096).
const OPENING: usize = 512;

/// A notification as a stream or a poll delivers it: its id and the writer's send stamp.
#[derive(Deserialize)]
struct Note {
    id: i64,
    #[serde(default)]
    data: NoteData,
}

#[derive(Deserialize, Default)]
struct NoteData {
    t: Option<i64>,
}

/// Stream `stream` received notification `id`, `latency` µs after it was sent.
pub(crate) struct Delivery {
    pub stream: usize,
    pub id: i64,
    pub latency: i64,
}

/// Opens streams `0..n` (each client's own inbox); returns how many opened and failed. Every
/// notification they receive goes to `deliveries`.
pub(crate) async fn open_streams(
    bench: &Bench,
    n: usize,
    deliveries: mpsc::UnboundedSender<Delivery>,
) -> (usize, usize) {
    open_streams_on(bench, n, None, "notification", deliveries).await
}

/// [`open_streams`] on `channels` (`None`: the inbox), delivering the events named `event`.
async fn open_streams_on(
    bench: &Bench,
    n: usize,
    channels: Option<&str>,
    event: &'static str,
    deliveries: mpsc::UnboundedSender<Delivery>,
) -> (usize, usize) {
    let opening = Rc::new(Semaphore::new(OPENING));
    let mut opened = Vec::with_capacity(n);
    for i in 0..n {
        let (server, source, host) = (bench.server, bench.source(i), bench.host.clone());
        let mut path = format!("/events?token={}", bench.token(i));
        if let Some(channels) = channels {
            path.push_str(&format!("&channels={channels}"));
        }
        if let Some(room) = bench.presence(i) {
            path.push_str(&format!("&presence={room}"));
        }
        let (ready, ready_rx) = oneshot::channel();
        let (opening, deliveries) = (opening.clone(), deliveries.clone());
        let nchan = bench.nchan;
        tokio::task::spawn_local(async move {
            let permit = opening.acquire().await;
            let stream = match (client::connect(server, source).await, nchan) {
                (Ok(socket), false) => EventStream::open(socket, &host, &path).await,
                // Nchan's messages are unnamed events on its broadcast channel.
                (Ok(socket), true) => EventStream::open_bare(socket, &host, nchan::STREAM).await,
                (Err(err), _) => Err(err),
            };
            drop(permit);
            let mut stream = match stream {
                Ok(stream) => {
                    let _ = ready.send(true);
                    stream
                }
                Err(_) => {
                    let _ = ready.send(false);
                    return;
                }
            };
            while let Ok(Some(received_event)) = stream.next().await {
                if received_event.name != event && !nchan {
                    continue;
                }
                let event = received_event;
                let received = now_micros();
                let delivery = if event.name == "signal" {
                    serde_json::from_str::<SignalNote>(&event.data)
                        .ok()
                        .map(|s| (s.data.seq, received - s.data.t))
                } else {
                    serde_json::from_str::<Note>(&event.data)
                        .ok()
                        .map(|note| (note.id, note.data.t.map_or(-1, |t| received - t)))
                };
                if let Some((id, latency)) = delivery {
                    let _ = deliveries.send(Delivery {
                        stream: i,
                        id,
                        latency,
                    });
                }
            }
        });
        opened.push(ready_rx);
    }
    let mut established = 0;
    for ready in opened {
        if ready.await.unwrap_or(false) {
            established += 1;
        }
    }
    (established, n - established)
}

/// A database connection, driven on this thread.
pub(crate) async fn pg(bench: &Bench) -> Result<tokio_postgres::Client> {
    let (client, connection) =
        tokio_postgres::connect(&bench.database_url, tokio_postgres::NoTls).await?;
    tokio::task::spawn_local(connection);
    Ok(client)
}

/// A plain connection to herald from 127.0.0.1.
async fn connection(bench: &Bench) -> Result<Connection> {
    let socket = client::connect(bench.server, IpAddr::V4(Ipv4Addr::LOCALHOST)).await?;
    Ok(Connection::new(socket, &bench.host))
}

/// The value of a `/metrics` series.
pub(crate) async fn metric(bench: &Bench, name: &str) -> Result<f64> {
    let response = connection(bench).await?.get("/metrics").await?;
    let text = String::from_utf8_lossy(&response.body);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .ok_or_else(|| format!("no {name} in /metrics").into())
}

/// Waits until every stream the server counts is open (herald's gauge lags the handshake
/// slightly; Nchan counts its channel's subscribers).
pub(crate) async fn settle_streams(bench: &Bench, expected: usize) -> Result<()> {
    let deadline = Instant::now() + GRACE;
    let open = async || match bench.nchan {
        false => Ok::<_, Box<dyn Error>>(metric(bench, "herald_streams_open").await? as usize),
        true => nchan::subscribers(bench).await,
    };
    while open().await? < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub(crate) async fn streams(bench: &Bench, n: usize, hold_secs: u64) -> Result<Report> {
    let rss_before = metric(bench, "process_resident_memory_bytes").await?;
    let (deliveries, _keep) = mpsc::unbounded_channel();
    let started = Instant::now();
    let (established, failed) = open_streams(bench, n, deliveries).await;
    let open_secs = started.elapsed().as_secs_f64();
    settle_streams(bench, established).await?;
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let open_now = metric(bench, "herald_streams_open").await?;
    let rss_after = metric(bench, "process_resident_memory_bytes").await?;
    let per_stream = (rss_after - rss_before) / established.max(1) as f64;
    let mut report = Report::new("streams");
    report
        .set("streams", n)
        .set("established", established)
        .set("failed", failed)
        .set("herald_streams_open", open_now)
        .set("open_secs", round(open_secs))
        .set("rss_before_mb", round(rss_before / 1e6))
        .set("rss_after_mb", round(rss_after / 1e6))
        .set("rss_per_stream_kb", round(per_stream / 1e3));
    Ok(report)
}

pub(crate) async fn personal(bench: &Bench, n: usize, writes: Writes) -> Result<Report> {
    let (deliveries, mut received) = mpsc::unbounded_channel();
    let (established, failed) = open_streams(bench, n, deliveries).await;
    settle_streams(bench, established).await?;
    let written = write_personal(bench, n, writes).await?;
    let mut report = Report::new("personal");
    report
        .set("streams", n)
        .set("established", established)
        .set("failed", failed);
    tally_personal(&mut report, writes, written, &mut received).await;
    Ok(report)
}

/// N long-polls, each on its own inbox and parked again as soon as it is answered; writers
/// insert RATE notifications/s to random ones of those users for DURATION s: latency from
/// the INSERT to the answer (and its parts, as `personal`), lost, duplicated.
pub(crate) async fn longpoll_personal(bench: &Bench, n: usize, writes: Writes) -> Result<Report> {
    let (deliveries, mut received) = mpsc::unbounded_channel();
    let failures = Rc::new(Cell::new(0usize));
    for i in 0..n {
        let (server, source, host) = (bench.server, bench.source(i), bench.host.clone());
        let token = bench.token(i);
        let (deliveries, failures) = (deliveries.clone(), failures.clone());
        tokio::task::spawn_local(async move {
            let parked = park_repeatedly(server, source, &host, &token, None, |page, at| {
                for note in &page.notifications {
                    let _ = deliveries.send(Delivery {
                        stream: i,
                        id: note.id,
                        latency: note.data.t.map_or(-1, |t| at - t),
                    });
                }
            });
            if parked.await.is_err() {
                failures.set(failures.get() + 1);
            }
        });
    }
    drop(deliveries);
    let deadline = Instant::now() + 6 * GRACE;
    while (metric(bench, "herald_long_polls_parked").await? as usize) < n - failures.get()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let parked = metric(bench, "herald_long_polls_parked").await? as usize;
    let written = write_personal(bench, n, writes).await?;
    let mut report = Report::new("longpoll_personal");
    report.set("long_polls", n).set("parked", parked);
    tally_personal(&mut report, writes, written, &mut received).await;
    report.set("failed", failures.get());
    Ok(report)
}

/// The writers of `personal` and `longpoll-personal`.
#[derive(Clone, Copy)]
pub(crate) struct Writes {
    /// Notifications per second, in all.
    pub rate: u32,
    pub duration_secs: u64,
    /// Connections the rate is spread over.
    pub writers: usize,
    /// Rows per second that one more connection inserts, as the writers do, into a copy of
    /// the table without herald's triggers, which nobody reads: the same INSERT, timed the
    /// same way on the same busy machine, with nothing of herald's in it (0: none). Its
    /// commits come on top of the writers'.
    pub control_rate: u32,
}

impl Writes {
    pub fn new(rate: u32, duration_secs: u64, writers: usize, control_rate: u32) -> Writes {
        Writes {
            rate,
            duration_secs,
            writers,
            control_rate,
        }
    }
}

/// A notification a writer inserted for user `stream`, and the µs its INSERT took to return
/// committed, as the writer saw it.
struct Sent {
    stream: usize,
    id: i64,
    commit: i64,
}

/// What the writers did: the notifications sent, and the µs each of the control's INSERTs
/// took.
struct Written {
    sent: Vec<Sent>,
    control: Vec<i64>,
}

/// A copy of `notifications` without herald's triggers (`like` copies none), which nobody
/// reads: the same INSERTs without herald, for `writers` and the personal scenarios' control.
const PLAIN: &str = "bench_plain";

async fn create_plain(admin: &tokio_postgres::Client) -> Result<()> {
    admin
        .batch_execute(&format!(
            "drop table if exists {PLAIN};
             create table {PLAIN} (like notifications including all);"
        ))
        .await?;
    Ok(())
}

async fn drop_plain(admin: &tokio_postgres::Client) -> Result<()> {
    admin.batch_execute(&format!("drop table {PLAIN}")).await?;
    Ok(())
}

/// Inserts `writes.rate` notifications/s in all for random ones of users `0..n`, from
/// `writes.writers` connections, for `writes.duration_secs`, and the control's rows beside
/// them; returns what was sent, so that every client's expected notifications are known
/// exactly.
async fn write_personal(bench: &Bench, n: usize, writes: Writes) -> Result<Written> {
    let users: Rc<[String]> = (0..n).map(|i| format!("user:{}", bench.user(i))).collect();
    // Every connection is made, and the control's table, before the writers start: nothing
    // but INSERTs falls inside their window, and nothing after the table can fail.
    let control = if writes.control_rate > 0 {
        let every = Duration::from_secs_f64(1.0 / writes.control_rate as f64);
        Some((
            pg(bench).await?,
            Writer::connect(bench, writes.writers, every).await?,
        ))
    } else {
        None
    };
    let every = Duration::from_secs_f64(writes.writers as f64 / writes.rate.max(1) as f64);
    let mut connected = Vec::new();
    for w in 0..writes.writers {
        connected.push(Writer::connect(bench, w, every).await?);
    }
    if let Some((admin, _)) = &control {
        create_plain(admin).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(writes.duration_secs);
    let tasks: Vec<_> = connected
        .into_iter()
        .map(|writer| {
            tokio::task::spawn_local(writer.run("notifications", users.clone(), deadline))
        })
        .collect();
    let (control, dropped) = match control {
        Some((admin, writer)) => {
            let control = writer.run(PLAIN, users.clone(), deadline).await;
            let dropped = drop_plain(&admin).await;
            (
                control.into_iter().map(|sent| sent.commit).collect(),
                dropped,
            )
        }
        None => (Vec::new(), Ok(())),
    };
    let mut sent = Vec::new();
    for task in tasks {
        sent.extend(task.await?);
    }
    dropped?;
    Ok(Written { sent, control })
}

/// One writing connection: an INSERT every `every`.
struct Writer {
    client: tokio_postgres::Client,
    every: Duration,
    /// Picks the users, differently for each writer.
    seed: u64,
}

impl Writer {
    async fn connect(bench: &Bench, w: usize, every: Duration) -> Result<Writer> {
        Ok(Writer {
            client: pg(bench).await?,
            every,
            seed: 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(w as u64 + 1),
        })
    }

    /// Inserts into `table` for random ones of `users` until `deadline`; returns what it
    /// inserted.
    async fn run(
        mut self,
        table: &'static str,
        users: Rc<[String]>,
        deadline: Instant,
    ) -> Vec<Sent> {
        let insert = format!(
            "insert into {table} (channel, title, data)
             values ($1, 'bench', jsonb_build_object('t', $2::bigint)) returning id"
        );
        let mut sent = Vec::new();
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while Instant::now() < deadline {
            tick.tick().await;
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let stream = (self.seed % users.len() as u64) as usize;
            let began = Instant::now();
            let row = self
                .client
                .query_one(&insert, &[&users[stream], &now_micros()])
                .await;
            if let Ok(row) = row {
                sent.push(Sent {
                    stream,
                    id: row.get(0),
                    commit: began.elapsed().as_micros() as i64,
                });
            }
        }
        sent
    }
}

/// Waits (up to [`GRACE`]) until every notification in `sent` has reached its client on
/// `received`, and reports what arrived: lost, duplicated, and the latency from the INSERT
/// with its two parts, until the INSERT returned committed and after.
async fn tally_personal(
    report: &mut Report,
    writes: Writes,
    written: Written,
    received: &mut mpsc::UnboundedReceiver<Delivery>,
) {
    let Written { sent, mut control } = written;
    let duration_secs = writes.duration_secs;
    let inserted = sent.len();
    let commits: HashMap<i64, i64> = sent.iter().map(|s| (s.id, s.commit)).collect();
    let mut got: HashMap<(usize, i64), u32> = HashMap::new();
    let mut latencies = Vec::with_capacity(inserted);
    let mut after_commit = Vec::with_capacity(inserted);
    let grace = Instant::now() + GRACE;
    while got.len() < inserted {
        let delivery = match tokio::time::timeout_at(grace, received.recv()).await {
            Ok(Some(delivery)) => delivery,
            _ => break,
        };
        *got.entry((delivery.stream, delivery.id)).or_default() += 1;
        latencies.push(delivery.latency);
        if let Some(commit) = commits.get(&delivery.id) {
            after_commit.push(delivery.latency - commit);
        }
    }
    // Duplicates already queued behind the last expected one still count.
    while let Ok(delivery) = received.try_recv() {
        *got.entry((delivery.stream, delivery.id)).or_default() += 1;
        latencies.push(delivery.latency);
    }
    let lost = sent
        .iter()
        .filter(|s| !got.contains_key(&(s.stream, s.id)))
        .count();
    let duplicated: u32 = got.values().map(|times| times - 1).sum();
    report
        .set("rate_per_sec", writes.rate)
        .set("duration_secs", duration_secs)
        .set("inserted", inserted)
        .set(
            "achieved_rate_per_sec",
            round(inserted as f64 / duration_secs as f64),
        )
        .set("received", latencies.len())
        .set("lost", lost)
        .set("duplicated", duplicated)
        .set("latency", percentiles(&mut latencies))
        // The latency's two parts: the writer's INSERT until it returned committed, and from
        // then until the client had the row (herald's part, and the NOTIFY's). Both are
        // timed on the generator's one thread: a wait there for its turn counts in the
        // INSERT's part.
        .set(
            "insert_latency",
            percentiles(&mut commits.into_values().collect::<Vec<_>>()),
        )
        .set("latency_after_commit", percentiles(&mut after_commit));
    if writes.control_rate > 0 {
        report
            .set("control_rate_per_sec", writes.control_rate)
            .set("control_insert_latency", percentiles(&mut control));
    }
}

pub(crate) async fn broadcast(bench: &Bench, n: usize, rounds: usize) -> Result<Report> {
    let (deliveries, mut received) = mpsc::unbounded_channel();
    let (established, failed) = open_streams(bench, n, deliveries).await;
    settle_streams(bench, established).await?;
    let mut latencies = Vec::new();
    let mut missing = 0;
    if bench.nchan {
        let mut publisher = nchan::Publisher::connect(bench).await?;
        for id in 1..=rounds as i64 {
            let t = now_micros();
            // The shape of herald's notification, so that streams read both alike.
            publisher
                .publish(&format!("{{\"id\":{id},\"data\":{{\"t\":{t}}}}}"))
                .await?;
            missing += round_arrived(&mut received, id, established, &mut latencies).await;
        }
    } else {
        let client = pg(bench).await?;
        for _ in 0..rounds {
            missing += broadcast_round(&client, &mut received, established, &mut latencies).await?;
        }
    }
    let mut report = Report::new("broadcast");
    report
        .set("streams", n)
        .set("established", established)
        .set("failed", failed)
        .set("rounds", rounds)
        .set("missing", missing)
        .set("latency", percentiles(&mut latencies));
    Ok(report)
}

/// Inserts one broadcast and waits (up to [`GRACE`]) until each of `established` streams has
/// it, adding their latencies to `latencies`; returns how many did not get it.
pub(crate) async fn broadcast_round(
    client: &tokio_postgres::Client,
    received: &mut mpsc::UnboundedReceiver<Delivery>,
    established: usize,
    latencies: &mut Vec<i64>,
) -> Result<usize> {
    let row = client
        .query_one(
            "insert into notifications (channel, title, data)
             values ('broadcast', 'bench', jsonb_build_object('t', $1::bigint)) returning id",
            &[&now_micros()],
        )
        .await?;
    Ok(round_arrived(received, row.get(0), established, latencies).await)
}

/// Waits (up to [`GRACE`]) until each of `established` streams has notification `id`, adding
/// their latencies to `latencies`; returns how many did not get it.
async fn round_arrived(
    received: &mut mpsc::UnboundedReceiver<Delivery>,
    id: i64,
    established: usize,
    latencies: &mut Vec<i64>,
) -> usize {
    let mut have = 0;
    let grace = Instant::now() + GRACE;
    while have < established {
        match tokio::time::timeout_at(grace, received.recv()).await {
            Ok(Some(delivery)) if delivery.id == id => {
                have += 1;
                latencies.push(delivery.latency);
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    established - have
}

/// What one long-polling client saw in one round.
enum Woken {
    /// Answered with the round's notification, `latency` µs after it was sent.
    With { latency: i64 },
    /// Answered, but without it.
    Without,
    /// No answer (the reason).
    Failed(String),
}

/// How a long-poll round sends its broadcast, and counts who waits for it.
enum Round {
    /// An INSERT to herald's `broadcast` channel.
    Insert(tokio_postgres::Client),
    /// A message to Nchan's broadcast channel.
    Publish(nchan::Publisher),
}

impl Round {
    async fn parked(&self, bench: &Bench) -> Result<usize> {
        match self {
            Round::Insert(_) => Ok(metric(bench, "herald_long_polls_parked").await? as usize),
            Round::Publish(_) => nchan::subscribers(bench).await,
        }
    }

    /// Sends one, stamped with the time it was sent.
    async fn send(&mut self) -> Result<()> {
        match self {
            Round::Insert(client) => {
                client
                    .execute(
                        "insert into notifications (channel, title, data)
                         values ('broadcast', 'bench', jsonb_build_object('t', $1::bigint))",
                        &[&now_micros()],
                    )
                    .await?;
            }
            Round::Publish(publisher) => {
                publisher
                    .publish(&format!("{{\"t\":{}}}", now_micros()))
                    .await?
            }
        }
        Ok(())
    }
}

pub(crate) async fn longpoll(bench: &Bench, n: usize, rounds: usize) -> Result<Report> {
    // Rounds insert a row (herald) or publish a message (Nchan).
    let mut round = match bench.nchan {
        false => Round::Insert(pg(bench).await?),
        true => Round::Publish(nchan::Publisher::connect(bench).await?),
    };
    let (woken_tx, mut woken) = mpsc::unbounded_channel();
    // Each client parks at once, and again as soon as it is answered (`park_repeatedly`).
    for i in 0..n {
        let (server, source, host) = (bench.server, bench.source(i), bench.host.clone());
        let token = bench.token(i);
        let woken_tx = woken_tx.clone();
        let nchan = bench.nchan;
        tokio::task::spawn_local(async move {
            let answer = |sent: Option<i64>, at: i64| {
                let _ = woken_tx.send(match sent {
                    Some(t) => Woken::With { latency: at - t },
                    None => Woken::Without,
                });
            };
            let parked = if nchan {
                nchan::park_repeatedly(server, source, &host, rounds, |body, at| {
                    let sent = serde_json::from_slice::<NoteData>(body).ok();
                    answer(sent.and_then(|data| data.t), at)
                })
                .await
            } else {
                park_repeatedly(server, source, &host, &token, Some(rounds), |page, at| {
                    answer(page.notifications.iter().find_map(|note| note.data.t), at)
                })
                .await
            };
            if let Err(why) = parked {
                let _ = woken_tx.send(Woken::Failed(why));
            }
        });
    }
    drop(woken_tx);

    let mut latencies = Vec::new();
    let (mut failed, mut incomplete) = (0, 0);
    let mut why: HashMap<String, u32> = HashMap::new();
    let mut answered = 0;
    for _ in 0..rounds {
        let waiting = n - failed;
        let deadline = Instant::now() + 6 * GRACE;
        while round.parked(bench).await? < waiting && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        round.send().await?;
        // This round is over when every client still in the game has been answered.
        let mut this_round = 0;
        let grace = Instant::now() + 6 * GRACE;
        while this_round + failed < n {
            match tokio::time::timeout_at(grace, woken.recv()).await {
                Ok(Some(Woken::With { latency })) => {
                    latencies.push(latency);
                    this_round += 1;
                }
                Ok(Some(Woken::Without)) => {
                    incomplete += 1;
                    this_round += 1;
                }
                Ok(Some(Woken::Failed(reason))) => {
                    failed += 1;
                    *why.entry(reason).or_default() += 1;
                }
                _ => break,
            }
        }
        answered += this_round;
    }
    let mut report = Report::new("longpoll");
    report
        .set("long_polls", n)
        .set("rounds", rounds)
        .set("answered", answered)
        .set("failed", failed)
        .set("failures", serde_json::to_value(&why)?)
        .set("answered_without_it", incomplete)
        .set("wake_latency", percentiles(&mut latencies));
    Ok(report)
}

/// One long-poll client: connects, takes its cursor, then waits for what comes after it,
/// `answers` times (`None`: until the process ends), handing each page and the µs stamp it
/// arrived at to `on_page`, and parks again at once (a connection left idle would be closed
/// after HERALD_KEEP_ALIVE_SECS). `Err`: why it stopped early.
async fn park_repeatedly(
    server: std::net::SocketAddr,
    source: IpAddr,
    host: &str,
    token: &str,
    answers: Option<usize>,
    mut on_page: impl FnMut(&Page, i64),
) -> std::result::Result<(), String> {
    let mut conn = match client::connect(server, source).await {
        Ok(socket) => Connection::new(socket, host),
        Err(err) => return Err(err.to_string()),
    };
    let first = conn
        .get(&format!("/api/notifications?limit=1&token={token}"))
        .await;
    // Why the first poll gave no cursor, as the parks below say it: a refusal under the
    // connection burst and a broken connection are different findings.
    let mut cursor = match first {
        Ok(r) if r.status == 200 => cursor_of(&r.body).ok_or("no cursor")?,
        Ok(r) => return Err(format!("first poll: status {}", r.status)),
        Err(err) => return Err(format!("first poll: {err}")),
    };
    let mut answered = 0;
    while answers.is_none_or(|answers| answered < answers) {
        let path = format!("/api/notifications?wait=60&after={cursor}&token={token}");
        let response = conn.get(&path).await;
        let at = now_micros();
        let page = match response {
            Ok(r) if r.status == 200 => serde_json::from_slice::<Page>(&r.body),
            Ok(r) => return Err(format!("status {}", r.status)),
            Err(err) => return Err(err.to_string()),
        };
        let Ok(page) = page else {
            return Err("unreadable page".into());
        };
        on_page(&page, at);
        cursor = page.cursor;
        answered += 1;
    }
    Ok(())
}

#[derive(Deserialize)]
struct Page {
    notifications: Vec<Note>,
    cursor: String,
}

fn cursor_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Page>(body).ok().map(|p| p.cursor)
}

pub(crate) async fn poll(
    bench: &Bench,
    connections: usize,
    duration_secs: u64,
    users: usize,
    limit: u32,
    path: Option<String>,
    bulk: Option<Bulk>,
) -> Result<Report> {
    // Something to list: 20 notifications in each polling user's inbox.
    let client = pg(bench).await?;
    let users: Vec<String> = (0..users)
        .map(|i| format!("user:{}", bench.user(i)))
        .collect();
    client
        .execute(
            "insert into notifications (channel, title, body)
             select u, 'bench ' || g, 'a notification to list'
             from unnest($1::text[]) u, generate_series(1, 20) g",
            &[&users],
        )
        .await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(duration_secs);
    let answered = Rc::new(Cell::new(0u64));
    let sampler = bulk.map(|_| tokio::task::spawn_local(sample(answered.clone(), deadline)));
    let mut tasks = Vec::new();
    for i in 0..connections {
        let socket = client::connect(bench.server, bench.source(i)).await?;
        let mut conn = Connection::new(socket, &bench.host);
        // Connection i polls users i, i + connections, ... in turn, like a worker of a
        // legacy app polling for each of its users.
        let paths: Vec<String> = match &path {
            Some(path) => vec![path.clone()],
            None => (i..users.len())
                .step_by(connections)
                .map(|u| format!("/api/notifications?limit={limit}&token={}", bench.token(u)))
                .collect(),
        };
        let answered = answered.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            for path in paths.iter().cycle() {
                if Instant::now() >= deadline {
                    break;
                }
                let started = Instant::now();
                match conn.get(path).await {
                    Ok(response) if response.status == 200 => {
                        latencies.push(started.elapsed().as_micros() as i64);
                        answered.set(answered.get() + 1);
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let inserted = async {
        match bulk {
            Some(bulk) => Some(bulk_insert(bench, bulk, &users, started).await),
            None => None,
        }
    };
    let polled = async {
        let (mut latencies, mut errors) = (Vec::new(), 0);
        for task in tasks {
            let (mut l, e) = task.await?;
            latencies.append(&mut l);
            errors += e;
        }
        Ok::<_, tokio::task::JoinError>((latencies, errors))
    };
    let (inserted, polled) = tokio::join!(inserted, polled);
    let (mut latencies, errors) = polled?;
    let mut report = Report::new("poll");
    if let Some(path) = path {
        report.set("path", path);
    }
    report
        .set("connections", connections)
        .set("users", users.len())
        .set("limit", limit)
        .set("duration_secs", duration_secs)
        .set("requests", latencies.len())
        .set("errors", errors)
        .set(
            "requests_per_sec",
            round(latencies.len() as f64 / duration_secs as f64),
        )
        .set("latency", percentiles(&mut latencies));
    if let (Some(bulk), Some(sampler), Some(inserted)) = (bulk, sampler, inserted) {
        let samples = sampler.await?;
        let (committed, caught_up) = inserted?;
        bulk_report(&mut report, bulk, &samples, started, committed, caught_up);
    }
    Ok(report)
}

/// A bulk insert during a poll run.
#[derive(Clone, Copy)]
pub(crate) struct Bulk {
    pub rows: usize,
    pub at_secs: u64,
}

/// How often a bulk run samples the requests answered so far.
const SAMPLE: Duration = Duration::from_millis(100);

/// `(when, requests answered by then)` every [`SAMPLE`] until `deadline`.
async fn sample(answered: Rc<Cell<u64>>, deadline: Instant) -> Vec<(Instant, u64)> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE);
    while Instant::now() < deadline {
        tick.tick().await;
        samples.push((Instant::now(), answered.get()));
    }
    samples
}

/// Inserts `bulk.rows` notifications to `users` in turn in one transaction, `bulk.at_secs`
/// after `started`; returns when it committed and when herald's listener had read them all.
async fn bulk_insert(
    bench: &Bench,
    bulk: Bulk,
    users: &[String],
    started: Instant,
) -> Result<(Instant, Option<Instant>)> {
    let client = pg(bench).await?;
    tokio::time::sleep_until(started + Duration::from_secs(bulk.at_secs)).await;
    let received = "herald_notifications_received_total";
    let before = metric(bench, received).await?;
    client
        .execute(
            "insert into notifications (channel, title, body)
             select ($1::text[])[1 + g % cardinality($1::text[])], 'bulk ' || g, 'one of many'
             from generate_series(0, $2::bigint - 1) g",
            &[&users, &(bulk.rows as i64)],
        )
        .await?;
    let committed = Instant::now();
    // The listener has read them when herald counts them received.
    let give_up = committed + Duration::from_secs(60);
    while Instant::now() < give_up {
        if metric(bench, received).await? >= before + bulk.rows as f64 {
            return Ok((committed, Some(Instant::now())));
        }
        tokio::time::sleep(SAMPLE).await;
    }
    Ok((committed, None))
}

/// Adds to `report`: requests/s in each second of the run and in the second before the
/// insert; when the listener had read the rows; and how long after that the rate came back to
/// 90% of the rate before.
fn bulk_report(
    report: &mut Report,
    bulk: Bulk,
    samples: &[(Instant, u64)],
    started: Instant,
    committed: Instant,
    caught_up: Option<Instant>,
) {
    // Requests/s over the second that ends at sample `i`.
    let per_sec = |i: usize| -> Option<f64> {
        let (end, count) = samples[i];
        let back = samples[..i]
            .iter()
            .rev()
            .find(|(at, _)| end.duration_since(*at) >= Duration::from_secs(1))?;
        Some((count - back.1) as f64 / end.duration_since(back.0).as_secs_f64())
    };
    let insert_at = started + Duration::from_secs(bulk.at_secs);
    let last_before = samples.iter().rposition(|(at, _)| *at <= insert_at);
    let rate_before = last_before.and_then(per_sec).unwrap_or(0.0);
    // Whole seconds of the run, so the warm-up (every first poll of a user is a database
    // read) shows as well as the insert.
    let last = samples.last().map_or(started, |(at, _)| *at);
    let each_second: Vec<f64> = (1..)
        .map(|secs| started + Duration::from_secs(secs))
        .take_while(|end| *end <= last)
        .filter_map(|end| samples.iter().rposition(|(at, _)| *at <= end))
        .filter_map(per_sec)
        .map(f64::round)
        .collect();
    report
        .set("bulk_rows", bulk.rows)
        .set("requests_per_sec_before_insert", rate_before.round())
        .set(
            "insert_secs",
            round(committed.duration_since(insert_at).as_secs_f64()),
        )
        .set("requests_per_sec_each_second", each_second);
    let Some(caught_up) = caught_up else {
        report.set("listener_read_all_secs_after_commit", "not within 60 s");
        return;
    };
    report.set(
        "listener_read_all_secs_after_commit",
        round(caught_up.duration_since(committed).as_secs_f64()),
    );
    let recovered = samples
        .iter()
        .enumerate()
        .filter(|(_, (at, _))| *at >= caught_up)
        .find(|(i, _)| per_sec(*i).is_some_and(|rate| rate >= 0.9 * rate_before))
        .map(|(_, (at, _))| round(at.duration_since(caught_up).as_secs_f64()));
    match recovered {
        Some(secs) => report.set("back_to_90_percent_secs_after_listener", secs),
        None => report.set("back_to_90_percent_secs_after_listener", "not in this run"),
    };
}

pub(crate) async fn writers_scenario(
    bench: &Bench,
    writers: usize,
    duration_secs: u64,
    rounds: usize,
    streams: usize,
) -> Result<Report> {
    // Open streams make the listener read about every millisecond while disarmed (someone
    // waits for rows). They are the bench users' own; the writers write to other users' channels.
    let (deliveries, _quiet) = mpsc::unbounded_channel();
    let (open, _) = open_streams(bench, streams, deliveries).await;
    settle_streams(bench, open).await?;
    let admin = pg(bench).await?;
    create_plain(&admin).await?;
    let mut clients = Vec::new();
    for _ in 0..writers {
        clients.push(Rc::new(pg(bench).await?));
    }
    let mut totals: HashMap<&str, (u64, f64)> = HashMap::new();
    let mut phases = Vec::new();
    // Phases alternate, so table growth and checkpoints fall on both alike.
    for round in 0..rounds {
        for table in [PLAIN, "notifications"] {
            let deadline = Instant::now() + Duration::from_secs(duration_secs);
            let started = Instant::now();
            let sql = format!(
                "insert into {table} (channel, title) values ('user:' || $1::int, 'bench')"
            );
            let mut tasks = Vec::new();
            for (w, client) in clients.iter().enumerate() {
                let (client, sql) = (client.clone(), sql.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    let statement = client.prepare(&sql).await.expect("prepares");
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let user = ((done as usize * 7919 + w) % 1000) as i32;
                        if client.execute(&statement, &[&user]).await.is_ok() {
                            done += 1;
                        }
                    }
                    done
                }));
            }
            let mut inserts = 0;
            for task in tasks {
                inserts += task.await?;
            }
            let secs = started.elapsed().as_secs_f64();
            let entry = totals.entry(table).or_default();
            entry.0 += inserts;
            entry.1 += secs;
            phases.push(serde_json::json!({
                "round": round, "table": table, "inserts_per_sec": round_to(inserts as f64 / secs)
            }));
        }
    }
    drop_plain(&admin).await?;
    let rate = |table: &str| totals.get(table).map_or(0.0, |(n, s)| *n as f64 / s);
    let (plain, herald) = (rate(PLAIN), rate("notifications"));
    let mut report = Report::new("writers");
    report
        .set("writers", writers)
        .set("streams_open", open)
        .set("phase_secs", duration_secs)
        .set("rounds", rounds)
        .set("plain_inserts_per_sec", round(plain))
        .set("herald_inserts_per_sec", round(herald))
        .set("ratio", round(herald / plain.max(1.0)))
        .set("phases", phases);
    Ok(report)
}

fn round(value: f64) -> f64 {
    round_to(value)
}

fn round_to(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A signal as a stream delivers it: the sender's stamp and sequence number in `data`.
#[derive(Deserialize)]
struct SignalNote {
    data: SignalData,
}

#[derive(Deserialize)]
struct SignalData {
    t: i64,
    seq: i64,
}

pub(crate) async fn signals(
    bench: &Bench,
    n: usize,
    rate: u32,
    duration_secs: u64,
    senders: usize,
) -> Result<Report> {
    const CHANNEL: &str = "signal:bench";
    let (deliveries, mut received) = mpsc::unbounded_channel();
    let (established, failed) =
        open_streams_on(bench, n, Some(CHANNEL), "signal", deliveries).await;
    settle_streams(bench, established).await?;
    let tokens: Vec<String> = (0..senders.max(1)).map(|i| bench.token(n + i)).collect();
    let mut sender = connection(bench).await?;
    let every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let end = Instant::now() + Duration::from_secs(duration_secs);
    let (mut sent, mut refused) = (0i64, 0usize);
    let mut next = Instant::now();
    while Instant::now() < end {
        tokio::time::sleep_until(next).await;
        next += every;
        let body = format!(
            r#"{{"channel":"{CHANNEL}","kind":"bench","data":{{"t":{},"seq":{sent}}}}}"#,
            now_micros()
        );
        let token = &tokens[sent as usize % tokens.len()];
        let response = sender.post("/api/signals", token, &body).await?;
        if response.status == 202 {
            sent += 1;
        } else {
            refused += 1;
        }
    }
    let mut latencies = Vec::new();
    let grace = Instant::now() + GRACE;
    let expected = sent as usize * established;
    while latencies.len() < expected {
        match tokio::time::timeout_at(grace, received.recv()).await {
            Ok(Some(delivery)) => latencies.push(delivery.latency),
            _ => break,
        }
    }
    let mut report = Report::new("signals");
    report
        .set("streams", n)
        .set("established", established)
        .set("failed", failed)
        .set("sent", sent)
        .set("refused", refused)
        .set("missing", expected - latencies.len())
        .set("latency", percentiles(&mut latencies));
    Ok(report)
}
