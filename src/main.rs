//! The `herald` binary: dispatches the command, nothing else.

use herald::cli::{self, Command};
use herald::devdb::Database;
use herald::startup::Application;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    env_logger::init_from_env(env_logger::Env::new().default_filter_or("info"));
    let (command, mut config) = cli::parse(std::env::args_os()); // flags override env
    match command {
        Command::Serve => {
            let db = Database::open(&config)?; // DATABASE_URL, or the private cluster
            config.database_url = Some(db.url().to_owned());
            Application::build(config)
                .await?
                .run_until_stopped()
                .await?;
        }
        Command::Migrate => cli::migrate(Database::open(&config)?.url())?,
        Command::Send(args) => cli::send(Database::open(&config)?.url(), args)?,
        Command::Token(args) => cli::token(&config, args)?,
        Command::Prune(args) => cli::prune(Database::open(&config)?.url(), args)?,
    }
    Ok(())
}
