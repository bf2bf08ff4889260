//! `GET /events`: the SSE stream (SPEC section 4).
//!
//! Subscribe to the hub first, then replay from the client's cursor, then go live: anything
//! committed after the replay's snapshot is certain to arrive through the hub, and anything
//! the hub brings that the replay already covered is dropped (it is visible in that
//! snapshot). So there is no gap and no duplicate, however the two overlap.
//!
//! A stream never holds a database connection while it waits; it queries only to replay and
//! to recount unread notifications after a read-state change.

use std::time::Duration;

use actix_web::{HttpRequest, Responder, web};
use actix_web_lab::sse;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::cursor::{Cursor, Snapshot};
use crate::error::{AppError, AppResult};
use crate::hub::Kind;
use crate::hub::{Batch, HubEvent, Subscription};
use crate::metrics::Transport;
use crate::state::AppState;
use crate::store::{self, notifications::PageRequest, notifications::Reader};

/// How soon EventSource reconnects after a drop.
const RETRY: Duration = Duration::from_secs(3);
/// Rows per replay query.
const REPLAY_PAGE: i64 = 200;
/// The most a stream replays before it says `reset` instead.
const REPLAY_MAX: usize = 1000;
/// A client that takes longer than this to accept one event is gone or hopelessly slow.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Events buffered between this stream's task and the HTTP response.
const BUFFER: usize = 32;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(events));
}

#[derive(Deserialize)]
struct EventsQuery {
    channels: Option<String>,
    last_event_id: Option<String>,
}

/// GET /events: a notification stream on the caller's inbox or `?channels=`, resuming after
/// `Last-Event-ID` (or `?last_event_id=`).
async fn events(
    req: HttpRequest,
    caller: Caller,
    query: web::Query<EventsQuery>,
    state: web::Data<AppState>,
) -> AppResult<impl Responder> {
    let query = query.into_inner();
    let channels = caller.channels(query.channels.as_deref())?;
    let resume_from = req
        .headers()
        .get("last-event-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or(query.last_event_id)
        .filter(|id| !id.is_empty());

    let live = state
        .hub
        .subscribe(Kind::Stream, &caller.user_id, &channels)?;

    // Boxed: tokio allocates a channel's slots 32 at a time whatever its bound, and 32
    // unboxed events are 3 KB of every open stream's memory.
    let (tx, rx) = mpsc::channel::<Box<sse::Event>>(BUFFER);
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (*event, rx))
    });
    let task = StreamTask {
        state: state.get_ref().clone(),
        caller,
        channels,
        tx,
    };
    actix_web::rt::spawn(task.run(live, resume_from));

    Ok(sse::Sse::from_infallible_stream(events)
        .with_keep_alive(state.config.heartbeat())
        .with_retry_duration(RETRY)
        .customize()
        .insert_header(("X-Accel-Buffering", "no")))
}

/// Why a stream ended early.
enum End {
    /// The client went away, or cannot keep up.
    Gone,
    /// A query failed; the client reconnects and resumes from its last event.
    Failed(AppError),
}

impl From<AppError> for End {
    fn from(err: AppError) -> End {
        End::Failed(err)
    }
}

/// One client's stream: the task behind the SSE response.
struct StreamTask {
    state: AppState,
    caller: Caller,
    channels: Vec<String>,
    tx: mpsc::Sender<Box<sse::Event>>,
}

/// The caller's unread count, and the snapshot it is exact for.
struct Unread {
    count: i64,
    at: Snapshot,
}

impl StreamTask {
    async fn run(self, mut live: Subscription, resume_from: Option<String>) {
        match self.serve(&mut live, resume_from).await {
            Ok(()) | Err(End::Gone) => {}
            Err(End::Failed(err)) => {
                log::warn!("stream ended user_id={} error={err}", self.caller.user_id)
            }
        }
    }

