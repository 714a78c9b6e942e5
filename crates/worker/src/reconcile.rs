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
//! [`compare`] and [`extra`] are pure; [`Reconciler::run`] does the I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailchimp::{Client, ListMembers, Member, Status};
use serde::Serialize;
use serde_json::{json, Map, Value};
use store::inbound::{EventSource, Inbound, NewEvent, Outcome, Recorded};
use store::mapping::{Inbound as Statements, Mapping, OnRemove};
use store::reconcile::{Customer, Observed, ObservedMember, Reconcile, Run};
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};

use crate::gate::{Gate, GateError};
use crate::plan::merge_values;

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

/// The kinds of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A customer that should be in the audience has no live member.
    Missing,
    /// A live member belongs to no customer that should be in the audience.
    Extra,
    /// The member lives under another address than the table's.
    Address,
    /// The member's status does not match the customer's consent.
    Status,
    /// A merge value differs.
    Merge,
    /// Tags chimpsync manages differ.
    Tags,
}

impl Kind {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Address => "address",
            Kind::Status => "status",
            Kind::Merge => "merge",
            Kind::Tags => "tags",
        }
    }
}

/// How a difference is fixed with `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// Queue the customer again: the worker makes the member match the table.
    Queue,
    /// Run the mapping's `[inbound]` statement of this event type on the table.
    Inbound(&'static str),
    /// Remove the member from the audience (`remove_extra`).
    Remove,
    /// Nothing: reported only (an extra member without `remove_extra`).
    Keep,
}

impl Fix {
    /// `queue`, `inbound:<type>`, `remove` or `keep`.
    pub fn label(self) -> String {
        match self {
            Fix::Queue => "queue".into(),
            Fix::Inbound(t) => format!("inbound:{t}"),
            Fix::Remove => "remove".into(),
            Fix::Keep => "keep".into(),
        }
    }
}

impl Serialize for Fix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

/// One difference between the table and the audience.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// What differs.
    pub kind: Kind,
    /// The customer, if the member belongs to one.
    pub customer_key: Option<String>,
    /// The address concerned (the member's when there is one).
    pub email: String,
    /// In words.
    pub detail: String,
    /// What the table says.
    pub table: Value,
    /// What Mailchimp holds.
    pub mailchimp: Value,
    /// How `apply` fixes it.
    pub fix: Fix,
}

fn live(m: &Member) -> bool {
    m.status != Status::Archived
}

/// Whether the member receives (or is about to receive) campaigns.
fn holds_consent(status: Status) -> bool {
    matches!(status, Status::Subscribed | Status::Pending)
}

fn has(list: &[String], name: &str) -> bool {
    list.iter().any(|t| t.eq_ignore_ascii_case(name))
}

fn merge_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

/// Whether Mailchimp's merge value `got` is what the worker would send as `want` (`""` and a
/// missing value are the same; numbers compare as numbers; address objects part by part).
pub fn same_merge_value(want: &Value, got: Option<&Value>) -> bool {
    let empty = Value::String(String::new());
    let got = got.unwrap_or(&empty);
    if let Value::Object(w) = want {
        let g = got.as_object();
        return w.iter().all(|(k, v)| {
            merge_text(v) == g.and_then(|g| g.get(k)).map(merge_text).unwrap_or_default()
        });
    }
    let (w, g) = (merge_text(want), merge_text(got));
    if w == g {
        return true;
    }
    matches!((w.parse::<f64>(), g.parse::<f64>()), (Ok(a), Ok(b)) if (a - b).abs() < 1e-9)
}

/// The tags chimpsync manages for `customer` that the member has: wanted ones and ones it set.
fn managed_tags(customer: &Customer, member: &Member) -> Vec<String> {
    let wanted = customer.payload.tags();
    let synced: &[String] = customer
        .synced
        .as_ref()
        .map(|s| s.tags.as_slice())
        .unwrap_or_default();
    member
        .tags
        .iter()
        .filter(|t| has(&wanted, t) || has(synced, t))
        .cloned()
        .collect()
}

/// What Mailchimp holds for a customer, for [`Reconcile::requeue`].
pub fn observed(customer: &Customer, member: Option<&Member>) -> Observed {
    Observed {
        customer_key: customer.customer_key.clone(),
        member: member.filter(|m| live(m)).map(|m| ObservedMember {
            email: m.email_address.clone(),
            consent: holds_consent(m.status),
            tags: managed_tags(customer, m),
        }),
    }
}

