//! Unread counts come from rolled-up per-channel counts (the `unread_counts` migration). They
//! must always equal a plain count of the unread rows, whatever happens in between: inserts
//! (single and bulk, some in transactions held open across roll-ups), roll-ups, single reads,
//! "mark all read", deletes and truncates.

use actix_web::http::StatusCode;

use crate::helpers::{Rng, TestApp, migrated_db, roll_up_counts, spawn_app};

/// The unread count by definition (SPEC section 2): inbox rows the mark does not cover and
/// that were not read one by one. O(inbox): what herald must not do per request.
const UNREAD_BY_DEFINITION: &str = "select count(*)
     from notifications n
     left join notification_read_marks m on m.user_id = $1
     where n.channel in ('user:' || $1, 'broadcast')
       and not coalesce(pg_visible_in_snapshot(n.txid, m.read_through), false)
       and not exists (select 1 from notification_reads r
                       where r.user_id = $1 and r.notification_id = n.id)";

const USERS: [&str; 3] = ["1", "2", "3"];
const CHANNELS: [&str; 5] = ["user:1", "user:2", "user:3", "broadcast", "order:7"];

async fn assert_counts_right(app: &TestApp, pg: &tokio_postgres::Client, step: &str) {
    app.caught_up().await;
    for user in USERS {
        let expected: i64 = pg
            .query_one(UNREAD_BY_DEFINITION, &[&user])
            .await
            .expect("reference count")
            .get(0);
        assert_eq!(
            app.unread_count(user).await,
            expected,
            "user {user}'s unread count after {step}"
        );
    }
}

