//! The demo page and the browser client, compiled into the binary so `herald serve` works
//! from any directory. With `HERALD_WEB_DIR` set (development), the same files are read from
//! that directory on every request instead, so a change to `web/` shows on reload.

use std::path::PathBuf;

use actix_web::{HttpResponse, http::header, web};

/// A file of `web/` that herald serves.
struct Asset {
    /// Where it is served.
    path: &'static str,
    /// Its name under `web/`.
    file: &'static str,
    content_type: &'static str,
    /// The file as compiled in.
    body: &'static str,
}

/// An [`Asset`] for `web/<file>`, served at `/<file>` (or at `path`).
macro_rules! asset {
    ($file:literal, $content_type:literal) => {
        asset!(concat!("/", $file), $file, $content_type)
    };
    ($path:expr, $file:literal, $content_type:literal) => {
        Asset {
            path: $path,
            file: $file,
            content_type: $content_type,
            body: include_str!(concat!("../../web/", $file)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("herald.js", "text/javascript; charset=utf-8"),
    asset!("herald.mjs", "text/javascript; charset=utf-8"),
    asset!("herald.d.ts", "application/typescript; charset=utf-8"),
    asset!("herald.css", "text/css; charset=utf-8"),
    // Served at the root so its default scope is the whole site (the demo's page included).
    asset!("herald-sw.js", "text/javascript; charset=utf-8"),
];

/// Routes of this module: every asset, from `web_dir` if given.
pub fn configure(cfg: &mut web::ServiceConfig, web_dir: Option<PathBuf>) {
    for asset in ASSETS {
        let dir = web_dir.clone();
        cfg.route(
            asset.path,
            web::get().to(move || {
                let dir = dir.clone();
                async move { serve(asset, dir) }
            }),
        );
    }
    cfg.route("/favicon.ico", web::get().to(HttpResponse::NoContent));
}

fn serve(asset: &Asset, dir: Option<PathBuf>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    // no-cache: revalidate, so a new herald version is picked up on the next load.
    response
        .content_type(asset.content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    match dir {
        // Development only, and a few KB: reading it on the worker is fine.
        Some(dir) => match std::fs::read(dir.join(asset.file)) {
            Ok(body) => response.body(body),
            Err(err) => {
                log::warn!("web asset unreadable file={} error={err}", asset.file);
                HttpResponse::NotFound().finish()
            }
        },
        None => response.body(asset.body),
    }
}
