//! herald on the PostgreSQL users deploy on (SPEC section 9): TLS only, a non-superuser owner
//! role, writers that may only INSERT (and DELETE), and PgBouncer in transaction mode. Every
//! test runs against a real server and a real PgBouncer ([`crate::managed`]).

use actix_web::http::StatusCode;
use herald::config::DatabaseUrl;
use herald::startup::Application;

use crate::helpers::{WAIT, spawn_configured, test_config};
use crate::managed::{OWNER, WRITER, managed};

/// Lets [`WRITER`] insert notifications (and delete them, naming them by id).
fn grant_writer(db: &str) {
    managed().superuser_sql(
        db,
        &format!("grant insert, delete, select (id, channel) on notifications to {WRITER}"),
    );
}

#[actix_web::test]
async fn herald_serves_over_verify_full_tls_and_every_session_of_it_is_encrypted_and_named() {
    let managed = managed();
    let (db, name) = managed.database();
    let mut config = test_config(&db.url);
    config.database.database_url =
        Some(DatabaseUrl::new(managed.tls_url(OWNER, &name, &managed.ca)));
    let app = spawn_configured(db, config).await;
    grant_writer(&name);
    let mut events = app.open_events(&app.token_for("1"), "", None).await;

    let writer = managed.connect(WRITER, &name).await;
    writer
        .batch_execute("insert into notifications (channel, title) values ('user:1', 'over TLS')")
        .await
        .expect("a writer with INSERT alone inserts");

    assert_eq!(events.titles(1).await, vec!["over TLS"]);
    let backends = app
        .pg()
        .await
        .query(
            "select coalesce(a.application_name, ''), s.ssl
             from pg_stat_activity a join pg_stat_ssl s using (pid)
             where a.datname = current_database() and a.backend_type = 'client backend'
               and a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let backends: Vec<(String, bool)> = backends.iter().map(|r| (r.get(0), r.get(1))).collect();
    // Each of herald's sessions says whose it is (the pools by libpq's fallback name, added
    // to this URL's own parameters): the one without a name is the writer's.
    for name in ["herald-listener", "herald-requests", "herald-upkeep"] {
        assert!(
            backends.iter().any(|(app, _)| app == name),
            "no {name} session: {backends:?}"
        );
    }
    let unnamed = backends.iter().filter(|(app, _)| app.is_empty()).count();
    assert_eq!(unnamed, 1, "only the writer's: {backends:?}");
    assert!(backends.iter().all(|(_, ssl)| *ssl), "{backends:?}");
}

#[actix_web::test]
async fn a_wrong_ca_is_a_clear_startup_error_not_a_hang() {
    let managed = managed();
    let (db, name) = managed.database();
    let good = managed.tls_url(OWNER, &name, &managed.ca);
    let wrong = managed.tls_url(OWNER, &name, &managed.other_ca);
    for (pool, listener, names) in [
        (&wrong, None, "cannot connect"),
        (&good, Some(&wrong), "cannot LISTEN"),
    ] {
        let mut config = test_config(&db.url);
        config.database.database_url = Some(DatabaseUrl::new(pool));
        config.listen_database_url = listener.map(DatabaseUrl::new);

        let built = tokio::time::timeout(WAIT, Application::build(config))
            .await
            .expect("herald gives up at once, it does not hang");

        let err = built.err().expect("herald refuses to start").to_string();
        assert!(err.contains(names), "{err}");
        assert!(err.contains("certificate"), "{err}");
    }
}

#[actix_web::test]
async fn herald_needs_no_superuser_and_a_writer_needs_only_insert_and_delete() {
    let managed = managed();
    let (db, name) = managed.database();
    let owner_url = managed.tls_url(OWNER, &name, &managed.ca);
    let mut config = test_config(&db.url);
    config.database.database_url = Some(DatabaseUrl::new(&owner_url));
    let app = spawn_configured(db, config).await;
    grant_writer(&name);
    let writer = managed.connect(WRITER, &name).await;
    let ids: Vec<i64> = writer
        .query(
            "insert into notifications (channel, title)
             select 'user:1', 'n' || i from generate_series(1, 3) i returning id",
            &[],
        )
        .await
        .expect("inserts")
        .iter()
        .map(|r| r.get(0))
        .collect();

    writer
        .execute("delete from notifications where id = $1", &[&ids[0]])
        .await
        .expect("the deletion triggers run as their owner");

    assert_eq!(app.unread_count("1").await, 2);
    let reads = writer
        .query("select * from notification_reads", &[])
        .await
        .expect_err("the writer sees nothing but what it was granted");
    let reason = reads.as_db_error().map(|e| e.message().to_owned());
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("permission denied")),
        "{reads:?}"
    );
    // herald's own upkeep runs as the owner: roll-ups, and pruning from the command line.
    let owner = managed.connect(OWNER, &name).await;
    let rolled: bool = owner
        .query_one("select herald_roll_up_counts(true)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(rolled);
    let prune = crate::cli::herald_on(&owner_url)
        .args(["prune", "--older-than", "1s"])
        .output()
        .unwrap();
    assert!(
        prune.status.success(),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    let is_super: bool = owner
        .query_one(
            "select rolsuper from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!is_super);
}

#[actix_web::test]
async fn behind_pgbouncer_in_transaction_mode_delivery_polling_reads_and_prune_work() {
    let managed = managed();
    let bouncer = managed.bouncer();
    let (db, name) = managed.database();
    let mut config = test_config(&db.url);
    // Queries (and migrations) through the pooler; LISTEN needs a session: the direct URL.
    config.database.database_url = Some(DatabaseUrl::new(bouncer.url(OWNER, &name)));
    config.listen_database_url = Some(DatabaseUrl::new(managed.tls_url(OWNER, &name, &managed.ca)));
    let app = spawn_configured(db, config).await;
    grant_writer(&name);
    let token = app.token_for("1");
    let cursor = app.list_cursor(&token, "").await;
    let mut events = app.open_events(&token, "", None).await;
    let writer = managed.connect(WRITER, &name).await;

    // More requests at once than PgBouncer has server connections (3): each query may land on
    // another server session.
    for round in 0..5 {
        writer
            .batch_execute(&format!(
                "insert into notifications (channel, title) values ('user:1', 'r{round}')"
            ))
            .await
            .unwrap();
        let path = format!("/api/notifications?after={cursor}");
        let polls = (0..6).map(|_| app.get(&path, Some(&token)));
        for (status, body) in futures_util::future::join_all(polls).await {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    let titles = events.titles(5).await;
    assert_eq!(titles, vec!["r0", "r1", "r2", "r3", "r4"]);
    let (_, list) = app
        .get(&format!("/api/notifications?after={cursor}"), Some(&token))
        .await;
    assert_eq!(list["notifications"].as_array().unwrap().len(), 5);
    let first = list["notifications"][0]["id"].as_i64().unwrap();
    let (status, marked) = app
        .post(
            &format!("/api/notifications/{first}/read"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    assert_eq!(marked["unread_count"], 4);
    events.next("read").await;
    let (status, all) = app
        .post("/api/notifications/read_all", Some(&token), None)
        .await;
    assert_eq!((status, all["marked"].as_i64()), (StatusCode::OK, Some(4)));
    // Pruning through the pooler, of rows made an hour old.
    app.sql("update notifications set created_at = created_at - interval '1 hour'")
        .await;
    let prune = crate::cli::herald_on(&bouncer.url(OWNER, &name))
        .args(["prune", "--older-than", "30m"])
        .output()
        .unwrap();
    assert!(
        prune.status.success(),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&prune.stdout).trim(), "pruned: 5");
    assert_eq!(app.unread_count("1").await, 0);
    // What herald's reads need is set on its functions: no session SET has to survive.
    let unset: i64 = app
        .pg()
        .await
        .query_one(
            "select count(*) from pg_proc
             where proname in ('herald_after', 'herald_newest', 'herald_since',
                               'herald_unread_count', 'herald_roll_up_counts')
               and not ('jit=off' = any(proconfig)
                        and exists (select from unnest(proconfig) c
                                    where c like 'plan_cache_mode=%')
                        or proname = 'herald_roll_up_counts')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unset, 0);
}
