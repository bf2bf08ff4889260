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

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        file: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../web/index.html"),
    },
    Asset {
        path: "/herald.js",
        file: "herald.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/herald.js"),
    },
    Asset {
        path: "/herald.mjs",
        file: "herald.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/herald.mjs"),
    },
    Asset {
        path: "/herald.d.ts",
        file: "herald.d.ts",
        content_type: "application/typescript; charset=utf-8",
        body: include_str!("../../web/herald.d.ts"),
    },
    Asset {
        path: "/herald.css",
        file: "herald.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../web/herald.css"),
    },
    // Served at the root so its default scope is the whole site (the demo's page included).
    Asset {
        path: "/herald-sw.js",
        file: "herald-sw.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/herald-sw.js"),
    },
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
