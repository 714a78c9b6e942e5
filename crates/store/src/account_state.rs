//! What the worker reads and writes of an account while it sends the account's rows: the
//! audience and sealed key, the state after Mailchimp refused the key or audience, and the pause
//! after Mailchimp throttled the key. (Connecting and changing accounts is `accounts`.)

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::sql::queries;
use crate::{Pool, Result};

/// An account as the worker sends to it.
#[derive(Clone)]
pub struct Target {
    /// The audience (list) id; `None` until one is set.
    pub audience_id: Option<String>,
    /// The API key, encrypted for the key-encryption key `encrypted_for`.
    pub sealed_key: Vec<u8>,
    /// Fingerprint of the key-encryption key.
    pub encrypted_for: String,
    /// Accounts with the same API key share this group (one cap, one pause).
    pub key_group: i32,
    /// When the account last changed: a cached client for an older value is stale.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("audience_id", &self.audience_id)
            .field("key_group", &self.key_group)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// The account's target, `None` if the account is gone.
pub async fn target(pool: &Pool, account: &str) -> Result<Option<Target>> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(queries::ACCOUNT_TARGET).await?;
    Ok(client
        .query_opt(&statement, &[&account])
        .await?
        .map(|r| Target {
            audience_id: r.get("audience_id"),
            sealed_key: r.get("api_key"),
            encrypted_for: r.get("encrypted_for"),
            key_group: r.get("key_group"),
            updated_at: r.get("updated_at"),
        }))
}

/// Puts the account in `needs_attention` with `reason`, if it is active and unchanged since
/// `seen` (its `updated_at`). True if it did.
pub async fn needs_attention(
    pool: &Pool,
    account: &str,
    reason: &str,
    seen: DateTime<Utc>,
) -> Result<bool> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            queries::ACCOUNT_NEEDS_ATTENTION,
            &[&account, &reason, &seen],
        )
        .await?
        .is_some())
}

/// No replica claims rows of the accounts on `key_group` for `pause`.
pub async fn pause_key_group(pool: &Pool, key_group: i32, pause: Duration) -> Result<u64> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            queries::PAUSE_KEY_GROUP,
            &[&key_group, &pause.as_secs_f64()],
        )
        .await?)
}

/// A change of an account's state (`chimpsync.account_events`).
#[derive(Debug, Clone)]
pub struct AccountEvent {
    /// Its id: the next read starts after it.
    pub id: i64,
    /// The account.
    pub account: String,
    /// The new state (`connected: active`, `disabled`, `needs_attention`, `removed`, ...).
    pub state: String,
    /// Why, when the state says (needs_attention: Mailchimp's reason).
    pub reason: Option<String>,
}

/// The changes after event `after`; with `None`, none, and the newest event's id to start from.
pub async fn events_since(pool: &Pool, after: Option<i64>) -> Result<(Vec<AccountEvent>, i64)> {
    let client = pool.get().await?;
    let rows = client
        .query(queries::ACCOUNT_EVENTS_SINCE, &[&after])
        .await?;
    let mut last = after.unwrap_or(0);
    let mut events = Vec::new();
    for r in &rows {
        last = last.max(r.get::<_, i64>(0));
        if after.is_some() {
            events.push(AccountEvent {
                id: r.get(0),
                account: r.get(1),
                state: r.get(2),
                reason: r.get(3),
            });
        }
    }
    Ok((events, last))
}

/// How many accounts are in each state.
pub async fn count_by_state(pool: &Pool) -> Result<Vec<(String, i64)>> {
    let client = pool.get().await?;
    Ok(client
        .query(queries::ACCOUNTS_BY_STATE, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
