//! Health, readiness and metrics for load balancers, Fly's checks and Prometheus.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// GET /healthz: the process is up.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// GET /readyz: the database answers and the LISTEN connection is live and caught up.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state
        .db(|conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query("select 1").execute(conn)
        })
        .await
        .is_ok();
    let listener = state.listener.is_live();
    let body = serde_json::json!({
        "status": if database && listener { "ready" } else { "not_ready" },
        "database": database,
        "listener": listener,
    });
    if database && listener {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// GET /metrics: Prometheus text format.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let hub = state.hub.stats();
    let listener = &state.listener;
    let series: [(&str, &str, &str, i64); 10] = [
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the herald process (Linux; 0 elsewhere).",
            resident_memory_bytes().unwrap_or(0),
        ),
        (
            "herald_http_connections_open",
            "gauge",
            "Open HTTP connections, streams included.",
            state.connections.open(),
        ),
        (
            "herald_streams_open",
            "gauge",
            "Open SSE streams.",
            hub.streams.load(Ordering::Relaxed),
        ),
        (
            "herald_long_polls_parked",
            "gauge",
            "Long-polls waiting for a notification.",
            hub.long_polls.load(Ordering::Relaxed),
        ),
        (
            "herald_listener_up",
            "gauge",
            "1 while the LISTEN connection is live and caught up.",
            listener.is_live() as i64,
        ),
        (
            "herald_listener_reconnects_total",
            "counter",
            "LISTEN connection failures recovered from.",
            listener.reconnects.load(Ordering::Relaxed) as i64,
        ),
        (
            "herald_listener_wakeups_total",
            "counter",
            "NOTIFY wake-ups received from PostgreSQL.",
            listener.wakeups.load(Ordering::Relaxed) as i64,
        ),
        (
            "herald_listener_reads_total",
            "counter",
            "Queries for new rows, woken by NOTIFY or polling.",
            listener.reads.load(Ordering::Relaxed) as i64,
        ),
        (
            "herald_notifications_received_total",
            "counter",
            "Notifications read from PostgreSQL and fanned out.",
            hub.rows_published.load(Ordering::Relaxed) as i64,
        ),
        (
            "herald_slow_clients_dropped_total",
            "counter",
            "Streams closed because the client fell behind.",
            hub.slow_dropped.load(Ordering::Relaxed) as i64,
        ),
    ];
    let mut text = String::new();
    for (name, kind, help, value) in series {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    state.metrics.render(&mut text);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// VmRSS of this process, from /proc.
fn resident_memory_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: i64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
