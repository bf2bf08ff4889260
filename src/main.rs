//! The `herald` binary: dispatches the command, nothing else.

use std::process::ExitCode;

use herald::cli::{self, Command, Failure};
use herald::config::ConfigError;
use herald::devdb::Database;
use herald::startup::Application;

#[actix_web::main]
async fn main() -> ExitCode {
    // Before libpq loads OpenSSL: without an exit handler, a pool thread that is connecting as
    // the process exits cannot crash it (diesel-rs/diesel#3441).
    openssl::init();
    env_logger::init_from_env(env_logger::Env::new().default_filter_or("info"));
    let result: Result<(), Failure> = match cli::parse(std::env::args_os()) {
        Command::Serve(config) => serve(*config).await,
        Command::Migrate(database) => cli::migrate(&database),
        Command::Send(args) => cli::send(args),
        Command::Token(args) => cli::token(args),
        Command::Prune(args) => cli::prune(args),
        Command::VapidKeys => cli::vapid_keys(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("herald: {}", herald::error::describe(&*err));
            // A refused setting is a usage error, as clap's own are.
            let usage = err.downcast_ref::<ConfigError>().is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

async fn serve(mut config: herald::config::Config) -> Result<(), Failure> {
    config.validate()?;
    let db = Database::open(&config.database)?; // DATABASE_URL, or the private cluster
    config.database.database_url = Some(db.url().clone());
    Application::build(config)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
