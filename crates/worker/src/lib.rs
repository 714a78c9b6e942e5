//! The chimpsync engine: drains `chimpsync.sync_queue` into Mailchimp.
//!
//! One unit of work is [`Worker::drain_once`]: claim a batch under a lease, plan each row
//! ([`plan()`]), send one batch upsert plus the single-member calls that cannot be batched (renames,
//! removals, tag changes), then acknowledge exactly the rows Mailchimp confirmed (fenced by the
//! claim's token), reschedule the transient failures and park the permanent ones ([`policy`]).
//! [`Worker::run`] keeps up to the concurrency cap of such units in flight. Every Mailchimp request
//! passes the [`gate::Gate`]: one cap for all replicas, and a worker-wide pause after throttling.
//!
//! This crate owns no SQL and no HTTP details: those live in `store` and `mailchimp`.

pub mod gate;
pub mod plan;
pub mod policy;
pub mod reconcile;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use mailchimp::{Client, ProblemKind, TagChange};
use rand::Rng;
use store::mapping::{AudienceSettings, OnRemove};
use store::{Ack, Claim, ClaimedRow, Queue};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use gate::{Gate, GateError};
use plan::{plan, Action, Upsert};
use policy::{disposition, Disposition, Failure, RetryPolicy};

/// The part of a lease no request may start in: a request that starts later than `lease -
/// request_timeout - LEASE_MARGIN` after the claim could still be in flight when the lease
/// lapses and another worker claims the rows.
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// The worker's settings; every limit has a documented default.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The audience (list) id.
    pub audience_id: String,
    /// `[audience]` policies from the mapping file.
    pub audience: AudienceSettings,
    /// Rows per claim and per batch upsert (1..=500, Mailchimp's batch limit). Default 500.
    pub batch_size: usize,
    /// Mailchimp requests in flight at once, for all replicas together. Default 10 (Mailchimp's
    /// per-key limit).
    pub concurrency: usize,
    /// How long a claim holds its rows. Must exceed the request timeout plus [`LEASE_MARGIN`].
    /// Default 120 s.
    pub lease: Duration,
    /// The HTTP request timeout (to check the lease against). Default 30 s.
    pub request_timeout: Duration,
    /// The retry schedule.
    pub retry: RetryPolicy,
    /// How often an idle worker polls (jittered ±50 %). Default 200 ms: a change committed while
    /// the worker is idle waits up to 1.5 x this before it is claimed, and 1 s made the p99
    /// latency at a steady 500 changes/s exceed 1 s (benchmark scenario 5). An idle poll is
    /// one index scan of an empty range.
    pub poll_interval: Duration,
    /// How long in-flight calls may finish after SIGTERM before their rows are released. Default 20 s.
    pub shutdown_deadline: Duration,
    /// Who claims (shown in `sync_queue.lease_owner`).
    pub owner: String,
}

impl Settings {
    /// Defaults for `audience_id`.
    pub fn new(audience_id: impl Into<String>) -> Settings {
        Settings {
            audience_id: audience_id.into(),
            audience: AudienceSettings::default(),
            batch_size: 500,
            concurrency: 10,
            lease: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            poll_interval: Duration::from_millis(200),
            shutdown_deadline: Duration::from_secs(20),
            owner: format!(
                "{}/{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "chimpsync".into()),
                std::process::id()
            ),
        }
    }

    /// Checks the limits, naming the setting that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=500).contains(&self.batch_size) {
            return Err(Error::Settings(format!(
                "batch size {} is outside 1..=500",
                self.batch_size
            )));
        }
        if self.concurrency == 0 {
            return Err(Error::Settings("concurrency must be at least 1".into()));
        }
        // A batch starts requests only until `lease - request_timeout - LEASE_MARGIN` after its
        // claim; with no time left there, every claim was released untried, at once, forever.
        if self.lease <= self.request_timeout + LEASE_MARGIN {
            return Err(Error::Settings(format!(
                "lease ({:?}) must be longer than the request timeout ({:?}) plus {:?}: requests \
                 start only until the lease minus the request timeout minus {:?}",
                self.lease, self.request_timeout, LEASE_MARGIN, LEASE_MARGIN
            )));
        }
        if self.retry.max_attempts < 1 {
            return Err(Error::Settings("max attempts must be at least 1".into()));
        }
        if self.audience_id.trim().is_empty() {
            return Err(Error::Settings(
                "no audience id (set MAILCHIMP_AUDIENCE_ID or [audience].id)".into(),
            ));
        }
        Ok(())
    }
}

/// What can stop the worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed in a way retrying did not fix.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A setting is out of range.
    #[error("settings: {0}")]
    Settings(String),
}

