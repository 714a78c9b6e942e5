//! The queue operations: claim a batch under a lease, then acknowledge, reschedule, park or
//! release exactly the rows of that claim (every write is fenced by the claim's lease token).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tracing::instrument;
use uuid::Uuid;

use crate::sql::queries;
use crate::{Pool, Result};

/// With many accounts, the accounts one claim may serve at most. Many accounts each with a few
/// due rows (live changes) then cost one claim per this many accounts rather than one each; an
/// account with more due rows than the batch holds fills it, so a bulk sync still claims full
/// batches of one account.
pub const ACCOUNTS_PER_CLAIM: i64 = 50;

/// What a queue row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// The customer should be in the audience with the row's state.
    Upsert,
    /// The customer should not be in the audience (deleted, or left the filter).
    Remove,
}

/// The snapshot of the mapped columns a row carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    /// Merge tag → value (JSON as Postgres rendered the column).
    pub merge_fields: Map<String, Value>,
    /// Tag column → value; the non-null values are the tags.
    pub tag_columns: BTreeMap<String, Value>,
    /// Whether the customer consents to be subscribed.
    pub consent: bool,
    /// Interest category title → the value of its `column` (text or null), or, for a `columns`
    /// category, an object of interest name → boolean. Empty when no interests are mapped.
    pub interests: BTreeMap<String, Value>,
    /// Marketing permission text → whether the customer gives it. Empty when none is mapped.
    pub permissions: BTreeMap<String, bool>,
}

impl Payload {
    /// Reads the snapshot the triggers build (`{"merge_fields", "tags", "consent"}`, and
    /// `"interests"` and `"permissions"` when the mapping has them).
    pub fn from_json(value: Value) -> Payload {
        let mut payload = Payload::default();
        if let Value::Object(mut object) = value {
            if let Some(Value::Object(m)) = object.remove("merge_fields") {
                payload.merge_fields = m;
            }
            if let Some(Value::Object(t)) = object.remove("tags") {
                payload.tag_columns = t.into_iter().collect();
            }
            payload.consent = object
                .get("consent")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if let Some(Value::Object(i)) = object.remove("interests") {
                payload.interests = i.into_iter().collect();
            }
            if let Some(Value::Object(p)) = object.remove("permissions") {
                payload.permissions = p
                    .into_iter()
                    .map(|(text, on)| (text, on.as_bool().unwrap_or(false)))
                    .collect();
            }
        }
        payload
    }

    /// The tags the row asks for: the non-null, non-empty tag column values, as text.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .tag_columns
            .values()
            .filter_map(|v| match v {
                Value::Null => None,
                Value::String(s) => Some(s.trim().to_string()),
                other => Some(other.to_string()),
            })
            .filter(|s| !s.is_empty())
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

/// What chimpsync last made Mailchimp hold for a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    /// The address of the member.
    pub email: String,
    /// The consent last sent.
    pub consent: bool,
    /// The tags last set active.
    pub tags: Vec<String>,
}

impl Synced {
    /// The `synced_email`, `synced_consent` and `synced_tags` columns of a row; `None` when the
    /// customer was never synced.
    pub(crate) fn from_row(r: &tokio_postgres::Row) -> Option<Synced> {
        let email: Option<String> = r.get("synced_email");
        email.map(|email| Synced {
            email,
            consent: r.get::<_, Option<bool>>("synced_consent").unwrap_or(false),
            tags: r
                .get::<_, Option<Value>>("synced_tags")
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
        })
    }
}

/// One claimed queue row, with what Mailchimp is known to hold for that customer.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    /// Queue row id.
    pub id: i64,
    /// The account the row belongs to (`""` with one account).
    pub account: String,
    /// The customer's key.
    pub customer_key: String,
    /// What the row asks for.
    pub operation: Operation,
    /// The address now (for a removal: the address to remove).
    pub email: Option<String>,
    /// The address before the first pending email change.
    pub previous_email: Option<String>,
    /// The mapped columns.
    pub payload: Payload,
    /// The version claimed; the acknowledgement must match it to delete the row.
    pub version: i64,
    /// Attempts including this one.
    pub attempts: i32,
    /// What Mailchimp holds for this customer, if chimpsync synced it before.
    pub synced: Option<Synced>,
    /// Another customer that already owns this row's address in the audience.
    pub address_owner: Option<String>,
    /// Addresses an earlier attempt whose answer was lost may have renamed the member to.
    pub maybe_emails: Vec<String>,
    /// Tags an earlier attempt whose answer was lost may have set.
    pub maybe_tags: Vec<String>,
    /// Consent values earlier attempts whose answers were lost may have sent.
    pub maybe_consents: Vec<bool>,
    /// Steps of the row's operation Mailchimp acknowledged in earlier attempts (for the version
    /// the record names, which need not be this one).
    pub done_steps: Option<DoneSteps>,
}

