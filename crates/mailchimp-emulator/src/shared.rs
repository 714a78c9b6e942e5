//! What the connections and the [`Emulator`](crate::Emulator) handle share: the state, the
//! faults, the limits, the counters and the webhook delivery queue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::accounts::{AccountId, Accounts};
use crate::faults::FaultState;
use crate::lock::lock;
use crate::outbound::Outbound;
use crate::problem::ApiError;
use crate::state::State;

/// Everything the connections share.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub faults: Mutex<FaultState>,
    pub accounts: Accounts,
    pub latency_micros: AtomicU64,
    /// Requests in flight per account; `usize::MAX` means unlimited.
    pub max_connections: AtomicUsize,
    /// Requests admitted and in flight, all accounts together.
    pub in_flight: AtomicUsize,
    pub open: AtomicUsize,
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub max_in_flight: AtomicU64,
    pub max_concurrent: AtomicU64,
    pub busy_nanos: AtomicU64,
    /// Webhook deliveries: the queue of the background task and its log.
    pub outbound: Outbound,
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests under `/3.0` received (the `/_emulator` routes are not counted).
    pub requests: u64,
    /// `429` answers because an account had `max_connections` requests in flight.
    pub throttled: u64,
    /// Injected failures answered (503, injected 429/403, garbage bodies).
    pub failed: u64,
    /// Connections closed without an answer after applying the write.
    pub dropped: u64,
    /// The most requests admitted at once, all accounts together (with one account, never above
    /// `max_connections` when it is set).
    pub max_in_flight: u64,
    /// The most requests being answered at once, including ones refused with 429 (while they
    /// wait out the latency): the client's concurrency as the emulator saw it.
    pub max_concurrent: u64,
    /// Member-level changes applied: create, update, status change, rename, archive,
    /// permanent delete, tag update (each member of a batch counts once).
    pub member_writes: u64,
    /// Of `member_writes`, the ones that left the member exactly as it was (same address,
    /// status, merge values and tags): a state Mailchimp already held, sent again (after a lost
    /// answer, a lapsed lease, a crash). Duplicated writes, in a word.
    pub unchanged_member_writes: u64,
    /// Time spent parsing bodies, applying them and serializing answers (the synchronous,
    /// CPU-bound part of handling; excludes latency, faults and socket I/O), summed.
    pub busy_nanos: u64,
    /// Webhook deliveries answered with a 2xx (after retries).
    pub webhooks_delivered: u64,
    /// Webhook deliveries given up after every attempt failed.
    pub webhooks_failed: u64,
    /// Webhook deliveries queued or being attempted.
    pub webhooks_pending: u64,
}

/// Whole microseconds, saturating.
pub(crate) fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Shared {
    /// Everything at rest: no request seen, the given limits.
    pub(crate) fn new(
        state: State,
        faults: FaultState,
        accounts: Accounts,
        latency: Duration,
        max_connections: Option<usize>,
    ) -> Self {
        Self {
            state: Mutex::new(state),
            faults: Mutex::new(faults),
            accounts,
            latency_micros: AtomicU64::new(duration_micros(latency)),
            max_connections: AtomicUsize::new(max_connections.unwrap_or(usize::MAX)),
            in_flight: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            max_concurrent: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            outbound: Outbound::start(),
        }
    }

    /// The state, locked, if the audience `list_id` is the account's; `404 Resource Not Found`
    /// otherwise, exactly as for an audience that does not exist.
    pub(crate) fn state_for(
        &self,
        account: AccountId,
        list_id: &str,
    ) -> Result<MutexGuard<'_, State>, ApiError> {
        let state = lock(&self.state);
        if state.owner(list_id) != Some(account) {
            return Err(ApiError::not_found());
        }
        Ok(state)
    }

    /// Hands the webhook events recorded so far to the delivery task (never waits for them).
    pub(crate) fn flush_webhooks(&self) {
        let deliveries = lock(&self.state).take_deliveries();
        if !deliveries.is_empty() {
            self.outbound.send(deliveries);
        }
    }

    /// The counters since start.
    pub(crate) fn stats(&self) -> Stats {
        let (member_writes, unchanged_member_writes) = {
            let state = lock(&self.state);
            (
                state.writes.member_writes,
                state.writes.unchanged_member_writes,
            )
        };
        let log = &self.outbound.log;
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            max_concurrent: self.max_concurrent.load(Ordering::Relaxed),
            member_writes,
            unchanged_member_writes,
            busy_nanos: self.busy_nanos.load(Ordering::Relaxed),
            webhooks_delivered: log.delivered.load(Ordering::SeqCst),
            webhooks_failed: log.failed.load(Ordering::SeqCst),
            webhooks_pending: log.queued.load(Ordering::SeqCst),
        }
    }
}
