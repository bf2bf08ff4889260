//! Configuration: read once, from flags or the environment (flags win), by clap.
//!
//! Nothing else in herald reads the environment. Each field's `///` doc is also its `--help`
//! text; README.md has the same table. Each command takes only the settings it uses, so
//! `herald token --help` is about tokens. Secrets never reach a log: the JWT secret is a
//! [`SecretString`] and database URLs print with their password redacted.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// The shortest `HERALD_JWT_SECRET` accepted: HS256 signs with a 256-bit key (RFC 7518 3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// A PostgreSQL URL. Its `Debug` and `Display` hide the password, so it can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    /// The URL itself, password included: for connecting, never for logging.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<DatabaseUrl, Self::Err> {
        Ok(DatabaseUrl::new(s))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// Where the data is: every command that reads or writes notifications.
#[derive(clap::Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// PostgreSQL URL (`sslmode`, `sslrootcert` honoured). Unset: a private cluster under
    /// the data dir (dev mode).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,

    /// Where dev mode keeps its private PostgreSQL cluster and dev secret.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = ".herald")]
    pub data_dir: PathBuf,
}

/// What signs and verifies tokens.
#[derive(clap::Args, Clone, Debug)]
pub struct SecretArgs {
    /// HS256 secret that signs tokens, at least 32 bytes (Django's SIMPLE_JWT SIGNING_KEY to
    /// accept its tokens). Unset with nothing else configured: dev mode, with a random secret
    /// and a token endpoint for the demo page.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true,
          value_parser = parse_secret)]
    pub jwt_secret: Option<SecretString>,
}

fn parse_secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s))
}

/// The secret tokens are signed with, and where it came from.
pub enum Secret {
    /// `HERALD_JWT_SECRET`.
    Configured(Vec<u8>),
    /// Dev mode's random secret, kept in the data dir.
    Dev(Vec<u8>),
}

impl SecretArgs {
    /// The secret to sign with: `HERALD_JWT_SECRET`, or else dev mode's, made once and kept in
    /// `data_dir` (the one place `serve` and `token` both get it from).
    pub fn resolve(&self, data_dir: &std::path::Path) -> std::io::Result<Secret> {
        Ok(match &self.jwt_secret {
            Some(secret) => Secret::Configured(secret.expose_secret().as_bytes().to_vec()),
            None => Secret::Dev(crate::files::dev_secret(data_dir)?),
        })
    }

