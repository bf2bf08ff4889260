//! One runner for herald's background work: presence's tick, Web Push's scan and send, the
//! unread-count roll-up and scheduled pruning. A job is a name, a period and a tick; the
//! runner does the timing, the logging of failure and recovery, and the stop at shutdown,
//! once for all of them. Periods come from the configuration, so tests can run them fast.

use std::fmt::Display;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// A piece of background work.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// What the log calls it.
    pub name: &'static str,
    /// How often it runs.
    pub period: Duration,
}

impl Job {
    /// Runs `tick` every period until `shutdown` changes: the first time at once, and a tick
    /// that ran late is not made up for with a burst. The first of a run of failures is logged
    /// at warn with its error and the recovery at info: a database away for an hour is two
    /// lines, not thousands. A tick in progress when `shutdown` changes finishes first.
    pub async fn run<E: Display>(
        &self,
        mut shutdown: watch::Receiver<bool>,
        mut tick: impl AsyncFnMut() -> Result<(), E>,
    ) {
        let mut ticks = tokio::time::interval(self.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => return,
            }
            match tick().await {
                Ok(()) if failing => {
                    log::info!("{} recovered", self.name);
                    failing = false;
                }
                Ok(()) => {}
                Err(err) if !failing => {
                    log::warn!("{} failing error={err}", self.name);
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_job_runs_at_once_then_every_period_until_shutdown() {
        let (stop, shutdown) = watch::channel(false);
        let job = Job {
            name: "test",
            period: Duration::from_secs(10),
        };
        let mut runs = 0;
        let run = job.run(shutdown, async || {
            runs += 1;
            if runs == 3 {
                let _ = stop.send(true);
            }
            if runs == 2 { Err("down") } else { Ok(()) }
        });
        let started = tokio::time::Instant::now();
        run.await;
        assert_eq!(runs, 3);
        assert_eq!(started.elapsed(), Duration::from_secs(20));
    }
}
