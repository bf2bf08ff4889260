//! Counters and the delivery-latency histogram behind `/metrics` that the hub and listener
//! do not keep themselves.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

/// Upper bounds of the delivery-latency buckets, in seconds.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus histogram with fixed buckets, lock-free.
#[derive(Default)]
pub struct Histogram {
    /// Observations at or under each bound (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation of `micros` microseconds.
    pub fn observe_micros(&self, micros: u64) {
        // Count first: a scrape reads the buckets before the count, so `+Inf` (the count)
        // is never below a finite bucket.
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        let seconds = micros as f64 / 1e6;
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
    }
}

/// Per-process metrics (one per herald; every worker shares it).
#[derive(Default)]
pub struct Metrics {
    /// Notification events queued to SSE streams (live and replayed).
    pub sse_delivered: AtomicU64,
    /// Notifications returned by polls and long-polls.
    pub poll_delivered: AtomicU64,
    /// From a live notification's `created_at` to herald handing it to the connection.
    pub delivery: Histogram,
    /// Requests answered, by route pattern and status. Routes are the app's patterns (or
    /// `unmatched`), never raw paths, so the series stay few.
    http: Mutex<BTreeMap<(String, u16), u64>>,
}

impl Metrics {
    /// Records a live delivery of a row created at `created_at`.
    pub fn observe_delivery(&self, created_at: DateTime<Utc>) {
        let micros = (Utc::now() - created_at).num_microseconds().unwrap_or(0);
        // A clock that steps back makes a negative age: count it as immediate.
        self.delivery.observe_micros(micros.max(0) as u64);
    }

    /// Counts one answered request.
    pub fn count_request(&self, route: &str, status: u16) {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        *http.entry((route.to_owned(), status)).or_default() += 1;
    }

    /// Appends this module's series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP herald_events_delivered_total Notifications handed to clients, by transport.\n\
             # TYPE herald_events_delivered_total counter\n\
             herald_events_delivered_total{{transport=\"sse\"}} {}\n\
             herald_events_delivered_total{{transport=\"poll\"}} {}",
            self.sse_delivered.load(Ordering::Relaxed),
            self.poll_delivered.load(Ordering::Relaxed),
        );
        self.delivery.render(
            out,
            "herald_delivery_latency_seconds",
            "From a live notification's created_at to herald writing it to a stream or \
             long-poll.",
        );
        let _ = writeln!(
            out,
            "# HELP herald_http_requests_total HTTP requests answered, by route and status.\n\
             # TYPE herald_http_requests_total counter"
        );
        let http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in http.iter() {
            let _ = writeln!(
                out,
                "herald_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                route.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_renders_cumulative_buckets_sum_and_count() {
        let h = Histogram::default();
        h.observe_micros(800); // 0.0008 s: first bucket
        h.observe_micros(30_000); // 0.03 s: the 0.05 bucket
        h.observe_micros(60_000_000); // past every bound: +Inf only
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.025\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
        assert!(out.contains("x_sum 60.0308\n"), "{out}");
    }

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let m = Metrics::default();
        m.count_request("/api/notifications", 200);
        m.count_request("/api/notifications", 200);
        m.count_request("unmatched", 404);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "herald_http_requests_total{route=\"/api/notifications\",status=\"200\"} 2\n"
        ));
        assert!(out.contains("herald_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n"));
    }
}
