//! Web Push (SPEC section 11): a notification reaches a user whose tabs are all closed.
//!
//! Every second one instance (whichever locks the scan position first) reads what committed
//! since the last scan and queues a push per subscription of each reader without an open
//! stream, due [`HOLD`] later ([`queue::scan`]). Every instance then claims due pushes with
//! `for update skip locked` and a lease ([`queue::claim`]), drops those read, deleted or
//! whose user came back meanwhile, and sends the rest: encrypted for the browser (RFC 8291,
//! by `ece`), signed for the push service (VAPID, [`keys`]). So each push leaves once, within
//! [`HOLD`] plus about two seconds of the commit, and a push whose sender died goes out when
//! its lease runs out. All of it runs on a thread of its own: encrypting for a broadcast to
//! thousands never takes a turn from the streams.

pub mod endpoint;
pub mod keys;
pub mod payload;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::jobs::Job;
use crate::metrics::Metrics;
use crate::store::DbPool;
use crate::store::push::{self as queue, Claimed, Outcomes};
use endpoint::Hosts;
use keys::Vapid;

/// How long a notification waits for its user to read it before it is pushed.
pub const HOLD: Duration = Duration::from_secs(5);
/// Pushes claimed at a time.
const CLAIM: i64 = 256;
/// Pushes in flight at once.
const IN_FLIGHT: usize = 64;
/// How long one push may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long claimed pushes are this instance's. A batch takes at most CLAIM / IN_FLIGHT
/// timeouts (60 s, every push service timing out); the lease is well past that, so no other
/// instance sends a push this one is still sending. If this one dies, its claims go out this
/// much later.
const LEASE: Duration = Duration::from_secs(300);
/// The most subscriptions one user may have (browsers and devices).
pub const MAX_PER_USER: i64 = 10;

/// What Web Push is configured with.
pub struct Settings {
    /// The key pushes are signed with.
    pub vapid: Vapid,
    /// The push services' hosts endpoints may name.
    pub hosts: Hosts,
    /// How long a push service keeps a push, and how long herald retries one.
    pub ttl: Duration,
    /// How often it looks for work.
    pub tick: Duration,
}

/// Web Push, when it is configured.
pub struct Push {
    settings: Settings,
    pool: DbPool,
    metrics: Arc<Metrics>,
}

/// What became of one push.
enum Sent {
    /// Accepted by the push service, or not to be sent at all.
    Done,
    /// The push service is busy or down: again at the given time, unless the TTL ran out.
    Retry(Option<Duration>),
    /// The push service refused it for good.
    Failed,
    /// The subscription is gone (404, 410) or unusable.
    Gone,
}

impl Push {
    /// Push as `settings` say, queued through `pool`.
    pub fn new(settings: Settings, pool: DbPool, metrics: Arc<Metrics>) -> Push {
        Push {
            settings,
            pool,
            metrics,
        }
    }

    /// The VAPID public key, for `GET /api/push/key`.
    pub fn public_key(&self) -> &str {
        self.settings.vapid.public_key()
    }

    /// The hosts endpoints may name.
    pub fn hosts(&self) -> &Hosts {
        &self.settings.hosts
    }

