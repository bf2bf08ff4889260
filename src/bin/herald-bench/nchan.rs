//! nginx + Nchan as the server, for side-by-side figures: the same clients, rounds and tally
//! as herald's `longpoll` and `broadcast`, against Nchan's long-poll and EventSource
//! subscribers and its HTTP publisher (`bench/nchan.conf`). Nchan keeps its messages in memory and stores nothing, which is
//! what issue 28 measures herald against.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::client::{self, Connection};
use crate::{Bench, Result};

/// Where a long-poll waits for the next broadcast.
const SUBSCRIBE: &str = "/sub/broadcast";
/// Where a stream (EventSource) receives the broadcasts.
pub const STREAM: &str = "/sse/broadcast";
/// Where a round publishes it, and where the channel's subscribers are counted.
const PUBLISH: &str = "/pub/broadcast";

/// One long-poll client: waits for the next message on the broadcast channel `answers` times,
/// handing each body and the µs stamp it arrived at to `on_body`, and asks again at once for
/// what follows it (Nchan's `If-Modified-Since` and `If-None-Match`). `Err`: why it stopped.
pub async fn park_repeatedly(
    server: SocketAddr,
    source: IpAddr,
    host: &str,
    answers: usize,
    mut on_body: impl FnMut(&[u8], i64),
) -> std::result::Result<(), String> {
    let mut conn = match client::connect(server, source).await {
        Ok(socket) => Connection::new(socket, host),
        Err(err) => return Err(err.to_string()),
    };
    // No validators at first: with `nchan_subscriber_first_message newest`, the next message.
    let mut after = String::new();
    for _ in 0..answers {
        let response = conn.get_with(SUBSCRIBE, &after).await;
        let at = crate::stats::now_micros();
        let response = match response {
            Ok(r) if r.status == 200 => r,
            Ok(r) => return Err(format!("status {}", r.status)),
            Err(err) => return Err(err.to_string()),
        };
        on_body(&response.body, at);
        let (Some(modified), Some(etag)) = (response.last_modified, response.etag) else {
            return Err("no Last-Modified or Etag".into());
        };
        after = format!("If-Modified-Since: {modified}\r\nIf-None-Match: {etag}\r\n");
    }
    Ok(())
}

/// Long-polls waiting on (or streams open to) the broadcast channel (0 before the first has subscribed).
pub async fn subscribers(bench: &Bench) -> Result<usize> {
    #[derive(Deserialize)]
    struct Channel {
        subscribers: usize,
    }
    let response = connection(bench)
        .await?
        .get_with(PUBLISH, "Accept: text/json\r\n")
        .await?;
    match response.status {
        200 => Ok(serde_json::from_slice::<Channel>(&response.body)?.subscribers),
        404 => Ok(0),
        status => Err(format!("channel info: status {status}").into()),
    }
}

/// A kept-alive connection that publishes to the broadcast channel (as herald's rounds insert
/// on an open database connection: no connect in the latency).
pub struct Publisher(Connection);

impl Publisher {
    pub async fn connect(bench: &Bench) -> Result<Publisher> {
        Ok(Publisher(connection(bench).await?))
    }

    /// Publishes `body`.
    pub async fn publish(&mut self, body: &str) -> Result<()> {
        let response = self.0.post_plain(PUBLISH, body).await?;
        match response.status {
            201 | 202 => Ok(()),
            status => Err(format!("publish: status {status}").into()),
        }
    }
}

async fn connection(bench: &Bench) -> Result<Connection> {
    let socket = client::connect(bench.server, IpAddr::V4(Ipv4Addr::LOCALHOST)).await?;
    Ok(Connection::new(socket, &bench.host))
}
