//! The Mailchimp → database direction: events (webhook calls, and the differences `reconcile`
//! fixes inbound) are stored in `chimpsync.inbound_events` first, then applied to the source
//! table through the mapping's `[inbound]` statements.
//!
//! Applying an event is one transaction with `chimpsync.origin = 'mailchimp'`, so the change
//! triggers stay silent and nothing echoes back to Mailchimp. In the same transaction chimpsync's
//! own records follow: on `upemail` the customer's member lives under the new address, a consent
//! the table now shares with Mailchimp counts as sent, and a change queued before the event is
//! refreshed from the table so the worker never sends a stale snapshot.
//!
//! The statements get `$1` = the address (the old one for `upemail`), `$2` = the new address
//! (`upemail`; NULL otherwise) and `$3` = the whole event as JSON text; all three are typed
//! `text`, and a statement may use any of them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::Type;
use tracing::{debug, instrument, warn};

use crate::generated::Generated;
use crate::mapping::{Inbound as Statements, Mapping};
use crate::sql::queries;
use crate::{Error, Pool, Result};

/// The event types chimpsync applies (`campaign` and unknown types are stored as ignored).
pub const EVENT_TYPES: [&str; 5] = ["subscribe", "unsubscribe", "profile", "upemail", "cleaned"];

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// A call of Mailchimp's webhook.
    Webhook,
    /// A difference `chimpsync reconcile --apply` found.
    Reconcile,
}

impl EventSource {
    /// The name stored in `inbound_events.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Webhook => "webhook",
            EventSource::Reconcile => "reconcile",
        }
    }
}

/// An event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Where it came from.
    pub source: EventSource,
    /// Mailchimp's `type`.
    pub event_type: String,
    /// Mailchimp's `fired_at`, as sent.
    pub fired_at: Option<String>,
    /// `data[list_id]`.
    pub list_id: Option<String>,
    /// `data[email]` (for `upemail`: `data[old_email]`).
    pub email: Option<String>,
    /// `data[new_email]` (`upemail`).
    pub new_email: Option<String>,
    /// The whole event as JSON.
    pub payload: Value,
}

impl NewEvent {
    /// Why this event needs no applying for `audience_id`, if so.
    pub fn ignore_reason(&self, audience_id: &str) -> Option<String> {
        if !EVENT_TYPES.contains(&self.event_type.as_str()) {
            return Some(format!(
                "chimpsync does not handle {:?} events",
                self.event_type
            ));
        }
        if let Some(list) = &self.list_id {
            if list != audience_id {
                return Some(format!(
                    "the event is about audience {list}, not {audience_id}"
                ));
            }
        }
        if self.email.as_deref().is_none_or(|e| e.trim().is_empty()) {
            return Some("the event names no address".into());
        }
        if self.event_type == "upemail"
            && self
                .new_email
                .as_deref()
                .is_none_or(|e| e.trim().is_empty())
        {
            return Some("the upemail event names no new address".into());
        }
        None
    }
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Stored; to be applied.
    New(i64),
    /// Stored as ignored (another audience, an unhandled type, no address).
    Ignored(i64),
    /// The same event was stored before (a replayed webhook): nothing stored.
    Duplicate,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; `rows` = rows the `[inbound]` statement changed (`None`: the mapping has no
    /// statement for the type, only chimpsync's records followed).
    Applied {
        /// Rows changed by the statement.
        rows: Option<u64>,
    },
    /// The attempt failed; retried at `retry_at` (`None`: attempts exhausted, given up).
    Failed {
        /// What Postgres said.
        error: String,
        /// The next attempt.
        retry_at: Option<DateTime<Utc>>,
    },
    /// Not applied by this call: already done, ignored, or being applied by another replica.
    NotDue,
}

/// The inbound side over a pool: stores and applies events.
#[derive(Clone)]
pub struct Inbound {
    pool: Pool,
    statements: Statements,
    applied_sql: String,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound").finish_non_exhaustive()
    }
}

/// Deletes up to `limit` events that are done (applied, or ignored) and older than `older_than`
/// on the database's clock; returns how many. Events not applied yet, and failed ones, stay.
#[instrument(skip(pool))]
pub async fn prune(pool: &Pool, older_than: Duration, limit: i64) -> Result<i64> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            queries::PRUNE_INBOUND_EVENTS,
            &[&older_than.as_secs_f64(), &limit],
        )
        .await?;
    Ok(row.get(0))
}