/// What one unit of work did, for tests and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows Mailchimp acknowledged (deleted, or released because they changed meanwhile).
    pub acked: usize,
    /// Acknowledged rows that stayed queued because the customer changed while in flight.
    pub changed_in_flight: usize,
    /// Rows rescheduled after a transient failure.
    pub retried: usize,
    /// Rows parked.
    pub parked: usize,
    /// Rows given back untried (shutdown, deadline, duplicate address in the batch).
    pub released: usize,
    /// Whether Mailchimp throttled any request.
    pub throttled: bool,
}

impl DrainOutcome {
    fn add(&mut self, other: &DrainOutcome) {
        self.claimed += other.claimed;
        self.acked += other.acked;
        self.changed_in_flight += other.changed_in_flight;
        self.retried += other.retried;
        self.parked += other.parked;
        self.released += other.released;
        self.throttled |= other.throttled;
    }
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Queue,
    client: Client,
    settings: Settings,
    gate: Gate,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

enum CallError {
    Api(mailchimp::Error),
    /// Not sent: shutdown, the lease deadline, no slot.
    Cancelled,
    /// Cut off by shutdown while in flight: it may have been applied.
    Abandoned,
}

/// The fate of each row of a claim, collected before one write per kind.
#[derive(Default)]
struct Results {
    acks: Vec<Ack>,
    retries: Vec<store::Retry>,
    parks: Vec<(i64, i64, String)>,
    releases: Vec<i64>,
    freed_addresses: Vec<String>,
    throttled: bool,
}

impl Results {
    /// Records a failed attempt. `attempted` is what the attempt tried to make Mailchimp hold
    /// (addresses, tags): remembered when the failure leaves it unknown whether it applied.
    fn fail(
        &mut self,
        row: &ClaimedRow,
        failure: &Failure,
        policy: &RetryPolicy,
        attempted: Option<&Upsert>,
    ) {
        let maybe_applied = attempted.map(Upsert::maybe_applied);
        self.fail_with(row, failure, policy, maybe_applied);
    }

    /// [`Results::fail`] with what the attempt may have applied spelled out.
    fn fail_with(
        &mut self,
        row: &ClaimedRow,
        failure: &Failure,
        policy: &RetryPolicy,
        maybe_applied: Option<store::MaybeApplied>,
    ) {
        match disposition(failure, row.attempts, policy, &mut rand::thread_rng()) {
            Disposition::Retry { after, error } => {
                let at = Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
                self.retries.push(store::Retry {
                    id: row.id,
                    at,
                    error,
                    maybe_applied,
                });
            }
            Disposition::Park { reason } => self.parks.push((row.id, row.version, reason)),
        }
    }

    fn call_failed(
        &mut self,
        row: &ClaimedRow,
        error: CallError,
        policy: &RetryPolicy,
        attempted: Option<&Upsert>,
    ) {
        match error {
            CallError::Cancelled => self.releases.push(row.id),
            CallError::Abandoned => self.cut_off(row, attempted),
            CallError::Api(e) => {
                self.throttled |= e.is_throttled();
                self.fail(row, &Failure::of(&e), policy, attempted)
            }
        }
    }

    /// A call failed after earlier calls of the same attempt were applied (`applied` is what
    /// they may have made Mailchimp hold). A call that was not sent then does not make the row
    /// untried: released as untried, the next attempt would not know about what was applied
    /// (say, the new member of a rename fallback) and leave it behind as a copy.
    fn call_failed_after(
        &mut self,
        row: &ClaimedRow,
        error: CallError,
        policy: &RetryPolicy,
        applied: &Upsert,
    ) {
        match error {
            CallError::Cancelled | CallError::Abandoned => self.cut_off(row, Some(applied)),
            e => self.call_failed(row, e, policy, Some(applied)),
        }
    }

    /// A removal failed, or was cut off after it began. It may have unsubscribed the member
    /// already (a pending member is unsubscribed before it can be archived; `on_remove =
    /// "unsubscribe"` does only that): remembered as a consent of `false` that may have been
    /// sent, so that a customer who comes back with consent before the removal is retried gets
    /// a status again, instead of staying unsubscribed while the record says consent was sent.
    fn removal_failed(&mut self, row: &ClaimedRow, error: CallError, policy: &RetryPolicy) {
        let maybe = store::MaybeApplied {
            emails: Vec::new(),
            tags: Vec::new(),
            consent: Some(false),
        };
        match error {
            CallError::Cancelled | CallError::Abandoned => self.retries.push(store::Retry {
                id: row.id,
                at: Utc::now(),
                error:
                    "removal cut off before it finished (lease deadline or shutdown); sent again"
                        .into(),
                maybe_applied: Some(maybe),
            }),
            CallError::Api(e) => {
                self.throttled |= e.is_throttled();
                self.fail_with(row, &Failure::of(&e), policy, Some(maybe))
            }
        }
    }