#[actix_web::test]
async fn unread_counts_stay_exact_through_roll_ups_reads_and_deletes() {
    let app = spawn_app().await;
    let pg = app.pg().await;
    let mut rng = Rng::from_env("unread counts");
    // Transactions holding inserted rows uncommitted, so that roll-ups and marks happen while
    // rows with smaller ids are still invisible.
    let mut open: Vec<tokio_postgres::Client> = Vec::new();
    let mut steps = Vec::new();
    for _ in 0..160 {
        let channel = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
        let user = USERS[rng.below(USERS.len() as u64) as usize];
        let step = match rng.below(12) {
            0..=2 => {
                let rows = 1 + rng.below(3) as i32;
                pg.execute(
                    "insert into notifications (channel, title)
                     select $1, 'n' from generate_series(1, $2)",
                    &[&channel, &rows],
                )
                .await
                .expect("insert");
                format!("insert {rows} into {channel}")
            }
            3 => {
                open.push(app.insert_uncommitted(channel, "late").await);
                format!("open insert into {channel}")
            }
            4 if !open.is_empty() => {
                let client = open.swap_remove(rng.below(open.len() as u64) as usize);
                client.batch_execute("commit").await.expect("commit");
                "commit an open insert".to_owned()
            }
            5 | 6 => {
                roll_up_counts(&pg).await;
                "roll-up".to_owned()
            }
            7 => {
                let (status, body) = app
                    .post(
                        "/api/notifications/read_all",
                        Some(&app.token_for(user)),
                        None,
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                format!("user {user} reads all")
            }
            8 => {
                let inbox: Vec<i64> = pg
                    .query(
                        "select id from notifications where channel in ('user:' || $1, 'broadcast')",
                        &[&user],
                    )
                    .await
                    .expect("inbox ids")
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                if inbox.is_empty() {
                    continue;
                }
                let id = inbox[rng.below(inbox.len() as u64) as usize];
                let (status, body) = app
                    .post(
                        &format!("/api/notifications/{id}/read"),
                        Some(&app.token_for(user)),
                        None,
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                format!("user {user} reads {id}")
            }
            9 | 10 => {
                let deleted = pg
                    .execute(
                        "delete from notifications where id in
                         (select id from notifications where channel = $1
                          order by random() limit 2)",
                        &[&channel],
                    )
                    .await
                    .expect("delete");
                format!("delete {deleted} from {channel}")
            }
            // TRUNCATE waits for every open transaction on the table.
            11 if open.is_empty() && rng.percent(30) => {
                pg.batch_execute("truncate notifications cascade")
                    .await
                    .expect("truncate");
                "truncate".to_owned()
            }
            _ => continue,
        };
        steps.push(step);
        assert_counts_right(&app, &pg, &steps.join(", ")).await;
    }
    for client in open {
        client.batch_execute("commit").await.expect("commit");
    }
    assert_counts_right(&app, &pg, "committing the rest").await;
}

#[actix_web::test]
async fn counting_a_large_inbox_reads_a_handful_of_rows() {
    let app = spawn_app().await;
    // One statement per transaction, as a cron job's would be.
    for sql in [
        "insert into notifications (channel, title)
         select 'user:big', 'n' from generate_series(1, 20000)",
        "insert into notifications (channel, title) values ('user:big', 'tail'), ('broadcast', 'b')",
        "analyze notifications",
    ] {
        app.sql(sql).await;
        if sql.starts_with("insert") && sql.contains("generate_series") {
            app.roll_up_counts().await;
        }
    }
    let (_, body) = app
        .get(
            "/api/notifications/unread_count",
            Some(&app.token_for("big")),
        )
        .await;
    assert_eq!(body["unread_count"], 20002);

    // Work, not time: the index entries and rows the count reads, from this transaction's
    // own statistics. A count over the inbox reads all 20,000.
    let pg = app.pg().await;
    pg.batch_execute("begin").await.unwrap();
    let unread: i64 = pg
        .query_one("select herald_unread_count('big')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unread, 20002);
    let read: i64 = pg
        .query_one(
            "select sum(pg_stat_get_xact_tuples_returned(oid))::bigint from pg_class
             where oid = 'notifications'::regclass
                or oid in (select indexrelid from pg_index
                           where indrelid = 'notifications'::regclass)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    pg.batch_execute("commit").await.unwrap();
    assert!(read < 100, "counting read {read} rows and index entries");
}

#[actix_web::test]
async fn a_read_that_outlived_a_mark_all_read_is_not_subtracted_twice() {
    let app = spawn_app().await;
    let id = app.insert("user:1", "one").await;
    app.insert("user:1", "two").await;
    app.post(
        "/api/notifications/read_all",
        Some(&app.token_for("1")),
        None,
    )
    .await;
    // As a single read committed while the mark was being made would leave it (or an app
    // writing reads itself): a read of a row the mark covers.
    app.sql(&format!(
        "insert into notification_reads (user_id, notification_id) values ('1', {id})"
    ))
    .await;
    app.insert("user:1", "three").await;
    assert_eq!(app.unread_count("1").await, 1);
}

#[actix_web::test]
async fn rows_with_a_txid_past_every_snapshot_are_counted_once_however_often_counts_roll_up() {
    // Rows restored from another cluster can carry transaction ids this one has not reached.
    // No herald serves this database: the listener has no business with such rows.
    let (_db, pg) = migrated_db().await;
    pg.batch_execute(
        "insert into notifications (channel, title) values ('user:7', 'here');
         insert into notifications (channel, title, txid)
         values ('user:7', 'restored',
                 (pg_current_xact_id()::text::bigint + 1000000)::text::xid8);",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        roll_up_counts(&pg).await;
        let counted: i64 = pg
            .query_one("select herald_unread_count('7')", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(counted, 2);
    }
}

#[actix_web::test]
async fn deleting_rows_a_mark_covered_keeps_the_count_exact() {
    let app = spawn_app().await;
    for title in ["a", "b", "c", "d"] {
        app.insert("user:1", title).await;
    }
    app.insert("broadcast", "all").await;
    app.roll_up_counts().await;
    app.post(
        "/api/notifications/read_all",
        Some(&app.token_for("1")),
        None,
    )
    .await;
    // Pruning-like: rows older than the mark go, in both inbox channels.
    app.sql("delete from notifications where title in ('a', 'b', 'all')")
        .await;
    app.insert("user:1", "new").await;
    app.insert("broadcast", "new for all").await;
    assert_eq!(app.unread_count("1").await, 2);
    app.roll_up_counts().await;
    assert_eq!(app.unread_count("1").await, 2);
    assert_eq!(app.unread_count("2").await, 1);
}

#[actix_web::test]
async fn concurrent_deleters_neither_wait_for_each_other_nor_deadlock_and_counts_stay_exact() {
    let app = spawn_app().await;
    let pg = app.pg().await;
    pg.batch_execute(
        "insert into notifications (channel, title)
         select (array['user:1', 'user:2', 'broadcast'])[1 + i % 3], 'n'
         from generate_series(1, 600) i",
    )
    .await
    .unwrap();
    roll_up_counts(&pg).await;
    let mark = app
        .post(
            "/api/notifications/read_all",
            Some(&app.token_for("1")),
            None,
        )
        .await;
    assert_eq!(mark.0, StatusCode::OK);
    pg.batch_execute(
        "insert into notifications (channel, title)
         select (array['user:1', 'user:2', 'broadcast'])[1 + i % 3], 'new'
         from generate_series(1, 60) i",
    )
    .await
    .unwrap();

    // Two transactions each delete from two channels, in opposite orders, and both hold
    // their first deletion while the other makes its own: with row locks on the counts this
    // deadlocked, with one lock for all deleters the second waited for the first's commit.
    let first = app.pg().await;
    let second = app.pg().await;
    first
        .batch_execute("begin; delete from notifications where id in (select id from notifications where channel = 'user:1' limit 20)")
        .await
        .unwrap();
    tokio::time::timeout(
        crate::helpers::WAIT,
        second.batch_execute("begin; delete from notifications where id in (select id from notifications where channel = 'broadcast' limit 20)"),
    )
    .await
    .expect("the second deleter did not wait for the first")
    .unwrap();
    let both = async {
        futures_util::future::try_join(
            first.batch_execute("delete from notifications where id in (select id from notifications where channel = 'broadcast' and title = 'new' limit 5); commit"),
            second.batch_execute("delete from notifications where id in (select id from notifications where channel = 'user:1' and title = 'new' limit 5); commit"),
        )
        .await
    };
    tokio::time::timeout(crate::helpers::WAIT, both)
        .await
        .expect("neither deleter waited on the other")
        .expect("no deadlock");

    // Roll-ups skipped their turns while the deleters worked; they fold the deltas now.
    assert_counts_right(&app, &pg, "two deleters").await;
    roll_up_counts(&pg).await;
    assert_counts_right(&app, &pg, "the roll-up after them").await;
    let pending: i64 = pg
        .query_one("select count(*) from notification_count_deltas", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0, "the roll-up folded every delta");
}
