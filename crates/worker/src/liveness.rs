//! Whether the run loop is making progress, for the liveness probe (`/healthz`).
//!
//! The loop beats its [`Heartbeat`] every time it attempts a claim, whatever the claim's outcome
//! (rows, nothing due, or a database error: a loop that keeps trying is alive; the readiness
//! probe reports the database). Waits that are legitimate by design and may last long are
//! excused while they last ([`Heartbeat::excuse`]): the schema hold (unbounded: the worker waits
//! for `setup`) and the throttle pause after a 429 (at most 30 s). Everything else the loop waits
//! for (a claim's statement, a free place for one more batch, the idle poll) is bounded by the
//! lease or the poll interval, so a loop that attempts no claim for much longer than the lease is
//! stuck, and restarting the process is the remedy.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The run loop's last sign of progress. Cheap to clone; clones share it.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The instant `last` counts from.
    epoch: Instant,
    /// Milliseconds from `epoch` to the last beat.
    last: AtomicU64,
    /// Legitimate waits in progress; while any is, the loop is not stalled.
    excused: AtomicUsize,
}

/// A legitimate wait in progress; dropping it ends the wait with a beat.
#[must_use = "the wait is excused only while the guard lives"]
#[derive(Debug)]
pub struct Excused {
    heartbeat: Heartbeat,
}

impl Drop for Excused {
    fn drop(&mut self) {
        self.heartbeat.inner.excused.fetch_sub(1, Ordering::SeqCst);
        self.heartbeat.beat();
    }
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat::new()
    }
}

impl Heartbeat {
    /// A heartbeat that has just beaten (a loop that has not started yet is not stalled).
    pub fn new() -> Heartbeat {
        Heartbeat {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                last: AtomicU64::new(0),
                excused: AtomicUsize::new(0),
            }),
        }
    }

    /// The loop made progress now.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    fn beat_at(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.inner.epoch).as_millis() as u64;
        self.inner.last.fetch_max(ms, Ordering::SeqCst);
    }

    /// Marks a legitimate wait until the guard is dropped.
    pub fn excuse(&self) -> Excused {
        self.inner.excused.fetch_add(1, Ordering::SeqCst);
        Excused {
            heartbeat: self.clone(),
        }
    }

    /// How long the loop has gone without progress at `now`; `None` while a legitimate wait is
    /// in progress.
    pub fn stalled_for(&self, now: Instant) -> Option<Duration> {
        if self.inner.excused.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = self.inner.epoch + Duration::from_millis(self.inner.last.load(Ordering::SeqCst));
        Some(now.saturating_duration_since(last))
    }

    /// `Err(reason)` when the loop has made no progress for longer than `timeout` at `now`.
    pub fn check(&self, timeout: Duration, now: Instant) -> Result<(), String> {
        match self.stalled_for(now) {
            Some(stalled) if stalled > timeout => Err(format!(
                "worker loop: no claim attempted for {} s (liveness timeout {} s)",
                stalled.as_secs(),
                timeout.as_secs_f64()
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_without_beats_past_the_timeout_is_stalled_and_a_beat_revives_it() {
        let heartbeat = Heartbeat::new();
        let start = heartbeat.inner.epoch;
        let timeout = Duration::from_secs(300);
        assert!(heartbeat.check(timeout, start).is_ok());
        assert!(heartbeat
            .check(timeout, start + Duration::from_secs(300))
            .is_ok());
        let reason = heartbeat
            .check(timeout, start + Duration::from_secs(301))
            .unwrap_err();
        assert_eq!(
            reason,
            "worker loop: no claim attempted for 301 s (liveness timeout 300 s)"
        );
        heartbeat.beat_at(start + Duration::from_secs(400));
        assert!(heartbeat
            .check(timeout, start + Duration::from_secs(650))
            .is_ok());
        // A beat never moves the heartbeat back.
        heartbeat.beat_at(start + Duration::from_secs(10));
        assert!(heartbeat
            .check(timeout, start + Duration::from_secs(701))
            .is_err());
    }

    #[test]
    fn a_legitimate_wait_is_never_a_stall_and_ends_with_a_beat() {
        let heartbeat = Heartbeat::new();
        let start = heartbeat.inner.epoch;
        let timeout = Duration::from_secs(1);
        let hold = heartbeat.excuse();
        let throttle = heartbeat.excuse();
        assert_eq!(
            heartbeat.stalled_for(start + Duration::from_secs(3600)),
            None
        );
        drop(throttle);
        assert!(heartbeat
            .check(timeout, start + Duration::from_secs(3600))
            .is_ok());
        drop(hold);
        // The wait ended just now (real time), which counts as progress.
        assert!(heartbeat.check(timeout, Instant::now()).is_ok());
    }
}
