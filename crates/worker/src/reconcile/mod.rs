//! `chimpsync reconcile`: reads the audience's members (those changed since the last run, or all
//! of them), compares each with its customer through the mapping, and with `apply` fixes what
//! differs — outbound by queueing the customer again (the worker then sends exactly what
//! differs), inbound through the mapping's `[inbound]` statements.
//!
//! Which way a difference is fixed: when the mapping has an `[inbound]` statement for the event
//! that would have produced Mailchimp's state (`unsubscribe` for an unsubscribed member,
//! `cleaned` for a cleaned one, `subscribe` for a subscribed one, `profile` for different merge
//! values), reconcile assumes a missed webhook and applies it to the table. Otherwise the table
//! wins. Tags and addresses are always fixed outbound. Members that belong to no customer are
//! removed only when asked (`remove_extra`): on a first install they are often contacts from
//! sign-up forms that chimpsync never owned.
//!
//! The comparison is pure (`compare`); [`Reconciler::run`] does the I/O.

mod compare;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use backon::Retryable;
use chrono::{DateTime, Utc};
use mailchimp::{Client, ListMembers, Member, Status};
use serde::Serialize;
use serde_json::{json, Map, Value};
use store::inbound::{EventSource, Inbound, NewEvent, Outcome, Recorded};
use store::mapping::{Mapping, OnRemove};
use store::reconcile::{Customer, Observed, Reconcile, Run};
use store::slots::SlotTable;
use store::Pool;
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};

use crate::gate::{CallError, Gate};
use crate::retry;
use compare::{compare, extra, live, observed, Groups};
pub use compare::{Difference, Fix, Kind};

/// What can stop a reconcile run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Mailchimp refused or could not be reached (after retrying what is retryable).
    #[error("Mailchimp: {0}")]
    Mailchimp(#[from] mailchimp::Error),
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// Result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a run goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Read members changed since this time; `None` with `full == false`: since the start of
    /// the last run with `apply` (a first run reads everything).
    pub since: Option<DateTime<Utc>>,
    /// Read every member, and report customers missing from the audience.
    pub full: bool,
    /// Fix what differs.
    pub apply: bool,
    /// With `apply`, also remove members that belong to no customer.
    pub remove_extra: bool,
}

/// How far a run is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Members read so far.
    pub members_read: u64,
    /// Members Mailchimp says match (changes while paging).
    pub total: u64,
}

/// What `apply` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Customers queued again.
    pub queued: u64,
    /// `[inbound]` statements applied.
    pub inbound_applied: u64,
    /// `[inbound]` statements that failed (their customers are not queued either; retried by
    /// `chimpsync run`'s inbound loop when webhooks are on, else found again by the next run).
    pub inbound_failed: u64,
    /// Members removed.
    pub removed: u64,
    /// Differences left as they are (extra members without `remove_extra`).
    pub kept: u64,
    /// What failed, in words.
    pub errors: Vec<String>,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The audience.
    pub audience_id: String,
    /// The `since_last_changed` used (`None`: every member was read).
    pub since: Option<DateTime<Utc>>,
    /// Whether every member was read (only then are missing customers reported).
    pub full: bool,
    /// Members read.
    pub members_read: u64,
    /// Customers compared.
    pub customers_compared: u64,
    /// Members of customers with a queued change, not compared (the worker is on it).
    pub skipped_queued: u64,
    /// What differs.
    pub differences: Vec<Difference>,
    /// What `apply` did (`None` without it).
    pub applied: Option<Applied>,
}

/// Members per page (Mailchimp's maximum).
pub const PAGE_SIZE: u32 = 1000;
/// The remembered mark is moved back by this much, so a clock difference between the database
/// and Mailchimp cannot make a run miss a change (reading a member twice is harmless).
pub const SINCE_OVERLAP: Duration = Duration::from_secs(300);
/// A difference fixed through the mapping's `[inbound]` statement of `event_type`.
struct InboundFix {
    /// The customer the member belongs to, if any: not queued again if the fix fails.
    customer_key: Option<String>,
    event_type: &'static str,
    member: Member,
}

/// Runs reconcile for one audience.
pub struct Reconciler {
    client: Client,
    store: Reconcile,
    inbound: Inbound,
    gate: Gate,
    mapping: Mapping,
    audience_id: String,
    /// The account reconciled (`""` with one account).
    account: String,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("audience_id", &self.audience_id)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler on `pool`. Every Mailchimp call passes a gate of `cap` connections, counted
    /// in the database's slot table: the cap shared with the workers.
    pub async fn new(
        client: Client,
        pool: Pool,
        cap: usize,
        mapping: Mapping,
        audience_id: String,
    ) -> Result<Reconciler> {
        Ok(Reconciler {
            client,
            store: Reconcile::new(pool.clone(), &mapping).await?,
            inbound: Inbound::new(pool.clone(), &mapping).await?,
            gate: Gate::new(SlotTable::new(pool, cap)),
            mapping,
            audience_id,
            account: String::new(),
        })
    }