    async fn serve(&self, live: &mut Subscription, resume_from: Option<String>) -> Result<(), End> {
        let mut unread = self.recount().await?;

        // Everything visible in `floor` has been delivered (or was before the cursor).
        let floor = match resume_from.map(|text| Cursor::parse(&text)) {
            None => unread.at.clone(),
            Some(Ok(cursor)) => self.replay(cursor).await?,
            Some(Err(_)) => {
                self.send_reset(&Cursor::at(unread.at.clone())).await?;
                unread.at.clone()
            }
        };
        // The first unread count carries the stream's position as its id: a client that
        // connected without a cursor and drops before its first notification still resumes
        // without a gap (EventSource sends the last id it saw, whatever the event).
        self.send(
            sse::Data::new(json(&serde_json::json!({ "unread_count": unread.count })))
                .event("unread_count")
                .id(Cursor::at(floor.clone()).to_string())
                .into(),
        )
        .await?;

        let expiry = tokio::time::sleep(self.caller.expires_in());
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                event = live.recv() => match event {
                    // The hub let go: we fell behind, or herald is shutting down.
                    None => return Ok(()),
                    Some(HubEvent::Rows(batch)) => {
                        self.forward(live, &batch, &floor, &mut unread).await?
                    }
                    Some(HubEvent::Read(change)) => {
                        // Other tabs hear what was marked read; any change means a recount.
                        if change.marked() {
                            let data = if change.all {
                                serde_json::json!({ "all": true })
                            } else {
                                serde_json::json!({ "ids": change.ids })
                            };
                            self.send(json_event("read", &data)).await?;
                        }
                        self.refresh_unread(&mut unread).await?;
                    }
                    Some(HubEvent::Resync) => self.refresh_unread(&mut unread).await?,
                },
                _ = &mut expiry => {
                    self.send(json_event("auth_expired", &serde_json::json!({}))).await?;
                    return Ok(());
                }
                _ = self.tx.closed() => return Err(End::Gone),
            }
        }
    }

    /// Sends everything after `cursor`; returns the snapshot the replay is complete up to.
    /// A cursor more than [`REPLAY_MAX`] notifications behind is too old: after that many the
    /// stream sends `reset` and goes on from now (the client reloads its list).
    async fn replay(&self, mut cursor: Cursor) -> Result<Snapshot, End> {
        let mut sent = 0;
        loop {
            let (user_id, channels, after) = (
                self.caller.user_id.clone(),
                self.channels.clone(),
                cursor.clone(),
            );
            let page = self
                .state
                .db(move |conn| {
                    let reader = Reader {
                        user_id: &user_id,
                        channels: &channels,
                    };
                    let request = PageRequest {
                        after: Some(&after),
                        limit: REPLAY_PAGE,
                        unread_only: false,
                    };
                    store::notifications::page(conn, &reader, &request)
                })
                .await?;
            if page.reset {
                self.send_reset(&page.cursor).await?;
                return Ok(page.snapshot);
            }
            for row in &page.rows {
                let n = &row.notification;
                let id = cursor.after_row(&page.snapshot, n.txid, n.id).to_string();
                self.send(notification_event(json(&n.to_json(row.read)), id))
                    .await?;
                self.state.metrics.delivered(Transport::Sse, 1);
            }
            sent += page.rows.len();
            if (page.rows.len() as i64) < REPLAY_PAGE {
                return Ok(page.snapshot);
            }
            if sent >= REPLAY_MAX {
                self.send_reset(&Cursor::at(page.snapshot.clone())).await?;
                return Ok(page.snapshot);
            }
            cursor = page.cursor;
        }
    }

    /// Sends the batch's rows this stream shows and has not had, and keeps the count.
    async fn forward(
        &self,
        live: &Subscription,
        batch: &Batch,
        floor: &Snapshot,
        unread: &mut Unread,
    ) -> Result<(), End> {
        let news = live.news(batch, floor, &unread.at);
        for row in news.rows {
            let id = row.position_after(floor);
            self.send(notification_event(row.json.clone(), id)).await?;
            let metrics = &self.state.metrics;
            metrics.delivered(Transport::Sse, 1);
            metrics.observe_delivery(row.created_at);
        }
        if news.unread_added > 0 {
            unread.count += news.unread_added;
            self.send_unread(unread).await?;
        }
        Ok(())
    }

    async fn recount(&self) -> Result<Unread, End> {
        let user_id = self.caller.user_id.clone();
        let (count, at) = self
            .state
            .db(move |conn| store::reads::unread_count(conn, &user_id))
            .await?;
        Ok(Unread { count, at })
    }

    async fn refresh_unread(&self, unread: &mut Unread) -> Result<(), End> {
        let fresh = self.recount().await?;
        let changed = fresh.count != unread.count;
        *unread = fresh;
        if changed {
            self.send_unread(unread).await?;
        }
        Ok(())
    }

    async fn send_unread(&self, unread: &Unread) -> Result<(), End> {
        self.send(json_event(
            "unread_count",
            &serde_json::json!({ "unread_count": unread.count }),
        ))
        .await
    }

    async fn send_reset(&self, cursor: &Cursor) -> Result<(), End> {
        self.send(json_event(
            "reset",
            &serde_json::json!({ "cursor": cursor.to_string() }),
        ))
        .await
    }

    async fn send(&self, event: sse::Event) -> Result<(), End> {
        match tokio::time::timeout(SEND_TIMEOUT, self.tx.send(Box::new(event))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => {
                log::warn!(
                    "stream dropped reason=send_timeout user_id={}",
                    self.caller.user_id
                );
                self.state.metrics.slow_clients_dropped.inc();
                Err(End::Gone)
            }
        }
    }
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("event data serializes")
}

fn json_event(name: &'static str, data: &serde_json::Value) -> sse::Event {
    sse::Data::new(json(data)).event(name).into()
}

fn notification_event(json: impl Into<bytestring::ByteString>, id: String) -> sse::Event {
    sse::Data::new(json).event("notification").id(id).into()
}