/// The steps of a row's multi-step operation that Mailchimp acknowledged in failed attempts at
/// one version of the row (`sync_queue.done_steps`). An answer that was lost is never a step
/// here: what it may have applied is a [`MaybeApplied`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DoneSteps {
    /// The row's version the steps were taken for.
    pub version: i64,
    /// Addresses under which no member of this customer lives any more: removed per
    /// `on_remove`, or answered 404.
    #[serde(default)]
    pub gone: Vec<String>,
    /// Addresses whose member had these tags cleared.
    #[serde(default)]
    pub untagged: Vec<Untagged>,
    /// The upsert (or rename) acknowledged.
    #[serde(default)]
    pub upserted: Option<Upserted>,
}

/// Tags cleared from the member at an address.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Untagged {
    /// The address.
    pub email: String,
    /// The tags set inactive.
    pub tags: Vec<String>,
}

/// An upsert Mailchimp acknowledged.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Upserted {
    /// The address the member lives under.
    pub email: String,
    /// The body sent, as JSON: a later attempt skips the upsert only if it would send the same.
    pub body: Value,
    /// The member's tags as the answer gave them.
    pub tags: Vec<String>,
}

/// A claimed batch: the fencing token and the rows.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The lease token every later write of this claim presents.
    pub token: Uuid,
    /// The account whose rows these are: `""` with one account, and also for a claim of many
    /// accounts whose rows are of more than one ([`Claim::by_account`] splits it).
    pub account: String,
    /// The rows, in id order.
    pub rows: Vec<ClaimedRow>,
}

impl Claim {
    /// The claim split into one claim per account, in the order the accounts first appear; each
    /// part keeps the token (every write is fenced by it and by the part's own row ids).
    pub fn by_account(self) -> Vec<Claim> {
        let mut parts: Vec<Claim> = Vec::new();
        for row in self.rows {
            match parts.iter_mut().find(|p| p.account == row.account) {
                Some(part) => part.rows.push(row),
                None => parts.push(Claim {
                    token: self.token,
                    account: row.account.clone(),
                    rows: vec![row],
                }),
            }
        }
        parts
    }
}

/// An acknowledgement of one row: what Mailchimp now holds for the customer.
#[derive(Debug, Clone)]
pub struct Ack {
    /// Queue row id.
    pub id: i64,
    /// The version that was sent.
    pub version: i64,
    /// The customer's key.
    pub customer_key: String,
    /// The address the member now lives under (the removed address for a removal).
    pub email: String,
    /// The consent sent.
    pub consent: bool,
    /// The tags now active.
    pub tags: Vec<String>,
    /// Whether the member was removed from the audience.
    pub removed: bool,
}

/// What an attempt whose answer was lost may have made Mailchimp hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaybeApplied {
    /// Addresses the member may now live under.
    pub emails: Vec<String>,
    /// Tags that may have been set.
    pub tags: Vec<String>,
    /// The consent that may have been sent (and so the status it implies).
    pub consent: Option<bool>,
}

/// Another attempt for a row.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Queue row id.
    pub id: i64,
    /// Not before this long from now, on the database's clock (the one leases use).
    pub after: Duration,
    /// Why the attempt failed.
    pub error: String,
    /// If the answer was lost: what the attempt may have applied.
    pub maybe_applied: Option<MaybeApplied>,
    /// Every step Mailchimp acknowledged for the row's version so far (`None` keeps the record
    /// the row has).
    pub done_steps: Option<DoneSteps>,
}

fn strings(value: &Option<Value>, key: &str) -> Vec<String> {
    value
        .as_ref()
        .and_then(|v| v.get(key))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A row of a claim that failed permanently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Park {
    /// Queue row id.
    pub id: i64,
    /// The version claimed: a row changed since is released for its new state instead.
    pub version: i64,
    /// Why, for `status` and `chimpsync retry`.
    pub reason: String,
}

/// The outcome of an acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckCounts {
    /// Rows deleted (the version sent was the latest).
    pub deleted: u64,
    /// Rows kept and released because the customer changed while in flight.
    pub released: u64,
}

