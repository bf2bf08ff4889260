//! Health, readiness and metrics for load balancers, Fly's checks and Prometheus.

use std::time::Duration;

use actix_web::{HttpResponse, web};

use crate::state::AppState;
use crate::store;

/// How long `/readyz` waits for a database connection before it says "not ready".
const READY_DB_WAIT: Duration = Duration::from_millis(500);

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
/// While the listener is down the answer is 503 at once (`"database": null`, not asked):
/// a probe with a 1 s timeout must see "not ready", not a timeout.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let listener = state.metrics.listener_up.get() == 1;
    let database = if listener {
        Some(store::ping(&state.pool, READY_DB_WAIT).await)
    } else {
        None
    };
    let ready = listener && database == Some(true);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
        "listener": listener,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// GET /metrics: the OpenMetrics text format, which Prometheus reads.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
