//! The fate of each row of a claim: collected while the batch is processed ([`Results`]), then
//! recorded with one fenced write per kind, and counted ([`Results::record`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use backon::Retryable;
use chrono::Utc;
use store::queue::Park;
use store::{Ack, Claim, ClaimedRow, MaybeApplied, Queue};
use tracing::{debug, info, warn};

use crate::gate::CallError;
use crate::plan::{Progress, Upsert};
use crate::policy::{disposition, Disposition, Failure};
use crate::retry::{self, RetryPolicy};

/// How long a row waits whose address another row of the same batch is sending.
const SAME_ADDRESS_WAIT: Duration = Duration::from_secs(5);

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
    /// Each row of this unit (`sync_queue.id`) with how its attempt ended. A sum holds its
    /// units' rows, except [`Worker::run`](crate::Worker::run)'s, which keeps `unfinished`
    /// instead.
    pub rows: Vec<(i64, Fate)>,
    /// [`Worker::run`](crate::Worker::run) with `once` only: the rows whose last attempt in the
    /// run ended without an acknowledgement, and how, by id. Empty when the run finished
    /// everything it claimed.
    pub unfinished: BTreeMap<i64, Fate>,
}

/// How a row's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fate {
    /// Mailchimp acknowledged it (the row is deleted, or stays for a newer change).
    Acked,
    /// A transient failure: due again after its backoff.
    Retrying,
    /// A permanent failure, or too many attempts: waits for a person.
    Parked,
    /// Given back unsent or unrecorded (shutdown, deadline, no slot, an account that cannot be
    /// sent to, an acknowledgement that could not be written).
    Released,
}

impl DrainOutcome {
    /// Adds another unit's counts and rows to these.
    pub fn add(&mut self, other: &DrainOutcome) {
        self.claimed += other.claimed;
        self.acked += other.acked;
        self.changed_in_flight += other.changed_in_flight;
        self.retried += other.retried;
        self.parked += other.parked;
        self.released += other.released;
        self.throttled |= other.throttled;
        self.rows.extend_from_slice(&other.rows);
    }

    /// Adds a unit's counts, and, with `track`, follows its rows into `unfinished` (a later
    /// acknowledgement of a row clears an earlier failure) rather than keeping them, so a long
    /// run holds nothing per row.
    pub(crate) fn settle(&mut self, mut unit: DrainOutcome, track: bool) {
        let rows = std::mem::take(&mut unit.rows);
        self.add(&unit);
        if !track {
            return;
        }
        for (id, fate) in rows {
            match fate {
                Fate::Acked => self.unfinished.remove(&id),
                other => self.unfinished.insert(id, other),
            };
        }
    }

    /// How many rows the run left unfinished with `fate`.
    pub fn unfinished_with(&self, fate: Fate) -> usize {
        self.unfinished.values().filter(|f| **f == fate).count()
    }
}

/// The fate of each row of a claim, collected before one write per kind.
pub(crate) struct Results {
    policy: RetryPolicy,
    acks: Vec<Ack>,
    retries: Vec<store::Retry>,
    parks: Vec<Park>,
    releases: Vec<i64>,
    freed_addresses: Vec<String>,
    throttled: bool,
    /// Each row's `operation` label, from its plan.
    labels: HashMap<i64, &'static str>,
    /// The steps Mailchimp acknowledged, per row, kept with the row if it is retried.
    progress: HashMap<i64, store::DoneSteps>,
    /// With many accounts: a refusal of the account's key or audience (not of any row) gives
    /// the rows back untried and puts the account in `needs_attention` with this reason.
    account_level: bool,
    refusal: Option<String>,
}

impl Results {
    /// Empty results; failures are retried per `policy`.
    pub(crate) fn new(policy: RetryPolicy) -> Results {
        Results {
            policy,
            acks: Vec::new(),
            retries: Vec::new(),
            parks: Vec::new(),
            releases: Vec::new(),
            freed_addresses: Vec::new(),
            throttled: false,
            labels: HashMap::new(),
            progress: HashMap::new(),
            account_level: false,
            refusal: None,
        }
    }

    /// Results of one account of many: see [`Results::refusal`].
    pub(crate) fn of_account(mut self) -> Results {
        self.account_level = true;
        self
    }

