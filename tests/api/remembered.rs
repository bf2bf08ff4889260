//! Polls answered from herald's memory (`hub::recent`) must be the database's answer as of
//! herald's last read, whatever changed in between and whoever changed it: rows inserted by
//! SQL or over HTTP (some committing late), updated, deleted, truncated; read state changed
//! through herald or straight in SQL, and truncated. After every random step, once herald has
//! read up to it (`caught_up`), every user's newest page, unread page, unread count and next
//! page after their cursor are checked against plain SQL, and the pages after the cursor
//! must have handed out every row exactly once.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use serde_json::Value;

use crate::helpers::{Rng, TestApp, roll_up_counts, spawn_app};

const USERS: [&str; 3] = ["1", "2", "3"];
const CHANNELS: [&str; 5] = ["user:1", "user:2", "user:3", "broadcast", "order:7"];

/// A user's inbox rows, newest first, with their read state by definition (SPEC section 2).
const INBOX: &str = "select n.id, n.title,
            coalesce(pg_visible_in_snapshot(n.txid, m.read_through), false)
            or exists (select from notification_reads r
                       where r.user_id = $1 and r.notification_id = n.id) as read
     from notifications n
     left join notification_read_marks m on m.user_id = $1
     where n.channel in ('user:' || $1, 'broadcast')
     order by n.id desc";

