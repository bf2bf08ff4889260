//! The floor under herald's long-poll: actix-web with nothing of herald's (no token, no hub,
//! no cursor, no middleware), speaking Nchan's long-poll protocol so that `herald-bench
//! --nchan longpoll` measures it with the very clients it runs against herald and Nchan
//! (`bench/ab ROUNDS nchan target/release/examples/actix_floor longpoll ...`; BENCHMARKS.md,
//! "Issue 28: herald, actix-web alone and Nchan, side by side").
//!
//! - `GET /sub/broadcast` waits for the next message (or answers at once with the newest, if
//!   `If-None-Match` names an older one) and sends it with the `Last-Modified` and `Etag` a
//!   client asks again from;
//! - `POST /pub/broadcast` publishes its body; `GET /pub/broadcast` answers `{"subscribers"}`,
//!   the requests waiting.
//!
//! `FLOOR_BIND` (default `127.0.0.1:8090`) is where it listens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use tokio::sync::watch;

/// The newest message and its number (0: none yet).
type Newest = (u64, Bytes);

struct Channel {
    newest: watch::Sender<Newest>,
    waiting: AtomicUsize,
}

/// Counts a request as waiting while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn subscribe(req: HttpRequest, channel: web::Data<Channel>) -> HttpResponse {
    let mut newest = channel.newest.subscribe();
    let seen = req
        .headers()
        .get("if-none-match")
        .and_then(|etag| etag.to_str().ok()?.parse::<u64>().ok());
    let current = newest.borrow_and_update().0;
    if seen.is_none_or(|seen| seen >= current) {
        channel.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&channel.waiting);
        if newest.changed().await.is_err() {
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    let (number, body) = newest.borrow().clone();
    HttpResponse::Ok()
        .insert_header(("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT"))
        .insert_header(("Etag", number.to_string()))
        .body(body)
}

async fn publish(body: Bytes, channel: web::Data<Channel>) -> HttpResponse {
    channel.newest.send_modify(|(number, newest)| {
        *number += 1;
        *newest = body;
    });
    HttpResponse::Created().finish()
}

async fn info(channel: web::Data<Channel>) -> HttpResponse {
    let subscribers = channel.waiting.load(Ordering::Relaxed);
    HttpResponse::Ok()
        .content_type("application/json")
        .body(format!("{{\"subscribers\":{subscribers}}}"))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::var("FLOOR_BIND").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let channel = web::Data::from(Arc::new(Channel {
        newest: watch::channel((0, Bytes::new())).0,
        waiting: AtomicUsize::new(0),
    }));
    HttpServer::new(move || {
        App::new()
            .app_data(channel.clone())
            .route("/sub/broadcast", web::get().to(subscribe))
            .route("/pub/broadcast", web::post().to(publish))
            .route("/pub/broadcast", web::get().to(info))
    })
    .backlog(4096)
    // As bench/nchan.conf's nginx: the publisher's connection waits, idle, while the clients
    // park, and actix's 5 s defaults would close it.
    .client_request_timeout(Duration::from_secs(60))
    .keep_alive(Duration::from_secs(75))
    .bind(bind)?
    .run()
    .await
}
