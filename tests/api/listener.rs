//! The LISTEN connection's failures, and the wake-up switch.

use std::time::Duration;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// Work, not time: the rows and index entries of `notifications` read so far in this
/// transaction, from its own statistics.
const WORK: &str = "select sum(pg_stat_get_xact_tuples_returned(oid))::bigint from pg_class
                    where oid = 'notifications'::regclass
                       or oid in (select indexrelid from pg_index
                                  where indrelid = 'notifications'::regclass)";

/// Ends this app's LISTEN session from the server side, as a failover or a pooler would.
async fn kill_listener(app: &TestApp) {
    app.sql(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where application_name = 'herald-listener' and datname = current_database()",
    )
    .await;
}

/// Kills the live listener and returns the delay herald chose before reconnecting.
async fn drop_and_read_delay(app: &TestApp) -> f64 {
    app.wait_for_metric("herald_listener_up", 1).await;
    let reconnects = app.metric("herald_listener_reconnects_total").await;
    kill_listener(app).await;
    app.wait_for_metric("herald_listener_reconnects_total", reconnects + 1)
        .await;
    app.metric_f64("herald_listener_reconnect_delay_seconds")
        .await
}

#[actix_web::test]
async fn reconnect_delays_double_while_drops_repeat_and_start_over_after_a_healthy_session() {
    const HEALTHY_MS: u64 = 700;
    let app = spawn_app_with(|config| config.listener_healthy_ms = HEALTHY_MS).await;

    // Drops in a row, each as soon as the listener is live again: 100 ms, 200, 400, 800
    // (plus up to half again of jitter).
    let mut delays = Vec::new();
    for _ in 0..4 {
        delays.push(drop_and_read_delay(&app).await);
    }
    for (n, (delay, base)) in delays.iter().zip([0.1, 0.2, 0.4, 0.8]).enumerate() {
        assert!(
            (base..base * 1.5).contains(delay),
            "drop {}: delay {delay} s, expected {base} s plus jitter ({delays:?})",
            n + 1
        );
    }

    // A session that stays live for the healthy period makes the next drop a first one
    // again: after the fifth drop herald waits 100 ms, not 1.6 s.
    app.wait_for_metric("herald_listener_up", 1).await;
    tokio::time::sleep(Duration::from_millis(HEALTHY_MS + 100)).await;
    let delay = drop_and_read_delay(&app).await;
    assert!(
        (0.1..0.15).contains(&delay),
        "after a healthy session: {delay} s"
    );
    let mut events = app.open_events(&app.token_for("1"), "", None).await;
    app.insert("user:1", "after the drops").await;
    assert_eq!(events.titles(1).await, vec!["after the drops"]);
}

#[actix_web::test]
async fn after_the_listener_backend_is_killed_herald_reconnects_and_delivers_what_was_missed() {
    let app = spawn_app().await;
    let mut events = app.open_events(&app.token_for("1"), "", None).await;
    app.insert("user:1", "before").await;
    assert_eq!(events.titles(1).await, vec!["before"]);

    kill_listener(&app).await;
    app.insert("user:1", "while down 1").await;
    app.insert("broadcast", "while down 2").await;

    assert_eq!(events.titles(2).await, vec!["while down 1", "while down 2"]);
    app.wait_until_ready().await;
    app.insert("user:1", "after").await;
    assert_eq!(events.titles(1).await, vec!["after"]);
}

#[actix_web::test]
async fn rows_inserted_while_herald_polls_without_notify_are_all_delivered_once() {
    // A burst makes the listener disarm NOTIFY and poll; the quiet after makes it re-arm.
    // Neither switch may lose or repeat a row.
    let app = spawn_app().await;
    let mut events = app.open_events(&app.token_for("1"), "", None).await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let app = &app;
            async move {
                for i in 0..50 {
                    app.insert("user:1", &format!("w{w}-{i}")).await;
                }
            }
        })
        .collect();
    futures_util::future::join_all(writers).await;
    let mut expected: Vec<String> = (0..4)
        .flat_map(|w| (0..50).map(move |i| format!("w{w}-{i}")))
        .collect();

    let mut received = events.titles(200).await;
    app.insert("user:1", "sentinel").await;
    assert_eq!(
        events.titles(1).await,
        vec!["sentinel"],
        "nothing repeated before the sentinel"
    );

    received.sort();
    expected.sort();
    assert_eq!(received, expected);
    let armed: Vec<bool> = app
        .pg()
        .await
        .query("select armed from herald_listeners", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(armed.len(), 1, "one listener registered");
}