    /// Refuses a secret that is set but too short to be safe: an empty one would let anyone
    /// sign tokens. Only an unset secret means dev mode.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.jwt_secret {
            Some(secret) if secret.expose_secret().len() < MIN_SECRET_BYTES => {
                Err(ConfigError(format!(
                    "HERALD_JWT_SECRET is set but is {} bytes long; it must be at least \
                     {MIN_SECRET_BYTES} bytes (unset it to run in dev mode)",
                    secret.expose_secret().len()
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The settings of `herald serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// A separate URL for the LISTEN connection, for when DATABASE_URL goes through a pooler
    /// in transaction mode (LISTEN needs a direct session). Defaults to DATABASE_URL.
    #[arg(long, env = "HERALD_LISTEN_DATABASE_URL", hide_env_values = true)]
    pub listen_database_url: Option<DatabaseUrl>,

    /// Address the HTTP server binds.
    #[arg(long, env = "HERALD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    #[command(flatten)]
    pub secret: SecretArgs,

    /// Dev mode on purpose: a random secret and `GET /dev/token`, which mints any token for
    /// anyone, whatever the database and address. Without it, dev mode runs only when nothing
    /// is configured (no DATABASE_URL, no HERALD_JWT_SECRET) on a loopback address.
    #[arg(long, env = "HERALD_DEV")]
    pub dev: bool,

    /// The `aud` tokens must carry; unset, tokens that carry an `aud` are refused.
    #[arg(long, env = "HERALD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Seconds between keep-alive comments on idle streams.
    #[arg(long, env = "HERALD_HEARTBEAT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub heartbeat_secs: u64,

    /// Database connections for queries (streams and parked long-polls hold none).
    #[arg(long, env = "HERALD_DB_POOL_SIZE", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=200))]
    pub db_pool_size: u32,

    /// Largest request body accepted, in bytes; bigger bodies get 413.
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = 256 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024))]
    pub max_body_bytes: u64,

    /// Largest request head (request line and headers), in bytes; bigger gets 431.
    #[arg(long, env = "HERALD_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024))]
    pub max_header_bytes: u64,

    /// Open streams, parked long-polls and unfinished request bodies one user may hold; past
    /// it, 503 with Retry-After.
    #[arg(long, env = "HERALD_MAX_STREAMS_PER_USER", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_user: u32,

    /// Open streams, parked long-polls and unfinished request bodies in all; past it, 503
    /// with Retry-After. Keep it below the process's open-file limit.
    #[arg(long, env = "HERALD_MAX_STREAMS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,

    /// The longest `wait` a long-poll may ask for, in seconds (at most 60).
    #[arg(long, env = "HERALD_MAX_WAIT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=60))]
    pub max_wait_secs: u64,

    /// Seconds a client has to send its request head, and then its body, before it gets 408.
    #[arg(long, env = "HERALD_REQUEST_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub request_timeout_secs: u64,

    /// Seconds an idle keep-alive connection stays open between requests.
    #[arg(long, env = "HERALD_KEEP_ALIVE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keep_alive_secs: u64,

    /// Seconds a connection may leave sent data unacknowledged (a client that stopped reading)
    /// before the kernel drops it (TCP_USER_TIMEOUT).
    #[arg(long, env = "HERALD_WRITE_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout_secs: u64,

    /// Seconds over which a shutdown (SIGTERM) ends the open streams and parked long-polls,
    /// one at a time, so their clients do not all reconnect in the same second.
    #[arg(long, env = "HERALD_SHUTDOWN_SPREAD_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=60))]
    pub shutdown_spread_secs: u64,

    /// Milliseconds the LISTEN connection must stay up for its next drop to count as a first
    /// one: reconnects wait 100 ms, doubling to 5 s while they keep failing, and back to
    /// 100 ms after a session this long.
    #[arg(long, env = "HERALD_LISTENER_HEALTHY_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub listener_healthy_ms: u64,

    #[command(flatten)]
    pub periods: Periods,

    /// Origins (`https://app.example.com`, comma-separated) whose pages may call herald
    /// cross-origin (CORS) and may send cookie-authenticated POSTs. The service's own origin
    /// is always allowed; `*` and `null` are refused.
    #[arg(long, env = "HERALD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Development: serve the demo page and herald.js from this directory (`web`), read on
    /// every request, instead of the copies compiled into herald.
    #[arg(long, env = "HERALD_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// When set (e.g. `90d`), `serve` deletes notifications older than this every hour, as
    /// `herald prune --older-than` does. Units: s, m, h, d, w.
    #[arg(long, env = "HERALD_PRUNE_OLDER_THAN", value_parser = parse_age)]
    pub prune_older_than: Option<Duration>,

    /// Web Push: the VAPID private key, the raw 32-byte P-256 scalar in base64url (as
    /// `web-push generate-vapid-keys` prints it). Unset: push is off (dev mode makes a key).
    #[arg(long, env = "HERALD_VAPID_PRIVATE_KEY", hide_env_values = true,
          value_parser = parse_secret)]
    pub vapid_private_key: Option<SecretString>,

    /// Web Push: who runs this herald, for the push services (`mailto:ops@example.com` or an
    /// `https:` URL). Required with HERALD_VAPID_PRIVATE_KEY.
    #[arg(long, env = "HERALD_VAPID_SUBJECT")]
    pub vapid_subject: Option<String>,

    /// Web Push: hosts subscription endpoints may name besides the browsers' own push
    /// services, which are always allowed (comma-separated; `*.example.com` for its
    /// subdomains; `host:port` for another port than 443). Endpoints are `https://`, but for a
    /// listed `host:port` on a loopback address (a local test push service).
    #[arg(long, env = "HERALD_PUSH_HOSTS", value_delimiter = ',')]
    pub push_hosts: Vec<String>,

    /// Web Push: how long a push may wait at the push service for an offline browser, and
    /// how long herald retries one the push service refused for a while (seconds).
    #[arg(long, env = "HERALD_PUSH_TTL_SECS", default_value_t = 24 * 3600,
          value_parser = clap::value_parser!(u64).range(60..=28 * 24 * 3600))]
    pub push_ttl_secs: u64,
}

