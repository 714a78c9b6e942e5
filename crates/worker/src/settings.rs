//! The worker's settings. Each default is written once, here, as a documented constant (the
//! command line's defaults refer to these), and [`Settings::validate`] names the setting that
//! is out of range.

use std::time::Duration;

use store::mapping::{AudienceSettings, InterestCategoryMapping};
use store::RemovalGuard;

use crate::error::Error;
use crate::retry::RetryPolicy;

/// The most rows per claim and per batch upsert: Mailchimp's batch limit.
pub const MAX_BATCH_SIZE: usize = mailchimp::MAX_BATCH_MEMBERS;
/// Rows per claim and per batch upsert.
pub const DEFAULT_BATCH_SIZE: usize = MAX_BATCH_SIZE;
/// Mailchimp requests in flight at once, for all replicas together: Mailchimp's per-key limit.
pub const DEFAULT_CONCURRENCY: usize = 10;
/// How long a claim holds its rows.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// The HTTP request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts before a row that keeps failing transiently is parked (about an hour of trying with
/// the default backoff).
pub const DEFAULT_MAX_ATTEMPTS: i32 = 12;
/// The backoff before the first retry of a row (doubling per attempt, full jitter).
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest backoff of a row.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(600);
/// How often an idle worker polls (jittered ±50 %). A change committed while the worker is idle
/// waits up to 1.5 times this before it is claimed, which at a steady 500 changes/s must keep the
/// p99 latency under a second; an idle poll costs one index scan of an empty range.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long in-flight calls may finish after SIGTERM before their rows are released.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);
/// The mass-removal guard holds the removals queued within [`DEFAULT_REMOVAL_WINDOW`] once they
/// pass this share of the synced contacts: a normal day removes far fewer than a tenth of an
/// audience, while a truncate, a wrong filter or a half-finished restore removes most of it.
pub const DEFAULT_REMOVAL_SHARE: f64 = 0.10;
/// Removals within the window that are never held: below this the guard would trip on small
/// test audiences and on ordinary clean-ups.
pub const DEFAULT_REMOVAL_MIN_ROWS: i64 = 100;
/// How far back queued removals count: an hour covers a truncate followed by a slow restore, so
/// the restore's upserts find the removals still held.
pub const DEFAULT_REMOVAL_WINDOW: Duration = Duration::from_secs(3600);
/// How long the run loop may go without attempting a claim before the liveness probe fails
/// ([`crate::liveness`]): well above the lease (a full set of batches in progress can keep the
/// loop waiting that long for a free place), the idle poll and a claim's own retries, so only a
/// loop that is stuck trips it. The schema hold and throttle pauses do not count.
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(300);
/// Who claims when the caller names no host (see [`owner`]).
pub const DEFAULT_HOST: &str = "chimpsync";

/// The part of a lease no request may start in: a request that starts later than `lease -
/// request_timeout - LEASE_MARGIN` after the claim could still be in flight when the lease
/// lapses and another worker claims the rows.
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// The `lease_owner` of a worker in this process on `host` (`None`: [`DEFAULT_HOST`]).
pub fn owner(host: Option<&str>) -> String {
    let host = host.map(str::trim).filter(|h| !h.is_empty());
    format!("{}/{}", host.unwrap_or(DEFAULT_HOST), std::process::id())
}

/// The worker's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The audience (list) id.
    pub audience_id: String,
    /// `[audience]` policies from the mapping file.
    pub audience: AudienceSettings,
    /// `[[interests]]` of the mapping file: the interest categories chimpsync sets.
    pub interests: Vec<InterestCategoryMapping>,
    /// Rows per claim and per batch upsert (1..=[`MAX_BATCH_SIZE`]). Default
    /// [`DEFAULT_BATCH_SIZE`].
    pub batch_size: usize,
    /// Mailchimp requests in flight at once, for all replicas together. Default
    /// [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
    /// How long a claim holds its rows. Must exceed the request timeout plus [`LEASE_MARGIN`].
    /// Default [`DEFAULT_LEASE`].
    pub lease: Duration,
    /// The HTTP request timeout (to check the lease against). Default
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// The retry schedule of rows. Default [`DEFAULT_BACKOFF_BASE`], [`DEFAULT_BACKOFF_MAX`],
    /// [`DEFAULT_MAX_ATTEMPTS`].
    pub retry: RetryPolicy,
    /// How often an idle worker polls. Default [`DEFAULT_POLL_INTERVAL`].
    pub poll_interval: Duration,
    /// How long in-flight calls may finish after SIGTERM. Default [`DEFAULT_SHUTDOWN_DEADLINE`].
    pub shutdown_deadline: Duration,
    /// Who claims (shown in `sync_queue.lease_owner`). Default [`owner`]`(None)`.
    pub owner: String,
    /// When queued removals are held instead of sent. Default [`DEFAULT_REMOVAL_SHARE`],
    /// [`DEFAULT_REMOVAL_MIN_ROWS`], [`DEFAULT_REMOVAL_WINDOW`].
    pub removal_guard: RemovalGuard,
    /// How long the run loop may attempt no claim before `/healthz` fails. Must exceed the lease
    /// and one and a half idle polls. Default [`DEFAULT_LIVENESS_TIMEOUT`].
    pub liveness_timeout: Duration,
}