/// The parameter types of every `[inbound]` statement: `$1`, `$2`, `$3` are text.
/// `$1` address, `$2` new address, `$3` the event as JSON, `$4` the account (`''` with one
/// account; with many, a statement scopes its update to the account's customers with it).
const STATEMENT_TYPES: [Type; 4] = [Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT];

impl Inbound {
    /// Builds the inbound side for `mapping`, checking the mapping against the table and
    /// preparing each `[inbound]` statement (a typo fails here, naming the key, not on the first
    /// webhook).
    pub async fn new(pool: Pool, mapping: &Mapping) -> Result<Inbound> {
        let client = pool.get().await?;
        let generated = Generated::for_mapping(&**client, mapping).await?;
        let statements = mapping.inbound.clone();
        for (kind, sql) in statement_list(&statements) {
            client
                .prepare_typed(sql, &STATEMENT_TYPES)
                .await
                .map_err(|e| Error::Mapping(format!("inbound.{kind}: {}", db_message(&e))))?;
        }
        Ok(Inbound {
            pool,
            statements,
            applied_sql: generated.inbound_applied(),
        })
    }

    /// The `[inbound]` statement for an event type, if the mapping has one.
    pub fn statement(&self, event_type: &str) -> Option<&str> {
        statement_list(&self.statements)
            .into_iter()
            .find(|(k, _)| *k == event_type)
            .map(|(_, sql)| sql)
    }

    /// Stores an event (one short transaction) before anything is applied. `audience_id` decides
    /// whether the event is for this installation.
    #[instrument(skip_all, fields(event.type = %event.event_type, event.source = event.source.as_str()))]
    pub async fn record(&self, event: &NewEvent, audience_id: &str) -> Result<Recorded> {
        self.record_for("", event, audience_id).await
    }

    /// [`Inbound::record`] for an event that came in through `account`'s webhook.
    #[instrument(skip_all, fields(event.type = %event.event_type, event.source = event.source.as_str()))]
    pub async fn record_for(
        &self,
        account: &str,
        event: &NewEvent,
        audience_id: &str,
    ) -> Result<Recorded> {
        let ignore = event.ignore_reason(audience_id);
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(queries::RECORD_INBOUND_EVENT).await?;
        let row = client
            .query_opt(
                &statement,
                &[
                    &event.source.as_str(),
                    &event.event_type,
                    &event.fired_at,
                    &event.list_id,
                    &event.email,
                    &event.new_email,
                    &event.payload,
                    &ignore,
                    &account,
                ],
            )
            .await?;
        Ok(match (row, ignore) {
            (None, _) => Recorded::Duplicate,
            (Some(r), None) => Recorded::New(r.get(0)),
            (Some(r), Some(reason)) => {
                debug!(reason, "inbound event ignored");
                Recorded::Ignored(r.get(0))
            }
        })
    }

