//! What every handler and middleware shares: [`AppState`]. Nothing here knows how the service
//! is assembled (that is `startup`, which nothing imports).

use std::sync::Arc;

use diesel::pg::PgConnection;
use diesel::result::QueryResult;

use crate::config::Config;
use crate::error::AppResult;
use crate::hub::Hub;
use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::push::Push;
use crate::signals::RateLimiter;
use crate::store;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Query connections.
    pub pool: store::DbPool,
    /// Fan-out to open streams and parked long-polls.
    pub hub: Hub,
    /// Every answer about a user's notifications, and every write to them.
    pub inbox: Inbox,
    /// Settings.
    pub config: Arc<Config>,
    /// Every counter and gauge, the listener's health included.
    pub metrics: Arc<Metrics>,
    /// Who is present where, shared with the other instances through the database.
    pub presence: Arc<Presence>,
    /// Each user's signal budget on this instance.
    pub signal_limits: Arc<RateLimiter>,
    /// Web Push, if configured.
    pub push: Option<Arc<Push>>,
}

impl AppState {
    /// Runs `query` on a query connection ([`store::run`]).
    pub async fn db<T, F>(&self, query: F) -> AppResult<T>
    where
        F: FnOnce(&mut PgConnection) -> QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        Ok(store::run(&self.pool, query).await?)
    }
}