    /// Fills the queue and sends what is due, every tick (`HERALD_PUSH_TICK_MS`), until
    /// `shutdown` changes. Runs on a thread of its own with its own actix `System` (startup
    /// starts it there: the HTTP client is not `Send`).
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let client = awc::Client::builder()
            // A push service never redirects; following one would be a request to wherever.
            .disable_redirects()
            .timeout(SEND_TIMEOUT)
            .finish();
        let job = Job {
            name: "push",
            period: self.settings.tick,
        };
        job.run(shutdown.clone(), async || {
            self.tick(&client, &shutdown).await
        })
        .await;
    }

    async fn tick(
        &self,
        client: &awc::Client,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), crate::error::AppError> {
        let (hold, ttl) = (HOLD, self.settings.ttl);
        self.db(move |conn| queue::scan(conn, hold, ttl)).await?;
        loop {
            let claimed = self.db(|conn| queue::claim(conn, CLAIM, LEASE)).await?;
            let full = claimed.len() as i64 == CLAIM;
            let sent: Vec<(Claimed, Sent)> = futures_util::stream::iter(claimed)
                .map(|push| async move {
                    let sent = self.send(client, &push).await;
                    (push, sent)
                })
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            let outcomes = self.outcomes(sent);
            self.db(move |conn| queue::settle(conn, &outcomes)).await?;
            // A long queue is left to the next instance up (or this one's next start) rather
            // than holding up a shutdown.
            if !full || *shutdown.borrow() {
                return Ok(());
            }
        }
    }

    async fn send(&self, client: &awc::Client, push: &Claimed) -> Sent {
        if push.skip {
            return Sent::Done;
        }
        if push.expires <= Utc::now() {
            return Sent::Failed;
        }
        // HERALD_PUSH_HOSTS may have shrunk since it subscribed.
        if self.settings.hosts.check(&push.endpoint).is_err() {
            return Sent::Gone;
        }
        let (Ok(p256dh), Ok(auth)) = (
            URL_SAFE_NO_PAD.decode(push.p256dh.trim_end_matches('=')),
            URL_SAFE_NO_PAD.decode(push.auth.trim_end_matches('=')),
        ) else {
            return Sent::Gone;
        };
        let level = push.level.as_deref().unwrap_or("info");
        let plaintext = payload::payload(
            push.notification_id,
            push.title.as_deref().unwrap_or_default(),
            push.body.as_deref().unwrap_or_default(),
            level,
            push.data.as_ref().unwrap_or(&serde_json::Value::Null),
        );
        let Ok(body) = ece::encrypt(&p256dh, &auth, &plaintext) else {
            // Keys no browser would make (checked when subscribing; a hand-edited row).
            return Sent::Gone;
        };
        let Some(audience) = origin(&push.endpoint) else {
            return Sent::Gone;
        };
        let authorization = match self.settings.vapid.authorization(&audience) {
            Ok(value) => value,
            Err(err) => {
                log::warn!("push not signed error={err}");
                return Sent::Retry(None);
            }
        };
        let ttl = (push.expires - Utc::now()).num_seconds().max(0);
        let urgency = match level {
            "error" | "warning" => "high",
            _ => "normal",
        };
        let response = client
            .post(&push.endpoint)
            .insert_header(("TTL", ttl.to_string()))
            .insert_header(("Urgency", urgency))
            .insert_header(("Content-Encoding", "aes128gcm"))
            .insert_header(("Content-Type", "application/octet-stream"))
            .insert_header(("Authorization", authorization))
            .send_body(body)
            .await;
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                log::debug!("push not delivered host={audience} error={err}");
                return Sent::Retry(None);
            }
        };
        let status = response.status();
        match status.as_u16() {
            200..=299 => Sent::Done,
            404 | 410 => Sent::Gone,
            429 | 500..=599 => Sent::Retry(retry_after(&response)),
            _ => {
                log::warn!("push refused host={audience} status={status}");
                Sent::Failed
            }
        }
    }

    fn outcomes(&self, sent: Vec<(Claimed, Sent)>) -> Outcomes {
        let mut outcomes = Outcomes::default();
        for (push, sent) in sent {
            let key = (push.notification_id, push.subscription_id, push.attempts);
            match sent {
                Sent::Done if push.skip => outcomes.done.push(key),
                Sent::Done => {
                    self.metrics.pushes_sent.inc();
                    outcomes.done.push(key);
                }
                Sent::Retry(after) => {
                    // 2, 4, 8 ... seconds, at most 10 minutes, or what the service asked.
                    let backoff = Duration::from_secs(1 << push.attempts.clamp(1, 9) as u32)
                        .max(after.unwrap_or_default())
                        .min(Duration::from_secs(600));
                    let due = Utc::now() + backoff;
                    if due < push.expires {
                        outcomes.retry.push((key.0, key.1, key.2, due));
                    } else {
                        self.metrics.pushes_failed.inc();
                        outcomes.done.push(key);
                    }
                }
                Sent::Failed => {
                    self.metrics.pushes_failed.inc();
                    outcomes.done.push(key);
                }
                Sent::Gone => {
                    if !outcomes.gone.contains(&push.subscription_id) {
                        self.metrics.push_subscriptions_removed.inc();
                        outcomes.gone.push(push.subscription_id);
                    }
                    outcomes.done.push(key);
                }
            }
        }
        outcomes
    }

    async fn db<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut diesel::PgConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> Result<T, crate::error::AppError> {
        Ok(crate::store::run(&self.pool, query).await?)
    }
}

/// `scheme://host[:port]` of `endpoint`, as a browser writes an origin (no default port): the
/// audience its push service expects.
fn origin(endpoint: &str) -> Option<String> {
    let uri: actix_web::http::Uri = endpoint.parse().ok()?;
    let (scheme, host) = (uri.scheme_str()?, uri.host()?.to_ascii_lowercase());
    Some(match (scheme, uri.port_u16()) {
        ("https", Some(443)) | ("http", Some(80)) | (_, None) => format!("{scheme}://{host}"),
        (_, Some(port)) => format!("{scheme}://{host}:{port}"),
    })
}

/// A `Retry-After` in seconds (the form push services use).
fn retry_after(response: &awc::ClientResponse<impl Sized>) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn the_audience_is_the_endpoints_origin_without_a_default_port() {
        let audience = |e| origin(e).unwrap();
        assert_eq!(
            audience("https://fcm.googleapis.com/fcm/send/x"),
            "https://fcm.googleapis.com"
        );
        assert_eq!(
            audience("https://FCM.googleapis.com:443/x"),
            "https://fcm.googleapis.com"
        );
        assert_eq!(
            audience("http://127.0.0.1:9099/push/1"),
            "http://127.0.0.1:9099"
        );
        assert_eq!(
            audience("https://push.example:8443/p"),
            "https://push.example:8443"
        );
    }
}
