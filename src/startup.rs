//! Builds and runs the service: the HTTP server and the listener, side by side.
//!
//! [`Application::build`] is the only place `App::new()` is assembled; the tests call it too.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use tokio::sync::watch;

use crate::auth::Auth;
use crate::config::{Config, DatabaseUrl, Periods, Secret};
use crate::cursor::{Cursor, Snapshot};
use crate::error::describe;
use crate::http::HeadLimit;
use crate::hub::{Hub, Limits};
use crate::inbox::Inbox;
use crate::listener::Listener;
use crate::metrics::Metrics;
use crate::origins::Origins;
use crate::presence::Presence;
use crate::push::Push;
use crate::push::endpoint::Hosts;
use crate::push::keys::Vapid;
use crate::state::AppState;
use crate::store::DbPool;
use crate::{http, listener, pgtls, push, routes, store, upkeep};

/// A built, not yet running, herald.
pub struct Application {
    server: Server,
    port: u16,
    hub: Hub,
    listener: Listener,
    shutdown: watch::Sender<bool>,
    /// What the upkeep jobs need.
    upkeep: Upkeep,
    /// Presence's tick runs beside them.
    presence: Arc<Presence>,
    /// Web Push's sender, on a thread of its own.
    push: Option<Arc<Push>>,
    /// Over how long a shutdown ends the open streams.
    shutdown_spread: Duration,
}

/// Why herald could not start.
pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

impl Application {
    /// Connects, migrates, binds. `config.database_url` must be set (main resolves dev mode's
    /// private cluster first).
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        let database = Database::prepare(&config).await?;
        let (services, state) = Services::build(config, database)?;
        let http = Http::bind(&state.config)?;
        let port = http.port;
        let server = http.serve(state, &services)?;
        Ok(Application {
            server,
            port,
            hub: services.hub,
            listener: services.listener,
            shutdown: services.shutdown,
            upkeep: services.upkeep,
            presence: services.presence,
            push: services.push,
            shutdown_spread: services.shutdown_spread,
        })
    }

    /// The port the server is bound to (useful with `HERALD_BIND=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the service as SIGTERM does.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            server: self.server.handle(),
            hub: self.hub.clone(),
            spread: self.shutdown_spread,
        }
    }

    /// Serves until SIGTERM or SIGINT (or a [`Stopper`]), then shuts down gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        let listener = actix_web::rt::spawn(self.listener.run());
        let upkeep = actix_web::rt::spawn(upkeep::run(
            self.upkeep.pool,
            self.upkeep.prune_older_than,
            self.upkeep.periods,
            self.shutdown.subscribe(),
        ));
        let presence = actix_web::rt::spawn(self.presence.run(self.shutdown.subscribe()));
        let push = self.push.and_then(|push| {
            let shutdown = self.shutdown.subscribe();
            let (done, finished) = tokio::sync::oneshot::channel();
            // A runtime of its own (the sender's HTTP client is not `Send`, so it is made
            // there and stays there); the thread ends when the sender does.
            std::thread::Builder::new()
                .name("herald-push".into())
                .spawn(move || {
                    actix_web::rt::System::new().block_on(push.run(shutdown));
                    let _ = done.send(());
                })
                .map_err(|err| log::error!("Web Push could not start error={err}"))
                .ok()
                .map(|_| finished)
        });
        let signals = actix_web::rt::spawn(async move {
            wait_for_signal().await;
            log::info!("signal received, shutting down");
            stopper.stop().await;
        });
        let result = self.server.await;
        log::info!("http server stopped");
        signals.abort();
        let _ = self.shutdown.send(true);
        let _ = tokio::join!(listener, upkeep, presence);
        if let Some(finished) = push {
            let _ = finished.await;
        }
        result
    }
}

