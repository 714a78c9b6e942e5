//! The gate every Mailchimp request passes: the shared connection cap (slots held as Postgres
//! advisory locks, so the cap holds for all replicas together) and the worker-wide throttle
//! pause that a 429 triggers. [`Gate::call`] is the one way to call Mailchimp under the cap, for
//! the worker and for reconcile alike.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use rand::RngExt;
use store::slots::SlotTable;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Base and cap of the worker-wide pause after throttling.
const THROTTLE_BASE: Duration = Duration::from_millis(250);
const THROTTLE_MAX: Duration = Duration::from_secs(30);

struct ThrottleState {
    until: Option<Instant>,
    streak: u32,
}

/// See the module docs.
pub struct Gate {
    slots: std::sync::Arc<SlotTable>,
    /// Whose slots: `None` the one account's, `Some(group)` an API key's (many accounts).
    key: Option<i32>,
    released: Notify,
    throttle: Mutex<ThrottleState>,
}

/// Why a call through the gate brought no answer of Mailchimp's.
#[derive(Debug)]
pub enum CallError {
    /// Mailchimp refused, or could not be reached.
    Api(mailchimp::Error),
    /// Not sent: cancelled, or the deadline passed.
    Cancelled,
    /// Not sent: the slot table's connection failed.
    NoSlot(store::Error),
    /// Cut off by cancellation while in flight: it may have been applied.
    Abandoned,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Api(e) => e.fmt(f),
            CallError::Cancelled => f.write_str("not sent: cancelled"),
            CallError::NoSlot(e) => write!(f, "not sent: no connection slot: {e}"),
            CallError::Abandoned => f.write_str("cut off while in flight"),
        }
    }
}

impl CallError {
    /// Whether sending the same request again may succeed (see
    /// [`mailchimp::Error::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, CallError::Api(e) if e.is_retryable())
    }
}

/// The `endpoint` labels of the calls `run` makes (`list_members` is reconcile's alone): the
/// request-duration series exist for each from the start.
pub const ENDPOINTS: [&str; 11] = [
    "batch_upsert",
    "update_tags",
    "rename_member",
    "upsert_member",
    "archive_member",
    "set_status",
    "delete_member_permanently",
    "get_member",
    "set_member_permissions",
    "interests",
    "create_interest",
];

/// Every `status_class` label a Mailchimp request's duration is recorded under.
pub const STATUS_CLASSES: [&str; 6] = ["2xx", "4xx", "5xx", "throttled", "transport", "other"];

/// The `status_class` label of a call's duration.
fn status_class<T>(result: &Result<T, mailchimp::Error>) -> &'static str {
    match result {
        Ok(_) => "2xx",
        Err(mailchimp::Error::Throttled { .. }) => "throttled",
        Err(mailchimp::Error::Server { .. }) => "5xx",
        Err(mailchimp::Error::Api(_)) => "4xx",
        Err(mailchimp::Error::Transport { .. }) => "transport",
        Err(_) => "other",
    }
}

/// What an answer says about Mailchimp's health: reached and the key accepted (`Some(true)`: a
/// 2xx, or a 4xx about the data), unreachable, failing or refusing the key (`Some(false)`:
/// transport errors, 5xx, and with one key `API Key Invalid`/`Missing`), or nothing (`None`:
/// throttled, which is busy rather than down, and unreadable bodies). With many keys one
/// account's refused key says nothing about Mailchimp.
pub fn mailchimp_up<T>(result: &Result<T, mailchimp::Error>, one_key: bool) -> Option<bool> {
    use mailchimp::ProblemKind::{ApiKeyInvalid, ApiKeyMissing};
    match result {
        Ok(_) => Some(true),
        Err(mailchimp::Error::Transport { .. } | mailchimp::Error::Server { .. }) => Some(false),
        Err(e @ mailchimp::Error::Api(_)) => match e.problem_kind() {
            Some(ApiKeyInvalid | ApiKeyMissing) => one_key.then_some(false),
            _ => Some(true),
        },
        Err(_) => None,
    }
}

