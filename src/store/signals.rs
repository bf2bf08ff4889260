//! Signals between instances (SPEC section 8): relayed by NOTIFY, never stored.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::signals::SIGNALS_CHANNEL;

/// Hands `payload` (a [`crate::signals::Wire`] as JSON) to every instance's listener, at
/// once: `pg_notify` outside an explicit transaction commits with the statement.
pub fn relay(conn: &mut PgConnection, payload: &str) -> QueryResult<()> {
    diesel::sql_query("select pg_notify($1, $2)")
        .bind::<Text, _>(SIGNALS_CHANNEL)
        .bind::<Text, _>(payload)
        .execute(conn)
        .map(drop)
}
