//! `/events` read as a browser's EventSource reads it (eventsource-stream parses the stream):
//! event by event, with every wait bounded.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use actix_web::http::StatusCode;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::Value;

use super::{Rng, TestApp, WAIT};

impl TestApp {
    /// Waits until herald has read everything committed before the call. Polls are answered
    /// as of herald's last read of the database (`hub::recent` has the contract), so a test
    /// that changes rows with SQL and then polls waits here in between, as a real client's
    /// next poll would come a little later. A row committed now on a channel of its own has
    /// been read once a live stream on that channel gets it.
    pub async fn caught_up(&self) {
        static FENCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut fence = self.fence.lock().await;
        if fence.is_none() {
            let token = self.token_with("fence", &["fence"], false);
            *fence = Some(self.open_events(&token, "channels=fence", None).await);
        }
        let stream = fence.as_mut().expect("opened");
        let marker = format!(
            "fence {}",
            FENCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.insert("fence", &marker).await;
        while stream.next("notification").await.json()["title"] != marker.as_str() {}
    }

    /// Opens `/events?token=...&<query>`, optionally with `Last-Event-ID`; panics unless 200.
    pub async fn open_events(
        &self,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> EventStream {
        match self.try_open_events(token, query, last_event_id).await {
            Ok(stream) => stream,
            Err(why) => panic!("GET /events: {why}"),
        }
    }

    /// Like [`TestApp::open_events`], but says why it could not (as a browser would retry).
    pub async fn try_open_events(
        &self,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, String> {
        let mut request = self
            .client
            .get(format!("{}/events?token={token}&{query}", self.address));
        if let Some(id) = last_event_id {
            request = request.insert_header(("Last-Event-ID", id));
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("status {}", response.status()));
        }
        let mut stream = EventStream {
            events: Box::pin(response.eventsource()),
            pending: VecDeque::new(),
            position: None,
        };
        // Every stream sends its unread count once subscribed and replayed; what it replayed
        // before that stays queued for the test to read.
        let mut replayed = VecDeque::new();
        loop {
            let Some(event) = stream.next_any().await else {
                return Err("stream ended before its unread count".into());
            };
            if event.event == "unread_count" {
                assert!(
                    event.id.is_some(),
                    "the first unread count carries the position"
                );
                stream.position = event.id.clone();
                break;
            }
            replayed.push_back(event);
        }
        stream.pending = replayed;
        Ok(stream)
    }

    /// Follows `/events` as herald.js does until `stop`: starts from `cursor` (a list's, so
    /// nothing falls between the list and the stream), keeps the last event id, and when the
    /// stream ends (or `drops` says so, after a random while) reconnects with it. Pushes every
    /// notification's title to `received`.
    pub async fn follow_events(
        &self,
        token: &str,
        query: &str,
        cursor: String,
        received: Received,
        stop: Rc<Cell<bool>>,
        mut drops: Option<Rng>,
    ) {
        let mut last_id = Some(cursor);
        let title = |event: &SseEvent| {
            received
                .borrow_mut()
                .push(event.json()["title"].as_str().unwrap().to_owned())
        };
        while !stop.get() {
            let mut stream = match self.try_open_events(token, query, last_id.as_deref()).await {
                Ok(stream) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let drop_at = drops.as_mut().map(|rng| {
                tokio::time::Instant::now() + Duration::from_millis(20) + rng.millis(300)
            });
            for event in stream.take_replayed() {
                assert_eq!(event.event, "notification", "{event:?}");
                title(&event);
            }
            last_id = stream.position.clone();
            loop {
                let until = drop_at
                    .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_millis(200));
                let event = match tokio::time::timeout_at(until, stream.read_event()).await {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    // Time to drop the connection, or quiet for a while: look at `stop` again.
                    Err(_) if drop_at.is_some() || stop.get() => break,
                    Err(_) => continue,
                };
                match event.event.as_str() {
                    "notification" => title(&event),
                    "reset" => panic!("a resume within the replay window was reset: {event:?}"),
                    _ => {}
                }
                if event.id.is_some() {
                    last_id = event.id;
                }
            }
        }
    }
}

/// What a following client has received, in order.
pub type Received = Rc<RefCell<Vec<String>>>;

/// One server-sent event, as EventSource delivers it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `event:` (`message` if absent).
    pub event: String,
    /// The stream's last event id after this event (EventSource's `lastEventId`: the latest
    /// `id:` the stream sent, this event's or an earlier one's), if any: what a client
    /// resumes from.
    pub id: Option<String>,
    /// `data:` lines joined.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

type Events = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<awc::error::PayloadError>,
                >,
            >,
    >,
>;

/// An open SSE response, read event by event.
pub struct EventStream {
    events: Events,
    pending: VecDeque<SseEvent>,
    /// The `id` of the first unread count: the stream's position after its replay.
    pub position: Option<String>,
}

impl EventStream {
    /// The next event of any kind, or `None` when the stream ended; panics after [`WAIT`].
    pub async fn next_any(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(WAIT, self.read_event())
            .await
            .unwrap_or_else(|_| panic!("no event within {WAIT:?}"))
    }

    /// The next event named `kind`, skipping others; panics (listing them) after [`WAIT`].
    pub async fn next(&mut self, kind: &str) -> SseEvent {
        self.next_within(kind, WAIT).await
    }

    /// The next event named `kind`, skipping others; panics (listing them) after `wait`.
    pub async fn next_within(&mut self, kind: &str, wait: Duration) -> SseEvent {
        let mut skipped = Vec::new();
        let found = tokio::time::timeout(wait, async {
            while let Some(event) = self.read_event().await {
                if event.event == kind {
                    return Some(event);
                }
                skipped.push(event);
            }
            None
        })
        .await;
        match found {
            Ok(Some(event)) => event,
            Ok(None) => panic!("stream ended before a {kind:?} event; got {skipped:#?}"),
            Err(_) => panic!("no {kind:?} event within {wait:?}; got {skipped:#?}"),
        }
    }

    /// The events replayed before the first unread count, taken out of the stream (a client
    /// that reads them has then seen [`EventStream::position`] as its last id).
    pub fn take_replayed(&mut self) -> Vec<SseEvent> {
        self.pending.drain(..).collect()
    }

    /// The titles of the next `n` notification events, in order.
    pub async fn titles(&mut self, n: usize) -> Vec<String> {
        let mut titles = Vec::new();
        for _ in 0..n {
            let event = self.next("notification").await;
            titles.push(event.json()["title"].as_str().unwrap().to_owned());
        }
        titles
    }

    async fn read_event(&mut self) -> Option<SseEvent> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        match self.events.next().await? {
            Ok(event) => Some(SseEvent {
                event: event.event,
                id: (!event.id.is_empty()).then_some(event.id),
                data: event.data,
            }),
            // A broken stream ends like a closed one: the client reconnects.
            Err(_) => None,
        }
    }
}