    /// Why Mailchimp refused the account itself (its key; its audience, for `audience`
    /// calls), if it did and these are one account's results.
    fn account_refusal(&mut self, error: &mailchimp::Error, audience: bool) -> bool {
        if !self.account_level {
            return false;
        }
        let reason = match error.problem_kind() {
            Some(mailchimp::ProblemKind::ApiKeyInvalid | mailchimp::ProblemKind::ApiKeyMissing) => {
                format!("Mailchimp refused the API key: {error}")
            }
            Some(mailchimp::ProblemKind::NotFound) if audience => {
                format!("Mailchimp has no such audience for this key: {error}")
            }
            _ => return false,
        };
        self.refusal.get_or_insert(reason);
        true
    }

    /// The account-level refusal met while sending, if any (see [`Results::of_account`]).
    pub(crate) fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    /// A row not sent because the account cannot be sent to now: given back untried, or, if an
    /// earlier call of this attempt may have applied something, due again when the account is,
    /// remembering it.
    fn account_refused(&mut self, row: &ClaimedRow, applied: Option<MaybeApplied>) {
        match applied {
            None => self.release(row),
            Some(maybe) => self.retries.push(store::Retry {
                id: row.id,
                after: Duration::ZERO,
                error: self.refusal.clone().unwrap_or_default(),
                maybe_applied: Some(maybe),
                done_steps: None,
            }),
        }
    }

    /// Gives every row of `claim` back untried: the account cannot be sent to (`reason`).
    pub(crate) fn release_all(&mut self, claim: &Claim, reason: String) {
        for row in &claim.rows {
            self.release(row);
        }
        self.refusal = Some(reason);
    }

    /// Notes what the row asks of Mailchimp, for the metrics.
    pub(crate) fn label(&mut self, row: &ClaimedRow, label: &'static str) {
        self.labels.insert(row.id, label);
    }

    /// Notes the steps of the row's operation Mailchimp acknowledged so far (those of earlier
    /// attempts included): if the row is retried, the next attempt starts after them. Call it
    /// before recording the failure.
    pub(crate) fn progress(&mut self, row: &ClaimedRow, progress: Progress) {
        if let Some(done) = progress.record() {
            self.progress.insert(row.id, done);
        }
    }

    /// Records a failed attempt. `attempted` is what the attempt tried to make Mailchimp hold
    /// (addresses, tags): remembered when the failure leaves it unknown whether it applied.
    pub(crate) fn fail(&mut self, row: &ClaimedRow, failure: &Failure, attempted: Option<&Upsert>) {
        self.fail_with(row, failure, attempted.map(Upsert::maybe_applied));
    }

    /// [`Results::fail`] with what the attempt may have applied spelled out.
    fn fail_with(&mut self, row: &ClaimedRow, failure: &Failure, maybe: Option<MaybeApplied>) {
        match disposition(failure, row.attempts, &self.policy, &mut rand::rng()) {
            Disposition::Retry { after, error } => self.retries.push(store::Retry {
                id: row.id,
                after,
                error,
                maybe_applied: maybe,
                done_steps: None,
            }),
            Disposition::Park { reason } => self.park(row, reason),
        }
    }

    /// A Mailchimp call of the row failed (`attempted`: what the attempt may have applied).
    pub(crate) fn call_failed(
        &mut self,
        row: &ClaimedRow,
        error: CallError,
        attempted: Option<&Upsert>,
    ) {
        match error {
            CallError::Cancelled | CallError::NoSlot(_) => self.release(row),
            CallError::Abandoned => self.cut_off(row, attempted),
            CallError::Api(e) if self.account_refusal(&e, false) => {
                self.account_refused(row, attempted.map(Upsert::maybe_applied))
            }
            CallError::Api(e) => {
                self.throttled |= e.is_throttled();
                self.fail(row, &Failure::of(&e), attempted)
            }
        }
    }

