//! The command line: `serve` (default), `migrate`, `send`, `token`, `prune`, `vapid-keys`.
//!
//! Each command takes only the settings it uses (see [`crate::config`]), so its `--help` is
//! about it. `herald` alone, or `herald --bind ...`, means `herald serve ...`.

use std::error::Error;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::auth::Auth;
use crate::config::{Config, DatabaseArgs, Secret, SecretArgs};
use crate::devdb::Database;
use crate::models::NewNotification;
use crate::store;

/// Real-time notifications for PostgreSQL apps: INSERT a row, every open tab gets it.
#[derive(Parser)]
#[command(
    name = "herald",
    version,
    after_help = "Without a command, herald serves."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply pending migrations and serve HTTP (the default).
    Serve(Box<Config>),
    /// Apply pending migrations and exit.
    Migrate(DatabaseArgs),
    /// Insert a notification (for cron jobs that prefer a command to SQL).
    Send(SendArgs),
    /// Mint a token for a user.
    Token(TokenArgs),
    /// Delete notifications older than an age, with their read state, in batches (cron).
    Prune(PruneArgs),
    /// Print a new Web Push (VAPID) key pair: the private key for HERALD_VAPID_PRIVATE_KEY,
    /// and its public key (what browsers subscribe with; herald also serves it).
    VapidKeys,
}

/// `herald prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Delete what was created longer ago than this: `90d`, `12h`, `30m`, `45s`, `2w`.
    #[arg(long, value_parser = crate::config::parse_age)]
    pub older_than: std::time::Duration,
    /// Rows per batch (each batch is its own short transaction).
    #[arg(long, default_value_t = crate::store::retention::BATCH,
          value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch_size: i64,
}

/// `herald send`: the columns of a notification.
#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    database: DatabaseArgs,
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
    #[arg(long, default_value_t = 3600,
          value_parser = clap::value_parser!(i64).range(1..=366 * 86_400))]
    pub ttl: i64,
    #[command(flatten)]
    secret: SecretArgs,
    /// Where dev mode keeps its secret (used when HERALD_JWT_SECRET is unset).
    #[arg(long, env = "HERALD_DATA_DIR", default_value = ".herald")]
    data_dir: PathBuf,
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// Parses the command line (and the environment, for settings). Exits with usage (code 2)
/// on a malformed one.
pub fn parse(args: impl IntoIterator<Item = impl Into<OsString>>) -> Command {
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let named = args.get(1).and_then(|a| a.to_str()).is_some_and(|first| {
        matches!(first, "-h" | "--help" | "-V" | "--version" | "help")
            || Cli::command()
                .get_subcommands()
                .any(|c| c.get_name() == first)
    });
    if !named {
        args.insert(1.min(args.len()), "serve".into());
    }
    Cli::parse_from(args).command
}

/// Why a command failed, as a sentence. A [`crate::config::ConfigError`] means a setting herald
/// refuses (exit code 2).
pub type Failure = Box<dyn Error + Send + Sync>;

/// `herald migrate`.
pub fn migrate(database: &DatabaseArgs) -> Result<(), Failure> {
    let db = Database::open(database)?;
    let mut conn = store::connect(db.url().expose())?;
    let applied = store::migrate(&mut conn)?;
    println!("migrations applied: {applied}");
    Ok(())
}

/// `herald send`: inserts the notification and prints it as JSON.
pub fn send(args: SendArgs) -> Result<(), Failure> {
    let db = Database::open(&args.database)?;
    let mut conn = store::connect(db.url().expose())?;
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
    println!(
        "{}",
        serde_json::to_string(&stored.to_json(crate::models::ReaderState::NEW))?
    );
    Ok(())
}

/// `herald prune`: deletes in batches and prints how many notifications went.
pub fn prune(args: PruneArgs) -> Result<(), Failure> {
    let db = Database::open(&args.database)?;
    let mut conn = store::connect(db.url().expose())?;
    let deleted = store::retention::prune(&mut conn, args.older_than, args.batch_size)?;
    println!("pruned: {deleted}");
    Ok(())
}

/// `herald token`: prints a token signed with `HERALD_JWT_SECRET` (or the dev secret).
pub fn token(args: TokenArgs) -> Result<(), Failure> {
    args.secret.validate()?;
    if !crate::channels::is_valid_user_id(&args.user) {
        return Err(format!("{:?} cannot be a user id", args.user).into());
    }
    let secret = match args.secret.resolve(&args.data_dir)? {
        Secret::Configured(secret) => secret,
        Secret::Dev(secret) => {
            eprintln!(
                "note: HERALD_JWT_SECRET is not set; signing with the dev secret in {}",
                args.data_dir.display()
            );
            secret
        }
    };
    let auth = Auth::new(&secret, None);
    println!(
        "{}",
        auth.mint(&args.user, &args.channels, args.publish, args.ttl)
    );
    Ok(())
}

/// `herald vapid-keys`: a new key pair, as `web-push generate-vapid-keys` prints one.
pub fn vapid_keys() -> Result<(), Failure> {
    use crate::push::keys::Vapid;
    let private = Vapid::generate_private_key()?;
    let public = Vapid::from_private_key(&private, "mailto:unused")?;
    println!("HERALD_VAPID_PRIVATE_KEY={private}");
    println!("public key: {}", public.public_key());
    Ok(())
}