/// The default periods ([`Periods`]).
const PRESENCE_TICK_MS: u64 = 1000;
const PRESENCE_GRACE_MS: u64 = 5000;
const PUSH_TICK_MS: u64 = 1000;
const ROLL_UP_MS: u64 = 1000;
const PRUNE_EVERY_SECS: u64 = 3600;

/// How often herald's background jobs run ([`crate::jobs`]). The defaults are what SPEC's
/// promises are measured against; tests shorten them.
#[derive(clap::Args, Clone, Debug)]
pub struct Periods {
    /// Milliseconds between presence ticks: each refreshes this instance's rows and reads the
    /// channels its streams watch (a join shows within one, SPEC: 3 s).
    #[arg(long, env = "HERALD_PRESENCE_TICK_MS", default_value_t = PRESENCE_TICK_MS,
          value_parser = clap::value_parser!(u64).range(50..=2000))]
    pub presence_tick_ms: u64,

    /// Milliseconds a user stays present after their last stream on an instance closes: a
    /// reload within it is neither a leave nor a join (SPEC: 5 s).
    #[arg(long, env = "HERALD_PRESENCE_GRACE_MS", default_value_t = PRESENCE_GRACE_MS,
          value_parser = clap::value_parser!(u64).range(0..=8000))]
    pub presence_grace_ms: u64,

    /// Milliseconds between Web Push scans for notifications to push and pushes due.
    #[arg(long, env = "HERALD_PUSH_TICK_MS", default_value_t = PUSH_TICK_MS,
          value_parser = clap::value_parser!(u64).range(50..=5000))]
    pub push_tick_ms: u64,

    /// Milliseconds between roll-ups of unread counts (a count reads the rows since the last).
    #[arg(long, env = "HERALD_ROLL_UP_MS", default_value_t = ROLL_UP_MS,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub roll_up_ms: u64,

    /// Seconds between prunes when HERALD_PRUNE_OLDER_THAN is set.
    #[arg(long, env = "HERALD_PRUNE_EVERY_SECS", default_value_t = PRUNE_EVERY_SECS,
          value_parser = clap::value_parser!(u64).range(1..=7 * 86_400))]
    pub prune_every_secs: u64,
}

impl Default for Periods {
    fn default() -> Periods {
        Periods {
            presence_tick_ms: PRESENCE_TICK_MS,
            presence_grace_ms: PRESENCE_GRACE_MS,
            push_tick_ms: PUSH_TICK_MS,
            roll_up_ms: ROLL_UP_MS,
            prune_every_secs: PRUNE_EVERY_SECS,
        }
    }
}

impl Periods {
    /// The presence tick.
    pub fn presence_tick(&self) -> Duration {
        Duration::from_millis(self.presence_tick_ms)
    }

    /// Presence's grace after a last stream closes.
    pub fn presence_grace(&self) -> Duration {
        Duration::from_millis(self.presence_grace_ms)
    }

    /// The Web Push tick.
    pub fn push_tick(&self) -> Duration {
        Duration::from_millis(self.push_tick_ms)
    }

