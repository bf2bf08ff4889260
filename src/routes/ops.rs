//! Health, readiness and metrics for load balancers, Fly's checks and Prometheus.

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
    let listener = state.metrics.listener_up.get() == 1;
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

/// GET /metrics: the OpenMetrics text format, which Prometheus reads.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
