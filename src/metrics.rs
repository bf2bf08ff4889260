//! Every counter and gauge herald keeps, in one prometheus-client registry per app (so tests
//! can run several apps in one process), encoded for `GET /metrics`.
//!
//! The hub, the listener, the HTTP layer and the routes each bump theirs here; nothing else
//! keeps a count. A leaf: it knows no other module of herald.

use chrono::{DateTime, Utc};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the delivery-latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How a notification reached its client.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Transport {
    /// An SSE stream, live or replayed.
    Sse,
    /// A poll or long-poll answer.
    Poll,
}

impl EncodeLabelValue for Transport {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let name = match self {
            Transport::Sse => "sse",
            Transport::Poll => "poll",
        };
        EncodeLabelValue::encode(&name, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: Transport,
}

/// Where a poll's (or an unread count's) answer came from.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Source {
    /// The hub's memory (`hub::recent`).
    Memory,
    /// A query.
    Database,
}

impl EncodeLabelValue for Source {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let name = match self {
            Source::Memory => "memory",
            Source::Database => "database",
        };
        EncodeLabelValue::encode(&name, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: Source,
}

/// A request's route pattern (`/api/notifications/{id}/read`, or `unmatched`: never a raw
/// path, so the series stay few) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

/// herald's metrics; see the README's list for what each means.
pub struct Metrics {
    /// Open SSE streams.
    pub streams_open: Gauge,
    /// Long-polls waiting for a notification.
    pub long_polls_parked: Gauge,
    /// Requests whose body is still arriving (each holds a place under the stream limits).
    pub request_bodies_pending: Gauge,
    /// Open HTTP connections, streams included.
    pub http_connections_open: Gauge,
    /// 1 while the LISTEN connection is live and caught up.
    pub listener_up: Gauge,
    /// LISTEN connection failures recovered from.
    pub listener_reconnects: Counter,
    /// The delay before the latest reconnect of the LISTEN connection, in seconds.
    pub listener_reconnect_delay: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// NOTIFY wake-ups received from PostgreSQL.
    pub listener_wakeups: Counter,
    /// Queries for new rows, woken by NOTIFY or polling.
    pub listener_reads: Counter,
    /// Notifications read from PostgreSQL and fanned out.
    pub notifications_received: Counter,
    /// Streams closed because the client fell behind.
    pub slow_clients_dropped: Counter,
    /// Signals accepted by `POST /api/signals` on this instance.
    pub signals_sent: Counter,
    /// Signals from other instances, and from `herald_signal`, handed to this instance's
    /// streams.
    pub signals_relayed: Counter,
    /// Web pushes a push service accepted.
    pub pushes_sent: Counter,
    /// Web pushes given up on (refused, or still failing when their TTL ran out).
    pub pushes_failed: Counter,
    /// Push subscriptions removed because their push service said they are gone.
    pub push_subscriptions_removed: Counter,
    /// `herald_events_delivered{transport}`'s two series, looked up once: a broadcast counts
    /// one delivery per stream, and a label lookup each was 1.6% of its CPU.
    delivered_sse: Counter,
    delivered_poll: Counter,
    /// `herald_answers{source}`'s two series.
    answered_memory: Counter,
    answered_database: Counter,
    delivery_latency: Histogram,
    http_requests: Family<RequestLabels, Counter>,
    resident_memory: Gauge,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let mut gauge = |name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let resident_memory = gauge(
            "process_resident_memory_bytes",
            "Resident memory of the herald process (Linux; 0 elsewhere)",
        );
        let http_connections_open = gauge(
            "herald_http_connections_open",
            "Open HTTP connections, streams included",
        );
        let streams_open = gauge("herald_streams_open", "Open SSE streams");
        let long_polls_parked = gauge(
            "herald_long_polls_parked",
            "Long-polls waiting for a notification",
        );
        let request_bodies_pending = gauge(
            "herald_request_bodies_pending",
            "Requests whose body is still arriving",
        );
        let listener_up = gauge(
            "herald_listener_up",
            "1 while the LISTEN connection is live and caught up",
        );
        let listener_reconnect_delay = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "herald_listener_reconnect_delay_seconds",
            "The delay before the latest reconnect of the LISTEN connection",
            listener_reconnect_delay.clone(),
        );
        // prometheus-client adds the `_total` of counters.
        let mut counter = |name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let listener_reconnects = counter(
            "herald_listener_reconnects",
            "LISTEN connection failures recovered from",
        );
        let listener_wakeups = counter(
            "herald_listener_wakeups",
            "NOTIFY wake-ups received from PostgreSQL",
        );
        let listener_reads = counter(
            "herald_listener_reads",
            "Queries for new rows, woken by NOTIFY or polling",
        );
        let notifications_received = counter(
            "herald_notifications_received",
            "Notifications read from PostgreSQL and fanned out",
        );
        let slow_clients_dropped = counter(
            "herald_slow_clients_dropped",
            "Streams closed because the client fell behind",
        );
        let signals_sent = counter(
            "herald_signals_sent",
            "Signals accepted by POST /api/signals on this instance",
        );
        let signals_relayed = counter(
            "herald_signals_relayed",
            "Signals from other instances and herald_signal handed to this instance's streams",
        );
        let pushes_sent = counter("herald_pushes_sent", "Web pushes a push service accepted");
        let pushes_failed = counter(
            "herald_pushes_failed",
            "Web pushes given up on: refused, or still failing when their TTL ran out",
        );
        let push_subscriptions_removed = counter(
            "herald_push_subscriptions_removed",
            "Push subscriptions removed because their push service answered 404 or 410",
        );
        let events_delivered = Family::<TransportLabel, Counter>::default();
        registry.register(
            "herald_events_delivered",
            "Notifications handed to clients, by transport",
            events_delivered.clone(),
        );
        let answers = Family::<SourceLabel, Counter>::default();
        registry.register(
            "herald_answers",
            "Polls, long-polls and unread counts answered, by where the answer came from",
            answers.clone(),
        );
        // One statement each: get_or_create's guard lives until the end of its statement, and
        // a second lookup under it would wait on the first for ever.
        let delivered_sse = events_delivered
            .get_or_create(&TransportLabel {
                transport: Transport::Sse,
            })
            .clone();
        let delivered_poll = events_delivered
            .get_or_create(&TransportLabel {
                transport: Transport::Poll,
            })
            .clone();
        let answered_memory = answers
            .get_or_create(&SourceLabel {
                source: Source::Memory,
            })
            .clone();
        let answered_database = answers
            .get_or_create(&SourceLabel {
                source: Source::Database,
            })
            .clone();
        let delivery_latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "herald_delivery_latency_seconds",
            "From a live notification's created_at to herald writing it to a stream or \
             long-poll",
            delivery_latency.clone(),
        );
        let http_requests = Family::default();
        registry.register(
            "herald_http_requests",
            "HTTP requests answered, by route and status",
            http_requests.clone(),
        );
        Metrics {
            streams_open,
            long_polls_parked,
            request_bodies_pending,
            http_connections_open,
            listener_up,
            listener_reconnects,
            listener_reconnect_delay,
            listener_wakeups,
            listener_reads,
            notifications_received,
            slow_clients_dropped,
            signals_sent,
            signals_relayed,
            pushes_sent,
            pushes_failed,
            push_subscriptions_removed,
            delivered_sse,
            delivered_poll,
            answered_memory,
            answered_database,
            delivery_latency,
            http_requests,
            resident_memory,
            registry,
        }
    }

    /// Counts `n` notifications handed to clients by `transport`.
    pub fn delivered(&self, transport: Transport, n: u64) {
        match transport {
            Transport::Sse => &self.delivered_sse,
            Transport::Poll => &self.delivered_poll,
        }
        .inc_by(n);
    }

    /// Counts one poll, long-poll or unread count answered from `source`.
    pub fn answered(&self, source: Source) {
        match source {
            Source::Memory => &self.answered_memory,
            Source::Database => &self.answered_database,
        }
        .inc();
    }

    /// Records a live delivery of a row created at `created_at`.
    pub fn observe_delivery(&self, created_at: DateTime<Utc>) {
        let seconds = (Utc::now() - created_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
        // A clock that steps back makes a negative age: count it as immediate.
        self.delivery_latency.observe(seconds.max(0.0));
    }

    /// Counts one answered request.
    pub fn count_request(&self, route: String, status: u16) {
        self.http_requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// Every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        self.resident_memory
            .set(resident_memory_bytes().unwrap_or(0));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// VmRSS of this process, from /proc.
fn resident_memory_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: i64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_the_histogram_encode_as_prometheus_reads_them() {
        let m = Metrics::new();
        m.streams_open.inc();
        m.delivered(Transport::Sse, 2);
        m.count_request("/api/notifications".into(), 200);
        m.count_request("/api/notifications".into(), 200);
        m.delivery_latency.observe(0.0008);
        m.delivery_latency.observe(60.0);
        let text = m.encode();
        for line in [
            "herald_streams_open 1\n",
            "herald_events_delivered_total{transport=\"sse\"} 2\n",
            "herald_http_requests_total{route=\"/api/notifications\",status=\"200\"} 2\n",
            "herald_delivery_latency_seconds_bucket{le=\"0.001\"} 1\n",
            "herald_delivery_latency_seconds_bucket{le=\"+Inf\"} 2\n",
            "herald_delivery_latency_seconds_count 2\n",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