/// The VAPID keys from the settings; in dev mode, generated and kept in the data dir. `None`
/// (push off, said once) in production without them.
fn vapid(config: &Config) -> Result<Option<Vapid>, StartupError> {
    let (key, subject) = match &config.vapid_private_key {
        Some(key) => (
            key.expose_secret().to_owned(),
            config.vapid_subject.clone().unwrap_or_default(),
        ),
        None if config.dev_mode() => (
            Vapid::dev_private_key(&config.database.data_dir)?,
            config
                .vapid_subject
                .clone()
                .unwrap_or_else(|| "mailto:herald@localhost".to_owned()),
        ),
        None => {
            log::info!(
                "Web Push is off: set HERALD_VAPID_PRIVATE_KEY and HERALD_VAPID_SUBJECT to send \
                 browser notifications to users with no tab open"
            );
            return Ok(None);
        }
    };
    let vapid = Vapid::from_private_key(&key, &subject)
        .map_err(|err| format!("HERALD_VAPID_PRIVATE_KEY: {err}"))?;
    log::info!(
        "Web Push is on hosts={},{}",
        crate::push::endpoint::DEFAULT_HOSTS,
        config.push_hosts.join(",")
    );
    Ok(Some(vapid))
}

/// The database, checked and migrated before anything serves.
struct Database {
    url: DatabaseUrl,
    /// The LISTEN connection's connector (its URL may differ: a pooler in front).
    connector: pgtls::Connector,
    /// The snapshot the listener starts after.
    start: Snapshot,
}

impl Database {
    /// Tries each URL once, directly, before anything retries it: a wrong CA or a refused role
    /// is a clear error now rather than a pool or a listener waiting on it. Migrates, and takes
    /// the listener's starting snapshot before any request is accepted, so no stream can start
    /// live from an earlier one.
    async fn prepare(config: &Config) -> Result<Database, StartupError> {
        let url = config
            .database
            .database_url
            .clone()
            .ok_or("DATABASE_URL is not set")?;
        let listen_url = config.listen_url().unwrap_or(&url).clone();
        let connector = pgtls::Connector::new(listen_url.expose())
            .map_err(|err| format!("the LISTEN connection's URL ({listen_url}): {err}"))?;
        let migrate_url = url.clone();
        let (applied, start) = web::block(move || {
            let mut conn = store::connect(migrate_url.expose())
                .map_err(|err| format!("cannot connect to {migrate_url}: {err}"))?;
            let applied = store::migrate(&mut conn)?;
            Ok::<_, StartupError>((applied, store::current_snapshot(&mut conn)?))
        })
        .await??;
        log::info!("database ready migrations_applied={applied}");
        listener::check(&connector)
            .await
            .map_err(|err| format!("cannot LISTEN on {listen_url}: {}", describe(&err)))?;
        Ok(Database {
            url,
            connector,
            start,
        })
    }
}

/// Everything behind the routes: the hub and its listener, the pools, presence, push and
/// upkeep, and the token verifier.
struct Services {
    hub: Hub,
    listener: Listener,
    metrics: Arc<Metrics>,
    auth: web::Data<Auth>,
    shutdown: watch::Sender<bool>,
    upkeep: Upkeep,
    presence: Arc<Presence>,
    push: Option<Arc<Push>>,
    shutdown_spread: Duration,
}

