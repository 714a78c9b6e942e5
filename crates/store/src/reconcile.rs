//! What `chimpsync reconcile` reads from and writes to Postgres: the customers a page of
//! Mailchimp members belongs to, every customer that should be in the audience (full runs), the
//! re-queueing of customers whose member differs, and the record of runs.
//!
//! Comparing is not done here (that is `worker::reconcile`); this module only moves rows.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::instrument;

use crate::generated::Generated;
use crate::mapping::Mapping;
use crate::queue::{for_addresses, Payload, Synced};
use crate::sql::queries;
use crate::{Pool, Result};

/// A customer as reconcile compares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// The key.
    pub customer_key: String,
    /// The address in the table.
    pub email: Option<String>,
    /// The mapped columns, as the triggers would queue them.
    pub payload: Payload,
    /// Whether the row should be in the audience (matches the filter and has an address).
    pub wanted: bool,
    /// What chimpsync last made Mailchimp hold for the customer.
    pub synced: Option<Synced>,
    /// Whether a change of the customer is queued (the worker will send it; not compared).
    pub queued: bool,
}

impl Customer {
    fn from_row(r: &tokio_postgres::Row) -> Customer {
        Customer {
            customer_key: r.get("customer_key"),
            email: r.get("email"),
            payload: Payload::from_json(r.get("payload")),
            wanted: r.get("wanted"),
            synced: Synced::from_row(r),
            queued: r.get("queued"),
        }
    }
}

/// What reconcile saw Mailchimp hold for a customer it re-queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The customer.
    pub customer_key: String,
    /// The live member, or `None` when Mailchimp holds none (missing or archived).
    pub member: Option<ObservedMember>,
}

/// A live member as reconcile saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedMember {
    /// Its address.
    pub email: String,
    /// Whether it is subscribed or pending.
    pub consent: bool,
    /// The tags it has that chimpsync manages for the customer.
    pub tags: Vec<String>,
}

/// A completed run, for `chimpsync.reconcile_runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The audience.
    pub audience_id: String,
    /// When the run started (database clock).
    pub started_at: DateTime<Utc>,
    /// The `since_last_changed` used; `None` for a full run.
    pub since: Option<DateTime<Utc>>,
    /// Whether the run fixed what it found.
    pub applied: bool,
    /// Members read.
    pub members_read: u64,
    /// Differences found.
    pub differences: u64,
}

/// What one re-queue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Customers queued (or whose queued change was refreshed).
    pub enqueued: u64,
}

/// The statements of reconcile for one mapping.
#[derive(Clone)]
pub struct Reconcile {
    pool: Pool,
    customers_sql: String,
    wanted_sql: String,
    requeue_sql: String,
    /// The account reconciled (`""` with one account).
    account: String,
}

impl std::fmt::Debug for Reconcile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconcile").finish_non_exhaustive()
    }
}

/// Rows per round trip of the full scan.
const SCAN_CHUNK: i32 = 5000;

impl Reconcile {
    /// Builds the statements for `mapping`, checking it against the table.
    pub async fn new(pool: Pool, mapping: &Mapping) -> Result<Reconcile> {
        let client = pool.get().await?;
        let generated = Generated::for_mapping(&**client, mapping).await?;
        drop(client);
        Ok(Reconcile {
            pool,
            customers_sql: generated.reconcile_customers(),
            wanted_sql: generated.reconcile_wanted(),
            requeue_sql: generated.reconcile_requeue(),
            account: String::new(),
        })
    }

    /// The same, for the customers of one account.
    pub fn for_account(mut self, account: &str) -> Reconcile {
        self.account = account.to_string();
        self
    }

    /// The database clock.
    pub async fn now(&self) -> Result<DateTime<Utc>> {
        let client = self.pool.get().await?;
        Ok(client.query_one(queries::DATABASE_NOW, &[]).await?.get(0))
    }

    /// The customers whose table address, or synced address, is one of `addresses`.
    #[instrument(skip_all, fields(batch.size = addresses.len()))]
    pub async fn customers_for(&self, addresses: &[String]) -> Result<Vec<Customer>> {
        let lower: Vec<String> = addresses.iter().map(|a| a.trim().to_lowercase()).collect();
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&self.customers_sql).await?;
        Ok(client
            .query(&statement, &[&lower, &self.account])
            .await?
            .iter()
            .map(Customer::from_row)
            .collect())
    }

    /// Calls `each` for every customer that should be in the audience and has nothing queued,
    /// reading the table in chunks (one transaction, one snapshot).
    #[instrument(skip_all)]
    pub async fn wanted_customers(&self, mut each: impl FnMut(Customer)) -> Result<u64> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let portal = tx.bind(self.wanted_sql.as_str(), &[&self.account]).await?;
        let mut seen = 0u64;
        loop {
            let rows = tx.query_portal(&portal, SCAN_CHUNK).await?;
            if rows.is_empty() {
                break;
            }
            seen += rows.len() as u64;
            for r in &rows {
                each(Customer::from_row(r));
            }
        }
        tx.commit().await?;
        Ok(seen)
    }

    /// Records what Mailchimp holds for these customers and queues them again with their
    /// current state (one statement; see `sql/templates/reconcile_requeue.sql`).
    #[instrument(skip_all, fields(batch.size = fixes.len()))]
    pub async fn requeue(&self, fixes: &[Observed]) -> Result<Requeued> {
        if fixes.is_empty() {
            return Ok(Requeued::default());
        }
        let keys: Vec<&str> = fixes.iter().map(|f| f.customer_key.as_str()).collect();
        let present: Vec<bool> = fixes.iter().map(|f| f.member.is_some()).collect();
        let emails: Vec<Option<&str>> = fixes
            .iter()
            .map(|f| f.member.as_ref().map(|m| m.email.as_str()))
            .collect();
        let consents: Vec<bool> = fixes
            .iter()
            .map(|f| f.member.as_ref().is_some_and(|m| m.consent))
            .collect();
        let tags: Vec<Value> = fixes
            .iter()
            .map(|f| {
                Value::from(
                    f.member
                        .as_ref()
                        .map(|m| m.tags.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                self.requeue_sql.as_str(),
                &[&keys, &present, &emails, &consents, &tags, &self.account],
            )
            .await?;
        Ok(Requeued {
            enqueued: row.get::<_, i64>("enqueued") as u64,
        })
    }

    /// Members removed by reconcile belong to no customer any more: forgets them.
    pub async fn forget_addresses(&self, addresses: &[String]) -> Result<u64> {
        for_addresses(
            &self.pool,
            queries::FORGET_SYNCED_ADDRESSES,
            &self.account,
            addresses,
        )
        .await
    }

    /// When the last run with `--apply` on the audience started.
    pub async fn last_applied_run(&self, audience_id: &str) -> Result<Option<DateTime<Utc>>> {
        let client = self.pool.get().await?;
        Ok(client
            .query_opt(queries::LAST_RECONCILE, &[&audience_id])
            .await?
            .map(|r| r.get(0)))
    }

    /// Records a completed run.
    pub async fn record_run(&self, run: &Run) -> Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                queries::RECORD_RECONCILE,
                &[
                    &run.audience_id,
                    &run.started_at,
                    &run.since,
                    &run.applied,
                    &(run.members_read as i64),
                    &(run.differences as i64),
                ],
            )
            .await?;
        Ok(())
    }
}