/// Compares a customer that should be in the audience with its member (`None`: none found).
pub fn compare(
    customer: &Customer,
    member: Option<&Member>,
    inbound: &Statements,
) -> Vec<Difference> {
    let key = Some(customer.customer_key.clone());
    let table_email = customer.email.clone().unwrap_or_default();
    let diff =
        |kind, email: &str, detail: String, table: Value, mailchimp: Value, fix| Difference {
            kind,
            customer_key: key.clone(),
            email: email.to_owned(),
            detail,
            table,
            mailchimp,
            fix,
        };
    let Some(m) = member.filter(|m| live(m)) else {
        let archived = member.is_some();
        return vec![diff(
            Kind::Missing,
            &table_email,
            if archived {
                "the member is archived".into()
            } else {
                "no member in the audience".into()
            },
            json!({"email": table_email}),
            if archived {
                json!({"status": "archived"})
            } else {
                Value::Null
            },
            Fix::Queue,
        )];
    };
    let email = m.email_address.as_str();
    let mut out = Vec::new();
    if !table_email.trim().eq_ignore_ascii_case(email.trim()) {
        out.push(diff(
            Kind::Address,
            email,
            format!("the member's address is {email}, the table's {table_email}"),
            json!({"email": table_email}),
            json!({"email": email}),
            Fix::Queue,
        ));
    }
    let consent = customer.payload.consent;
    if consent != holds_consent(m.status) {
        let inbound_type = match m.status {
            Status::Unsubscribed if inbound.unsubscribe.is_some() => Some("unsubscribe"),
            Status::Cleaned if inbound.cleaned.is_some() => Some("cleaned"),
            Status::Subscribed if inbound.subscribe.is_some() => Some("subscribe"),
            _ => None,
        };
        out.push(diff(
            Kind::Status,
            email,
            format!("consent {consent}, status {}", m.status),
            json!({"consent": consent}),
            json!({"status": m.status.as_str()}),
            inbound_type.map_or(Fix::Queue, Fix::Inbound),
        ));
    }
    let profile_fix = if inbound.profile.is_some() {
        Fix::Inbound("profile")
    } else {
        Fix::Queue
    };
    for (tag, want) in merge_values(&customer.payload.merge_fields) {
        let got = m.merge_fields.get(&tag);
        if !same_merge_value(&want, got) {
            let got = got.cloned().unwrap_or(Value::Null);
            out.push(diff(
                Kind::Merge,
                email,
                format!("{tag}: table {want}, Mailchimp {got}"),
                json!({ tag.clone(): want }),
                json!({ tag: got }),
                profile_fix,
            ));
        }
    }
    let wanted = customer.payload.tags();
    let synced: &[String] = customer
        .synced
        .as_ref()
        .map(|s| s.tags.as_slice())
        .unwrap_or_default();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|t| !has(&m.tags, t))
        .cloned()
        .collect();
    let stale: Vec<String> = m
        .tags
        .iter()
        .filter(|t| has(synced, t) && !has(&wanted, t))
        .cloned()
        .collect();
    if !missing.is_empty() || !stale.is_empty() {
        out.push(diff(
            Kind::Tags,
            email,
            format!("missing {missing:?}, stale {stale:?}"),
            json!({"tags": wanted}),
            json!({"tags": m.tags, "missing": missing, "stale": stale}),
            Fix::Queue,
        ));
    }
    out
}

/// A live member that belongs to no customer that should be in the audience. `customer` is
/// the one it belongs to by address, if any (then the customer is queued and the worker removes
/// the member per `[audience].on_remove`).
pub fn extra(
    member: &Member,
    customer: Option<&Customer>,
    inbound: &Statements,
    remove_extra: bool,
) -> Difference {
    let (detail, fix) = match customer {
        Some(c) => (
            format!(
                "the member ({}) belongs to customer {}, who should not be in the audience",
                member.status, c.customer_key
            ),
            Fix::Queue,
        ),
        None if member.status == Status::Subscribed && inbound.subscribe.is_some() => (
            format!("the member ({}) belongs to no customer", member.status),
            Fix::Inbound("subscribe"),
        ),
        None => (
            format!("the member ({}) belongs to no customer", member.status),
            if remove_extra { Fix::Remove } else { Fix::Keep },
        ),
    };
    Difference {
        kind: Kind::Extra,
        customer_key: customer.map(|c| c.customer_key.clone()),
        email: member.email_address.clone(),
        detail,
        table: Value::Null,
        mailchimp: json!({"status": member.status.as_str()}),
        fix,
    }
}

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
/// Attempts of one Mailchimp call that keeps failing in a retryable way.
const CALL_ATTEMPTS: u32 = 5;

