//! The demo page and the browser client, compiled into the binary so `herald serve` works
//! from any directory.

use actix_web::{HttpResponse, http::header, web};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const HERALD_JS: &str = include_str!("../../web/herald.js");

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/herald.js", web::get().to(herald_js));
}

/// GET /: the demo page.
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(INDEX_HTML)
}

/// GET /herald.js: the client library.
async fn herald_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(HERALD_JS)
}