/// Sets `chimpsync_mailchimp_up` from an answer (see [`mailchimp_up`]); leaves it as it is when
/// the answer says nothing.
pub fn note_mailchimp_health<T>(result: &Result<T, mailchimp::Error>, one_key: bool) {
    if let Some(up) = mailchimp_up(result, one_key) {
        metrics::gauge!("chimpsync_mailchimp_up").set(if up { 1.0 } else { 0.0 });
    }
}

impl Gate {
    /// A gate over the shared slots.
    pub fn new(slots: SlotTable) -> Gate {
        Gate::for_one(std::sync::Arc::new(slots))
    }

    /// The gate of the one account over `slots`.
    pub fn for_one(slots: std::sync::Arc<SlotTable>) -> Gate {
        Gate::over(slots, None)
    }

    /// The gate of one API key (its group, `chimpsync.accounts.key_group`) over slots shared
    /// with other keys' gates: each key has its own cap and its own throttle pause.
    pub fn for_key(slots: std::sync::Arc<SlotTable>, key_group: i32) -> Gate {
        Gate::over(slots, Some(key_group))
    }

    fn over(slots: std::sync::Arc<SlotTable>, key: Option<i32>) -> Gate {
        Gate {
            slots,
            key,
            released: Notify::new(),
            throttle: Mutex::new(ThrottleState {
                until: None,
                streak: 0,
            }),
        }
    }

    /// The slot table.
    pub fn slots(&self) -> &SlotTable {
        &self.slots
    }

