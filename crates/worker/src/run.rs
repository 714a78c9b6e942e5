//! The run loop: claims batches (one claim path, [`Worker::claim`]) and keeps several in
//! progress, polls with jitter when idle, and shuts down within a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, Retryable};
use mailchimp::Client;
use rand::RngExt;
use store::{Claim, Queue};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use crate::accounts::{Accounts, OpenKey};
use crate::batch::Engine;
use crate::error::Error;
use crate::gate::Gate;
use crate::liveness::Heartbeat;
use crate::results::DrainOutcome;
use crate::retry;
use crate::settings::Settings;

/// At most this many claims at once: concurrent claims skip each other's locked rows, and with
/// more of them that skipping costs more database time than the overlap saves.
const CONCURRENT_CLAIMS: usize = 2;

/// Why the worker must not claim: `Some(reason)` holds the run loop before its next claim (the
/// batches in progress finish and record normally), `None` lets it claim. The sender decides.
pub type Hold = watch::Receiver<Option<String>>;

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    engine: Arc<Engine>,
    hold: Option<Hold>,
    heartbeat: Heartbeat,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.engine.settings)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `queue` and `client`; the connection cap's slots live in `queue`'s database.
    pub fn new(queue: Queue, client: Client, settings: Settings) -> Result<Worker, Error> {
        Worker::build(queue, Some(client), None, settings)
    }

    /// A worker of many accounts over `queue` (made by [`Queue::for_accounts`]): each claim is
    /// one account's, sent through a client for its own key (`opener` opens the keys) under that
    /// key's own cap of `settings.concurrency` connections. `settings.audience_id` is unused.
    pub fn for_accounts(
        queue: Queue,
        opener: Arc<dyn OpenKey>,
        settings: Settings,
    ) -> Result<Worker, Error> {
        Worker::build(queue, None, Some(opener), settings)
    }

    fn build(
        queue: Queue,
        client: Option<Client>,
        opener: Option<Arc<dyn OpenKey>>,
        settings: Settings,
    ) -> Result<Worker, Error> {
        if opener.is_none() {
            settings.validate()?;
        }
        let slots = Arc::new(store::slots::SlotTable::new(
            queue.pool().clone(),
            settings.concurrency,
        ));
        Ok(Worker {
            engine: Arc::new(Engine {
                gate: Arc::new(Gate::for_one(slots.clone())),
                accounts: opener.map(|opener| Accounts::new(opener, slots)),
                queue,
                client,
                settings,
                groups: Default::default(),
            }),
            hold: None,
            heartbeat: Heartbeat::new(),
        })
    }

    /// The worker, whose run loop claims only while `hold` says nothing against it.
    pub fn with_hold(mut self, hold: Hold) -> Worker {
        self.hold = Some(hold);
        self
    }

    /// Whether the hold forbids claiming now.
    fn held(&self) -> bool {
        self.hold.as_ref().is_some_and(|h| h.borrow().is_some())
    }

    /// Waits until the hold lets the worker claim; false if `shutdown` came first.
    async fn wait_unheld(&self, shutdown: &CancellationToken) -> bool {
        let Some(mut hold) = self.hold.clone() else {
            return true;
        };
        tokio::select! {
            released = hold.wait_for(Option::is_none) => released.is_ok(),
            _ = shutdown.cancelled() => false,
        }
    }

    /// Whether it serves many accounts (see [`Worker::for_accounts`]).
    pub fn is_multi_account(&self) -> bool {
        self.engine.accounts.is_some()
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.engine.settings
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.engine.queue
    }

    /// The gate (slots and throttle).
    pub fn gate(&self) -> &Gate {
        &self.engine.gate
    }

    /// The run loop's progress, for the liveness probe.
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.heartbeat
    }

    /// One unit of work: claim one batch, send it, record the results.
    pub async fn drain_once(&self) -> Result<DrainOutcome, Error> {
        let claim = self.claim().await?;
        Ok(self.engine.process(claim, &CancellationToken::new()).await)
    }

    /// Claims the next batch, retrying while the database is briefly away. The claim holds
    /// mass removals first, in the same statement ([`store::RemovalGuard`]).
    async fn claim(&self) -> Result<Claim, Error> {
        let s = &self.engine.settings;
        let started = Instant::now();
        let claim = (|| {
            self.engine.queue.claim_guarded(
                &s.owner,
                s.batch_size as i64,
                s.lease,
                Some(&s.removal_guard),
                None,
            )
        })
        .retry(retry::claim())
        .when(store::Error::is_transient)
        .notify(|e, after| {
            // A failed attempt is still an attempt: the loop is alive, the database is not.
            self.heartbeat.beat();
            debug!(error = %e, retry_in_ms = after.as_millis() as u64, "claim failed; retrying")
        })
        .await;
        metrics::histogram!("chimpsync_claim_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if started.elapsed() > Duration::from_secs(1) {
            warn!(seconds = started.elapsed().as_secs_f64(), "slow claim");
        }
        Ok(claim?)
    }

    /// Spawns the processing of `claim` (claimed first, if `None`); `permit` is held until the
    /// batch is recorded.
    fn spawn(
        &self,
        tasks: &mut JoinSet<DrainOutcome>,
        claim: Option<Claim>,
        permit: tokio::sync::OwnedSemaphorePermit,
        claims: &Arc<Semaphore>,
        stopping: &CancellationToken,
        cancel: &CancellationToken,
    ) {
        let (worker, claims) = (self.clone(), claims.clone());
        let (stopping, cancel) = (stopping.clone(), cancel.clone());
        tasks.spawn(async move {
            let claim = match claim {
                Some(claim) => Some(claim),
                None => {
                    let _claiming = claims.acquire_owned().await.expect("never closed");
                    if stopping.is_cancelled() || worker.held() {
                        None
                    } else {
                        let claim = worker.claim().await;
                        worker.heartbeat.beat();
                        claim
                            .inspect_err(|e| warn!(error = %e, "claim failed"))
                            .ok()
                    }
                }
            };
            let outcome = match claim {
                Some(claim) if !claim.rows.is_empty() => {
                    worker.engine.process(claim, &cancel).await
                }
                _ => DrainOutcome::default(),
            };
            drop(permit);
            outcome
        });
    }

    /// The loop: keeps up to one and a half times `concurrency` batches in progress (their
    /// requests capped at `concurrency` by the gate), claims the next batch while others are in
    /// flight (two claims at once while the claims come back full), polls with jitter when idle.
    /// While the hold (see [`Worker::with_hold`]) forbids it, claims nothing. With `once`,
    /// returns when nothing is due and nothing is in flight, naming in
    /// [`DrainOutcome::unfinished`] the rows whose last attempt was not acknowledged. On `shutdown`: stops
    /// claiming, lets in-flight calls finish until the deadline, then releases what did not
    /// finish.
    #[instrument(skip_all, fields(worker.owner = %self.engine.settings.owner, once))]
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        once: bool,
    ) -> Result<DrainOutcome, Error> {
        let s = &self.engine.settings;
        // Batches in progress: one and a half times the request cap, so that while
        // `concurrency` requests are in flight the next batches are already claimed and the
        // finished ones acknowledged; the gate still holds the requests themselves to the cap.
        // With one batch per request slot, each slot would sit idle for a claim and an ack
        // between requests. Every batch in progress holds its rows in memory, so not more.
        let permits = Arc::new(Semaphore::new(s.concurrency + s.concurrency.div_ceil(2)));
        let claims = Arc::new(Semaphore::new(CONCURRENT_CLAIMS));
        let hard_stop = CancellationToken::new();
        let mut tasks: JoinSet<DrainOutcome> = JoinSet::new();
        let mut total = DrainOutcome::default();
        let mut outage = retry::database_outage().build();
        // Whether the claims keep coming back full. While behind, each task claims its own
        // batch, so several claims run at once: the claim is the loop's longest step, and one
        // at a time it would cap the drain at one batch per claim time. A short or failed claim
        // ends it; the loop then claims (and idles) itself.
        let mut behind = false;
        info!(
            concurrency = s.concurrency,
            batch_size = s.batch_size,
            "worker started"
        );
        self.heartbeat.beat();
        loop {
            while let Some(done) = tasks.try_join_next() {
                let done = done.unwrap_or_default();
                behind &= done.claimed >= s.batch_size;
                total.settle(done, once);
            }
            if shutdown.is_cancelled() {
                break;
            }
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("never closed"),
                _ = shutdown.cancelled() => break,
            };
            // A throttle pause and the schema hold are waits by design, not stalls.
            let paused = self
                .engine
                .gate
                .pause_remaining()
                .map(|_| self.heartbeat.excuse());
            if self.engine.gate.wait_throttle(&shutdown).await.is_err() {
                break;
            }
            drop(paused);
            if self.held() {
                drop(permit);
                behind = false;
                let _waiting = self.heartbeat.excuse();
                if !self.wait_unheld(&shutdown).await {
                    break;
                }
                continue;
            }
            if behind {
                self.spawn(&mut tasks, None, permit, &claims, &shutdown, &hard_stop);
                continue;
            }
            let claimed = self.claim().await;
            self.heartbeat.beat();
            let claim = match claimed {
                Ok(claim) => {
                    outage = retry::database_outage().build();
                    claim
                }
                Err(e) => {
                    drop(permit);
                    let pause = outage.next().unwrap_or(s.poll_interval);
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
                let idle = s.poll_interval.mul_f64(rand::rng().random_range(0.5..1.5));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    Some(done) = tasks.join_next(), if !tasks.is_empty() => total.settle(done.unwrap_or_default(), once),
                    _ = tokio::time::sleep(idle), if !once => {}
                }
                continue;
            }
            // A full batch means more is likely due: loop straight back to claim again.
            behind = claim.rows.len() >= s.batch_size;
            self.spawn(
                &mut tasks,
                Some(claim),
                permit,
                &claims,
                &shutdown,
                &hard_stop,
            );
        }
        self.finish(tasks, &hard_stop, &mut total, once).await;
        info!(
            acked = total.acked,
            retried = total.retried,
            parked = total.parked,
            released = total.released,
            "worker stopped"
        );
        Ok(total)
    }

    /// Lets the batches in progress finish until the shutdown deadline, then cuts their calls
    /// off (their rows are released or rescheduled).
    async fn finish(
        &self,
        mut tasks: JoinSet<DrainOutcome>,
        hard_stop: &CancellationToken,
        total: &mut DrainOutcome,
        once: bool,
    ) {
        if tasks.is_empty() {
            return;
        }
        let s = &self.engine.settings;
        info!(
            in_flight = tasks.len(),
            deadline_s = s.shutdown_deadline.as_secs_f64(),
            "stopping: finishing in-flight batches"
        );
        let deadline = tokio::time::Instant::now() + s.shutdown_deadline;
        loop {
            tokio::select! {
                next = tasks.join_next() => match next {
                    Some(done) => total.settle(done.unwrap_or_default(), once),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    warn!(in_flight = tasks.len(), "shutdown deadline reached: releasing unfinished rows");
                    hard_stop.cancel();
                    while let Some(done) = tasks.join_next().await {
                        total.settle(done.unwrap_or_default(), once);
                    }
                    return;
                }
            }
        }
    }
}