impl Services {
    fn build(
        config: Config,
        database: Database,
    ) -> Result<(Services, web::Data<AppState>), StartupError> {
        let url = database.url.expose();
        let secret = match config.secret.resolve(&config.database.data_dir)? {
            Secret::Configured(secret) => secret,
            Secret::Dev(secret) => {
                log::warn!(
                    "DEV MODE: HERALD_JWT_SECRET is not set. Tokens are signed with a random dev \
                     secret (kept in {}) and GET /dev/token mints tokens for anyone. \
                     Never run like this in production.",
                    config.database.data_dir.display()
                );
                secret
            }
        };
        let auth = web::Data::new(Auth::new(&secret, config.jwt_audience.as_deref()));
        let metrics = Arc::new(Metrics::new());
        let hub = Hub::with_limits(
            Limits {
                per_user: config.max_streams_per_user as usize,
                total: config.max_streams as usize,
            },
            metrics.clone(),
        );
        let (shutdown, shutdown_rx) = watch::channel(false);
        let listener = Listener::new(
            database.connector,
            hub.clone(),
            metrics.clone(),
            shutdown_rx,
            Cursor::at(database.start),
            Duration::from_millis(config.listener_healthy_ms),
        );
        let pool = store::pool(url, config.db_pool_size, "herald-requests")?;
        // Upkeep runs on connections of its own: a burst of requests that drains the query
        // pool must not stall the roll-up, and a long prune must not hold request connections.
        let upkeep = Upkeep {
            pool: store::pool(url, 2, "herald-upkeep")?,
            prune_older_than: config.prune_older_than,
            periods: config.periods.clone(),
        };
        let presence = Arc::new(Presence::new(
            pool.clone(),
            upkeep.pool.clone(),
            hub.clone(),
            &config.periods,
        ));
        // Its own connections, as upkeep's: sending a broadcast's pushes never waits for, or
        // holds, a request's connection.
        let push = match vapid(&config)? {
            Some(vapid) => {
                let settings = push::Settings {
                    vapid,
                    hosts: Hosts::with_defaults(&config.push_hosts)?,
                    ttl: Duration::from_secs(config.push_ttl_secs),
                    tick: config.periods.push_tick(),
                };
                Some(Arc::new(Push::new(
                    settings,
                    store::pool(url, 2, "herald-push")?,
                    metrics.clone(),
                )))
            }
            None => None,
        };
        let shutdown_spread = Duration::from_secs(config.shutdown_spread_secs);
        let state = web::Data::new(AppState {
            inbox: Inbox::new(pool.clone(), hub.clone(), metrics.clone()),
            pool,
            hub: hub.clone(),
            config: Arc::new(config),
            metrics: metrics.clone(),
            signal_limits: Default::default(),
            presence: presence.clone(),
            push: push.clone(),
        });
        let services = Services {
            hub,
            listener,
            metrics,
            auth,
            shutdown,
            upkeep,
            presence,
            push,
            shutdown_spread,
        };
        Ok((services, state))
    }
}

/// Connections the kernel queues for herald to accept. Streams are long-lived, so a deploy or
/// a network blip brings thousands of reconnects at once: queued, each waits its turn; beyond
/// the queue, a handshake is dropped and the client tries again only a second or more later.
/// The kernel caps it at `net.core.somaxconn` (4096 by default).
const BACKLOG: i32 = 4096;

/// A listening socket on `addr` with [`BACKLOG`]. actix's own `HttpServer::backlog` applies
/// only to sockets actix binds, and std's `TcpListener::bind` listens with a backlog of 128:
/// listening again on Linux sets the new one.
fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let tcp = TcpListener::bind(addr)?;
    socket2::SockRef::from(&tcp).listen(BACKLOG)?;
    Ok(tcp)
}

/// The HTTP side: a bound socket, and the server on it.
struct Http {
    tcp: TcpListener,
    port: u16,
}

impl Http {
    fn bind(config: &Config) -> Result<Http, StartupError> {
        if let Some(limit) = open_file_limit()
            && u64::from(config.max_streams) + 256 > limit
        {
            log::warn!(
                "HERALD_MAX_STREAMS={} is near or above this process's open-file limit ({limit}): \
                 past it, connections fail instead of getting 503; raise `ulimit -n` or lower \
                 HERALD_MAX_STREAMS",
                config.max_streams
            );
        }
        let tcp = listen(&config.bind)
            .map_err(|err| format!("cannot listen on {} (HERALD_BIND): {err}", config.bind))?;
        let local = tcp.local_addr()?;
        // The URL to open: an address that means "every interface" is reachable locally.
        let host = match local.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        log::info!("listening url=http://{host}:{}/", local.port());
        Ok(Http {
            tcp,
            port: local.port(),
        })
    }

