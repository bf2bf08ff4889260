//! The command line: `serve` (default), `migrate`, `send`, `token`, `prune`.

use std::error::Error;
use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};
use diesel::prelude::*;

use crate::auth::Auth;
use crate::config::Config;
use crate::models::NewNotification;
use crate::{devdb, store};

/// Real-time notifications for PostgreSQL apps: INSERT a row, every open tab gets it.
#[derive(Parser)]
#[command(name = "herald", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply pending migrations and serve HTTP (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Insert a notification (for cron jobs that prefer a command to SQL).
    Send(SendArgs),
    /// Mint a token for a user.
    Token(TokenArgs),
    /// Delete notifications older than an age, with their read state, in batches (cron).
    Prune(PruneArgs),
}

/// `herald prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Delete what was created longer ago than this: `90d`, `12h`, `30m`, `45s`, `2w`.
    #[arg(long, value_parser = crate::retention::parse_age)]
    pub older_than: std::time::Duration,
    /// Rows per batch (each batch is its own short transaction).
    #[arg(long, default_value_t = crate::retention::BATCH,
          value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch_size: i64,
}

/// `herald send`: the columns of SPEC section 1.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// `user:<id>`, `broadcast`, or any channel.
    #[arg(long)]
    pub channel: String,
    /// Headline.
    #[arg(long)]
    pub title: String,
    /// Text under the headline.
    #[arg(long)]
    pub body: Option<String>,
    /// What it is about (default `notification`).
    #[arg(long)]
    pub kind: Option<String>,
    /// info, success, warning or error (default info).
    #[arg(long)]
    pub level: Option<String>,
    /// A JSON object for the client (default `{}`).
    #[arg(long, value_parser = parse_json)]
    pub data: Option<serde_json::Value>,
}

/// `herald token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    pub user: String,
    /// Extra channel grants, comma-separated; `prefix*` patterns allowed.
    #[arg(long, value_delimiter = ',')]
    pub channels: Vec<String>,
    /// Allow `POST /api/notifications`.
    #[arg(long)]
    pub publish: bool,
    /// Seconds until it expires.
    #[arg(long, default_value_t = 3600)]
    pub ttl: i64,
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// Parses the command line (and the environment, for settings). Exits with usage on error.
pub fn parse(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> (Command, Config) {
    let cli = Cli::parse_from(args);
    (cli.command.unwrap_or(Command::Serve), cli.config)
}

/// `herald migrate`.
pub fn migrate(database_url: &str) -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut conn = PgConnection::establish(database_url)?;
    let applied = store::migrate(&mut conn)?;
    println!("migrations applied: {applied}");
    Ok(())
}

/// `herald send`: inserts the notification and prints it as JSON.
pub fn send(database_url: &str, args: SendArgs) -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut conn = PgConnection::establish(database_url)?;
    let new = NewNotification {
        channel: args.channel,
        title: args.title,
        body: args.body,
        kind: args.kind,
        level: args.level,
        data: args.data,
    };
    new.validate()?;
    let stored = store::notifications::insert(&mut conn, &new).map_err(|err| {
        // Constraint violations read better as the API words them.
        crate::error::AppError::from(err).to_string()
    })?;
    println!("{}", serde_json::to_string(&stored.to_json(false))?);
    Ok(())
}

/// `herald prune`: deletes in batches and prints how many notifications went.
pub fn prune(database_url: &str, args: PruneArgs) -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut conn = PgConnection::establish(database_url)?;
    let deleted = crate::retention::prune(&mut conn, args.older_than, args.batch_size)?;
    println!("pruned: {deleted}");
    Ok(())
}

/// `herald token`: prints a token signed with `HERALD_JWT_SECRET` (or the dev secret).
pub fn token(config: &Config, args: TokenArgs) -> Result<(), Box<dyn Error + Send + Sync>> {
    if !crate::channels::is_valid_user_id(&args.user) {
        return Err(format!("{:?} cannot be a user id", args.user).into());
    }
    let secret = match &config.jwt_secret {
        Some(secret) => secret.clone().into_bytes(),
        None => {
            eprintln!(
                "note: HERALD_JWT_SECRET is not set; signing with the dev secret in {}",
                config.data_dir.display()
            );
            devdb::dev_secret(&config.data_dir)?
        }
    };
    let auth = Auth::new(&secret, None);
    println!(
        "{}",
        auth.mint(&args.user, &args.channels, args.publish, args.ttl)
    );
    Ok(())
}
