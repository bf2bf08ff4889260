//! Latency summaries and the report every scenario prints: text lines, then one JSON line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Microseconds since the epoch: the send stamp writers put in `data.t`.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as i64
}

/// p50, p99 and max of `samples` (microseconds), in milliseconds.
pub fn percentiles(samples: &mut [i64]) -> Value {
    if samples.is_empty() {
        return serde_json::json!({ "count": 0 });
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index] as f64 / 1000.0
    };
    serde_json::json!({
        "count": samples.len(),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": samples[samples.len() - 1] as f64 / 1000.0,
    })
}

/// A scenario's results, printed as `key: value` lines and then as one JSON line.
pub struct Report {
    fields: Map<String, Value>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &str) -> Report {
        let mut fields = Map::new();
        fields.insert("scenario".into(), scenario.into());
        Report { fields }
    }

    /// Adds a result.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Report {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// Prints the report.
    pub fn print(&self) {
        for (key, value) in &self.fields {
            println!("{key}: {value}");
        }
        println!("{}", Value::Object(self.fields.clone()));
    }
}