/// Runs reconcile for one audience.
pub struct Reconciler {
    client: Client,
    store: Reconcile,
    inbound: Inbound,
    gate: Arc<Gate>,
    mapping: Mapping,
    audience_id: String,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("audience_id", &self.audience_id)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler; every Mailchimp call passes `gate` (the cap shared with the workers).
    pub fn new(
        client: Client,
        store: Reconcile,
        inbound: Inbound,
        gate: Arc<Gate>,
        mapping: Mapping,
        audience_id: String,
    ) -> Reconciler {
        Reconciler {
            client,
            store,
            inbound,
            gate,
            mapping,
            audience_id,
        }
    }

    /// One Mailchimp call through the gate, retried while Mailchimp throttles or fails
    /// transiently.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = mailchimp::Result<T>>,
    {
        let cancel = CancellationToken::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let slot = match self.gate.enter(&cancel).await {
                Ok(slot) => slot,
                Err(GateError::Cancelled) => return Err(Error::Cancelled),
                Err(GateError::Store(e)) => return Err(Error::Store(e)),
            };
            let result = f().await;
            self.gate.leave(slot).await;
            match result {
                Ok(v) => {
                    self.gate.succeeded();
                    return Ok(v);
                }
                Err(e) if e.is_retryable() && attempt < CALL_ATTEMPTS => {
                    if e.is_throttled() {
                        self.gate.throttled();
                    } else {
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    }
                    warn!(error = %e, attempt, "Mailchimp call failed; retrying");
                }
                Err(e) => return Err(Error::Mailchimp(e)),
            }
        }
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
        // Inbound fixes: (customer, type, member).
        let mut inbound_fixes: Vec<(Option<String>, &'static str, Member)> = Vec::new();
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
                .call(|| self.client.list_members(&self.audience_id, &query))
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
                        let diffs = compare(c, Some(m), inbound);
                        for d in &diffs {
                            match d.fix {
                                Fix::Queue => {
                                    requeue
                                        .entry(c.customer_key.clone())
                                        .or_insert_with(|| observed(c, Some(m)));
                                }
                                Fix::Inbound(t) => {
                                    inbound_fixes.push((Some(c.customer_key.clone()), t, m.clone()))
                                }
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
                            (Fix::Inbound(t), _) => inbound_fixes.push((None, t, m.clone())),
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
                report.differences.extend(compare(c, None, inbound));
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
        inbound_fixes: Vec<(Option<String>, &'static str, Member)>,
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
        for (customer, event_type, m) in inbound_fixes {
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
            let outcome = match self.inbound.record(&event, &self.audience_id).await? {
                Recorded::New(id) => self.inbound.apply(id).await?,
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
                    if let Some(key) = customer {
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
                    .call(|| {
                        self.client
                            .set_status(&self.audience_id, &email, Status::Unsubscribed)
                    })
                    .await
                    .map(|_| ()),
                // A member chimpsync may never have owned is not deleted for good.
                OnRemove::Archive | OnRemove::DeletePermanent => {
                    self.call(|| self.client.archive_member(&self.audience_id, &email))
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

#[cfg(test)]
mod tests {
    use super::*;
    use store::{Payload, Synced};

    fn customer(consent: bool, fname: &str, tag: Option<&str>, synced_tags: &[&str]) -> Customer {
        let mut merge = Map::new();
        merge.insert("FNAME".into(), json!(fname));
        merge.insert("LTV".into(), json!(15.5));
        let mut tag_columns = std::collections::BTreeMap::new();
        tag_columns.insert(
            "kind".to_string(),
            tag.map(|t| json!(t)).unwrap_or(Value::Null),
        );
        Customer {
            customer_key: "7".into(),
            email: Some("ana@pets.test".into()),
            payload: Payload {
                merge_fields: merge,
                tag_columns,
                consent,
            },
            wanted: true,
            synced: Some(Synced {
                email: "ana@pets.test".into(),
                consent,
                tags: synced_tags.iter().map(|t| t.to_string()).collect(),
            }),
            queued: false,
        }
    }

    fn member(status: Status, fname: &str, tags: &[&str]) -> Member {
        serde_json::from_value(json!({
            "id": "x", "email_address": "Ana@Pets.test", "status": status.as_str(),
            "merge_fields": {"FNAME": fname, "LTV": "15.50", "LNAME": ""},
            "tags": tags.iter().enumerate().map(|(i, t)| json!({"id": i, "name": t})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    fn kinds(d: &[Difference]) -> Vec<(Kind, String)> {
        d.iter().map(|d| (d.kind, d.fix.label())).collect()
    }

    #[test]
    fn a_matching_member_has_no_differences() {
        let c = customer(true, "Ana", Some("groomer"), &["groomer"]);
        let m = member(Status::Subscribed, "Ana", &["Groomer", "vip"]);
        assert_eq!(
            compare(&c, Some(&m), &Statements::default()),
            vec![],
            "case of address and tag, numbers as text, foreign tags: all the same"
        );
    }

    #[test]
    fn a_missing_or_archived_member_is_missing() {
        let c = customer(true, "Ana", None, &[]);
        let d = compare(&c, None, &Statements::default());
        assert_eq!(kinds(&d), vec![(Kind::Missing, "queue".into())]);
        let d = compare(
            &c,
            Some(&member(Status::Archived, "Ana", &[])),
            &Statements::default(),
        );
        assert_eq!(d[0].detail, "the member is archived");
        assert_eq!(
            observed(&c, Some(&member(Status::Archived, "Ana", &[]))).member,
            None
        );
    }

    #[test]
    fn status_differences_go_inbound_only_when_the_mapping_says_how() {
        let c = customer(true, "Ana", None, &[]);
        let m = member(Status::Unsubscribed, "Ana", &[]);
        assert_eq!(
            kinds(&compare(&c, Some(&m), &Statements::default())),
            vec![(Kind::Status, "queue".into())]
        );
        let inbound = Statements {
            unsubscribe: Some("update t set c = false where e = $1".into()),
            ..Default::default()
        };
        assert_eq!(
            kinds(&compare(&c, Some(&m), &inbound)),
            vec![(Kind::Status, "inbound:unsubscribe".into())]
        );
        let no_consent = customer(false, "Ana", None, &[]);
        let subscribed = member(Status::Subscribed, "Ana", &[]);
        assert_eq!(
            kinds(&compare(&no_consent, Some(&subscribed), &inbound)),
            vec![(Kind::Status, "queue".into())],
            "no [inbound].subscribe: the table wins"
        );
        let pending = member(Status::Pending, "Ana", &[]);
        assert!(compare(&c, Some(&pending), &inbound).is_empty());
    }

    #[test]
    fn merge_values_and_managed_tags_are_compared() {
        let c = customer(true, "Ana", Some("vet"), &["groomer"]);
        let m = member(Status::Subscribed, "Anna", &["groomer", "vip"]);
        let d = compare(&c, Some(&m), &Statements::default());
        assert_eq!(
            kinds(&d),
            vec![(Kind::Merge, "queue".into()), (Kind::Tags, "queue".into())]
        );
        assert_eq!(d[1].mailchimp["missing"], json!(["vet"]));
        assert_eq!(
            d[1].mailchimp["stale"],
            json!(["groomer"]),
            "vip is not chimpsync's"
        );
        let o = observed(&c, Some(&m)).member.unwrap();
        assert_eq!(o.tags, vec!["groomer"]);
        assert!(o.consent);
    }

    #[test]
    fn extra_members_are_removed_only_when_asked() {
        let m = member(Status::Subscribed, "X", &[]);
        assert_eq!(
            extra(&m, None, &Statements::default(), false).fix,
            Fix::Keep
        );
        assert_eq!(
            extra(&m, None, &Statements::default(), true).fix,
            Fix::Remove
        );
        let inbound = Statements {
            subscribe: Some("insert into t values ($1)".into()),
            ..Default::default()
        };
        assert_eq!(
            extra(&m, None, &inbound, true).fix,
            Fix::Inbound("subscribe")
        );
        let c = customer(true, "Ana", None, &[]);
        assert_eq!(extra(&m, Some(&c), &inbound, false).fix, Fix::Queue);
    }

    #[test]
    fn merge_values_compare_like_mailchimp_stores_them() {
        assert!(same_merge_value(&json!(""), None));
        assert!(same_merge_value(&json!(3), Some(&json!("3.0"))));
        assert!(!same_merge_value(&json!("a"), Some(&json!("A"))));
        assert!(same_merge_value(
            &json!({"addr1": "1 Main", "city": "X"}),
            Some(&json!({"addr1": "1 Main", "city": "X", "country": "US"}))
        ));
    }
}