/// Waits (bounded) until the app's listener row says `armed = want`, inserting a row per
/// round when `burst` (sustained load is what makes herald disarm). Returns rows inserted.
async fn until_armed(app: &crate::helpers::TestApp, want: bool, burst: bool) -> usize {
    let client = app.pg().await;
    let deadline = tokio::time::Instant::now() + crate::helpers::WAIT;
    let mut inserted = 0;
    loop {
        let armed: bool = client
            .query_one("select bool_or(armed) from herald_listeners", &[])
            .await
            .unwrap()
            .get(0);
        if armed == want {
            return inserted;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener never became armed={want}"
        );
        if burst {
            client
                .batch_execute(
                    "insert into notifications (channel, title) values ('user:1', 'burst')",
                )
                .await
                .unwrap();
            inserted += 1;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

#[actix_web::test]
async fn a_repeatable_read_writer_whose_snapshot_predates_re_arming_is_still_delivered() {
    // Its snapshot was taken while herald was polling; it writes after herald went back to
    // waiting for a NOTIFY. Whatever its snapshot says, it must wake herald.
    let app = spawn_app().await;
    let mut events = app.open_events(&app.token_for("1"), "", None).await;
    let burst = until_armed(&app, false, true).await;
    let writer = app.pg().await;
    writer
        .batch_execute("begin isolation level repeatable read; select count(*) from notifications")
        .await
        .unwrap();
    until_armed(&app, true, false).await;

    writer
        .batch_execute(
            "insert into notifications (channel, title) values ('user:1', 'old snapshot'); commit",
        )
        .await
        .unwrap();

    let titles = events.titles(burst + 1).await;
    assert_eq!(titles.last().map(String::as_str), Some("old snapshot"));
    assert_eq!(titles.iter().filter(|t| *t == "burst").count(), burst);
}

#[actix_web::test]
async fn rows_with_a_hand_set_txid_are_delivered_once_and_never_read_again() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let cursor = app.list_cursor(&token, "").await;
    let mut events = app.open_events(&token, "", None).await;

    // A writer that sets txid, ahead of every transaction and behind every cursor...
    app.sql(
        "insert into notifications (channel, title, txid) values
             ('user:1', 'future', (pg_current_xact_id()::text::bigint + 1000000)::text::xid8),
             ('user:1', 'past', '3')",
    )
    .await;
    // ...and a restore that keeps the txids of a cluster further along (triggers off).
    app.sql(
        "set session_replication_role = replica;
         insert into notifications (channel, title, txid) values
             ('user:1', 'restored', (pg_current_xact_id()::text::bigint + 2000000)::text::xid8)",
    )
    .await;

    let mut titles = events.titles(3).await;
    titles.sort();
    assert_eq!(titles, vec!["future", "past", "restored"]);
    app.insert("user:1", "sentinel").await;
    assert_eq!(
        events.titles(1).await,
        vec!["sentinel"],
        "no row was sent twice"
    );
    let (_, list) = app
        .get(&format!("/api/notifications?after={cursor}"), Some(&token))
        .await;
    let polled: Vec<&str> = list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(polled.len(), 4, "each row once by polling too: {polled:?}");
    // And the listener is not re-reading anything in a loop.
    // Over a whole second: re-arming polls with backoff from 1 ms first (a few dozen reads),
    // a loop would go on reading.
    let reads = app.metric("herald_listener_reads_total").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let per_second = app.metric("herald_listener_reads_total").await - reads;
    assert!(per_second < 50, "{per_second} reads in an idle second");
}

/// The listener reads a bulk insert 500 rows at a time, as the listener does: each read costs
/// about what it returns, not what is left of the transaction (issue 28: a 100,000-row
/// transaction took 200 reads of up to 100,000 rows each).
#[actix_web::test]
async fn reading_one_large_transaction_costs_each_batch_what_it_returns() {
    const ROWS: i64 = 20_000;
    const BATCH: i64 = 500;
    let app = spawn_app().await;
    let pg = app.pg().await;
    let snapshot = "select pg_current_snapshot()::text";
    let base: String = pg.query_one(snapshot, &[]).await.unwrap().get(0);
    app.sql(&format!(
        "insert into notifications (channel, title)
         select 'user:' || (g % 7), 'n' from generate_series(1, {ROWS}) g"
    ))
    .await;
    // The cursor after the first batch is (base, the snapshot that saw the rows, last id), as
    // `Cursor::after_row` makes it; each later batch moves only the last id.
    let (mut upto, mut last_id, mut ids) = (base.clone(), 0i64, Vec::new());
    let mut worst = 0;
    pg.batch_execute("begin isolation level read committed")
        .await
        .unwrap();
    loop {
        let before: i64 = pg.query_one(WORK, &[]).await.unwrap().get(0);
        let rows = pg
            .query(
                "select id, pg_current_snapshot()::text from herald_since(
                     $1::text::pg_snapshot, $2::text::pg_snapshot, $3, $4)",
                &[&base, &upto, &last_id, &BATCH],
            )
            .await
            .unwrap();
        let after: i64 = pg.query_one(WORK, &[]).await.unwrap().get(0);
        let Some(last) = rows.last() else { break };
        if upto == base {
            upto = last.get(1);
        }
        last_id = last.get(0);
        ids.extend(rows.iter().map(|row| row.get::<_, i64>(0)));
        worst = worst.max(after - before);
    }
    pg.batch_execute("commit").await.unwrap();
    assert_eq!(ids.len() as i64, ROWS);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in id order, each once"
    );
    assert!(
        worst < 4 * BATCH,
        "a read of {BATCH} rows read {worst} rows and index entries"
    );
}

