//! SPEC section 5 under concurrency: writers whose transactions commit out of id order, and
//! SSE and polling clients that drop and resume at random moments. Each client must end with
//! every notification of its channels exactly once.
//!
//! Bounded: a few hundred rows and a few seconds. The seed is printed; `HERALD_TEST_SEED`
//! replays a run.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actix_web::http::StatusCode;

use crate::helpers::{Received, Rng, TestApp, WAIT, spawn_app};

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

/// A polling client: pages with `after` and a random `limit`, sometimes long-polling.
async fn polling_client(
    app: Rc<TestApp>,
    token: String,
    query: &'static str,
    received: Received,
    stop: Rc<Cell<bool>>,
    mut rng: Rng,
) {
    let (status, first) = app
        .get(&format!("/api/notifications?{query}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["notifications"].as_array().unwrap().len(), 0);
    let mut cursor = first["cursor"].as_str().unwrap().to_owned();
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
        }
        cursor = page["cursor"].as_str().unwrap().to_owned();
        tokio::time::sleep(rng.millis(40)).await;
    }
}

#[actix_web::test]
async fn clients_that_drop_and_resume_at_random_get_every_out_of_order_row_exactly_once() {
    let app = Rc::new(spawn_app().await);
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
    for (_, sse, token, query, _) in &clients {
        let got = Received::default();
        received.push(got.clone());
        let (app, stop, rng) = (app.clone(), stop.clone(), rng.fork());
        let (token, query) = (token.clone(), *query);
        tasks.push(if *sse {
            actix_web::rt::spawn(async move {
                app.follow_events(&token, query, got, stop, Some(rng)).await
            })
        } else {
            actix_web::rt::spawn(polling_client(app, token, query, got, stop, rng))
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
    for (i, (name, ..)) in clients.iter().enumerate() {
        let mut got = received[i].borrow().clone();
        got.sort();
        assert_eq!(got.len(), expected[i].len(), "{name}: count");
        assert_eq!(got, expected[i], "{name}: every row exactly once");
    }
}