    /// The one place `App::new()` is assembled.
    fn serve(
        self,
        state: web::Data<AppState>,
        services: &Services,
    ) -> Result<Server, StartupError> {
        let config = state.config.clone();
        let dev_mode = config.dev_mode();
        let origins = web::Data::new(Origins::new(&config.allowed_origins));
        let head_limit = web::Data::new(HeadLimit(config.max_header_bytes as usize));
        let max_body = config.max_body_bytes as usize;
        let web_dir = config.web_dir.clone();
        let auth = services.auth.clone();
        let metrics = services.metrics.clone();
        let write_timeout = Duration::from_secs(config.write_timeout_secs);
        let server = HttpServer::new(move || {
            // The last wrap is outermost: the access log sees every answer, CORS refusals
            // included, and CORS headers go on the head-limit's 431 too.
            App::new()
                .wrap(from_fn(http::limit_head))
                .wrap(http::cors(origins.get_ref().clone()))
                .wrap(from_fn(http::json_cors_errors))
                .wrap(from_fn(http::count_requests))
                .wrap(http::access_log())
                .app_data(state.clone())
                .app_data(auth.clone())
                .app_data(origins.clone())
                .app_data(head_limit.clone())
                .configure(|cfg| routes::configure(cfg, dev_mode, max_body, web_dir.clone()))
                .default_service(web::to(routes::not_found))
        })
        .on_connect(move |io, extensions| http::on_connect(io, extensions, write_timeout, &metrics))
        // A client that closes its side is gone: without this, actix keeps streaming to it until
        // a write fails (the next heartbeat, or the one after), and its slot stays taken.
        .h1_allow_half_closed(false)
        .client_request_timeout(Duration::from_secs(config.request_timeout_secs))
        .keep_alive(Duration::from_secs(config.keep_alive_secs))
        // We handle signals ourselves: streams must be ended before actix waits for them.
        .disable_signals()
        // Room for the spread-out closes, and for the last requests to finish after them.
        .shutdown_timeout(services.shutdown_spread.as_secs() + 5)
        .listen(self.tcp)?
        .run();
        Ok(server)
    }
}

/// The upkeep jobs' pool and settings (see [`crate::upkeep`]).
struct Upkeep {
    pool: DbPool,
    prune_older_than: Option<Duration>,
    periods: Periods,
}

/// Stops a running [`Application`].
#[derive(Clone)]
pub struct Stopper {
    server: ServerHandle,
    hub: Hub,
    spread: Duration,
}

impl Stopper {
    /// Stops taking connections, ends every stream and parked long-poll, spread over
    /// `HERALD_SHUTDOWN_SPREAD_SECS` so their clients do not all reconnect at once, and stops
    /// the server. Streams still open get notifications until they end: the listener stops
    /// after the server (`run_until_stopped`).
    pub async fn stop(&self) {
        futures_util::future::join(self.hub.close_over(self.spread), self.server.stop(true)).await;
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The soft limit on open files (Linux), which bounds connections more than any setting here.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::time::Duration;

    /// A reconnect storm waits in the kernel's queue while herald is busy: with std's backlog
    /// of 128, the 130th handshake of connections nobody has accepted yet was dropped.
    #[test]
    fn the_listening_socket_queues_hundreds_of_connections_before_any_is_accepted() {
        let tcp = listen("127.0.0.1:0").expect("listens");
        let addr = tcp.local_addr().expect("bound");
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap_or_default();
        let mut queued = Vec::new();
        for n in 1..=300 {
            // A dropped handshake is only retried after a second; two mean it was dropped.
            let conn =
                TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_or_else(|err| {
                    panic!(
                        "connection {n} not queued ({err}); net.core.somaxconn is {}",
                        somaxconn.trim()
                    )
                });
            queued.push(conn);
        }
    }
}
