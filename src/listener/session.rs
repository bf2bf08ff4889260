//! The LISTEN connection itself: connecting (TLS as the URL says), and the task that pumps
//! its messages. Notifications only surface through `Connection::poll_message`; the usual
//! `spawn(connection)` would drop them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::poll_fn;
use postgres_native_tls::TlsStream;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Connection, Socket};

use crate::hub::{Hub, Signal};
use crate::metrics::Metrics;
use crate::pgtls::Connector;
use crate::signals::{SIGNALS_CHANNEL, Wire};
use crate::store::{self, reads::READS_CHANNEL};

use super::ROWS_CHANNEL;

/// Read-state notifications queued between the connection and the listener. More than this
/// and the listener has fallen behind a burst of marks: streams are told to recount instead.
const READS_QUEUE: usize = 1024;

/// What arrives on the connection, sorted for the listener.
pub(super) struct Messages {
    /// Rows committed: wake-ups coalesce, one read covers any number.
    pub wake: Arc<Notify>,
    /// Read-state changes, as their JSON payloads.
    pub reads: mpsc::Receiver<String>,
    /// Set when a read-state change did not fit in the queue.
    pub reads_lost: Arc<std::sync::atomic::AtomicBool>,
    /// Ends with the connection (`Err` if it failed).
    pub driver: JoinHandle<Result<(), tokio_postgres::Error>>,
}

/// A new LISTEN connection: set up to notice a half-open TCP connection within a minute.
pub(super) async fn connect(
    connector: &Connector,
) -> Result<(Client, Connection<Socket, TlsStream<Socket>>), tokio_postgres::Error> {
    let mut config = connector.config.clone();
    config
        .application_name("herald-listener")
        .connect_timeout(Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(15))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(30));
    config.connect(connector.tls.clone()).await
}

/// Connects once and closes again: at startup, a URL that cannot work (a wrong CA, a server
/// that refuses TLS) is a clear error instead of a listener retrying for ever.
pub async fn check(connector: &Connector) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = connect(connector).await?;
    let driver = actix_web::rt::spawn(connection);
    let result = store::listen::ping(&client).await;
    drop(client);
    let _ = driver.await;
    result
}

/// Drives `connection`, sorting its notifications into [`Messages`].
pub(super) fn pump(
    mut connection: Connection<Socket, TlsStream<Socket>>,
    metrics: Arc<Metrics>,
    hub: Hub,
) -> Messages {
    let wake = Arc::new(Notify::new());
    let (reads_tx, reads) = mpsc::channel::<String>(READS_QUEUE);
    let reads_lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (driver_wake, lost) = (wake.clone(), reads_lost.clone());
    let driver = actix_web::rt::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == READS_CHANNEL => {
                    if reads_tx.try_send(n.payload().to_owned()).is_err() {
                        lost.store(true, std::sync::atomic::Ordering::Release);
                        driver_wake.notify_one();
                    }
                }
                // Straight to the streams: a signal waits for no read, and no row for it.
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == SIGNALS_CHANNEL => {
                    relay_signal(&hub, &metrics, n.payload());
                }
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == ROWS_CHANNEL => {
                    metrics.listener_wakeups.inc();
                    driver_wake.notify_one();
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err),
                None => return Ok(()),
            }
        }
    });
    Messages {
        wake,
        reads,
        reads_lost,
        driver,
    }
}

/// Hands another instance's signal, or one sent with `herald_signal`, to this one's streams.
fn relay_signal(hub: &Hub, metrics: &Metrics, payload: &str) {
    match serde_json::from_str::<Wire>(payload) {
        // Delivered already, when it was sent. `herald_signal`'s origin is no instance's.
        Ok(wire) if wire.origin == hub.origin() => {}
        Ok(wire) => {
            hub.signal(Signal {
                channel: wire.channel,
                json: wire.event.get().into(),
            });
            metrics.signals_relayed.inc();
        }
        // Not one of ours: someone NOTIFYing on our channel by hand.
        Err(err) => log::warn!("signal ignored: not a herald signal: {err}"),
    }
}

/// LISTENs on every channel herald hears.
pub(super) async fn listen(client: &Client) -> Result<(), tokio_postgres::Error> {
    store::listen::listen(client, &[ROWS_CHANNEL, READS_CHANNEL, SIGNALS_CHANNEL]).await
}