    /// A call failed after earlier calls of the same attempt were applied (`applied` is what
    /// they may have made Mailchimp hold). A call that was not sent then does not make the row
    /// untried: released as untried, the next attempt would not know about what was applied
    /// (say, the new member of a rename fallback) and leave it behind as a copy.
    pub(crate) fn call_failed_after(
        &mut self,
        row: &ClaimedRow,
        error: CallError,
        applied: &Upsert,
    ) {
        match error {
            CallError::Cancelled | CallError::NoSlot(_) | CallError::Abandoned => {
                self.cut_off(row, Some(applied))
            }
            e => self.call_failed(row, e, Some(applied)),
        }
    }

    /// A removal failed, or was cut off after it began. It may have unsubscribed the member
    /// already (a pending member is unsubscribed before it can be archived; `on_remove =
    /// "unsubscribe"` does only that): remembered as a consent of `false` that may have been
    /// sent, so that a customer who comes back with consent before the removal is retried gets
    /// a status again, instead of staying unsubscribed while the record says consent was sent.
    pub(crate) fn removal_failed(&mut self, row: &ClaimedRow, error: CallError) {
        let maybe = MaybeApplied {
            emails: Vec::new(),
            tags: Vec::new(),
            consent: Some(false),
        };
        match error {
            CallError::Cancelled | CallError::NoSlot(_) | CallError::Abandoned => {
                self.retries.push(store::Retry {
                    id: row.id,
                    after: Duration::ZERO,
                    error: "removal cut off before it finished (lease deadline or shutdown); sent \
                            again"
                        .into(),
                    maybe_applied: Some(maybe),
                    done_steps: None,
                })
            }
            CallError::Api(e) if self.account_refusal(&e, false) => {
                self.account_refused(row, Some(maybe))
            }
            CallError::Api(e) => {
                self.throttled |= e.is_throttled();
                self.fail_with(row, &Failure::of(&e), Some(maybe))
            }
        }
    }

    /// A whole batch was refused (`error`) or not sent: each of its rows fails alike.
    pub(crate) fn batch_failed(&mut self, batch: &[(&ClaimedRow, Upsert)], error: CallError) {
        if let CallError::Api(e) = &error {
            if self.account_refusal(e, true) {
                // Refused before anything was applied: each row as it was before this attempt.
                for (row, _) in batch {
                    self.release(row);
                }
                return;
            }
        }
        let failure = match &error {
            CallError::Api(e) => {
                self.throttled |= e.is_throttled();
                // A refusal of the whole batch is not any one member's fault.
                Some(match Failure::of(e) {
                    Failure::Permanent(m) => Failure::Transient(m),
                    t => t,
                })
            }
            _ => None,
        };
        for (row, upsert) in batch {
            match (&failure, &error) {
                (Some(failure), _) => self.fail(row, failure, Some(upsert)),
                (None, CallError::Abandoned) => self.cut_off(row, Some(upsert)),
                (None, _) => self.release(row),
            }
        }
    }

    /// The attempt stopped before it finished (lease deadline, shutdown). Untried if nothing
    /// may have been applied; otherwise due again at once, remembering what may have been
    /// applied, as after a lost answer.
    pub(crate) fn cut_off(&mut self, row: &ClaimedRow, applied: Option<&Upsert>) {
        let Some(u) = applied else {
            return self.release(row);
        };
        self.retries.push(store::Retry {
            id: row.id,
            after: Duration::ZERO,
            error: "cut off before the attempt finished (lease deadline or shutdown); sent again"
                .into(),
            maybe_applied: Some(u.maybe_applied()),
            done_steps: None,
        });
    }

    /// Another row of the batch sends the same address: this one waits, and is parked as a
    /// duplicate then if that address has an owner by then.
    pub(crate) fn same_address(&mut self, row: &ClaimedRow) {
        self.retries.push(store::Retry {
            id: row.id,
            after: SAME_ADDRESS_WAIT,
            error: "waiting: another row in this batch has the same address".into(),
            maybe_applied: None,
            done_steps: None,
        });
    }

    /// The row is given back untried.
    pub(crate) fn release(&mut self, row: &ClaimedRow) {
        self.releases.push(row.id);
    }

    /// The row failed permanently.
    pub(crate) fn park(&mut self, row: &ClaimedRow, reason: String) {
        self.parks.push(Park {
            id: row.id,
            version: row.version,
            reason,
        });
    }

    /// Addresses no member lives under any more: rows parked because another customer owned
    /// one of them get another chance.
    pub(crate) fn free(&mut self, addresses: impl IntoIterator<Item = String>) {
        self.freed_addresses.extend(addresses);
    }

