//! `GET /events`: the SSE stream (SPEC section 4).
//!
//! Subscribe to the hub first, then replay from the client's cursor, then go live: anything
//! committed after the replay's snapshot is certain to arrive through the hub, and anything
//! the hub brings that the replay already covered is dropped (it is visible in that
//! snapshot). So there is no gap and no duplicate, however the two overlap.
//!
//! The response body is the stream itself: actix polls it when the connection can take more,
//! and each poll waits on the subscription. No task or channel sits between the hub and the
//! socket (each cost every open stream memory, and every event a second wake-up). A client
//! that stops reading is not polled; its hub queue fills, the hub drops it, and the socket's
//! `TCP_USER_TIMEOUT` (`HERALD_WRITE_TIMEOUT_SECS`) closes a connection that cannot take data.
//!
//! A stream never holds a database connection while it waits; it queries only to replay and
//! to recount unread notifications after a read-state change.
//!
//! A stream starts with its channels' kept signals (SPEC section 12), read in the same
//! statement as its first unread count: they go out before anything the hub brings, so
//! before any live signal, and carry no `id:`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use actix_web::{HttpRequest, Responder, web};
use actix_web_lab::sse;
use serde::Deserialize;
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use crate::auth::Caller;
use crate::cursor::{Cursor, Snapshot};
use crate::error::{AppError, AppResult};
use crate::hub::Kind;
use crate::hub::{Batch, HubEvent, Subscription};
use crate::inbox::ReadRequest;
use crate::metrics::Transport;
use crate::models::{ChangeEvent, Counts, ReadChange};
use crate::presence;
use crate::state::AppState;

/// How soon EventSource reconnects after a drop.
const RETRY: Duration = Duration::from_secs(3);
/// Rows per replay query.
const REPLAY_PAGE: i64 = 200;
/// The most a stream replays before it says `reset` instead.
const REPLAY_MAX: usize = 1000;

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(events));
}

#[derive(Deserialize)]
struct EventsQuery {
    channels: Option<String>,
    last_event_id: Option<String>,
    presence: Option<String>,
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

    // Each must be readable, as if streamed (SPEC section 8).
    let presence = match query.presence.as_deref() {
        Some(list) => caller.channels(Some(list))?,
        None => Vec::new(),
    };
    let live = state
        .hub
        .subscribe(Kind::Stream, &caller.user_id, &channels)?;
    // Before entering: a change made while we enter reaches us, and the snapshot's version
    // says whether it is news.
    live.watch_presence(&presence);
    let heartbeat = state.config.heartbeat();
    // While this is open, the caller gets no Web Push: they see their notifications here.
    let streaming = state
        .push
        .as_ref()
        .map(|_| state.presence.hold_stream(&caller.user_id));
    let stream = EventStream {
        _streaming: streaming,
        state: state.clone(),
        expiry: Box::pin(tokio::time::sleep(caller.expires_in())),
        caller,
        channels,
        live,
        ping: pings(heartbeat),
        phase: Phase::Start(resume_from),
        out: VecDeque::new(),
        presence: presence
            .into_iter()
            .map(|channel| Watched {
                channel,
                version: 0,
                hold: None,
            })
            .collect(),
    };
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok::<_, Infallible>(event), stream))
    });

    Ok(sse::Sse::from_stream(events)
        .with_retry_duration(RETRY)
        .customize()
        .insert_header(("X-Accel-Buffering", "no")))
}

/// Why a stream ended early.
enum End {
    /// The hub let go (the client fell behind, or herald is shutting down), or the token
    /// expired.
    Over,
    /// A query failed; the client reconnects and resumes from its last event.
    Failed(AppError),
}

impl From<AppError> for End {
    fn from(err: AppError) -> End {
        End::Failed(err)
    }
}

impl From<crate::store::StoreError> for End {
    fn from(err: crate::store::StoreError) -> End {
        End::Failed(err.into())
    }
}

/// Where a stream is.
enum Phase {
    /// Nothing sent yet; the cursor to resume after, if the client gave one.
    Start(Option<String>),
    /// Live: everything visible in `floor` has been delivered (or was before the cursor).
    Live { floor: Snapshot, unread: Unread },
    /// Ended: what is left in `out` goes, then the response ends.
    Done,
}

/// One client's stream, polled by actix as the response body.
struct EventStream {
    /// Shared, not copied: every open stream holds one.
    state: web::Data<AppState>,
    caller: Caller,
    channels: Vec<String>,
    live: Subscription,
    phase: Phase,
    /// Events ready to go, oldest first.
    out: VecDeque<sse::Event>,
    expiry: Pin<Box<Sleep>>,
    ping: Interval,
    /// The channels this stream is present on and watches.
    presence: Vec<Watched>,
    /// Holds the caller on [`presence::STREAMS`] (with Web Push on).
    _streaming: Option<presence::Hold>,
}