    /// One Mailchimp request (`f`) under the cap: waits out any throttle pause, takes a slot,
    /// sends, gives the slot back, and notes throttling; timed per `endpoint`. No request starts
    /// after `deadline` (waiting for a slot may eat into it).
    pub async fn call<T, F, Fut>(
        &self,
        endpoint: &'static str,
        cancel: &CancellationToken,
        deadline: Option<Instant>,
        f: F,
    ) -> Result<T, CallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, mailchimp::Error>>,
    {
        let past = |deadline: Option<Instant>| deadline.is_some_and(|d| Instant::now() >= d);
        if cancel.is_cancelled() || past(deadline) {
            return Err(CallError::Cancelled);
        }
        let entered = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, self.enter(cancel))
                .await
                .unwrap_or(Err(CallError::Cancelled)),
            None => self.enter(cancel).await,
        };
        let slot = match entered {
            Ok(slot) => slot,
            Err(CallError::NoSlot(e)) => {
                warn!(error = %e, "slot table unavailable");
                return Err(CallError::NoSlot(e));
            }
            Err(e) => return Err(e),
        };
        if past(deadline) {
            self.leave(slot).await;
            return Err(CallError::Cancelled);
        }
        let started = std::time::Instant::now();
        let result = tokio::select! {
            r = f() => Some(r),
            _ = cancel.cancelled() => None,
        };
        if started.elapsed() > Duration::from_secs(1) {
            warn!(
                endpoint,
                seconds = started.elapsed().as_secs_f64(),
                "slow Mailchimp call"
            );
        }
        self.leave(slot).await;
        let Some(result) = result else {
            return Err(CallError::Abandoned);
        };
        metrics::histogram!("chimpsync_mailchimp_request_duration_seconds", "endpoint" => endpoint, "status_class" => status_class(&result))
            .record(started.elapsed().as_secs_f64());
        note_mailchimp_health(&result, self.key.is_none());
        match result {
            Ok(v) => {
                self.succeeded();
                Ok(v)
            }
            Err(e) => {
                if e.is_throttled() {
                    self.throttled();
                }
                debug!(endpoint, error = %e, "Mailchimp call failed");
                Err(CallError::Api(e))
            }
        }
    }

    /// Waits out any throttle pause, then takes a slot. Cancellable.
    async fn enter(&self, cancel: &CancellationToken) -> Result<i32, CallError> {
        loop {
            self.wait_throttle(cancel).await?;
            let t = std::time::Instant::now();
            let acquired = match self.key {
                Some(key) => self.slots.try_acquire_in(key).await,
                None => self.slots.try_acquire().await,
            };
            if t.elapsed() > Duration::from_secs(1) {
                warn!(seconds = t.elapsed().as_secs_f64(), "slow slot acquisition");
            }
            match acquired {
                Ok(Some(slot)) => {
                    metrics::gauge!("chimpsync_slots_held").increment(1.0);
                    return Ok(slot);
                }
                Ok(None) => {
                    // All slots are busy, here or in another replica: wait for a local release
                    // or poll again shortly for a remote one.
                    let wait = Duration::from_millis(rand::rng().random_range(5..25));
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(CallError::Cancelled),
                        _ = self.released.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot take a connection slot");
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(CallError::Cancelled),
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    if e.is_transient() {
                        continue;
                    }
                    return Err(CallError::NoSlot(e));
                }
            }
        }
    }

    /// Gives a slot back.
    async fn leave(&self, slot: i32) {
        match self.key {
            Some(key) => self.slots.release_in(key, slot).await,
            None => self.slots.release(slot).await,
        }
        metrics::gauge!("chimpsync_slots_held").decrement(1.0);
        self.released.notify_one();
    }

    /// What is left of the throttle pause in force, if any.
    pub fn pause_remaining(&self) -> Option<Duration> {
        let until = self.throttle.lock().expect("throttle lock").until?;
        until.checked_duration_since(Instant::now())
    }

    /// Waits until no throttle pause is in force (`Err(CallError::Cancelled)`: cancelled first).
    pub async fn wait_throttle(&self, cancel: &CancellationToken) -> Result<(), CallError> {
        loop {
            let until = self.throttle.lock().expect("throttle lock").until;
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(CallError::Cancelled),
                        _ = tokio::time::sleep_until(until) => {}
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Mailchimp throttled us: every request of this worker pauses, longer each time in a row.
    ///
    /// Requests refused together (a burst of concurrent requests over Mailchimp's limit) are one
    /// throttling, not one each: a refusal that arrives while the pause it caused is in force
    /// lengthens nothing. Counted per refusal, one burst of eight refusals would pause the worker
    /// 15 to 30 s.
    fn throttled(&self) {
        let mut state = self.throttle.lock().expect("throttle lock");
        if state.until.is_some_and(|until| until > Instant::now()) {
            metrics::counter!("chimpsync_throttled_total").increment(1);
            return;
        }
        state.streak = state.streak.saturating_add(1);
        let ceiling = THROTTLE_BASE
            .saturating_mul(1u32 << state.streak.min(16))
            .min(THROTTLE_MAX);
        let pause = ceiling / 2
            + Duration::from_millis(rand::rng().random_range(0..=ceiling.as_millis() as u64 / 2));
        let until = Instant::now() + pause;
        if state.until.is_none_or(|u| u < until) {
            state.until = Some(until);
        }
        metrics::counter!("chimpsync_throttled_total").increment(1);
        debug!(
            pause_ms = pause.as_millis() as u64,
            streak = state.streak,
            "throttled; pausing"
        );
    }

    /// A request went through: the throttle streak ends.
    fn succeeded(&self) {
        let mut state = self.throttle.lock().expect("throttle lock");
        state.streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::ENDPOINTS;

    /// The endpoint names `run`'s calls pass to the gate, read from the modules that make them.
    #[test]
    fn every_endpoint_the_worker_calls_is_listed() {
        let sources = [
            include_str!("batch.rs"),
            include_str!("members.rs"),
            include_str!("groups.rs"),
        ];
        let mut called: Vec<&str> = sources
            .iter()
            .flat_map(|text| text.split(".call(\"").skip(1))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        called.sort_unstable();
        called.dedup();
        let mut listed = ENDPOINTS.to_vec();
        listed.sort_unstable();
        assert_eq!(called, listed);
    }
}