/// `[id, title, read]` of each row, as herald lists them.
fn listed(page: &Value) -> Vec<(i64, String, bool)> {
    page["notifications"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|n| {
            (
                n["id"].as_i64().unwrap(),
                n["title"].as_str().unwrap().to_owned(),
                n["read"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// What one user's polling client has: its cursor and every id it was handed.
struct Poller {
    cursor: String,
    handed: Vec<i64>,
}

async fn check(
    app: &TestApp,
    pg: &tokio_postgres::Client,
    user: &str,
    poller: &mut Poller,
    steps: &str,
) {
    let token = app.token_for(user);
    let inbox: Vec<(i64, String, bool)> = pg
        .query(INBOX, &[&user])
        .await
        .expect("the inbox by definition")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let unread: Vec<_> = inbox.iter().filter(|n| !n.2).cloned().collect();
    let count = unread.len() as i64;

    let (status, newest) = app.get("/api/notifications?limit=5", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{newest}");
    let expected: Vec<_> = inbox.iter().take(5).cloned().collect();
    assert_eq!(
        listed(&newest),
        expected,
        "user {user}'s newest after {steps}"
    );
    assert_eq!(
        newest["unread_count"], count,
        "user {user}'s count after {steps}"
    );

    let (_, unread_page) = app
        .get("/api/notifications?limit=5&unread=true", Some(&token))
        .await;
    let expected: Vec<_> = unread.iter().take(5).cloned().collect();
    assert_eq!(
        listed(&unread_page),
        expected,
        "user {user}'s unread after {steps}"
    );
    assert_eq!(app.unread_count(user).await, count, "after {steps}");

    let path = format!("/api/notifications?after={}&limit=200", poller.cursor);
    let (status, next) = app.get(&path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(
        next["unread_count"], count,
        "user {user}'s count after {steps}"
    );
    for (id, _, read) in listed(&next) {
        let now = inbox.iter().find(|n| n.0 == id);
        // A row the page hands out is there now, with the same read state (one deleted or
        // read since herald's read would be a stale answer).
        assert_eq!(
            now.map(|n| n.2),
            Some(read),
            "row {id} for {user} after {steps}"
        );
        poller.handed.push(id);
    }
    poller.cursor = next["cursor"].as_str().unwrap().to_owned();
    let handed: HashSet<i64> = poller.handed.iter().copied().collect();
    assert_eq!(
        handed.len(),
        poller.handed.len(),
        "user {user} was handed a row twice after {steps}"
    );
    let missed: Vec<i64> = inbox
        .iter()
        .map(|n| n.0)
        .filter(|id| !handed.contains(id))
        .collect();
    assert!(
        missed.is_empty(),
        "user {user} was never handed {missed:?} after {steps}"
    );
}

/// A random inbox row of `user`'s, if they have one.
async fn some_inbox_row(pg: &tokio_postgres::Client, user: &str, rng: &mut Rng) -> Option<i64> {
    let ids: Vec<i64> = pg
        .query(INBOX, &[&user])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (!ids.is_empty()).then(|| ids[rng.below(ids.len() as u64) as usize])
}

#[actix_web::test]
async fn answers_from_memory_are_the_database_s_whatever_changes_and_whoever_changes_it() {
    let app = spawn_app().await;
    let pg = app.pg().await;
    let publisher = app.token_with("app", &[], true);
    let mut rng = Rng::from_env("remembered answers");
    let mut pollers = HashMap::new();
    for user in USERS {
        let cursor = app.list_cursor(&app.token_for(user), "").await;
        let handed = Vec::new();
        pollers.insert(user, Poller { cursor, handed });
    }
    let mut open: Vec<tokio_postgres::Client> = Vec::new();
    let mut steps = Vec::new();
    for _ in 0..120 {
        let channel = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
        let user = USERS[rng.below(USERS.len() as u64) as usize];
        let step = match rng.below(15) {
            0..=2 => {
                let rows = 1 + rng.below(3) as i32;
                pg.execute(
                    "insert into notifications (channel, title)
                     select $1, 'n' || i from generate_series(1, $2) i",
                    &[&channel, &rows],
                )
                .await
                .unwrap();
                format!("insert {rows} into {channel}")
            }
            3 => {
                open.push(app.insert_uncommitted(channel, "late").await);
                format!("open an insert into {channel}")
            }
            4 if !open.is_empty() => {
                let client = open.swap_remove(rng.below(open.len() as u64) as usize);
                client.batch_execute("commit").await.unwrap();
                "commit an open insert".to_owned()
            }
            5 => {
                let body = format!(r#"{{"channel": "{channel}", "title": "over http"}}"#);
                let (status, _) = app
                    .post("/api/notifications", Some(&publisher), Some(&body))
                    .await;
                assert_eq!(status, StatusCode::CREATED);
                format!("publish to {channel} over HTTP")
            }
            6 => {
                let Some(id) = some_inbox_row(&pg, user, &mut rng).await else {
                    continue;
                };
                let path = format!("/api/notifications/{id}/read");
                let (status, _) = app.post(&path, Some(&app.token_for(user)), None).await;
                assert_eq!(status, StatusCode::OK);
                format!("user {user} reads {id} over HTTP")
            }
            7 => {
                let token = app.token_for(user);
                let (status, _) = app
                    .post("/api/notifications/read_all", Some(&token), None)
                    .await;
                assert_eq!(status, StatusCode::OK);
                format!("user {user} reads all over HTTP")
            }
            8 => {
                let Some(id) = some_inbox_row(&pg, user, &mut rng).await else {
                    continue;
                };
                pg.execute(
                    "insert into notification_reads (user_id, notification_id) values ($1, $2)
                     on conflict do nothing",
                    &[&user, &id],
                )
                .await
                .unwrap();
                format!("user {user} reads {id} in SQL")
            }
            9 => {
                pg.execute(
                    "delete from notification_reads where user_id = $1",
                    &[&user],
                )
                .await
                .unwrap();
                pg.execute(
                    "delete from notification_read_marks where user_id = $1",
                    &[&user],
                )
                .await
                .unwrap();
                format!("user {user}'s read state deleted in SQL")
            }
            10 | 11 => {
                let deleted = pg
                    .execute(
                        "delete from notifications where id in
                         (select id from notifications where channel = $1
                          order by random() limit 2)",
                        &[&channel],
                    )
                    .await
                    .unwrap();
                format!("delete {deleted} from {channel}")
            }
            12 => {
                let updated = pg
                    .execute(
                        "update notifications set title = title || '!' where id in
                         (select id from notifications where channel = $1 limit 2)",
                        &[&channel],
                    )
                    .await
                    .unwrap();
                format!("update {updated} in {channel}")
            }
            13 => {
                roll_up_counts(&pg).await;
                "roll-up".to_owned()
            }
            // TRUNCATE waits for every open transaction on the table.
            14 if open.is_empty() && rng.percent(40) => {
                let table = ["notifications cascade", "notification_reads"][rng.below(2) as usize];
                pg.batch_execute(&format!("truncate {table}"))
                    .await
                    .unwrap();
                format!("truncate {table}")
            }
            _ => continue,
        };
        steps.push(step);
        app.caught_up().await;
        let steps = steps.join(", ");
        for user in USERS {
            check(&app, &pg, user, pollers.get_mut(user).unwrap(), &steps).await;
        }
    }
    for client in open {
        client.batch_execute("commit").await.unwrap();
    }
    app.caught_up().await;
    for user in USERS {
        check(&app, &pg, user, pollers.get_mut(user).unwrap(), "the end").await;
    }
    // Most answers came from memory: the test checked memory, not just the queries.
    let memory = app.metric("herald_answers_total{source=\"memory\"}").await;
    let database = app
        .metric("herald_answers_total{source=\"database\"}")
        .await;
    assert!(
        memory > database,
        "answered from memory {memory} times, from the database {database}"
    );
}
