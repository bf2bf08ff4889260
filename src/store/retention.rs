//! Retention: deleting notifications older than an age, with their read state.
//!
//! Deletes go in batches, each its own short transaction, oldest ids first: no long lock,
//! and a writer or a reader never waits behind the whole prune. Read state goes with its
//! notification (`notification_reads` cascades), and the unread counts stay exact (the
//! deletion trigger counts every batch).

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

/// Rows per batch.
pub const BATCH: i64 = 1000;

/// Deletes the notifications created more than `age` ago, `batch` at a time; returns how
/// many went.
pub fn prune(conn: &mut PgConnection, age: Duration, batch: i64) -> QueryResult<u64> {
    #[derive(QueryableByName)]
    struct Deleted {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let (mut total, mut after) = (0, 0);
    loop {
        // `skip locked`: two instances pruning at once share the work instead of queueing.
        // In id order the old rows come first; each batch starts after the last one's ids,
        // so none re-reads the index entries of rows already deleted.
        let deleted: Vec<Deleted> = diesel::sql_query(
            "delete from notifications where id in (
                 select id from notifications
                 where id > $3 and created_at < now() - make_interval(secs => $1)
                 order by id
                 limit $2
                 for update skip locked)
             returning id",
        )
        .bind::<BigInt, _>(age.as_secs() as i64)
        .bind::<BigInt, _>(batch)
        .bind::<BigInt, _>(after)
        .load(conn)?;
        total += deleted.len() as u64;
        if (deleted.len() as i64) < batch {
            return Ok(total);
        }
        after = deleted.iter().map(|row| row.id).max().unwrap_or(after);
    }
}

/// Deletes entries of the change log (`herald_changes`) older than ten minutes: a listener
/// reads them within a second, and one that was away longer forgets all it remembered.
pub fn prune_change_log(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::sql_query("delete from herald_changes where at < now() - interval '10 minutes'")
        .execute(conn)
}