    /// The same, for one account of many: only its customers are compared and fixed, and its
    /// inbound fixes are recorded as its events.
    pub fn for_account(mut self, account: &str) -> Reconciler {
        self.store = self.store.for_account(account);
        self.account = account.to_string();
        self
    }

    /// One Mailchimp call through the gate, retried while Mailchimp throttles or fails
    /// transiently.
    async fn call<T, F, Fut>(&self, endpoint: &'static str, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = mailchimp::Result<T>>,
    {
        let cancel = CancellationToken::new();
        (|| self.gate.call(endpoint, &cancel, None, &f))
            .retry(retry::mailchimp())
            .when(CallError::is_retryable)
            .notify(|e, after| warn!(error = %e, retry_in_ms = after.as_millis() as u64, "Mailchimp call failed; retrying"))
            .await
            .map_err(|e| match e {
                CallError::Api(e) => Error::Mailchimp(e),
                CallError::NoSlot(e) => Error::Store(e),
                CallError::Cancelled | CallError::Abandoned => Error::Cancelled,
            })
    }

    /// Reads, compares and (with `apply`) fixes. `progress` is called after every page.
    #[instrument(skip_all, fields(list.id = %self.audience_id, apply = options.apply))]
    pub async fn run(
        &self,
        options: &Options,
        mut progress: impl FnMut(Progress),
    ) -> Result<Report> {
        let started_at = self.store.now().await?;
        let since = match (options.since, options.full) {
            (Some(t), _) => Some(t),
            (None, true) => None,
            (None, false) => self
                .store
                .last_applied_run(&self.audience_id)
                .await?
                .map(|t| t - chrono::Duration::from_std(SINCE_OVERLAP).unwrap_or_default()),
        };
        let full = since.is_none();
        let inbound = &self.mapping.inbound;
        // The audience's interests, read once: a member's `interests` name them by id.
        let audience_groups = match self.mapping.interests.is_empty() {
            true => None,
            false => Some(
                self.call("interests", || {
                    crate::groups::read(&self.client, &self.audience_id)
                })
                .await?,
            ),
        };
        let groups = audience_groups.as_ref().map(|audience| Groups {
            mapping: &self.mapping.interests,
            audience,
        });
        let mut report = Report {
            audience_id: self.audience_id.clone(),
            since,
            full,
            members_read: 0,
            customers_compared: 0,
            skipped_queued: 0,
            differences: Vec::new(),
            applied: None,
        };
        // Per customer: what reconcile saw, when it must be queued again.
        let mut requeue: BTreeMap<String, Observed> = BTreeMap::new();
        let mut inbound_fixes: Vec<InboundFix> = Vec::new();
        let mut removals: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut offset = 0u32;
        loop {
            let query = ListMembers {
                count: PAGE_SIZE,
                offset,
                status: None,
                since_last_changed: since.map(|t| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()),
            };
            let page = self
                .call("list_members", || {
                    self.client.list_members(&self.audience_id, &query)
                })
                .await?;
            if page.members.is_empty() {
                break;
            }
            offset += page.members.len() as u32;
            report.members_read += page.members.len() as u64;
            let addresses: Vec<String> = page
                .members
                .iter()
                .map(|m| m.email_address.clone())
                .collect();
            let customers = self.store.customers_for(&addresses).await?;
            let mut by_email: HashMap<String, &Customer> = HashMap::new();
            let mut by_synced: HashMap<String, &Customer> = HashMap::new();
            for c in &customers {
                if let Some(e) = &c.email {
                    by_email.entry(e.trim().to_lowercase()).or_insert(c);
                }
                if let Some(s) = &c.synced {
                    by_synced.entry(s.email.trim().to_lowercase()).or_insert(c);
                }
            }
            for m in page.members.iter().filter(|m| live(m)) {
                let address = m.email_address.trim().to_lowercase();
                let customer = by_email
                    .get(&address)
                    .or_else(|| by_synced.get(&address))
                    .copied();
                match customer {
                    Some(c) if c.queued => {
                        report.skipped_queued += 1;
                        seen.insert(c.customer_key.clone());
                    }
                    Some(c) if c.wanted => {
                        seen.insert(c.customer_key.clone());
                        report.customers_compared += 1;
                        let diffs = compare(c, Some(m), inbound, groups);
                        for d in &diffs {
                            match d.fix {
                                Fix::Queue => {
                                    requeue
                                        .entry(c.customer_key.clone())
                                        .or_insert_with(|| observed(c, Some(m)));
                                }
                                Fix::Inbound(t) => inbound_fixes.push(InboundFix {
                                    customer_key: Some(c.customer_key.clone()),
                                    event_type: t,
                                    member: m.clone(),
                                }),
                                Fix::Remove | Fix::Keep => {}
                            }
                        }
                        report.differences.extend(diffs);
                    }
                    other => {
                        let d = extra(m, other, inbound, options.remove_extra);
                        match (d.fix, other) {
                            (Fix::Queue, Some(c)) => {
                                seen.insert(c.customer_key.clone());
                                requeue
                                    .entry(c.customer_key.clone())
                                    .or_insert_with(|| observed(c, Some(m)));
                            }
                            (Fix::Inbound(t), _) => inbound_fixes.push(InboundFix {
                                customer_key: None,
                                event_type: t,
                                member: m.clone(),
                            }),
                            (Fix::Remove, _) => removals.push(m.email_address.clone()),
                            _ => {}
                        }
                        report.differences.push(d);
                    }
                }
            }
            progress(Progress {
                members_read: report.members_read,
                total: page.total_items,
            });
            if u64::from(offset) >= page.total_items {
                break;
            }
        }
        if full {
            let mut missing = Vec::new();
            self.store
                .wanted_customers(|c| {
                    if !seen.contains(&c.customer_key) {
                        missing.push(c);
                    }
                })
                .await?;
            for c in &missing {
                report.customers_compared += 1;
                report.differences.extend(compare(c, None, inbound, groups));
                requeue.insert(c.customer_key.clone(), observed(c, None));
            }
        }
        report.differences.sort_by(|a, b| {
            (a.kind, &a.customer_key, &a.email).cmp(&(b.kind, &b.customer_key, &b.email))
        });
        info!(
            members = report.members_read,
            differences = report.differences.len(),
            full,
            "reconcile compared"
        );
        if options.apply {
            let applied = self
                .apply(started_at, requeue, inbound_fixes, removals, &report)
                .await?;
            report.applied = Some(applied);
        }
        self.store
            .record_run(&Run {
                audience_id: self.audience_id.clone(),
                started_at,
                since,
                applied: options.apply,
                members_read: report.members_read,
                differences: report.differences.len() as u64,
            })
            .await?;
        Ok(report)
    }

    async fn apply(
        &self,
        started_at: DateTime<Utc>,
        mut requeue: BTreeMap<String, Observed>,
        inbound_fixes: Vec<InboundFix>,
        removals: Vec<String>,
        report: &Report,
    ) -> Result<Applied> {
        let mut applied = Applied {
            kept: report
                .differences
                .iter()
                .filter(|d| d.fix == Fix::Keep)
                .count() as u64,
            ..Applied::default()
        };
        // Inbound first: a customer whose inbound fix failed is not queued either, so the
        // worker cannot overrule Mailchimp before the table had its say.
        for InboundFix {
            customer_key,
            event_type,
            member: m,
        } in inbound_fixes
        {
            let mut merges = Map::new();
            merges.insert("EMAIL".into(), Value::String(m.email_address.clone()));
            merges.extend(m.merge_fields.clone());
            let event = NewEvent {
                source: EventSource::Reconcile,
                event_type: event_type.into(),
                fired_at: None,
                list_id: Some(self.audience_id.clone()),
                email: Some(m.email_address.clone()),
                new_email: None,
                payload: json!({
                    "type": event_type,
                    "source": "reconcile",
                    "reconcile_started_at": started_at.to_rfc3339(),
                    "data": {
                        "email": m.email_address,
                        "list_id": self.audience_id,
                        "status": m.status.as_str(),
                        "merges": merges,
                    },
                }),
            };
            let outcome = match self
                .inbound
                .record_for(&self.account, &event, &self.audience_id)
                .await?
            {
                Recorded::New(id) => self.inbound.apply(id, retry::inbound_event).await?,
                Recorded::Ignored(_) | Recorded::Duplicate => Outcome::NotDue,
            };
            match outcome {
                Outcome::Applied { .. } => applied.inbound_applied += 1,
                Outcome::Failed { error, .. } => {
                    applied.inbound_failed += 1;
                    applied.errors.push(format!(
                        "inbound {event_type} of {}: {error}",
                        m.email_address
                    ));
                    if let Some(key) = customer_key {
                        requeue.remove(&key);
                    }
                }
                Outcome::NotDue => {}
            }
        }
        let fixes: Vec<Observed> = requeue.into_values().collect();
        for chunk in fixes.chunks(500) {
            applied.queued += self.store.requeue(chunk).await?.enqueued;
        }
        let mut removed = Vec::new();
        for email in removals {
            let on_remove = self.mapping.audience.on_remove;
            let result = match on_remove {
                OnRemove::Unsubscribe => self
                    .call("set_status", || {
                        self.client
                            .set_status(&self.audience_id, &email, Status::Unsubscribed)
                    })
                    .await
                    .map(|_| ()),
                // A member chimpsync may never have owned is not deleted for good.
                OnRemove::Archive | OnRemove::DeletePermanent => {
                    self.call("archive_member", || {
                        self.client.archive_member(&self.audience_id, &email)
                    })
                    .await
                }
            };
            match result {
                Ok(()) => removed.push(email),
                Err(e) => applied.errors.push(format!("removing {email}: {e}")),
            }
        }
        applied.removed = removed.len() as u64;
        self.store.forget_addresses(&removed).await?;
        info!(
            queued = applied.queued,
            inbound = applied.inbound_applied,
            inbound_failed = applied.inbound_failed,
            removed = applied.removed,
            "reconcile applied"
        );
        Ok(applied)
    }
}