    /// The attempt stopped before it finished (lease deadline, shutdown). Untried if nothing
    /// may have been applied; otherwise due again at once, remembering what may have been
    /// applied, as after a lost answer.
    fn cut_off(&mut self, row: &ClaimedRow, applied: Option<&Upsert>) {
        let Some(u) = applied else {
            return self.releases.push(row.id);
        };
        self.retries.push(store::Retry {
            id: row.id,
            at: Utc::now(),
            error: "cut off before the attempt finished (lease deadline or shutdown); sent again"
                .into(),
            maybe_applied: Some(u.maybe_applied()),
        });
    }

    fn ack_upsert(&mut self, row: &ClaimedRow, upsert: &Upsert) {
        self.acks.push(Ack {
            id: row.id,
            version: row.version,
            customer_key: row.customer_key.clone(),
            email: upsert.member.email_address.clone(),
            consent: upsert.consent,
            tags: upsert.tags.clone(),
            removed: false,
        });
    }

    fn ack_removal(&mut self, row: &ClaimedRow, email: &str) {
        self.acks.push(Ack {
            id: row.id,
            version: row.version,
            customer_key: row.customer_key.clone(),
            email: email.to_string(),
            consent: false,
            tags: Vec::new(),
            removed: true,
        });
        self.freed_addresses.push(email.to_string());
    }
}

/// The `operation` label of `chimpsync_rows_synced_total`: what the row asks of Mailchimp.
fn operation_label(row: &ClaimedRow, audience: &AudienceSettings) -> &'static str {
    match plan(row, audience) {
        Action::Rename { .. } => "rename",
        Action::Remove { .. } => "remove",
        Action::Upsert(_) | Action::Park(_) => "upsert",
    }
}

fn status_class(result: &Result<(), &mailchimp::Error>) -> &'static str {
    match result {
        Ok(()) => "2xx",
        Err(mailchimp::Error::Throttled { .. }) => "throttled",
        Err(mailchimp::Error::Server { .. }) => "5xx",
        Err(mailchimp::Error::Api(_)) => "4xx",
        Err(mailchimp::Error::Transport { .. }) => "transport",
        Err(_) => "other",
    }
}