/// The mass-removal guard of the claim: when more removals than `min_rows` and than `share` of
/// the synced contacts were queued within `window`, they are held instead of claimed, until a
/// person releases them ([`Queue::release_held_removals`]) or the customers come back (their
/// upserts end the hold). The defaults live with the worker's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemovalGuard {
    /// The share of the synced contacts (0..=1) that may be removed within the window.
    pub share: f64,
    /// Removals within the window that are never held, whatever the audience's size.
    pub min_rows: i64,
    /// How far back queued removals count.
    pub window: Duration,
}

/// The queue at a glance (`chimpsync.queue_summary`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Due or waiting rows never tried since their last change.
    pub pending: i64,
    /// Rows held by a worker right now.
    pub in_flight: i64,
    /// Rows that failed at least once and wait for their next attempt.
    pub retrying: i64,
    /// Rows that failed permanently and wait for `chimpsync retry`.
    pub parked: i64,
    /// Age of the oldest unparked row, in seconds (0 when there is none).
    pub oldest_pending_seconds: f64,
    /// When Mailchimp last acknowledged a change.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Removals held by the mass-removal guard, waiting for `chimpsync release-removals` (not
    /// counted as pending).
    pub held: i64,
    /// Why they are held (one of the reasons, when there are several).
    pub held_reason: Option<String>,
}

