//! SPEC section 5 under concurrency: writers whose transactions commit out of id order, and
//! SSE and polling clients that drop and resume at random moments. Each client must end with
//! every notification of its channels exactly once.
//!
//! Bounded: a few hundred rows and a few seconds. The seed is printed; `HERALD_TEST_SEED`
//! replays a run.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use actix_web::http::StatusCode;

use crate::helpers::{Received, Rng, TestApp, WAIT, spawn_app_with};

const CHANNELS: [&str; 4] = ["user:1", "user:2", "team:a", "broadcast"];
const WRITERS: usize = 6;
const TRANSACTIONS_PER_WRITER: usize = 50;

/// One writer: transactions of 1-3 rows on random channels; a third of them stay open a while
/// after taking their ids, so later ids commit first.
async fn write(app: Rc<TestApp>, writer: usize, mut rng: Rng) {
    let client = app.pg().await;
    for tx in 0..TRANSACTIONS_PER_WRITER {
        client.batch_execute("begin").await.unwrap();
        for row in 0..=rng.below(3) {
            let channel = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
            client
                .execute(
                    "insert into notifications (channel, title) values ($1, $2)",
                    &[&channel, &format!("w{writer}-t{tx}-r{row}")],
                )
                .await
                .unwrap();
        }
        if rng.percent(33) {
            tokio::time::sleep(rng.millis(80)).await;
        }
        client.batch_execute("commit").await.unwrap();
        tokio::time::sleep(rng.millis(15)).await;
    }
}

/// What a polling client needs: who it is, what it polls, where it starts, and where it keeps
/// what it got (titles, and ids in the order they came).
struct Poller {
    token: String,
    query: &'static str,
    cursor: String,
    received: Received,
    ids: Rc<RefCell<Vec<i64>>>,
}

/// A polling client: pages with `after` from its cursor and a random `limit`, sometimes
/// long-polling.
async fn polling_client(app: Rc<TestApp>, poller: Poller, stop: Rc<Cell<bool>>, mut rng: Rng) {
    let Poller {
        token,
        query,
        mut cursor,
        received,
        ids,
    } = poller;
    while !stop.get() {
        let wait = if rng.percent(20) { "&wait=1" } else { "" };
        let limit = 1 + rng.below(10);
        let (status, page) = app
            .get(
                &format!("/api/notifications?{query}&after={cursor}&limit={limit}{wait}"),
                Some(&token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.get("reset").is_none(), "{page}");
        for n in page["notifications"].as_array().unwrap() {
            received
                .borrow_mut()
                .push(n["title"].as_str().unwrap().to_owned());
            ids.borrow_mut().push(n["id"].as_i64().unwrap());
        }
        cursor = page["cursor"].as_str().unwrap().to_owned();
        tokio::time::sleep(rng.millis(40)).await;
    }
}

#[actix_web::test]
async fn clients_that_drop_and_resume_at_random_get_every_out_of_order_row_exactly_once() {
    // Clients here reconnect every few hundred milliseconds; limits are another test's business.
    let app = Rc::new(spawn_app_with(|config| config.max_streams_per_user = 1000).await);
    let mut rng = Rng::from_env("stress");
    let stop = Rc::new(Cell::new(false));
    let team = |user: &str| app.token_with(user, &["team:*"], false);
    // (name, SSE?, token, query, channels it must end with)
    let clients: Vec<(&str, bool, String, &'static str, Vec<&str>)> = vec![
        (
            "sse inbox 1",
            true,
            app.token_for("1"),
            "",
            vec!["user:1", "broadcast"],
        ),
        (
            "sse team+inbox 2",
            true,
            team("2"),
            "channels=team:a,user:2",
            vec!["team:a", "user:2"],
        ),
        (
            "sse inbox 3",
            true,
            app.token_for("3"),
            "",
            vec!["broadcast"],
        ),
        (
            "sse all of 1",
            true,
            team("1"),
            "channels=team:a,broadcast,user:1",
            vec!["team:a", "broadcast", "user:1"],
        ),
        (
            "poll inbox 2",
            false,
            app.token_for("2"),
            "",
            vec!["user:2", "broadcast"],
        ),
        (
            "poll team 3",
            false,
            team("3"),
            "channels=team:a",
            vec!["team:a"],
        ),
    ];
    let mut tasks = Vec::new();
    let mut received = Vec::new();
    // The ids the polling clients got, in the order they became visible.
    let polled_ids = Rc::new(RefCell::new(Vec::new()));
    for (_, sse, token, query, _) in &clients {
        let got = Received::default();
        received.push(got.clone());
        let (app, stop, rng) = (app.clone(), stop.clone(), rng.fork());
        let (token, query) = (token.clone(), *query);
        // Every client starts from its list's cursor, taken before the writers start: a page
        // that loads its list, then streams or polls from there.
        let cursor = app.list_cursor(&token, query).await;
        tasks.push(if *sse {
            actix_web::rt::spawn(async move {
                app.follow_events(&token, query, cursor, got, stop, Some(rng))
                    .await
            })
        } else {
            let ids = Rc::new(RefCell::new(Vec::new()));
            polled_ids.borrow_mut().push(ids.clone());
            let poller = Poller {
                token,
                query,
                cursor,
                received: got,
                ids,
            };
            actix_web::rt::spawn(polling_client(app, poller, stop, rng))
        });
    }

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| actix_web::rt::spawn(write(app.clone(), w, rng.fork())))
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    let pg = app.pg().await;
    let mut expected = Vec::new();
    for (_, _, _, _, channels) in &clients {
        let channels: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
        let rows = pg
            .query(
                "select title from notifications where channel = any($1) order by title",
                &[&channels],
            )
            .await
            .unwrap();
        expected.push(
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>(),
        );
    }
    // Every client keeps dropping and resuming until it has as many as it should (a
    // duplicate would get it there with something missing, which the comparison catches).
    let deadline = tokio::time::Instant::now() + 3 * WAIT;
    while (0..clients.len()).any(|i| received[i].borrow().len() < expected[i].len())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.set(true);
    for task in tasks {
        task.await.unwrap();
    }

    let total: i64 = pg
        .query_one("select count(*) from notifications", &[])
        .await
        .unwrap()
        .get(0);
    assert!(total > (WRITERS * TRANSACTIONS_PER_WRITER) as i64);
    // The run must have had what it is about: a row that became visible after a higher id.
    let inversions: usize = polled_ids
        .borrow()
        .iter()
        .map(|ids| ids.borrow().windows(2).filter(|w| w[0] > w[1]).count())
        .sum();
    assert!(inversions > 0, "no commit out of id order happened");
    for (i, (name, ..)) in clients.iter().enumerate() {
        let mut got = received[i].borrow().clone();
        got.sort();
        if got != expected[i] {
            let missing: Vec<&String> = expected[i].iter().filter(|t| !got.contains(t)).collect();
            let mut twice = got.clone();
            twice.dedup();
            let rows = pg
                .query(
                    "select id, channel, txid::text from notifications where title = any($1)",
                    &[&missing],
                )
                .await
                .unwrap();
            let rows: Vec<(i64, String, String)> = rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            panic!(
                "{name}: got {} of {}; missing {missing:?} (id, channel, txid: {rows:?}); \
                 {} duplicates",
                got.len(),
                expected[i].len(),
                got.len() - twice.len()
            );
        }
    }
}
