//! The LISTEN connection's failures, and the wake-up switch.

use crate::helpers::spawn_app;

#[actix_web::test]
async fn after_the_listener_backend_is_killed_herald_reconnects_and_delivers_what_was_missed() {
    let app = spawn_app().await;
    let mut events = app.open_events(&app.token_for("1"), "", None).await;
    app.insert("user:1", "before").await;
    assert_eq!(events.titles(1).await, vec!["before"]);

    app.sql(
        "select pg_terminate_backend(pid) from pg_stat_activity
         where application_name = 'herald-listener' and datname = current_database()",
    )
    .await;
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