/// A channel whose presence a stream holds and watches.
struct Watched {
    channel: String,
    /// The version of its list the client has.
    version: u64,
    /// Held from the snapshot on; dropped with the stream.
    hold: Option<presence::Hold>,
}

/// The caller's counts, and the snapshot they are exact for.
struct Unread {
    count: Counts,
    at: Snapshot,
}

impl EventStream {
    /// The next event to send; `None` ends the response.
    async fn next(&mut self) -> Option<sse::Event> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Some(event);
            }
            if matches!(self.phase, Phase::Done) {
                return None;
            }
            if let Err(end) = self.advance().await {
                if let End::Failed(err) = end {
                    log::warn!("stream ended user_id={} error={err}", self.caller.user_id);
                }
                self.phase = Phase::Done;
            }
        }
    }

    /// Waits for what comes next and queues the events it makes.
    async fn advance(&mut self) -> Result<(), End> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Start(resume_from) => {
                // Boxed, as the recounts below: a future is as large as its largest await,
                // and these (queries) would otherwise make every idle stream's state
                // hundreds of bytes larger for an await it rarely is at.
                let (floor, unread) = Box::pin(self.start(resume_from)).await?;
                self.phase = Phase::Live { floor, unread };
            }
            Phase::Live { floor, mut unread } => {
                self.wait(&floor, &mut unread).await?;
                self.phase = Phase::Live { floor, unread };
            }
            Phase::Done => {}
        }
        Ok(())
    }

    /// The kept signals, the replay (if resuming) and the first unread count.
    async fn start(&mut self, resume_from: Option<String>) -> Result<(Snapshot, Unread), End> {
        for i in 0..self.presence.len() {
            let channel = self.presence[i].channel.clone();
            let (hold, snapshot) = self
                .state
                .presence
                .enter(&channel, &self.caller.user_id, self.caller.name.as_deref())
                .await?;
            let watched = &mut self.presence[i];
            watched.hold = Some(hold);
            watched.version = snapshot.version;
            self.out
                .push_back(sse::Data::new(snapshot.json).event("presence").into());
        }
        // Only the stream's own channels, which the token was checked for.
        let opening = self
            .state
            .inbox
            .opening(&self.caller.user_id, &self.channels)
            .await?;
        for event in opening.kept {
            self.out
                .push_back(sse::Data::new(event).event("signal").into());
        }
        let unread = Unread {
            count: opening.counts,
            at: opening.snapshot,
        };
        let floor = match resume_from.map(|text| Cursor::parse(&text)) {
            None => unread.at.clone(),
            Some(Ok(cursor)) => self.replay(cursor).await?,
            Some(Err(_)) => {
                self.push_reset(&Cursor::at(unread.at.clone()));
                unread.at.clone()
            }
        };
        // The first unread count carries the stream's position as its id: a client that
        // connected without a cursor and drops before its first notification still resumes
        // without a gap (EventSource sends the last id it saw, whatever the event).
        self.out.push_back(
            sse::Data::new(json(&unread.count))
                .event("unread_count")
                .id(Cursor::at(floor.clone()).to_string())
                .into(),
        );
        Ok((floor, unread))
    }

    /// Waits for the next hub event, ping or expiry, and queues what it means for this client.
    async fn wait(&mut self, floor: &Snapshot, unread: &mut Unread) -> Result<(), End> {
        tokio::select! {
            event = self.live.recv() => match event {
                None => return Err(End::Over),
                Some(HubEvent::Rows(batch)) => self.forward(&batch, floor, unread),
                Some(HubEvent::Read(change)) => {
                    // Other tabs hear what changed, then the counts (SPEC section 12); any
                    // change means a recount.
                    let told = self.push_change(&change);
                    Box::pin(self.refresh_unread(unread, told)).await?;
                }
                Some(HubEvent::Resync) => Box::pin(self.refresh_unread(unread, false)).await?,
                Some(HubEvent::Presence(change)) => {
                    let watched = self.presence.iter_mut().find(|w| w.channel == change.channel);
                    // Changes the snapshot already showed are not news.
                    if let Some(watched) = watched.filter(|w| change.version > w.version) {
                        watched.version = change.version;
                        self.out
                            .push_back(sse::Data::new(change.json.clone()).event("presence").into());
                    }
                }
                // No id: a signal is not a position, and never replayed.
                Some(HubEvent::Signal(signal)) => {
                    self.out.push_back(sse::Data::new(signal.json.clone()).event("signal").into());
                }
            },
            _ = self.ping.tick() => {
                let now = chrono::Utc::now().timestamp_millis();
                self.out.push_back(json_event("ping", &serde_json::json!({ "t": now })));
            }
            _ = &mut self.expiry => {
                self.out.push_back(json_event("auth_expired", &serde_json::json!({})));
                return Err(End::Over);
            }
        }
        Ok(())
    }

    /// Queues everything after `cursor`; returns the snapshot the replay is complete up to.
    /// A cursor more than [`REPLAY_MAX`] notifications behind is too old: after that many the
    /// stream sends `reset` and goes on from now (the client reloads its list).
    async fn replay(&mut self, mut cursor: Cursor) -> Result<Snapshot, End> {
        let mut sent = 0;
        loop {
            let request = ReadRequest {
                after: Some(cursor.clone()),
                limit: REPLAY_PAGE,
                ..ReadRequest::default()
            };
            let page = self
                .state
                .inbox
                .read(&self.caller.user_id, &self.channels, request)
                .await?;
            if page.reset {
                self.push_reset(&page.cursor);
                return Ok(page.snapshot);
            }
            for row in &page.rows {
                let n = &row.notification;
                let id = cursor.after_row(&page.snapshot, n.txid, n.id).to_string();
                self.out
                    .push_back(notification_event(json(&n.to_json(row.state)), id));
                self.state.metrics.delivered(Transport::Sse, 1);
            }
            sent += page.rows.len();
            if (page.rows.len() as i64) < REPLAY_PAGE {
                return Ok(page.snapshot);
            }
            if sent >= REPLAY_MAX {
                self.push_reset(&Cursor::at(page.snapshot.clone()));
                return Ok(page.snapshot);
            }
            cursor = page.cursor;
        }
    }

    /// Queues the batch's rows this stream shows and has not had, and keeps the count.
    fn forward(&mut self, batch: &Batch, floor: &Snapshot, unread: &mut Unread) {
        let news = self.live.news(batch, floor, &unread.at);
        let metrics = &self.state.metrics;
        for row in news.rows {
            let id = row.position_after(floor);
            self.out.push_back(notification_event(row.json.clone(), id));
            metrics.delivered(Transport::Sse, 1);
            metrics.observe_delivery(row.created_at);
        }
        if news.unread_added > 0 {
            unread.count.add(news.unread_added);
            self.push_unread(unread);
        }
    }

    async fn recount(&self) -> Result<Unread, End> {
        let (count, at) = self.state.inbox.count_now(&self.caller.user_id).await?;
        Ok(Unread { count, at })
    }

    /// Recounts; the counts go out if they changed, or `always` (after a change event).
    async fn refresh_unread(&mut self, unread: &mut Unread, always: bool) -> Result<(), End> {
        let fresh = self.recount().await?;
        let changed = fresh.count != unread.count;
        *unread = fresh;
        if changed || always {
            self.push_unread(unread);
        }
        Ok(())
    }

    fn push_unread(&mut self, unread: &Unread) {
        self.out.push_back(
            sse::Data::new(json(&unread.count))
                .event("unread_count")
                .into(),
        );
    }

    /// Queues the event that tells this tab what another did; false if there is none (a
    /// change only recounts).
    fn push_change(&mut self, change: &ReadChange) -> bool {
        let through = || {
            let snapshot = change
                .through
                .as_deref()
                .and_then(|t| Snapshot::parse(t).ok());
            snapshot.map(|s| Cursor::at(s).to_string())
        };
        let (name, data) = match change.event() {
            ChangeEvent::Changed => return false,
            ChangeEvent::Read if change.all => ("read", serde_json::json!({ "all": true })),
            ChangeEvent::Seen => match through() {
                Some(through) => ("seen", serde_json::json!({ "through": through })),
                None => return false,
            },
            ChangeEvent::Archived if change.all => (
                "archived",
                serde_json::json!({ "all": true, "through": through() }),
            ),
            event => (event.name(), serde_json::json!({ "ids": change.ids })),
        };
        self.out.push_back(json_event(name, &data));
        true
    }

    fn push_reset(&mut self, cursor: &Cursor) {
        self.out.push_back(json_event(
            "reset",
            &serde_json::json!({ "cursor": cursor.to_string() }),
        ));
    }
}

/// A ping every `heartbeat`, the first one heartbeat from now. A client that was not reading
/// gets one ping when it catches up, not the ones it missed.
fn pings(heartbeat: Duration) -> Interval {
    let mut pings = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    pings
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