    /// The unread-count roll-up's period.
    pub fn roll_up(&self) -> Duration {
        Duration::from_millis(self.roll_up_ms)
    }

    /// How often `serve` prunes.
    pub fn prune_every(&self) -> Duration {
        Duration::from_secs(self.prune_every_secs)
    }
}

/// A setting that herald refuses to start with; the message names it. Exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Checks what clap cannot: settings that would make herald unsafe to run.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()?;
        self.check_dev_mode()?;
        for origin in &self.allowed_origins {
            check_origin(origin)?;
        }
        crate::push::endpoint::Hosts::with_defaults(&self.push_hosts)
            .map_err(|err| ConfigError(format!("HERALD_PUSH_HOSTS: {err}")))?;
        match (&self.vapid_private_key, &self.vapid_subject) {
            (Some(_), None) => {
                return Err(ConfigError(
                    "HERALD_VAPID_PRIVATE_KEY is set without HERALD_VAPID_SUBJECT (mailto: or \
                     https:), which push services require"
                        .into(),
                ));
            }
            (_, Some(subject))
                if !(subject.starts_with("mailto:") || subject.starts_with("https://")) =>
            {
                return Err(ConfigError(format!(
                    "HERALD_VAPID_SUBJECT must be a mailto: or https: URL, not {subject:?}"
                )));
            }
            _ => {}
        }
        if let Some(key) = &self.vapid_private_key {
            crate::push::keys::Vapid::from_private_key(key.expose_secret(), "mailto:check")
                .map_err(|err| ConfigError(format!("HERALD_VAPID_PRIVATE_KEY: {err}")))?;
        }
        Ok(())
    }

    /// Interval of the keep-alive comment on SSE streams.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// The URL the LISTEN connection uses.
    pub fn listen_url(&self) -> Option<&DatabaseUrl> {
        self.listen_database_url
            .as_ref()
            .or(self.database.database_url.as_ref())
    }

    /// True when tokens are signed with a random secret and the dev token endpoint is open
    /// ([`Config::validate`] refuses a start without a secret where that is not safe).
    pub fn dev_mode(&self) -> bool {
        self.secret.jwt_secret.is_none()
    }

    /// Dev mode hands anyone a token for any user, so it must never be what a forgotten
    /// secret falls back to on a real database or a reachable address (SPEC section 9): only
    /// `--dev`, or nothing configured on loopback, opens it.
    fn check_dev_mode(&self) -> Result<(), ConfigError> {
        let has_secret = self.secret.jwt_secret.is_some();
        if has_secret || self.dev {
            return if has_secret && self.dev {
                Err(ConfigError(
                    "HERALD_DEV is set together with HERALD_JWT_SECRET: dev mode signs with a \
                     random secret of its own; unset one of them"
                        .into(),
                ))
            } else {
                Ok(())
            };
        }
        let why = if self.database.database_url.is_some() {
            "DATABASE_URL is set".to_owned()
        } else if !is_loopback_bind(&self.bind) {
            format!("HERALD_BIND={} is not a loopback address", self.bind)
        } else {
            return Ok(());
        };
        Err(ConfigError(format!(
            "HERALD_JWT_SECRET is not set and {why}: set HERALD_JWT_SECRET to a secret of at \
             least {MIN_SECRET_BYTES} bytes (for example `openssl rand -hex 32`), or pass --dev \
             (HERALD_DEV=true) to run in dev mode, where anyone can mint tokens, on purpose"
        )))
    }
}

/// True if every address `bind` names is a loopback one (`127.0.0.1:8080`, `[::1]:0`,
/// `localhost:8080`); an address that does not resolve is not.
fn is_loopback_bind(bind: &str) -> bool {
    use std::net::ToSocketAddrs;
    bind.to_socket_addrs().is_ok_and(|addrs| {
        let addrs: Vec<_> = addrs.collect();
        !addrs.is_empty() && addrs.iter().all(|addr| addr.ip().is_loopback())
    })
}

