//! The `push` scenario, and the push service it runs: a minimal HTTP/1.1 server that takes
//! every push with `201` and counts them by subscription (the endpoint's last segment).
//! Pushes are not decrypted here: the API tests check the cryptography; this counts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Bench;
use crate::Result;
use crate::scenarios::{broadcast_round, metric, open_streams, pg, settle_streams};
use crate::stats::{Report, percentiles};

/// How long all pushes of all rounds may take to arrive once the last round was inserted.
const PUSH_GRACE: Duration = Duration::from_secs(180);

#[derive(Default)]
struct Counts {
    by_subscription: HashMap<u32, u32>,
    total: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

pub async fn push(
    bench: &Bench,
    n: usize,
    offline: usize,
    rounds: usize,
    port: u16,
) -> Result<Report> {
    let counts = Rc::new(RefCell::new(Counts::default()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let service = tokio::task::spawn_local(serve(listener, counts.clone()));

    let (deliveries, mut received) = mpsc::unbounded_channel();
    let (established, failed) = open_streams(bench, n, deliveries).await;
    settle_streams(bench, established).await?;
    let client = pg(bench).await?;
    client
        .execute("delete from herald_push_subscriptions", &[])
        .await?;
    let sent_before = metric(bench, "herald_pushes_sent_total").await?;

    // One broadcast per second, each timed to every stream.
    let mut round = async |latencies: &mut Vec<i64>| -> Result<usize> {
        let started = Instant::now();
        let missing = broadcast_round(&client, &mut received, established, latencies).await?;
        tokio::time::sleep_until(started + Duration::from_secs(1)).await;
        Ok(missing)
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let mut missing = 0;
    for _ in 0..rounds {
        missing += round(&mut without).await?;
    }
    // Users nobody streams for, one browser each; every browser the same keys (a push is
    // encrypted anew for each all the same).
    let (pair, auth) = ece::generate_keypair_and_auth_secret()?;
    let p256dh = URL_SAFE_NO_PAD.encode(pair.pub_as_raw()?);
    let auth = URL_SAFE_NO_PAD.encode(auth);
    client
        .execute(
            "insert into herald_push_subscriptions (user_id, endpoint, p256dh, auth)
             select 'offline' || i, 'http://127.0.0.1:' || $1::int || '/push/' || i, $2, $3
             from generate_series(0, $4::int - 1) i",
            &[&(port as i32), &p256dh, &auth, &(offline as i32)],
        )
        .await?;
    for _ in 0..rounds {
        missing += round(&mut with).await?;
    }
    let expected = offline * rounds;
    let deadline = Instant::now() + PUSH_GRACE;
    while counts.borrow().total < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Late duplicates would come after the last expected push: give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    service.abort();
    let sent = metric(bench, "herald_pushes_sent_total").await? - sent_before;
    let counts = counts.borrow();
    let twice = counts
        .by_subscription
        .values()
        .filter(|&&c| c as usize > rounds)
        .count();
    let short = (0..offline as u32)
        .filter(|i| (counts.by_subscription.get(i).copied().unwrap_or(0) as usize) < rounds)
        .count();
    let seconds = match (counts.first, counts.last) {
        (Some(first), Some(last)) => (last - first).as_secs_f64(),
        _ => 0.0,
    };
    let mut report = Report::new("push");
    report
        .set("streams", n)
        .set("established", established)
        .set("failed", failed)
        .set("offline_subscribed", offline)
        .set("rounds", rounds)
        .set("missing", missing)
        .set("latency_without_push", percentiles(&mut without))
        .set("latency_with_push", percentiles(&mut with))
        .set("pushes_expected", expected)
        .set("pushes_received", counts.total)
        .set("pushes_sent_metric", sent as usize)
        .set("subscriptions_pushed_twice", twice)
        .set("subscriptions_short", short)
        .set(
            "pushes_per_sec",
            if seconds > 0.0 {
                (counts.total as f64 / seconds).round()
            } else {
                0.0
            },
        );
    Ok(report)
}

/// Accepts connections until aborted.
async fn serve(listener: tokio::net::TcpListener, counts: Rc<RefCell<Counts>>) {
    while let Ok((socket, _)) = listener.accept().await {
        tokio::task::spawn_local(connection(socket, counts.clone()));
    }
}

/// One keep-alive connection: `POST /push/<i>` with a `Content-Length` body, answered 201.
async fn connection(socket: tokio::net::TcpStream, counts: Rc<RefCell<Counts>>) {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let subscription = line
            .split_whitespace()
            .nth(1)
            .and_then(|path| path.strip_prefix("/push/"))
            .and_then(|i| i.parse::<u32>().ok());
        let mut length = 0;
        loop {
            line.clear();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        body.resize(length, 0);
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        if let Some(i) = subscription {
            let mut counts = counts.borrow_mut();
            *counts.by_subscription.entry(i).or_default() += 1;
            counts.total += 1;
            let now = Instant::now();
            counts.first.get_or_insert(now);
            counts.last = Some(now);
        }
        let answer = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        if write.write_all(answer).await.is_err() {
            return;
        }
    }
}