/// The queue, over a connection pool.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    /// Whether each claim picks an account first (see [`Queue::for_accounts`]).
    multi_account: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue over `pool`.
    pub fn new(pool: Pool) -> Queue {
        Queue {
            pool,
            multi_account: false,
        }
    }

    /// A queue of many accounts: each claim takes the due rows of up to
    /// [`ACCOUNTS_PER_CLAIM`] accounts of those that may be sent to (enabled, active, not
    /// paused, with an audience), those that waited longest first, each account's rows until the
    /// batch is full. A concurrent claim picks other accounts. Split the claim with
    /// [`Claim::by_account`]: a call to Mailchimp never mixes accounts.
    pub fn for_accounts(pool: Pool) -> Queue {
        Queue {
            pool,
            multi_account: true,
        }
    }

    /// Whether claims pick an account first.
    pub fn is_multi_account(&self) -> bool {
        self.multi_account
    }

    /// The pool, for callers that need a raw connection (setup, backfill).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Claims up to `limit` due rows for `lease`, without the mass-removal guard (tests and
    /// benchmarks of the claim itself; the worker claims with [`Queue::claim_guarded`]). `now`
    /// overrides the database clock (tests).
    pub async fn claim_batch(
        &self,
        owner: &str,
        limit: i64,
        lease: Duration,
        now: Option<DateTime<Utc>>,
    ) -> Result<Claim> {
        self.claim_guarded(owner, limit, lease, None, now).await
    }

    /// Claims up to `limit` due rows for `lease`; with `guard`, the same statement first holds
    /// the removals that pass it (see [`RemovalGuard`]). Held rows are never claimed. `now`
    /// overrides the database clock (tests).
    ///
    /// How `claim_batch.sql` works:
    ///
    /// Claim up to $3 due rows for one batch. The lease is written into next_attempt_at as well, so a
    /// lapsed lease makes the row due again through this same query (no rescuer needed).
    /// What the claim is about to send (an upsert's address and payload) is kept in
    /// maybe_applied.in_flight for as long as the claim lasts. Every normal end of a claim (ack,
    /// reschedule, park, release) clears the lease token, so a row claimed here with its token still
    /// set was left by a claim that ended without recording anything: the worker was killed, or
    /// stalled past its lease. What that claim was sending may have been applied, exactly like a lost
    /// answer, so its in_flight state is merged into maybe_applied's emails, tags and consents
    /// (chimpsync.merge_maybe_applied; a normal claim just notes in_flight).
    /// The mass-removal guard runs first, in this same statement: when more removals of synced
    /// contacts than max($7, $6 x the synced contacts) were queued within the last $8 seconds, they
    /// are held (not claimed, next_attempt_at = infinity, the reason written) until a person releases
    /// them or the customers come back. Deciding and claiming on one snapshot means no claim can take those
    /// removals between a check and the claim. Held rows are never claimed.
    #[instrument(skip_all, fields(batch.limit = limit))]
    pub async fn claim_guarded(
        &self,
        owner: &str,
        limit: i64,
        lease: Duration,
        guard: Option<&RemovalGuard>,
        now: Option<DateTime<Utc>>,
    ) -> Result<Claim> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(crate::sql::claim_batch(self.multi_account))
            .await?;
        let token = Uuid::new_v4();
        let lease_secs = lease.as_secs_f64();
        let share = guard.map(|g| g.share);
        let min_rows = guard.map(|g| g.min_rows);
        let window = guard.map(|g| g.window.as_secs_f64());
        let accounts = ACCOUNTS_PER_CLAIM;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &owner,
            &token,
            &limit,
            &lease_secs,
            &now,
            &share,
            &min_rows,
            &window,
        ];
        if self.multi_account {
            params.push(&accounts);
        }
        let rows = client.query(&statement, &params).await?;
        let mut account = rows
            .first()
            .map(|r| r.get::<_, String>("account"))
            .unwrap_or_default();
        if rows.iter().any(|r| r.get::<_, &str>("account") != account) {
            account.clear();
        }
        let rows = rows
            .into_iter()
            .map(|r| {
                let operation: String = r.get("operation");
                let maybe: Option<Value> = r.get("maybe_applied");
                let synced = Synced::from_row(&r);
                ClaimedRow {
                    id: r.get("id"),
                    account: r.get("account"),
                    customer_key: r.get("customer_key"),
                    operation: if operation == "remove" {
                        Operation::Remove
                    } else {
                        Operation::Upsert
                    },
                    email: r.get("email"),
                    previous_email: r.get("previous_email"),
                    payload: Payload::from_json(r.get("payload")),
                    version: r.get("version"),
                    attempts: r.get("attempts"),
                    synced,
                    address_owner: r.get("address_owner"),
                    maybe_emails: strings(&maybe, "emails"),
                    maybe_tags: strings(&maybe, "tags"),
                    maybe_consents: maybe
                        .as_ref()
                        .and_then(|v| v.get("consents"))
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_bool).collect())
                        .unwrap_or_default(),
                    // A record this version cannot read is no record: nothing is skipped.
                    done_steps: r
                        .get::<_, Option<Value>>("done_steps")
                        .and_then(|v| serde_json::from_value(v).ok()),
                }
            })
            .collect();
        Ok(Claim {
            token,
            account,
            rows,
        })
    }

    /// Deletes (or, if changed meanwhile, releases) the acknowledged rows of a claim and records
    /// what Mailchimp now holds. Rows whose lease was lost are left alone.
    #[instrument(skip_all, fields(batch.size = acks.len()))]
    pub async fn ack(&self, token: Uuid, acks: &[Ack]) -> Result<AckCounts> {
        if acks.is_empty() {
            return Ok(AckCounts::default());
        }
        let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
        let versions: Vec<i64> = acks.iter().map(|a| a.version).collect();
        let keys: Vec<&str> = acks.iter().map(|a| a.customer_key.as_str()).collect();
        let emails: Vec<&str> = acks.iter().map(|a| a.email.as_str()).collect();
        let consents: Vec<bool> = acks.iter().map(|a| a.consent).collect();
        let tags: Vec<Value> = acks.iter().map(|a| Value::from(a.tags.clone())).collect();
        let removed: Vec<bool> = acks.iter().map(|a| a.removed).collect();
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(crate::sql::ack_batch(self.multi_account))
            .await?;
        // One statement, no row locks taken beforehand. A change a trigger commits while it
        // runs is handled by READ COMMITTED's re-check of the latest row version
        // (EvalPlanQual): the delete re-checks the version on it and leaves the row; the
        // release then finds the row (it matches on the lease token alone, which a trigger
        // never changes) and re-checks that on the latest version too. So every row still
        // leased to this claim is either deleted or released. The release must not compare
        // versions: in the statement's snapshot the version is still the one sent, and the
        // changed row would match neither step and stay leased until the lease ran out. Locking
        // the rows first in a statement of their own would cost a row lock and a round trip per
        // batch. (Test: an_acknowledgement_racing_committed_changes_...)
        let row = client
            .query_one(
                &statement,
                &[
                    &token, &ids, &versions, &keys, &emails, &consents, &tags, &removed,
                ],
            )
            .await?;
        Ok(AckCounts {
            deleted: row.get::<_, i64>("deleted") as u64,
            released: row.get::<_, i64>("released") as u64,
        })
    }

    /// Schedules another attempt for rows of a claim, keeping the error, the steps Mailchimp
    /// acknowledged and, when the attempt's answer was lost, what it may have applied.
    #[instrument(skip_all, fields(batch.size = retries.len()))]
    pub async fn reschedule(&self, token: Uuid, retries: &[Retry]) -> Result<u64> {
        if retries.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = retries.iter().map(|r| r.id).collect();
        let delays: Vec<f64> = retries.iter().map(|r| r.after.as_secs_f64()).collect();
        let errors: Vec<&str> = retries.iter().map(|r| r.error.as_str()).collect();
        let attempted: Vec<Option<Value>> = retries
            .iter()
            .map(|r| {
                r.maybe_applied.as_ref().map(|m| {
                    serde_json::json!({
                        "emails": m.emails,
                        "tags": m.tags,
                        "consents": m.consent.into_iter().collect::<Vec<bool>>(),
                    })
                })
            })
            .collect();
        let done: Vec<Option<Value>> = retries
            .iter()
            .map(|r| {
                r.done_steps
                    .as_ref()
                    .and_then(|d| serde_json::to_value(d).ok())
            })
            .collect();
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(queries::RESCHEDULE_BATCH).await?;
        Ok(client
            .execute(
                &statement,
                &[&token, &ids, &delays, &errors, &attempted, &done],
            )
            .await?)
    }

    /// Parks rows of a claim that failed permanently (or releases them if they changed meanwhile).
    #[instrument(skip_all, fields(batch.size = parks.len()))]
    pub async fn park(&self, token: Uuid, parks: &[Park]) -> Result<u64> {
        if parks.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = parks.iter().map(|p| p.id).collect();
        let versions: Vec<i64> = parks.iter().map(|p| p.version).collect();
        let reasons: Vec<&str> = parks.iter().map(|p| p.reason.as_str()).collect();
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(queries::PARK_BATCH).await?;
        Ok(client
            .execute(&statement, &[&token, &ids, &versions, &reasons])
            .await?)
    }

    /// Gives rows of a claim back untried (shutdown, deadline).
    #[instrument(skip_all, fields(batch.size = ids.len()))]
    pub async fn release(&self, token: Uuid, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(queries::RELEASE_BATCH).await?;
        Ok(client.execute(&statement, &[&token, &ids]).await?)
    }

    /// Rows parked because their address belonged to another customer get another chance once
    /// that customer gave the address up.
    pub async fn unpark_addresses(&self, account: &str, addresses: &[String]) -> Result<u64> {
        for_addresses(&self.pool, queries::UNPARK_ADDRESS, account, addresses).await
    }

    /// Puts parked rows back in line: all of them, or the given ids. Returns the ids un-parked.
    pub async fn retry_parked(&self, all: bool, ids: &[i64]) -> Result<Vec<i64>> {
        let client = self.pool.get().await?;
        let rows = client.query(queries::RETRY_PARKED, &[&all, &ids]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Which of `ids` are rows of the queue.
    pub async fn existing(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let client = self.pool.get().await?;
        let rows = client.query(queries::QUEUE_ROWS_EXIST, &[&ids]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Sends removals the mass-removal guard held, after a person has looked: all of them, or
    /// the given ids. Returns the ids released.
    pub async fn release_held_removals(&self, all: bool, ids: &[i64]) -> Result<Vec<i64>> {
        let client = self.pool.get().await?;
        let ids: Option<&[i64]> = (!all).then_some(ids);
        let rows = client
            .query(queries::RELEASE_HELD_REMOVALS, &[&ids])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The queue at a glance.
    pub async fn summary(&self) -> Result<Summary> {
        let client = self.pool.get().await?;
        let row = client.query_one(queries::QUEUE_SUMMARY, &[]).await?;
        Ok(Summary {
            pending: row.get("pending"),
            in_flight: row.get("in_flight"),
            retrying: row.get("retrying"),
            parked: row.get("parked"),
            oldest_pending_seconds: row.get("oldest_pending_seconds"),
            last_synced_at: row.get("last_synced_at"),
            held: row.get("held"),
            held_reason: row.get("held_reason"),
        })
    }
}

/// Runs `statement`, whose one parameter is `addresses`, unless the list is empty; the rows it
/// touched.
pub(crate) async fn for_addresses(
    pool: &Pool,
    statement: &str,
    account: &str,
    addresses: &[String],
) -> Result<u64> {
    if addresses.is_empty() {
        return Ok(0);
    }
    let client = pool.get().await?;
    Ok(client.execute(statement, &[&addresses, &account]).await?)
}
