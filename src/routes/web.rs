//! The demo page and the browser client, compiled into the binary so `herald serve` works
//! from any directory.

use actix_web::{HttpResponse, http::header, web};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const HERALD_JS: &str = include_str!("../../web/herald.js");
const HERALD_MJS: &str = include_str!("../../web/herald.mjs");
const HERALD_CSS: &str = include_str!("../../web/herald.css");

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/herald.js", web::get().to(herald_js))
        .route("/herald.mjs", web::get().to(herald_mjs))
        .route("/herald.css", web::get().to(herald_css))
        .route("/favicon.ico", web::get().to(HttpResponse::NoContent));
}

/// GET /: the demo page.
async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// GET /herald.js: the client library, as a classic script.
async fn herald_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", HERALD_JS)
}

/// GET /herald.mjs: the client library as an ES module.
async fn herald_mjs() -> HttpResponse {
    asset("text/javascript; charset=utf-8", HERALD_MJS)
}

/// GET /herald.css: the demo page's styles.
async fn herald_css() -> HttpResponse {
    asset("text/css; charset=utf-8", HERALD_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    // no-cache: revalidate, so a new herald version is picked up on the next load.
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}
