//! Retention: deleting notifications older than an age, with their read state.
//!
//! Deletes go in batches, each its own short transaction, oldest ids first: no long lock,
//! and a writer or a reader never waits behind the whole prune. Read state goes with its
//! notification (`notification_reads` cascades), and the unread counts stay exact (the
//! deletion trigger of the `unread_counts` migration counts every batch).

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use tokio::sync::watch;

use crate::store::{self, DbPool};

/// Rows per batch.
pub const BATCH: i64 = 1000;
/// How often `serve` prunes when `HERALD_PRUNE_OLDER_THAN` is set.
pub const EVERY: Duration = Duration::from_secs(3600);

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

/// Prunes every [`EVERY`] until shutdown (`serve` with `HERALD_PRUNE_OLDER_THAN`).
pub async fn scheduled(pool: DbPool, age: Duration, shutdown: watch::Receiver<bool>) {
    let job = move |conn: &mut PgConnection| prune(conn, age, BATCH);
    store::every(pool, EVERY, shutdown, job, |result| match result {
        Ok(deleted) => log::info!("pruned deleted={deleted} older_than_secs={}", age.as_secs()),
        Err(err) => log::warn!("prune failed error={err}"),
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
