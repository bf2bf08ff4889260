//! Configuration: read once, from flags or the environment (flags win), by clap.
//!
//! Nothing else in herald reads the environment. Each field's `///` doc is also its `--help`
//! text; README.md has the same table.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// herald's settings, shared by every command.
#[derive(clap::Args, Clone)]
pub struct Config {
    /// PostgreSQL URL. Unset: herald runs a private cluster under the data dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// A separate URL for the LISTEN connection, for when DATABASE_URL goes through a pooler
    /// in transaction mode (LISTEN needs a direct session). Defaults to DATABASE_URL.
    #[arg(long, env = "HERALD_LISTEN_DATABASE_URL", global = true)]
    pub listen_database_url: Option<String>,

    /// Address the HTTP server binds.
    #[arg(
        long,
        env = "HERALD_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: String,

    /// HS256 secret that signs tokens (Django's SIMPLE_JWT SIGNING_KEY to accept its tokens).
    /// Unset: dev mode, with a random secret and a token endpoint for the demo page.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// The `aud` tokens must carry; unset, tokens that carry an `aud` are refused.
    #[arg(long, env = "HERALD_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,

    /// Seconds between keep-alive comments on idle streams.
    #[arg(long, env = "HERALD_HEARTBEAT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub heartbeat_secs: u64,

    /// Database connections for queries (streams and parked long-polls hold none).
    #[arg(long, env = "HERALD_DB_POOL_SIZE", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=200), global = true)]
    pub db_pool_size: u32,

    /// Largest request body accepted, in bytes; bigger bodies get 413.
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = 256 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=16 * 1024 * 1024), global = true)]
    pub max_body_bytes: u64,

    /// Largest request head (request line and headers), in bytes; bigger gets 431.
    #[arg(long, env = "HERALD_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024), global = true)]
    pub max_header_bytes: u64,

    /// Open streams plus parked long-polls one user may hold; past it, 503 with Retry-After.
    #[arg(long, env = "HERALD_MAX_STREAMS_PER_USER", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_streams_per_user: u32,

    /// Open streams plus parked long-polls in all; past it, 503 with Retry-After. Keep it
    /// below the process's open-file limit.
    #[arg(long, env = "HERALD_MAX_STREAMS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_streams: u32,

    /// The longest `wait` a long-poll may ask for, in seconds (SPEC allows up to 60).
    #[arg(long, env = "HERALD_MAX_WAIT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=60), global = true)]
    pub max_wait_secs: u64,

    /// Seconds a client has to send its request head before it gets 408 (slow clients).
    #[arg(long, env = "HERALD_REQUEST_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300), global = true)]
    pub request_timeout_secs: u64,

    /// Seconds an idle keep-alive connection stays open between requests.
    #[arg(long, env = "HERALD_KEEP_ALIVE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub keep_alive_secs: u64,

    /// Seconds a connection may leave sent data unacknowledged (a client that stopped reading)
    /// before the kernel drops it (TCP_USER_TIMEOUT).
    #[arg(long, env = "HERALD_WRITE_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub write_timeout_secs: u64,

    /// Origins (`https://app.example.com`, comma-separated) whose pages may call herald
    /// cross-origin (CORS) and may send cookie-authenticated POSTs. The service's own origin
    /// is always allowed.
    #[arg(
        long,
        env = "HERALD_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_origins: Vec<String>,

    /// When set (e.g. `90d`), `serve` deletes notifications older than this every hour, as
    /// `herald prune --older-than` does. Units: s, m, h, d, w.
    #[arg(long, env = "HERALD_PRUNE_OLDER_THAN", value_parser = crate::retention::parse_age,
          global = true)]
    pub prune_older_than: Option<Duration>,

    /// Where dev mode keeps its private PostgreSQL cluster and dev secret.
    #[arg(
        long,
        env = "HERALD_DATA_DIR",
        default_value = ".herald",
        global = true
    )]
    pub data_dir: PathBuf,
}

impl Config {
    /// Interval of the keep-alive comment on SSE streams.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// The URL the LISTEN connection uses.
    pub fn listen_url(&self) -> Option<&str> {
        self.listen_database_url
            .as_deref()
            .or(self.database_url.as_deref())
    }

    /// True when tokens are signed with a random secret and the dev token endpoint is open.
    pub fn dev_mode(&self) -> bool {
        self.jwt_secret.is_none()
    }
}

impl fmt::Debug for Config {
    /// Secrets and database passwords never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field(
                "listen_database_url",
                &self.listen_database_url.as_deref().map(redact_url),
            )
            .field("bind", &self.bind)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_audience", &self.jwt_audience)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .field("db_pool_size", &self.db_pool_size)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_streams_per_user", &self.max_streams_per_user)
            .field("max_streams", &self.max_streams)
            .field("max_wait_secs", &self.max_wait_secs)
            .field("prune_older_than", &self.prune_older_than)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("write_timeout_secs", &self.write_timeout_secs)
            .field("allowed_origins", &self.allowed_origins)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// The URL with any password replaced, fit for a log line.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsed url>".to_owned();
    };
    match rest.split_once('@') {
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
    }
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
        assert_eq!(redact_url("garbage"), "<unparsed url>");
    }
}