    /// Applies one stored event in its own transaction (see the module docs). A failing
    /// statement marks the event failed with the error and its next attempt: `retry_in` gets the
    /// attempts made so far (this one included) and says how long until the next one, on the
    /// database's clock (`None`: give up).
    #[instrument(skip_all, fields(event.id = id))]
    pub async fn apply(
        &self,
        id: i64,
        retry_in: impl Fn(i32) -> Option<Duration>,
    ) -> Result<Outcome> {
        let mut client = self.pool.get().await?;
        let claim = client.prepare_cached(queries::CLAIM_INBOUND_EVENT).await?;
        let finish = client.prepare_cached(queries::FINISH_INBOUND_EVENT).await?;
        let mut tx = client.transaction().await?;
        let Some(row) = tx.query_opt(&claim, &[&id]).await? else {
            tx.commit().await?;
            return Ok(Outcome::NotDue);
        };
        let event_type: String = row.get("event_type");
        let email: Option<String> = row.get("email");
        let new_email: Option<String> = row.get("new_email");
        let payload: Value = row.get("payload");
        let attempts: i32 = row.get("attempts");
        let account: String = row.get("account");
        tx.query_one(queries::MARK_INBOUND_ORIGIN, &[]).await?;
        let consent_held = match event_type.as_str() {
            "subscribe" => Some(true),
            "unsubscribe" | "cleaned" => Some(false),
            _ => None,
        };
        let mut addresses: Vec<String> = [&email, &new_email]
            .into_iter()
            .flatten()
            .map(|a| a.trim().to_lowercase())
            .filter(|a| !a.is_empty())
            .collect();
        addresses.dedup();
        let payload_text = payload.to_string();
        let statement = self.statement(&event_type).map(str::to_owned);
        let sp = tx.savepoint("inbound_event").await?;
        let applied: std::result::Result<Option<u64>, tokio_postgres::Error> = async {
            let rows = match &statement {
                Some(sql) => {
                    let prepared = sp.prepare_typed(sql, &STATEMENT_TYPES).await?;
                    Some(
                        sp.execute(&prepared, &[&email, &new_email, &payload_text, &account])
                            .await?,
                    )
                }
                None => None,
            };
            if event_type == "upemail" {
                if let (Some(old), Some(new)) = (&email, &new_email) {
                    sp.query(queries::RENAME_SYNCED_CONTACT, &[old, new, &account])
                        .await?;
                }
            }
            sp.query_one(&self.applied_sql, &[&addresses, &consent_held, &account])
                .await?;
            Ok(rows)
        }
        .await;
        let outcome = match applied {
            Ok(rows) => {
                sp.commit().await?;
                let rows_i64 = rows.map(|r| r as i64);
                tx.query_one(
                    &finish,
                    &[&id, &"applied", &None::<f64>, &rows_i64, &None::<String>],
                )
                .await?;
                Outcome::Applied { rows }
            }
            Err(e) => {
                // A broken connection cannot record anything: the event stays as it was and
                // the retry loop picks it up again.
                sp.rollback().await?;
                let error = db_message(&e);
                let retry_in = retry_in(attempts + 1).map(|d| d.as_secs_f64());
                // The detail may quote customer data (an address in a key conflict): the log
                // gets the SQLSTATE only, the event row the whole message.
                warn!(
                    event.type = %event_type,
                    sqlstate = e.code().map(|c| c.code()).unwrap_or(""),
                    retry = retry_in.is_some(),
                    "inbound statement failed"
                );
                let retry_at: Option<DateTime<Utc>> = tx
                    .query_one(
                        &finish,
                        &[
                            &id,
                            &"failed",
                            &retry_in,
                            &None::<i64>,
                            &Some(error.clone()),
                        ],
                    )
                    .await?
                    .get(0);
                Outcome::Failed { error, retry_at }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Applies up to `limit` events whose (next) attempt is due, each as [`Inbound::apply`] with
    /// `retry_in`; `now` overrides the database clock (tests). Returns each event's outcome.
    #[instrument(skip_all, fields(batch.limit = limit))]
    pub async fn apply_due(
        &self,
        limit: i64,
        now: Option<DateTime<Utc>>,
        retry_in: impl Fn(i32) -> Option<Duration>,
    ) -> Result<Vec<(i64, Outcome)>> {
        let ids: Vec<i64> = {
            let client = self.pool.get().await?;
            client
                .query(queries::DUE_INBOUND_EVENTS, &[&limit, &now])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push((id, self.apply(id, &retry_in).await?));
        }
        Ok(out)
    }
}

fn statement_list(s: &Statements) -> Vec<(&'static str, &str)> {
    [
        ("subscribe", &s.subscribe),
        ("unsubscribe", &s.unsubscribe),
        ("profile", &s.profile),
        ("upemail", &s.upemail),
        ("cleaned", &s.cleaned),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_deref().map(|sql| (k, sql)))
    .collect()
}

/// Postgres's own message (with its detail) rather than tokio-postgres's "db error".
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {detail}", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_for_another_audience_or_without_an_address_are_ignored() {
        let event = |ty: &str, list: Option<&str>, email: Option<&str>| NewEvent {
            source: EventSource::Webhook,
            event_type: ty.into(),
            fired_at: None,
            list_id: list.map(Into::into),
            email: email.map(Into::into),
            new_email: None,
            payload: Value::Null,
        };
        assert_eq!(
            event("unsubscribe", Some("a1"), Some("x@y.test")).ignore_reason("a1"),
            None
        );
        assert!(event("unsubscribe", Some("zz"), Some("x@y.test"))
            .ignore_reason("a1")
            .is_some());
        assert!(event("campaign", Some("a1"), Some("x@y.test"))
            .ignore_reason("a1")
            .is_some());
        assert!(event("cleaned", None, Some(" "))
            .ignore_reason("a1")
            .is_some());
        assert!(
            event("upemail", None, Some("x@y.test"))
                .ignore_reason("a1")
                .is_some(),
            "upemail needs the new address"
        );
    }
}