#[actix_web::test]
async fn reading_many_small_transactions_after_a_bare_snapshot_is_one_range_scan() {
    const COMMITS: i64 = 300;
    let app = spawn_app().await;
    // A transaction running at the base, which commits after the others: its row is read too.
    let early = app.pg().await;
    early.batch_execute("begin").await.unwrap();
    let early_id: i64 = early
        .query_one(
            "insert into notifications (channel, title) values ('user:early', 'e') returning id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let pg = app.pg().await;
    let base: String = pg
        .query_one("select pg_current_snapshot()::text", &[])
        .await
        .unwrap()
        .get(0);
    app.sql(&format!(
        "do $$ begin
             for i in 1..{COMMITS} loop
                 insert into notifications (channel, title) values ('user:' || (i % 7), 'n');
                 commit;
             end loop;
         end $$"
    ))
    .await;
    early.batch_execute("commit").await.unwrap();
    pg.batch_execute("begin isolation level read committed")
        .await
        .unwrap();
    let before: i64 = pg.query_one(WORK, &[]).await.unwrap().get(0);
    // The cursor a read that was not full leaves: the bare snapshot, nothing consumed.
    let rows = pg
        .query(
            "select id from herald_since($1::text::pg_snapshot, $1::text::pg_snapshot, 0, 500)",
            &[&base],
        )
        .await
        .unwrap();
    let after: i64 = pg.query_one(WORK, &[]).await.unwrap().get(0);
    pg.batch_execute("commit").await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    let all: Vec<i64> = pg
        .query("select id from notifications order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids, all, "every row once, in id order");
    assert_eq!(ids.first(), Some(&early_id));
    // Two index probes per transaction (the read after a full batch) would be twice this.
    assert!(
        after - before < 2 * COMMITS,
        "a read of {COMMITS} one-row transactions read {} rows and index entries",
        after - before
    );
}