    /// Mailchimp holds what `upsert` sent.
    pub(crate) fn ack_upsert(&mut self, row: &ClaimedRow, upsert: &Upsert) {
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

    /// The member at `email` was removed.
    pub(crate) fn ack_removal(&mut self, row: &ClaimedRow, email: &str) {
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

    /// Writes every row's fate (each write fenced by the claim's token), then counts and logs.
    pub(crate) async fn record(
        mut self,
        queue: &Queue,
        claim: &Claim,
        started: Instant,
    ) -> DrainOutcome {
        let token = claim.token;
        for retry in &mut self.retries {
            retry.done_steps = self.progress.remove(&retry.id);
        }
        let mut outcome = DrainOutcome {
            claimed: claim.rows.len(),
            parked: self.parks.len(),
            retried: self.retries.len(),
            released: self.releases.len(),
            throttled: self.throttled,
            ..Default::default()
        };
        let ack_started = Instant::now();
        let acked = (|| queue.ack(token, &self.acks))
            .retry(retry::database_write())
            .when(store::Error::is_transient)
            .notify(|e, after| debug!(error = %e, retry_in_ms = after.as_millis() as u64, "ack failed; retrying"))
            .await;
        metrics::histogram!("chimpsync_ack_duration_seconds")
            .record(ack_started.elapsed().as_secs_f64());
        if ack_started.elapsed() > Duration::from_secs(1) {
            warn!(seconds = ack_started.elapsed().as_secs_f64(), "slow ack");
        }
        // A lapsed lease may fence some acknowledgements off (the counts say how many, not
        // which); they are counted acknowledged here, and another worker sends them again.
        let ack_fate = match acked {
            Ok(counts) => {
                outcome.acked = (counts.deleted + counts.released) as usize;
                outcome.changed_in_flight = counts.released as usize;
                Fate::Acked
            }
            Err(e) => {
                warn!(error = %e, rows = self.acks.len(), "could not record acknowledgements; the rows will be sent again");
                Fate::Released
            }
        };
        outcome.rows = (self.acks.iter().map(|a| (a.id, ack_fate)))
            .chain(self.retries.iter().map(|r| (r.id, Fate::Retrying)))
            .chain(self.parks.iter().map(|p| (p.id, Fate::Parked)))
            .chain(self.releases.iter().map(|id| (*id, Fate::Released)))
            .collect();
        if let Err(e) = (|| queue.park(token, &self.parks))
            .retry(retry::database_write())
            .when(store::Error::is_transient)
            .await
        {
            warn!(error = %e, "could not park rows");
        }
        if let Err(e) = (|| queue.reschedule(token, &self.retries))
            .retry(retry::database_write())
            .when(store::Error::is_transient)
            .await
        {
            warn!(error = %e, "could not reschedule rows");
        }
        if let Err(e) = (|| queue.release(token, &self.releases))
            .retry(retry::database_write())
            .when(store::Error::is_transient)
            .await
        {
            warn!(error = %e, "could not release rows");
        }
        if !self.freed_addresses.is_empty() {
            if let Err(e) = queue
                .unpark_addresses(&claim.account, &self.freed_addresses)
                .await
            {
                warn!(error = %e, "could not unpark rows waiting for a freed address");
            }
        }
        self.count(&outcome);
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

    /// Rows by operation and result. Every series is touched (by 0 if need be) so dashboards see
    /// them from the first batch on. If a lapsed lease fenced some acknowledgements off, the rows
    /// that counted are attributed in order (another worker will count the rest).
    fn count(&self, outcome: &DrainOutcome) {
        let op = |id: &i64| self.labels.get(id).copied().unwrap_or("upsert");
        let mut synced: HashMap<(&'static str, &'static str), u64> = HashMap::new();
        for ack in self.acks.iter().take(outcome.acked) {
            *synced.entry((op(&ack.id), "acked")).or_default() += 1;
        }
        for retry in &self.retries {
            *synced.entry((op(&retry.id), "retried")).or_default() += 1;
        }
        for park in &self.parks {
            *synced.entry((op(&park.id), "parked")).or_default() += 1;
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
    }
}