impl Worker {
    /// A worker over `queue` and `client`; the connection cap's slots live in `queue`'s database.
    pub fn new(queue: Queue, client: Client, settings: Settings) -> Result<Worker, Error> {
        settings.validate()?;
        let slots = store::slots::SlotTable::new(queue.pool().clone(), settings.concurrency);
        Ok(Worker {
            inner: Arc::new(Inner {
                gate: Gate::new(slots),
                queue,
                client,
                settings,
            }),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    /// The gate (slots and throttle).
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// One unit of work: claim one batch, send it, record the results.
    pub async fn drain_once(&self) -> Result<DrainOutcome, Error> {
        let claim = self.claim().await?;
        Ok(self.process(claim, &CancellationToken::new()).await)
    }

    /// Runs [`Worker::drain_once`] until nothing is due; for tests and `run --once`-like use.
    pub async fn drain_until_idle(&self) -> Result<DrainOutcome, Error> {
        let mut total = DrainOutcome::default();
        loop {
            let outcome = self.drain_once().await?;
            if outcome.claimed == 0 {
                return Ok(total);
            }
            total.add(&outcome);
        }
    }

    async fn claim(&self) -> Result<Claim, Error> {
        let s = &self.inner.settings;
        let claim = (|| async {
            self.inner
                .queue
                .claim_batch(&s.owner, s.batch_size as i64, s.lease, None)
                .await
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(5)
                .with_jitter(),
        )
        .when(store::Error::is_transient)
        .await?;
        Ok(claim)
    }

    /// The loop: keeps up to one and a half times `concurrency` batches in progress (their requests capped at
    /// `concurrency` by the gate), claims the next batch while others are in flight (two claims
    /// at once while the claims come back full), polls with jitter when idle. With `once`,
    /// returns when nothing is due and nothing is in flight. On `shutdown`: stops claiming, lets
    /// in-flight calls finish until the deadline, then releases what did not finish.
    #[instrument(skip_all, fields(worker.owner = %self.inner.settings.owner, once))]
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        once: bool,
    ) -> Result<DrainOutcome, Error> {
        let s = &self.inner.settings;
        // Batches in progress: one and a half times the request cap, so that while
        // `concurrency` requests are in flight the next batches are already claimed and the
        // finished ones acknowledged. The gate still holds the requests themselves to the cap.
        // With one batch per request slot, each slot sat idle for a claim and an ack between
        // requests, and a latency-bound drain stayed well under 10 x 500 / latency (benchmark
        // scenario 2). Half the cap again covers a claim and an ack per request; every batch in
        // progress holds its rows in memory, so not more.
        let permits = Arc::new(Semaphore::new(s.concurrency + s.concurrency.div_ceil(2)));
        let hard_stop = CancellationToken::new();
        let mut tasks: JoinSet<DrainOutcome> = JoinSet::new();
        let mut total = DrainOutcome::default();
        let mut db_failures: u32 = 0;
        // Whether the claims keep coming back full. While behind, each task claims its own
        // batch, so several claims run at once: the claim is the loop's longest step, and made
        // one at a time here it capped a 0 ms drain at one batch per claim time (benchmark
        // scenario 1). A short or failed claim ends it; the loop then claims (and idles) itself.
        let mut behind = false;
        // At most two claims at once: concurrent claims skip each other's locked rows, and with
        // more of them that skipping costs more database time than the overlap saves.
        let claims = Arc::new(Semaphore::new(2));
        info!(
            concurrency = s.concurrency,
            batch_size = s.batch_size,
            "worker started"
        );
        loop {
            while let Some(done) = tasks.try_join_next() {
                let done = done.unwrap_or_default();
                behind &= done.claimed >= s.batch_size;
                total.add(&done);
            }
            if shutdown.is_cancelled() {
                break;
            }
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore never closes"),
                _ = shutdown.cancelled() => break,
            };
            if self.inner.gate.wait_throttle(&shutdown).await.is_err() {
                break;
            }
            if behind {
                let worker = self.clone();
                let cancel = hard_stop.clone();
                let stopping = shutdown.clone();
                let claims = claims.clone();
                tasks.spawn(async move {
                    let claiming = claims
                        .acquire_owned()
                        .await
                        .expect("semaphore never closes");
                    let claimed = if stopping.is_cancelled() {
                        None
                    } else {
                        Some(worker.claim().await)
                    };
                    drop(claiming);
                    let outcome = match claimed {
                        Some(Ok(claim)) if !claim.rows.is_empty() => {
                            worker.process(claim, &cancel).await
                        }
                        Some(Err(e)) => {
                            warn!(error = %e, "claim failed");
                            DrainOutcome::default()
                        }
                        _ => DrainOutcome::default(),
                    };
                    drop(permit);
                    outcome
                });
                continue;
            }
            let claim_started = std::time::Instant::now();
            let claimed = self
                .inner
                .queue
                .claim_batch(&s.owner, s.batch_size as i64, s.lease, None)
                .await;
            if claim_started.elapsed() > Duration::from_secs(1) {
                warn!(
                    seconds = claim_started.elapsed().as_secs_f64(),
                    "slow claim"
                );
            }
            let claim = match claimed {
                Ok(claim) => {
                    db_failures = 0;
                    claim
                }
                Err(e) => {
                    drop(permit);
                    db_failures += 1;
                    let pause = Duration::from_millis(200 * u64::from(db_failures.min(25)));
                    warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "claim failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            if claim.rows.is_empty() {
                drop(permit);
                if once && tasks.is_empty() {
                    break;
                }
                let jitter = rand::thread_rng().gen_range(0.5..1.5);
                let idle = s.poll_interval.mul_f64(jitter);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    Some(done) = tasks.join_next(), if !tasks.is_empty() => total.add(&done.unwrap_or_default()),
                    _ = tokio::time::sleep(idle), if !once => {}
                }
                continue;
            }
            // A full batch means more is likely due: loop straight back to claim again.
            behind = claim.rows.len() >= s.batch_size;
            let worker = self.clone();
            let cancel = hard_stop.clone();
            tasks.spawn(async move {
                let outcome = worker.process(claim, &cancel).await;
                drop(permit);
                outcome
            });
        }
        if !tasks.is_empty() {
            info!(
                in_flight = tasks.len(),
                deadline_s = s.shutdown_deadline.as_secs_f64(),
                "stopping: finishing in-flight batches"
            );
            let deadline = Instant::now() + s.shutdown_deadline;
            loop {
                tokio::select! {
                    next = tasks.join_next() => match next {
                        Some(done) => total.add(&done.unwrap_or_default()),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => {
                        warn!(in_flight = tasks.len(), "shutdown deadline reached: releasing unfinished rows");
                        hard_stop.cancel();
                        while let Some(done) = tasks.join_next().await {
                            total.add(&done.unwrap_or_default());
                        }
                        break;
                    }
                }
            }
        }
        info!(
            acked = total.acked,
            retried = total.retried,
            parked = total.parked,
            released = total.released,
            "worker stopped"
        );
        Ok(total)
    }

    /// One Mailchimp request through the gate, timed, with throttling noted.
    async fn call<T, F, Fut>(
        &self,
        endpoint: &'static str,
        cancel: &CancellationToken,
        deadline: Instant,
        f: F,
    ) -> Result<T, CallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, mailchimp::Error>>,
    {
        if cancel.is_cancelled() || Instant::now() >= deadline {
            return Err(CallError::Cancelled);
        }
        let gate = &self.inner.gate;
        let slot = match tokio::time::timeout_at(deadline, gate.enter(cancel)).await {
            Ok(Ok(slot)) => slot,
            Err(_elapsed) => return Err(CallError::Cancelled),
            Ok(Err(GateError::Cancelled)) => return Err(CallError::Cancelled),
            Ok(Err(GateError::Store(e))) => {
                warn!(error = %e, "slot table unavailable");
                return Err(CallError::Cancelled);
            }
        };
        // Waiting for a slot may have eaten into the lease: a request must never start so late
        // that it could still be in flight when the lease lapses and another worker re-claims.
        if Instant::now() >= deadline {
            gate.leave(slot).await;
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
        gate.leave(slot).await;
        let Some(result) = result else {
            return Err(CallError::Abandoned);
        };
        let class = status_class(&result.as_ref().map(|_| ()));
        metrics::histogram!("chimpsync_mailchimp_request_duration_seconds", "endpoint" => endpoint, "status_class" => class)
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(v) => {
                gate.succeeded();
                Ok(v)
            }
            Err(e) => {
                if e.is_throttled() {
                    gate.throttled();
                }
                debug!(endpoint, error = %e, "Mailchimp call failed");
                Err(CallError::Api(e))
            }
        }
    }

    #[instrument(skip_all, fields(batch.size = claim.rows.len()))]
    async fn process(&self, claim: Claim, cancel: &CancellationToken) -> DrainOutcome {
        let started = std::time::Instant::now();
        let s = &self.inner.settings;
        let list = s.audience_id.as_str();
        // Stop starting calls early enough that the last one ends before the lease does.
        let deadline = Instant::now() + s.lease.saturating_sub(s.request_timeout + LEASE_MARGIN);
        let mut results = Results::default();
        let mut batch: Vec<(&ClaimedRow, Upsert)> = Vec::new();
        let mut singles: Vec<(&ClaimedRow, Action)> = Vec::new();
        let mut addresses: HashSet<String> = HashSet::new();
        for row in &claim.rows {
            let action = plan(row, &s.audience);
            let address = match &action {
                Action::Upsert(u) | Action::Rename { upsert: u, .. } => {
                    Some(u.member.email_address.to_lowercase())
                }
                Action::Remove { emails, .. } => emails.first().map(|e| e.to_lowercase()),
                Action::Park(_) => None,
            };
            if let Some(address) = address {
                if !addresses.insert(address) {
                    // Two customers with one address in one batch: the first goes now; the other
                    // waits and is then parked as a duplicate (the address has an owner by then).
                    let at = Utc::now() + chrono::Duration::seconds(5);
                    results.retries.push(store::Retry {
                        id: row.id,
                        at,
                        error: "waiting: another row in this batch has the same address".into(),
                        maybe_applied: None,
                    });
                    continue;
                }
            }
            match action {
                Action::Park(reason) => results.parks.push((row.id, row.version, reason)),
                Action::Upsert(u) => batch.push((row, u)),
                other => singles.push((row, other)),
            }
        }

        let mut need_tags: Vec<(&ClaimedRow, &Upsert, Vec<TagChange>)> = Vec::new();
        if !batch.is_empty() {
            metrics::histogram!("chimpsync_batch_size").record(batch.len() as f64);
            let members: Vec<mailchimp::BatchMember> =
                batch.iter().map(|(_, u)| u.member.clone()).collect();
            let client = &self.inner.client;
            // Written before and decoded after the slot is held: a slot is one of the ten
            // connections Mailchimp allows, and it is busy only while the request is out
            // (benchmark scenario 2).
            let sent = match client.prepare_batch_upsert(list, &members) {
                Ok(prepared) => self
                    .call("batch_upsert", cancel, deadline, || {
                        client.send_batch(prepared)
                    })
                    .await
                    .and_then(|answer| answer.decode().map_err(CallError::Api)),
                Err(e) => Err(CallError::Api(e)),
            };
            match sent {
                Ok(result) => {
                    // Every member the batch created or updated, with its tags as Mailchimp
                    // now holds them: the tag changes still needed follow from those.
                    let members: HashMap<String, &mailchimp::MemberRef> = result
                        .created
                        .iter()
                        .chain(result.updated.iter())
                        .map(|m| (m.email_address.to_lowercase(), m))
                        .collect();
                    let errors: HashMap<String, &mailchimp::BatchError> = result
                        .errors
                        .iter()
                        .map(|e| (e.email_address.to_lowercase(), e))
                        .collect();
                    for (row, upsert) in &batch {
                        let address = upsert.member.email_address.to_lowercase();
                        if let Some(error) = errors.get(&address) {
                            results.fail(row, &Failure::of_batch_error(error), &s.retry, None);
                        } else if let Some(member) = members.get(&address) {
                            let changes = upsert.tags_missing_from(&member.tags);
                            if changes.is_empty() {
                                results.ack_upsert(row, upsert);
                            } else {
                                need_tags.push((row, upsert, changes));
                            }
                        } else {
                            results.fail(
                                row,
                                &Failure::Transient(
                                    "the batch response did not mention this member".into(),
                                ),
                                &s.retry,
                                Some(upsert),
                            );
                        }
                    }
                }
                Err(error) => {
                    let abandoned = matches!(error, CallError::Abandoned);
                    let error = match error {
                        CallError::Cancelled | CallError::Abandoned => None,
                        CallError::Api(e) => Some(e),
                    };
                    for (row, upsert) in &batch {
                        match &error {
                            None if abandoned => results.cut_off(row, Some(upsert)),
                            None => results.releases.push(row.id),
                            Some(e) => {
                                results.throttled |= e.is_throttled();
                                // A refusal of the whole batch is not any one member's fault.
                                let failure = match Failure::of(e) {
                                    Failure::Permanent(m) => Failure::Transient(m),
                                    t => t,
                                };
                                results.fail(row, &failure, &s.retry, Some(upsert))
                            }
                        }
                    }
                }
            }
        }

        for (row, upsert, changes) in need_tags {
            match self
                .tags(
                    row,
                    &upsert.member.email_address,
                    &changes,
                    cancel,
                    deadline,
                )
                .await
            {
                Ok(()) => results.ack_upsert(row, upsert),
                // The batch applied the upsert already.
                Err(e) => results.call_failed_after(row, e, &s.retry, upsert),
            }
        }

        for (row, action) in singles {
            match action {
                Action::Rename { from, upsert } => {
                    self.rename(row, &from, &upsert, cancel, deadline, &mut results)
                        .await
                }
                Action::Remove { emails, tags, how } => {
                    let mut removed = Ok(());
                    // Whether a removal call went out (one may have changed the status).
                    let mut began = false;
                    for email in &emails {
                        removed = self
                            .clear_and_remove(row, email, &tags, how, cancel, deadline)
                            .await;
                        began |= !matches!(removed, Err(CallError::Cancelled));
                        if removed.is_err() {
                            break;
                        }
                    }
                    match removed {
                        Ok(()) => {
                            results
                                .freed_addresses
                                .extend(emails.iter().skip(1).cloned());
                            results.ack_removal(row, &emails[0]);
                        }
                        // Nothing but (maybe) the tags went out: untried, as far as the status
                        // goes (the tags are cleared again by the next attempt).
                        Err(CallError::Cancelled) if !began => results.releases.push(row.id),
                        Err(e) => results.removal_failed(row, e, &s.retry),
                    }
                }
                Action::Upsert(_) | Action::Park(_) => unreachable!("planned into the batch"),
            }
        }

        self.record(claim, results, started).await
    }

    async fn tags(
        &self,
        _row: &ClaimedRow,
        email: &str,
        changes: &[TagChange],
        cancel: &CancellationToken,
        deadline: Instant,
    ) -> Result<(), CallError> {
        let s = &self.inner.settings;
        let client = &self.inner.client;
        self.call("update_tags", cancel, deadline, || {
            client.update_tags(&s.audience_id, email, changes)
        })
        .await
    }

    /// Takes chimpsync's `tags` off the member at `email`, then removes it per `how`. Every
    /// address a removal touches gets its tags cleared, not only the first: an archived member
    /// keeps its tags, and when it comes back (the customer returns, or takes that address
    /// again) it would carry tags chimpsync no longer knows it set.
    async fn clear_and_remove(
        &self,
        row: &ClaimedRow,
        email: &str,
        tags: &[String],
        how: OnRemove,
        cancel: &CancellationToken,
        deadline: Instant,
    ) -> Result<(), CallError> {
        if how != OnRemove::DeletePermanent && !tags.is_empty() {
            let off: Vec<TagChange> = tags
                .iter()
                .map(|t| TagChange {
                    name: t.clone(),
                    active: false,
                })
                .collect();
            match self.tags(row, email, &off, cancel, deadline).await {
                Err(CallError::Api(e)) if e.problem_kind() == Some(ProblemKind::NotFound) => {}
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        self.remove(email, how, cancel, deadline).await
    }

    async fn rename(
        &self,
        row: &ClaimedRow,
        from: &[String],
        upsert: &Upsert,
        cancel: &CancellationToken,
        deadline: Instant,
        results: &mut Results,
    ) {
        let s = &self.inner.settings;
        let client = &self.inner.client;
        let to = upsert.member.email_address.as_str();
        let body = upsert.single_body();
        // The tags chimpsync set or may have set: cleared from a member it removes.
        let ours: Vec<String> = upsert
            .tags
            .iter()
            .chain(upsert.stale_tags.iter())
            .cloned()
            .collect();
        let mut member = None;
        // Whether a call of this attempt changed Mailchimp already (a failure after that is
        // not an untried attempt, see `Results::call_failed_after`).
        let mut applied = false;
        let failed = |results: &mut Results, e: CallError, applied: bool| {
            if applied {
                results.call_failed_after(row, e, &s.retry, upsert)
            } else {
                results.call_failed(row, e, &s.retry, Some(upsert))
            }
        };
        for old in from {
            if member.is_some() {
                // Found under an earlier candidate: any other copy is one an attempt with a lost
                // answer created for this customer; remove it so no duplicate is left.
                if let Err(e) = self
                    .clear_and_remove(row, old, &ours, s.audience.on_remove, cancel, deadline)
                    .await
                {
                    return failed(results, e, true);
                }
                continue;
            }
            // PATCH, not PUT: a candidate that does not exist answers 404 instead of creating
            // the new address beside the member that lives under another candidate.
            match self
                .call("rename_member", cancel, deadline, || {
                    client.rename_existing_member(&s.audience_id, old, to, &body)
                })
                .await
            {
                Ok(m) => {
                    info!(customer.key = %row.customer_key, "email change: renamed the member");
                    member = Some(m);
                    applied = true;
                }
                Err(CallError::Api(e)) if e.problem_kind() == Some(ProblemKind::NotFound) => {}
                Err(CallError::Api(e))
                    if matches!(
                        e.problem_kind(),
                        Some(ProblemKind::InvalidResource | ProblemKind::MemberExists)
                    ) =>
                {
                    // The new address is taken, or the old member is not subscribed: remove the
                    // old member and upsert the new address, so no silent duplicate is left.
                    info!(customer.key = %row.customer_key, reason = %e, "email change: rename refused; removing the old address and upserting the new one");
                    if let Err(e) = self
                        .clear_and_remove(row, old, &ours, s.audience.on_remove, cancel, deadline)
                        .await
                    {
                        return failed(results, e, applied);
                    }
                    applied = true;
                }
                Err(e) => return failed(results, e, applied),
            }
        }
        let member = match member {
            Some(m) => m,
            None => match self
                .call("upsert_member", cancel, deadline, || {
                    client.upsert_member(&s.audience_id, to, &body)
                })
                .await
            {
                Ok(m) => {
                    info!(customer.key = %row.customer_key, "email change: upserted the new address");
                    m
                }
                Err(e) => return failed(results, e, applied),
            },
        };
        results.freed_addresses.extend(from.iter().cloned());
        // Whether renamed, created or found, the member's own tags say what is still missing.
        let changes = upsert.tags_missing_from(&member.tags);
        if !changes.is_empty() {
            if let Err(e) = self.tags(row, to, &changes, cancel, deadline).await {
                // The member lives under the new address now.
                return failed(results, e, true);
            }
        }
        results.ack_upsert(row, upsert);
    }

    async fn remove(
        &self,
        email: &str,
        how: OnRemove,
        cancel: &CancellationToken,
        deadline: Instant,
    ) -> Result<(), CallError> {
        let s = &self.inner.settings;
        let client = &self.inner.client;
        let list = s.audience_id.as_str();
        let result = match how {
            OnRemove::Archive => {
                let archived = self
                    .call("archive_member", cancel, deadline, || {
                        client.archive_member(list, email)
                    })
                    .await;
                match archived {
                    // Mailchimp will not archive a pending, cleaned or archived contact (one 405
                    // for all three). A pending one could still confirm and start receiving
                    // campaigns, so it is unsubscribed first and archived then. Cleaned and
                    // archived ones are inactive already, and must be left alone: a status
                    // change brings an archived contact back, live (and if the archive that
                    // should follow fails, an attempt that no longer looks at that address
                    // leaves it behind). So the member is read first.
                    Err(CallError::Api(e))
                        if e.problem_kind() == Some(ProblemKind::MethodNotAllowed) =>
                    {
                        let member = self
                            .call("get_member", cancel, deadline, || {
                                client.get_member(list, email)
                            })
                            .await;
                        match member {
                            Ok(m) if m.status == mailchimp::Status::Pending => {
                                let unsubscribed = self
                                    .call("set_status", cancel, deadline, || {
                                        client.set_status(
                                            list,
                                            email,
                                            mailchimp::Status::Unsubscribed,
                                        )
                                    })
                                    .await;
                                match unsubscribed {
                                    // Unsubscribed now: a cut-off archive is not "untried".
                                    Ok(_) => self
                                        .call("archive_member", cancel, deadline, || {
                                            client.archive_member(list, email)
                                        })
                                        .await
                                        .map_err(|e| match e {
                                            CallError::Cancelled => CallError::Abandoned,
                                            e => e,
                                        }),
                                    Err(CallError::Api(e)) if !e.is_retryable() => Ok(()),
                                    Err(e) => Err(e),
                                }
                            }
                            Ok(_) => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                    other => other,
                }
            }
            OnRemove::Unsubscribe => self
                .call("set_status", cancel, deadline, || {
                    client.set_status(list, email, mailchimp::Status::Unsubscribed)
                })
                .await
                .map(|_| ()),
            OnRemove::DeletePermanent => {
                self.call("delete_member_permanently", cancel, deadline, || {
                    client.delete_member_permanently(list, email)
                })
                .await
            }
        };
        match result {
            // Already gone (404), already archived or not archivable (405: pending/cleaned/archived),
            // already forgotten: the member is not an active contact, which is what removal wants.
            Err(CallError::Api(e))
                if matches!(
                    e.problem_kind(),
                    Some(
                        ProblemKind::NotFound
                            | ProblemKind::MethodNotAllowed
                            | ProblemKind::ForgottenEmail
                    )
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn record(
        &self,
        claim: Claim,
        results: Results,
        started: std::time::Instant,
    ) -> DrainOutcome {
        let queue = &self.inner.queue;
        let token = claim.token;
        let retry = || {
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(10)
                .with_jitter()
        };
        let mut outcome = DrainOutcome {
            claimed: claim.rows.len(),
            parked: results.parks.len(),
            retried: results.retries.len(),
            released: results.releases.len(),
            throttled: results.throttled,
            ..Default::default()
        };
        // Each write retries while the database is briefly away; if it stays away the lease
        // lapses and the rows are sent again (every operation is idempotent).
        let ack_started = std::time::Instant::now();
        let acked = (|| queue.ack(token, &results.acks))
            .retry(retry())
            .when(store::Error::is_transient)
            .notify(|e, after| debug!(error = %e, retry_in_ms = after.as_millis() as u64, "ack failed; retrying"))
            .await;
        if ack_started.elapsed() > Duration::from_secs(1) {
            warn!(seconds = ack_started.elapsed().as_secs_f64(), "slow ack");
        }
        match acked {
            Ok(counts) => {
                outcome.acked = (counts.deleted + counts.released) as usize;
                outcome.changed_in_flight = counts.released as usize;
            }
            Err(e) => {
                warn!(error = %e, rows = results.acks.len(), "could not record acknowledgements; the rows will be sent again")
            }
        }
        if let Err(e) = (|| queue.park(token, &results.parks))
            .retry(retry())
            .when(store::Error::is_transient)
            .await
        {
            warn!(error = %e, "could not park rows");
        }
        if let Err(e) = (|| queue.reschedule(token, &results.retries))
            .retry(retry())
            .when(store::Error::is_transient)
            .await
        {
            warn!(error = %e, "could not reschedule rows");
        }
        if let Err(e) = (|| queue.release(token, &results.releases))
            .retry(retry())
            .when(store::Error::is_transient)
            .await
        {
            warn!(error = %e, "could not release rows");
        }
        if !results.freed_addresses.is_empty() {
            if let Err(e) = queue.unpark_addresses(&results.freed_addresses).await {
                warn!(error = %e, "could not unpark rows waiting for a freed address");
            }
        }
        // Rows by operation and result. Every series is touched (by 0 if need be) so dashboards
        // see them from the first batch on. If a lapsed lease fenced some acknowledgements off,
        // the rows that counted are attributed in order (another worker will count the rest).
        let operations: HashMap<i64, &'static str> = claim
            .rows
            .iter()
            .map(|row| (row.id, operation_label(row, &self.inner.settings.audience)))
            .collect();
        let op = |id: &i64| operations.get(id).copied().unwrap_or("upsert");
        let mut synced: HashMap<(&'static str, &'static str), u64> = HashMap::new();
        for ack in results.acks.iter().take(outcome.acked) {
            *synced.entry((op(&ack.id), "acked")).or_default() += 1;
        }
        for retry in &results.retries {
            *synced.entry((op(&retry.id), "retried")).or_default() += 1;
        }
        for (id, _, _) in &results.parks {
            *synced.entry((op(id), "parked")).or_default() += 1;
        }
        for operation in ["upsert", "rename", "remove"] {
            for result in ["acked", "retried", "parked"] {
                let n = synced.get(&(operation, result)).copied().unwrap_or(0);
                metrics::counter!("chimpsync_rows_synced_total", "operation" => operation, "result" => result)
                    .increment(n);
            }
        }
        metrics::counter!("chimpsync_retries_total").increment(outcome.retried as u64);
        metrics::counter!("chimpsync_parked_total").increment(outcome.parked as u64);
        if outcome.acked > 0 {
            metrics::gauge!("chimpsync_last_success_timestamp_seconds")
                .set(Utc::now().timestamp() as f64);
        }
        info!(
            batch.claimed = outcome.claimed,
            batch.acked = outcome.acked,
            batch.changed_in_flight = outcome.changed_in_flight,
            batch.retried = outcome.retried,
            batch.parked = outcome.parked,
            batch.released = outcome.released,
            batch.throttled = outcome.throttled,
            duration_ms = started.elapsed().as_millis() as u64,
            "batch done"
        );
        outcome
    }
}