impl Settings {
    /// The defaults, for `audience_id`.
    pub fn new(audience_id: impl Into<String>) -> Settings {
        Settings {
            audience_id: audience_id.into(),
            audience: AudienceSettings::default(),
            interests: Vec::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            lease: DEFAULT_LEASE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy {
                base: DEFAULT_BACKOFF_BASE,
                max: DEFAULT_BACKOFF_MAX,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
            },
            poll_interval: DEFAULT_POLL_INTERVAL,
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
            owner: owner(None),
            removal_guard: RemovalGuard {
                share: DEFAULT_REMOVAL_SHARE,
                min_rows: DEFAULT_REMOVAL_MIN_ROWS,
                window: DEFAULT_REMOVAL_WINDOW,
            },
            liveness_timeout: DEFAULT_LIVENESS_TIMEOUT,
        }
    }

    /// Checks the limits, naming the setting that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(Error::Settings(format!(
                "batch size {} is outside 1..={MAX_BATCH_SIZE}",
                self.batch_size
            )));
        }
        if self.concurrency == 0 {
            return Err(Error::Settings("concurrency must be at least 1".into()));
        }
        // A batch starts requests only until `lease - request_timeout - LEASE_MARGIN` after its
        // claim; with no time left there, every claim would be released untried, forever.
        if self.lease <= self.request_timeout + LEASE_MARGIN {
            return Err(Error::Settings(format!(
                "lease ({:?}) must be longer than the request timeout ({:?}) plus {:?}: requests \
                 start only until the lease minus the request timeout minus {:?}",
                self.lease, self.request_timeout, LEASE_MARGIN, LEASE_MARGIN
            )));
        }
        // Waiting for a free place among the batches in progress may last a lease, and an idle
        // poll up to one and a half intervals: a shorter timeout would restart healthy workers.
        if self.liveness_timeout <= self.lease
            || self.liveness_timeout <= self.poll_interval * 3 / 2
        {
            return Err(Error::Settings(format!(
                "liveness timeout ({:?}) must be longer than the lease ({:?}) and one and a half \
                 poll intervals ({:?})",
                self.liveness_timeout, self.lease, self.poll_interval
            )));
        }
        if self.retry.max_attempts < 1 {
            return Err(Error::Settings("max attempts must be at least 1".into()));
        }
        let guard = &self.removal_guard;
        if !(0.0..=1.0).contains(&guard.share) || guard.min_rows < 0 || guard.window.is_zero() {
            return Err(Error::Settings(format!(
                "removal guard: the share ({}) must be within 0..=1, the rows ({}) at least 0 and \
                 the window ({:?}) longer than 0",
                guard.share, guard.min_rows, guard.window
            )));
        }
        if self.audience_id.trim().is_empty() {
            return Err(Error::Settings(
                "no audience id (set MAILCHIMP_AUDIENCE_ID or [audience].id)".into(),
            ));
        }
        Ok(())
    }

    /// How long after its claim a batch may start requests (see [`LEASE_MARGIN`]).
    pub(crate) fn request_window(&self) -> Duration {
        self.lease
            .saturating_sub(self.request_timeout + LEASE_MARGIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_each_limit_is_checked() {
        let s = Settings::new("a1");
        s.validate().expect("the defaults are valid");
        let refused = |change: fn(&mut Settings)| {
            let mut s = Settings::new("a1");
            change(&mut s);
            s.validate().is_err()
        };
        assert!(refused(|s| s.batch_size = 0));
        assert!(refused(|s| s.batch_size = MAX_BATCH_SIZE + 1));
        assert!(refused(|s| s.concurrency = 0));
        assert!(refused(|s| s.lease = s.request_timeout));
        assert!(refused(|s| s.retry.max_attempts = 0));
        assert!(refused(|s| s.liveness_timeout = s.lease));
        assert!(refused(|s| s.poll_interval = s.liveness_timeout));
        assert!(refused(|s| s.audience_id = " ".into()));
        assert!(refused(|s| s.removal_guard.share = 1.5));
        assert!(refused(|s| s.removal_guard.min_rows = -1));
        assert!(refused(|s| s.removal_guard.window = Duration::ZERO));
    }

    #[test]
    fn the_owner_names_the_host_and_the_process() {
        let pid = std::process::id();
        assert_eq!(owner(Some("web-1")), format!("web-1/{pid}"));
        assert_eq!(owner(None), format!("chimpsync/{pid}"));
        assert_eq!(owner(Some(" ")), format!("chimpsync/{pid}"));
    }
}
