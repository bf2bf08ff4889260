//! The inbox states of SPEC section 12: seen, archived, unread again. Counts and lists must
//! match a model of what each user did, step after random step, on this instance at once
//! (read your writes: a remembered answer not forgotten after a write is a stale answer) and
//! after the listener has read every change; other tabs hear of each change; bad input changes
//! nothing.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Rng, TestApp, roll_up_counts, spawn_app};

const USERS: [&str; 3] = ["1", "2", "3"];
const CHANNELS: [&str; 4] = ["user:1", "user:2", "user:3", "broadcast"];

/// What one user did to one row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct RowState {
    read: bool,
    archived: bool,
}

/// The model: SPEC section 12's rules applied to what the test did, with no SQL. A row's
/// place in commit order stands for the snapshots: a cursor taken after `n` commits covers
/// exactly the rows committed among those `n`.
#[derive(Default)]
struct Model {
    /// Committed rows: id → (channel, commit number).
    rows: BTreeMap<i64, (String, u64)>,
    commits: u64,
    /// Per user: per row state (absent: new), and the seen mark (a commit number).
    states: BTreeMap<String, BTreeMap<i64, RowState>>,
    seen_marks: BTreeMap<String, u64>,
}

impl Model {
    fn commit(&mut self, ids: &[(i64, String)]) {
        self.commits += 1;
        for (id, channel) in ids {
            self.rows.insert(*id, (channel.clone(), self.commits));
        }
    }

    fn inbox(&self, user: &str) -> Vec<i64> {
        let mine = format!("user:{user}");
        // Newest first, as herald lists.
        self.rows
            .iter()
            .rev()
            .filter(|(_, (channel, _))| *channel == mine || channel == "broadcast")
            .map(|(id, _)| *id)
            .collect()
    }

    fn state(&self, user: &str, id: i64) -> RowState {
        self.states
            .get(user)
            .and_then(|s| s.get(&id))
            .copied()
            .unwrap_or_default()
    }

    fn seen(&self, user: &str, id: i64) -> bool {
        let mark = self.seen_marks.get(user).copied().unwrap_or(0);
        self.state(user, id).read || self.rows[&id].1 <= mark
    }

    fn set(&mut self, user: &str, id: i64, change: impl FnOnce(&mut RowState)) {
        change(
            self.states
                .entry(user.into())
                .or_default()
                .entry(id)
                .or_default(),
        );
    }

    fn see_through(&mut self, user: &str, cursor: u64) {
        let mark = self.seen_marks.entry(user.into()).or_default();
        *mark = (*mark).max(cursor);
    }

    fn counts(&self, user: &str) -> (i64, i64) {
        let live: Vec<i64> = self
            .inbox(user)
            .into_iter()
            .filter(|id| !self.state(user, *id).archived)
            .collect();
        let unread = live
            .iter()
            .filter(|id| !self.state(user, **id).read)
            .count();
        let unseen = live.iter().filter(|id| !self.seen(user, **id)).count();
        (unread as i64, unseen as i64)
    }

    /// `[id, read, seen, archived]` of the inbox page herald should list.
    fn page(&self, user: &str, archived: bool) -> Vec<(i64, bool, bool, bool)> {
        self.inbox(user)
            .into_iter()
            .filter(|id| self.state(user, *id).archived == archived)
            .map(|id| {
                let s = self.state(user, id);
                (id, s.read, self.seen(user, id), s.archived)
            })
            .collect()
    }
}

fn listed(page: &Value) -> Vec<(i64, bool, bool, bool)> {
    page["notifications"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|n| {
            let flag = |name: &str| n[name].as_bool().unwrap_or_else(|| panic!("{name}: {n}"));
            (
                n["id"].as_i64().unwrap(),
                flag("read"),
                flag("seen"),
                flag("archived"),
            )
        })
        .collect()
}

fn counts_of(body: &Value) -> (i64, i64) {
    let count = |name: &str| {
        body[name]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: {body}"))
    };
    (count("unread_count"), count("unseen_count"))
}

