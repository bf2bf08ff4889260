//! Counts every answer by route pattern and status (`herald_http_requests_total`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::state::AppState;

/// Counts every answer by route pattern and status, for `/metrics`.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let (route, status) = match &result {
            Ok(res) => (
                res.request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_owned()),
                res.status(),
            ),
            // Errors from middleware (handlers' errors are responses by now).
            Err(err) => (
                "unmatched".to_owned(),
                err.as_response_error().status_code(),
            ),
        };
        metrics.count_request(route, status.as_u16());
    }
    result
}