/// An allowed origin must be exactly what browsers send in `Origin`: `scheme://host[:port]`.
/// `*` would let every site read herald's answers with the user's cookie, and `null` is what
/// any sandboxed frame sends.
fn check_origin(origin: &str) -> Result<(), ConfigError> {
    let refuse = |why: &str| {
        Err(ConfigError(format!(
            "HERALD_ALLOWED_ORIGINS: {origin:?} {why}; list origins like https://app.example.com"
        )))
    };
    let origin = origin.trim().trim_end_matches('/');
    if origin == "*" || origin.eq_ignore_ascii_case("null") {
        return refuse("would let any page in");
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return refuse("is not an origin");
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return refuse("is not an http or https origin");
    }
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@', '*', ' '])
        || authority.starts_with(':')
    {
        return refuse("is not an origin (scheme, host and port only)");
    }
    if let Err(why) = crate::push::endpoint::port_of(authority) {
        return refuse(&format!("has a bad port: {why}"));
    }
    Ok(())
}

/// Parses an age like `90d`, `12h`, `30m`, `45s` or `2w`.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?}: give a unit: s, m, h, d or w (90d)"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: expected a number then a unit (90d)"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}: s, m, h, d or w")),
    };
    // At most about 1,000 years: PostgreSQL's timestamps end there, and it is long enough.
    n.checked_mul(unit_secs)
        .filter(|&secs| secs > 0 && secs <= 1000 * 366 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: out of range"))
}

/// The URL with any password replaced, fit for a log line.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsed url>".to_owned();
    };
    let redacted = match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') {
                ":<redacted>"
            } else {
                ""
            };
            format!("{scheme}://{user}{hidden}@{host}")
        }
        None => url.to_owned(),
    };
    // libpq also takes the password as a parameter.
    redact_params(&redacted)
}

fn redact_params(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                format!("{key}=<redacted>")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:<redacted>@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact_url("postgres://db/x?user=a&password=s3cret&sslmode=require"),
            "postgres://db/x?user=a&password=<redacted>&sslmode=require"
        );
        assert_eq!(redact_url("garbage"), "<unparsed url>");
        let url = DatabaseUrl::new("postgres://app:s3cret@db/x");
        assert!(!format!("{url:?} {url}").contains("s3cret"));
    }

    #[test]
    fn a_secret_that_is_set_must_be_long_enough() {
        let secret = |s: Option<&str>| SecretArgs {
            jwt_secret: s.map(SecretString::from),
        };
        assert!(secret(None).validate().is_ok(), "unset: dev mode");
        assert!(secret(Some("")).validate().is_err());
        assert!(secret(Some("x")).validate().is_err());
        assert!(secret(Some(&"x".repeat(31))).validate().is_err());
        assert!(secret(Some(&"x".repeat(32))).validate().is_ok());
        let message = secret(Some("hunter2")).validate().unwrap_err().to_string();
        assert!(!message.contains("hunter2"), "{message}");
        let debug = format!("{:?}", secret(Some("hunter2-hunter2-hunter2-hunter2-x")));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn allowed_origins_must_be_real_origins() {
        for good in [
            "https://app.example.com",
            "http://localhost:8000",
            "https://app.example.com/",
        ] {
            assert!(check_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "*",
            "null",
            "NULL",
            "",
            "app.example.com",
            "https://",
            "https://app.example.com/path",
            "https://*.example.com",
            "ftp://x",
            "https://user@app.example.com",
            "https://a.com:99999",
            "https://a.com:-443",
            "https://a.com:",
        ] {
            assert!(check_origin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ages_read_with_their_unit() {
        assert_eq!(parse_age("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
    }

    #[test]
    fn ages_without_a_unit_or_out_of_range_are_refused() {
        for bad in [
            "90",
            "d",
            "",
            "-1d",
            "1y",
            "0d",
            "99999999999999999999d",
            "1.5d",
        ] {
            assert!(parse_age(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