/// Every answer herald gives `user` about their inbox, against the model.
async fn check(app: &TestApp, model: &Model, user: &str, steps: &str) {
    let token = app.token_for(user);
    let expected = model.counts(user);
    let (_, counts) = app
        .get("/api/notifications/unread_count", Some(&token))
        .await;
    assert_eq!(
        counts_of(&counts),
        expected,
        "user {user}'s counts after {steps}"
    );
    for archived in [false, true] {
        let (status, page) = app
            .get(
                &format!("/api/notifications?limit=200&archived={archived}"),
                Some(&token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            listed(&page),
            model.page(user, archived),
            "user {user}'s list (archived={archived}) after {steps}"
        );
        assert_eq!(
            counts_of(&page),
            expected,
            "user {user}'s page counts after {steps}"
        );
    }
}

async fn check_all(app: &TestApp, model: &Model, steps: &str) {
    for user in USERS {
        check(app, model, user, steps).await;
    }
}

#[actix_web::test]
async fn counts_and_lists_match_what_each_user_did_at_once_and_after_herald_read_it() {
    let app = spawn_app().await;
    let pg = app.pg().await;
    let mut rng = Rng::from_env("inbox states");
    let mut model = Model::default();
    // Open inserts: their ids are taken, their commit comes later.
    let mut open: Vec<(tokio_postgres::Client, Vec<(i64, String)>)> = Vec::new();
    // Cursors handed out, with the commit number each covers.
    let mut cursors: Vec<(String, u64)> = Vec::new();
    let mut steps = Vec::new();
    for _ in 0..150 {
        let user = USERS[rng.below(USERS.len() as u64) as usize];
        let token = app.token_for(user);
        let inbox = model.inbox(user);
        let some_row = (!inbox.is_empty()).then(|| inbox[rng.below(inbox.len() as u64) as usize]);
        let by_api = |path: String, body: Option<String>| (path, body);
        let (step, request) = match rng.below(15) {
            0..=2 => {
                let channel = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
                let n = 1 + rng.below(3) as i32;
                let ids: Vec<i64> = pg
                    .query(
                        "insert into notifications (channel, title)
                         select $1, 'n' from generate_series(1, $2) returning id",
                        &[&channel, &n],
                    )
                    .await
                    .expect("insert")
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                model.commit(
                    &ids.iter()
                        .map(|id| (*id, channel.to_owned()))
                        .collect::<Vec<_>>(),
                );
                (format!("insert {n} into {channel}"), None)
            }
            3 => {
                let channel = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
                let client = app.pg().await;
                client.batch_execute("begin").await.unwrap();
                let id: i64 = client
                    .query_one(
                        "insert into notifications (channel, title) values ($1, 'late')
                         returning id",
                        &[&channel],
                    )
                    .await
                    .unwrap()
                    .get(0);
                open.push((client, vec![(id, channel.to_owned())]));
                (format!("open insert {id} into {channel}"), None)
            }
            4 if !open.is_empty() => {
                let (client, ids) = open.swap_remove(rng.below(open.len() as u64) as usize);
                client.batch_execute("commit").await.unwrap();
                model.commit(&ids);
                (format!("commit {ids:?}"), None)
            }
            5 => {
                // A cursor the user's client holds: the position of a list taken now.
                let cursor = app.list_cursor(&token, "limit=1").await;
                cursors.push((cursor.clone(), model.commits));
                (format!("{user} lists"), None)
            }
            6 if !cursors.is_empty() => {
                let (cursor, covers) = cursors[rng.below(cursors.len() as u64) as usize].clone();
                model.see_through(user, covers);
                let body = json!({ "through": cursor }).to_string();
                let request = by_api("/api/notifications/seen".into(), Some(body));
                (format!("{user} sees through {covers}"), Some(request))
            }
            7 if some_row.is_some() => {
                let id = some_row.unwrap();
                model.set(user, id, |s| s.read = true);
                let request = by_api(format!("/api/notifications/{id}/read"), None);
                (format!("{user} reads {id}"), Some(request))
            }
            8 if some_row.is_some() => {
                let id = some_row.unwrap();
                model.set(user, id, |s| *s = RowState::default());
                let request = by_api(format!("/api/notifications/{id}/unread"), None);
                (format!("{user} unreads {id}"), Some(request))
            }
            9 if some_row.is_some() => {
                let id = some_row.unwrap();
                model.set(user, id, |s| {
                    s.read = true;
                    s.archived = true;
                });
                let request = by_api(format!("/api/notifications/{id}/archive"), None);
                (format!("{user} archives {id}"), Some(request))
            }
            10 if some_row.is_some() => {
                let id = some_row.unwrap();
                model.set(user, id, |s| s.archived = false);
                let request = by_api(format!("/api/notifications/{id}/unarchive"), None);
                (format!("{user} unarchives {id}"), Some(request))
            }
            11 => {
                // Through a cursor the user holds, or (without one) everything now.
                let pick = (!cursors.is_empty() && rng.percent(60))
                    .then(|| cursors[rng.below(cursors.len() as u64) as usize].clone());
                let covers = pick.as_ref().map_or(model.commits, |(_, covers)| *covers);
                for id in model.inbox(user) {
                    if model.rows[&id].1 <= covers {
                        model.set(user, id, |s| {
                            s.read = true;
                            s.archived = true;
                        });
                    }
                }
                model.see_through(user, covers);
                let body = pick.map(|(cursor, _)| json!({ "through": cursor }).to_string());
                let request = by_api("/api/notifications/archive_all".into(), body);
                (
                    format!("{user} archives all through {covers}"),
                    Some(request),
                )
            }
            12 => {
                for id in model.inbox(user) {
                    model.set(user, id, |s| s.read = true);
                }
                let now = model.commits;
                model.see_through(user, now);
                let request = by_api("/api/notifications/read_all".into(), None);
                (format!("{user} reads all"), Some(request))
            }
            13 => {
                roll_up_counts(&pg).await;
                ("roll-up".to_owned(), None)
            }
            14 => {
                // Published over HTTP: every reader's next poll here has it, at once.
                let channel = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
                let publisher = app.token_with("app", &["*"], true);
                let body = json!({ "channel": channel, "title": "published" }).to_string();
                let (status, stored) = app
                    .post("/api/notifications", Some(&publisher), Some(&body))
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{stored}");
                model.commit(&[(stored["id"].as_i64().unwrap(), channel.to_owned())]);
                let step = format!("publish {} to {channel}", stored["id"]);
                check_all(&app, &model, &format!("{}, {step}", steps.join(", "))).await;
                (step, None)
            }
            _ => continue,
        };
        steps.push(step);
        let steps_text = steps.join(", ");
        if let Some((path, body)) = request {
            let (status, answer) = app.post(&path, Some(&token), body.as_deref()).await;
            assert_eq!(status, StatusCode::OK, "{path}: {answer}");
            assert_eq!(
                counts_of(&answer),
                model.counts(user),
                "{path}'s answer after {steps_text}"
            );
            // At once, on the instance that wrote: no answer from before the write.
            check(&app, &model, user, &steps_text).await;
        }
        app.caught_up().await;
        check_all(&app, &model, &steps_text).await;
    }
    for (client, ids) in open {
        client.batch_execute("commit").await.unwrap();
        model.commit(&ids);
    }
    app.caught_up().await;
    check_all(&app, &model, "committing the rest").await;
}

#[actix_web::test]
async fn opening_the_bell_clears_the_unseen_badge_and_other_tabs_follow() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    for title in ["a", "b", "c"] {
        app.insert("user:1", title).await;
    }
    app.caught_up().await;
    let (_, list) = app.get("/api/notifications", Some(&token)).await;
    assert_eq!(counts_of(&list), (3, 3));
    let late = app.insert("user:1", "after the bell opened").await;
    app.caught_up().await;
    let mut other_tab = app.open_events(&token, "", None).await;

    let through = list["cursor"].as_str().unwrap();
    let (status, body) = app
        .post(
            "/api/notifications/seen",
            Some(&token),
            Some(&json!({ "through": through }).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(counts_of(&body), (4, 1), "seen is not read");

    let seen = other_tab.next("seen").await.json();
    assert_eq!(seen["through"], through);
    assert_eq!(
        counts_of(&other_tab.next("unread_count").await.json()),
        (4, 1)
    );
    let (_, list) = app.get("/api/notifications", Some(&token)).await;
    let flags: Vec<(i64, bool, bool)> = listed(&list).iter().map(|n| (n.0, n.1, n.2)).collect();
    assert_eq!(
        flags[0],
        (late, false, false),
        "the newer one is still unseen"
    );
    assert!(
        flags[1..].iter().all(|n| !n.1 && n.2),
        "seen, not read: {flags:?}"
    );

    // Reading one makes it seen.
    let (_, body) = app
        .post(
            &format!("/api/notifications/{late}/read"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(counts_of(&body), (3, 0));
}

#[actix_web::test]
async fn archiving_a_broadcast_hides_it_for_that_user_alone_and_tabs_are_told() {
    let app = spawn_app().await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let id = app.insert("broadcast", "Maintenance tonight").await;
    let mine = app.insert("user:alice", "Yours").await;
    app.caught_up().await;
    let mut alice_tab = app.open_events(&alice, "", None).await;

    let (status, body) = app
        .post(
            &format!("/api/notifications/{id}/archive"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["archived"].clone(), counts_of(&body)),
        (json!(true), (1, 1))
    );
    assert_eq!(
        alice_tab.next("archived").await.json(),
        json!({ "ids": [id] })
    );
    assert_eq!(
        counts_of(&alice_tab.next("unread_count").await.json()),
        (1, 1)
    );

    let (_, alice_list) = app.get("/api/notifications", Some(&alice)).await;
    assert_eq!(
        listed(&alice_list).iter().map(|n| n.0).collect::<Vec<_>>(),
        [mine]
    );
    let (_, archived) = app
        .get("/api/notifications?archived=true", Some(&alice))
        .await;
    assert_eq!(
        listed(&archived),
        [(id, true, true, true)],
        "archiving reads it"
    );
    let (_, bob_list) = app.get("/api/notifications", Some(&bob)).await;
    assert_eq!(
        listed(&bob_list),
        [(id, false, false, false)],
        "bob still has it"
    );
    assert_eq!(counts_of(&bob_list), (1, 1));

    // Unread again: back in the inbox, unread, and the tab hears it.
    let (_, body) = app
        .post(
            &format!("/api/notifications/{id}/unread"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(counts_of(&body), (2, 2));
    assert_eq!(
        alice_tab.next("unread").await.json(),
        json!({ "ids": [id] })
    );
    assert_eq!(
        counts_of(&alice_tab.next("unread_count").await.json()),
        (2, 2)
    );

    // Everything archived: one mark, announced with its position.
    let (status, body) = app
        .post("/api/notifications/archive_all", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(counts_of(&body), (0, 0));
    let all = alice_tab.next("archived").await.json();
    assert_eq!(all["all"], true);
    assert!(all["through"].is_string(), "{all}");
    let (_, alice_list) = app.get("/api/notifications", Some(&alice)).await;
    assert_eq!(listed(&alice_list), []);

    // Unarchived: back in the list, still read.
    let (_, body) = app
        .post(
            &format!("/api/notifications/{mine}/unarchive"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(counts_of(&body), (0, 0));
    assert_eq!(
        alice_tab.next("unarchived").await.json(),
        json!({ "ids": [mine] })
    );
    let (_, alice_list) = app.get("/api/notifications", Some(&alice)).await;
    assert_eq!(listed(&alice_list), [(mine, true, true, false)]);
}

#[actix_web::test]
async fn changes_the_app_makes_with_sql_reach_the_streams_and_archiving_reads() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let id = app.insert("user:1", "Invoice").await;
    app.caught_up().await;
    let mut tab = app.open_events(&token, "", None).await;

    app.sql(&format!(
        "insert into notification_archives (user_id, notification_id, archived)
         values ('1', {id}, true)"
    ))
    .await;
    assert_eq!(tab.next("archived").await.json(), json!({ "ids": [id] }));
    assert_eq!(counts_of(&tab.next("unread_count").await.json()), (0, 0));
    app.caught_up().await;
    let (_, archived) = app
        .get("/api/notifications?archived=true", Some(&token))
        .await;
    assert_eq!(listed(&archived), [(id, true, true, true)]);
}

#[actix_web::test]
async fn unknown_ids_other_users_rows_and_cursors_from_elsewhere_change_nothing() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let mine = app.insert("user:1", "mine").await;
    let theirs = app.insert("user:2", "theirs").await;
    app.caught_up().await;
    let before = app
        .get("/api/notifications?limit=200", Some(&token))
        .await
        .1;

    for action in ["archive", "unarchive", "unread", "read"] {
        for (id, status) in [
            (theirs.to_string(), StatusCode::NOT_FOUND),
            ("987654321".to_owned(), StatusCode::NOT_FOUND),
            ("x1".to_owned(), StatusCode::BAD_REQUEST),
        ] {
            let path = format!("/api/notifications/{id}/{action}");
            let (got, body) = app.post(&path, Some(&token), None).await;
            assert_eq!(got, status, "{path}: {body}");
            assert!(body["error"]["code"].is_string(), "{path}: {body}");
        }
    }
    let far_future = "1000000000:1000000000:";
    for (path, body, status, code) in [
        ("seen", "{}", StatusCode::BAD_REQUEST, "invalid_cursor"),
        (
            "seen",
            r#"{"through": "not a cursor"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "seen",
            &format!(r#"{{"through": "{far_future}"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "seen",
            r#"{"through": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "seen",
            r#"{"through": "1:1:", "all": true}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        ("seen", "[", StatusCode::BAD_REQUEST, "invalid_json"),
        (
            "archive_all",
            r#"{"through": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "archive_all",
            &format!(r#"{{"through": "{far_future}"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
    ] {
        let (got, answer) = app
            .post(
                &format!("/api/notifications/{path}"),
                Some(&token),
                Some(body),
            )
            .await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {answer}"
        );
    }
    let (status, body) = app
        .get("/api/notifications?archived=maybe", Some(&token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let after = app
        .get("/api/notifications?limit=200", Some(&token))
        .await
        .1;
    // (The cursor moves with every transaction anyone commits.)
    let (mut before, mut after) = (before, after);
    for page in [&mut before, &mut after] {
        page.as_object_mut().unwrap().remove("cursor");
    }
    assert_eq!(after, before);
    let (_, theirs_list) = app
        .get("/api/notifications", Some(&app.token_for("2")))
        .await;
    assert_eq!(listed(&theirs_list), [(theirs, false, false, false)]);
    assert_eq!(
        listed(&before).iter().map(|n| n.0).collect::<Vec<_>>(),
        [mine]
    );
}

#[actix_web::test]
async fn seeing_and_archiving_a_large_inbox_are_one_write_and_counting_it_stays_cheap() {
    let app = spawn_app().await;
    let token = app.token_for("big");
    app.sql(
        "insert into notifications (channel, title)
         select 'user:big', 'n' from generate_series(1, 20000)",
    )
    .await;
    app.roll_up_counts().await;
    app.sql("analyze notifications").await;
    app.caught_up().await;
    let cursor = app.list_cursor(&token, "limit=1").await;
    app.insert("user:big", "tail").await;
    app.caught_up().await;
    let (_, body) = app
        .post(
            "/api/notifications/seen",
            Some(&token),
            Some(&json!({ "through": cursor }).to_string()),
        )
        .await;
    assert_eq!(counts_of(&body), (20001, 1));

    let pg = app.pg().await;
    let per_row_state = "select (select count(*) from notification_reads)
                              + (select count(*) from notification_unreads)
                              + (select count(*) from notification_archives)";
    let rows: i64 = pg.query_one(per_row_state, &[]).await.unwrap().get(0);
    assert_eq!(rows, 0, "seeing 20,000 rows writes no row per notification");

    // Work, not time: what counting reads, from this transaction's own statistics.
    let work = "select sum(pg_stat_get_xact_tuples_returned(oid))::bigint from pg_class
                where oid = 'notifications'::regclass
                   or oid in (select indexrelid from pg_index
                              where indrelid = 'notifications'::regclass)";
    pg.batch_execute("begin").await.unwrap();
    let unseen: i64 = pg
        .query_one("select herald_unseen_count('big')", &[])
        .await
        .unwrap()
        .get(0);
    let read: i64 = pg.query_one(work, &[]).await.unwrap().get(0);
    pg.batch_execute("commit").await.unwrap();
    assert_eq!(unseen, 1);
    assert!(
        read < 100,
        "counting unseen read {read} rows and index entries"
    );

    let (_, body) = app
        .post(
            "/api/notifications/archive_all",
            Some(&token),
            Some(&json!({ "through": cursor }).to_string()),
        )
        .await;
    assert_eq!(counts_of(&body), (1, 1), "the row after the cursor stays");
    let rows: i64 = pg.query_one(per_row_state, &[]).await.unwrap().get(0);
    assert_eq!(
        rows, 0,
        "archiving 20,000 rows writes no row per notification"
    );
    pg.batch_execute("begin").await.unwrap();
    let counts = pg
        .query_one(
            "select herald_unread_count('big'), herald_unseen_count('big')",
            &[],
        )
        .await
        .unwrap();
    let read: i64 = pg.query_one(work, &[]).await.unwrap().get(0);
    pg.batch_execute("commit").await.unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1)), (1, 1));
    assert!(
        read < 100,
        "counting after archiving read {read} rows and index entries"
    );
}

#[actix_web::test]
async fn a_live_events_id_sees_and_archives_what_the_stream_showed_up_to_it() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let mut tab = app.open_events(&token, "", None).await;
    let pg = app.pg().await;
    // One transaction: its rows come in one batch, each event's id partway through it.
    pg.batch_execute(
        "insert into notifications (channel, title) values ('user:1', 'a'), ('user:1', 'b')",
    )
    .await
    .unwrap();
    let first = tab.next("notification").await;
    let second = tab.next("notification").await;
    let (first_id, second_id) = (first.id.clone().unwrap(), second.id.clone().unwrap());
    assert!(
        first_id.contains('~'),
        "an id partway through a batch: {first_id}"
    );

    let seen = |through: &str| json!({ "through": through }).to_string();
    let (_, body) = app
        .post(
            "/api/notifications/seen",
            Some(&token),
            Some(&seen(&second_id)),
        )
        .await;
    assert_eq!(counts_of(&body), (2, 0), "what the bell showed is seen");

    let (status, body) = app
        .post(
            "/api/notifications/archive_all",
            Some(&token),
            Some(&seen(&first_id)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        counts_of(&body),
        (1, 0),
        "archived up to the first, not past it"
    );
    let (_, list) = app.get("/api/notifications", Some(&token)).await;
    let second_row = second.json()["id"].as_i64().unwrap();
    assert_eq!(listed(&list), [(second_row, false, true, false)]);
}

#[actix_web::test]
async fn a_tab_that_hears_a_change_and_asks_for_its_list_at_once_gets_the_list_after_it() {
    let app = spawn_app().await;
    let token = app.token_for("1");
    let mut ids = Vec::new();
    for title in ["a", "b", "c"] {
        ids.push(app.insert("user:1", title).await);
    }
    app.caught_up().await;
    let mut tab = app.open_events(&token, "", None).await;
    for (round, id) in ids.iter().enumerate() {
        // Remembered now: the next list would come from memory.
        app.get("/api/notifications", Some(&token)).await;
        // The app's SQL, so that no request of this instance forgets anything itself.
        app.sql(&format!(
            "insert into notification_archives (user_id, notification_id, archived)
             values ('1', {id}, true)"
        ))
        .await;
        assert_eq!(tab.next("archived").await.json(), json!({ "ids": [id] }));
        let (_, list) = app.get("/api/notifications", Some(&token)).await;
        let listed: Vec<i64> = listed(&list).iter().map(|n| n.0).collect();
        assert!(
            !listed.contains(id),
            "round {round}: {id} still listed: {listed:?}"
        );
        assert_eq!(counts_of(&list), (2 - round as i64, 2 - round as i64));
    }
}
