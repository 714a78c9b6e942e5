//! The Mailchimp accounts of multi-account mode (`chimpsync.accounts`, migration 0009) and the
//! key-encryption key their API keys are encrypted for.
//!
//! Accounts change through the SQL functions a settings page calls too (`connect_account`,
//! `update_account`, ...), so the CLI and the application behave alike. API keys go in as text
//! and are encrypted by pgcrypto inside the database; they come out only as ciphertext
//! ([`sealed_keys`]) for the caller to decrypt with the worker's secret. This crate never holds
//! a secret key: rotation takes the re-encryption as a function.

use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::GenericClient;
use tracing::info;

use crate::sql::queries;
use crate::{Error, Result};

/// The public half of the key-encryption key, as `setup` installs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEncryption<'a> {
    /// The OpenPGP public key, armored (what pgcrypto's `dearmor` reads).
    pub public_key: &'a str,
    /// Its fingerprint, lowercase hex (what `accounts.encrypted_for` records).
    pub fingerprint: &'a str,
}

/// What [`install_key_encryption`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyInstall {
    /// No key was installed; this one is now.
    Installed,
    /// This key was installed already.
    AlreadyInstalled,
    /// Another key was installed, with no account encrypted for it; this one replaced it.
    Replaced,
}

/// Creates pgcrypto if missing and installs `key` as the key-encryption key. Refuses to replace
/// a different key that accounts are encrypted for: that takes `chimpsync secret rotate`, which
/// re-encrypts them. Run inside setup's transaction.
pub async fn install_key_encryption(
    tx: &tokio_postgres::Transaction<'_>,
    key: KeyEncryption<'_>,
) -> Result<KeyInstall> {
    if let Err(e) = tx.batch_execute(queries::CREATE_PGCRYPTO).await {
        let why = e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string());
        return Err(Error::Mapping(format!(
            "source.account: multi-account mode encrypts API keys with the pgcrypto extension, \
             which cannot be created ({why}); have the database owner run `create extension pgcrypto`"
        )));
    }
    let installed = tx.query_opt(queries::KEY_ENCRYPTION, &[]).await?;
    let outcome = match &installed {
        None => KeyInstall::Installed,
        Some(row) if row.get::<_, String>("fingerprint") == key.fingerprint => {
            if row.get::<_, String>("public_key") == key.public_key {
                return Ok(KeyInstall::AlreadyInstalled);
            }
            // Same key, other armor (e.g. headers): keep the new text.
            KeyInstall::AlreadyInstalled
        }
        Some(row) => {
            let sealed: i64 = row.get("sealed_for_it");
            if sealed > 0 {
                let fingerprint: String = row.get("fingerprint");
                return Err(Error::Argument(format!(
                    "CHIMPSYNC_SECRET_KEY is key {}, but {sealed} account API key(s) are encrypted \
                     for the installed key {fingerprint}. To change the secret, run \
                     `chimpsync secret rotate` (CHIMPSYNC_SECRET_KEY = the installed secret, \
                     CHIMPSYNC_NEW_SECRET_KEY = the new one); otherwise set CHIMPSYNC_SECRET_KEY \
                     to the installed secret",
                    key.fingerprint
                )));
            }
            KeyInstall::Replaced
        }
    };
    tx.execute(
        queries::RECORD_KEY_ENCRYPTION,
        &[&key.public_key, &key.fingerprint],
    )
    .await?;
    info!(fingerprint = key.fingerprint, outcome = ?outcome, "key-encryption key installed");
    Ok(outcome)
}

/// Whether the database has chimpsync's accounts table (the schema is migrated to 0009).
pub async fn accounts_installed(client: &impl GenericClient) -> Result<bool> {
    Ok(client
        .query_one(queries::ACCOUNTS_INSTALLED, &[])
        .await?
        .get(0))
}

/// The account an operation names does not exist (SQLSTATE P0002 from the SQL functions) or
/// another refusal of theirs, as a one-line error; everything else as it came.
fn account_error(e: tokio_postgres::Error, account: &str) -> Error {
    let Some(db) = e.as_db_error() else {
        return Error::Database(e);
    };
    match db.code() {
        c if *c == SqlState::NO_DATA_FOUND => Error::Argument(format!(
            "no account {account:?} (see `chimpsync account list`)"
        )),
        c if *c == SqlState::INVALID_PARAMETER_VALUE => {
            Error::Argument(format!("account {account:?}: {}", db.message()))
        }
        c if *c == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE => Error::Argument(format!(
            "{}{}",
            db.message(),
            db.hint().map(|h| format!(" ({h})")).unwrap_or_default()
        )),
        _ => Error::Database(e),
    }
}

/// Options of [`connect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// The account (the value of the mapping's `[source].account` column, as text).
    pub account: &'a str,
    /// Its audience id.
    pub audience_id: Option<&'a str>,
    /// Whether its sync is on.
    pub enabled: bool,
    /// Queue every customer of the account.
    pub sync_contacts: bool,
}

/// Connects an account, or replaces its audience and key (`chimpsync.connect_account`). The key
/// is encrypted in the database; it never appears in an error.
pub async fn connect(
    client: &impl GenericClient,
    options: Connect<'_>,
    api_key: &str,
) -> Result<()> {
    client
        .execute(
            queries::CONNECT_ACCOUNT,
            &[
                &options.account,
                &options.audience_id,
                &api_key,
                &options.enabled,
                &options.sync_contacts,
            ],
        )
        .await
        .map_err(|e| account_error(e, options.account))?;
    info!(account = options.account, "account connected");
    Ok(())
}

/// Changes an account's audience or key (`None` = unchanged); ends `needs_attention`.
pub async fn update(
    client: &impl GenericClient,
    account: &str,
    audience_id: Option<&str>,
    api_key: Option<&str>,
) -> Result<()> {
    client
        .execute(queries::UPDATE_ACCOUNT, &[&account, &audience_id, &api_key])
        .await
        .map_err(|e| account_error(e, account))?;
    info!(account, "account updated");
    Ok(())
}

/// Switches an account's sync on (`true`) or off.
pub async fn set_enabled(client: &impl GenericClient, account: &str, enabled: bool) -> Result<()> {
    let sql = if enabled {
        queries::ENABLE_ACCOUNT
    } else {
        queries::DISABLE_ACCOUNT
    };
    client
        .execute(sql, &[&account])
        .await
        .map_err(|e| account_error(e, account))?;
    info!(account, enabled, "account switched");
    Ok(())
}

/// Forgets an account: its queue rows, synced contacts and webhook events (its audience in
/// Mailchimp is left alone).
pub async fn remove(client: &impl GenericClient, account: &str) -> Result<()> {
    client
        .execute(queries::REMOVE_ACCOUNT, &[&account])
        .await
        .map_err(|e| account_error(e, account))?;
    info!(account, "account removed");
    Ok(())
}

/// Asks the worker to queue every customer of the account.
pub async fn sync_contacts(client: &impl GenericClient, account: &str) -> Result<()> {
    client
        .execute(queries::SYNC_CONTACTS, &[&account])
        .await
        .map_err(|e| account_error(e, account))?;
    info!(account, "sync contacts requested");
    Ok(())
}

/// One row of `chimpsync.account_summary` (never the key: its last 4 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    /// The account.
    pub account: String,
    /// `active`, `disabled`, `needs_attention`, or `unknown` (customers name it, chimpsync
    /// does not serve it).
    pub state: String,
    /// Why it needs attention.
    pub state_reason: Option<String>,
    /// Its sync switch (`None` for an unknown account).
    pub enabled: Option<bool>,
    /// Its audience.
    pub audience_id: Option<String>,
    /// The API key's last 4 characters.
    pub api_key_last4: Option<String>,
    /// Queue rows waiting for their first attempt.
    pub pending: i64,
    /// Queue rows claimed now.
    pub in_flight: i64,
    /// Queue rows waiting to be retried.
    pub retrying: i64,
    /// Parked queue rows.
    pub parked: i64,
    /// Removals held by the mass-removal guard.
    pub held: i64,
    /// When Mailchimp last acknowledged a change of it.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Throttled until.
    pub paused_until: Option<DateTime<Utc>>,
    /// Sync Contacts requested at.
    pub sync_requested_at: Option<DateTime<Utc>>,
}

/// Every account, by name.
pub async fn list(client: &impl GenericClient) -> Result<Vec<AccountSummary>> {
    let rows = client.query(queries::ACCOUNT_SUMMARY, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| AccountSummary {
            account: r.get("account"),
            state: r.get("state"),
            state_reason: r.get("state_reason"),
            enabled: r.get("enabled"),
            audience_id: r.get("audience_id"),
            api_key_last4: r.get("api_key_last4"),
            pending: r.get("pending"),
            in_flight: r.get("in_flight"),
            retrying: r.get("retrying"),
            parked: r.get("parked"),
            held: r.get("held"),
            last_synced_at: r.get("last_synced_at"),
            paused_until: r.get("paused_until"),
            sync_requested_at: r.get("sync_requested_at"),
        })
        .collect())
}

/// An account's encrypted API key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// The account.
    pub account: String,
    /// The ciphertext (OpenPGP).
    pub ciphertext: Vec<u8>,
    /// The fingerprint of the key-encryption key it is encrypted for.
    pub encrypted_for: String,
}

impl std::fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedKey")
            .field("account", &self.account)
            .field(
                "ciphertext",
                &format_args!("{} bytes", self.ciphertext.len()),
            )
            .field("encrypted_for", &self.encrypted_for)
            .finish()
    }
}

fn sealed(r: &tokio_postgres::Row) -> SealedKey {
    SealedKey {
        account: r.get("account"),
        ciphertext: r.get("api_key"),
        encrypted_for: r.get("encrypted_for"),
    }
}

/// Every account's encrypted key, locked until `client`'s transaction ends (for a rotation).
pub async fn sealed_keys(client: &impl GenericClient) -> Result<Vec<SealedKey>> {
    let rows = client.query(queries::SEALED_API_KEYS, &[]).await?;
    Ok(rows.iter().map(sealed).collect())
}

/// One account's encrypted key (`None` when there is no such account); takes no lock.
pub async fn sealed_key(client: &impl GenericClient, account: &str) -> Result<Option<SealedKey>> {
    let row = client
        .query_opt(queries::SEALED_API_KEY, &[&account])
        .await?;
    Ok(row.as_ref().map(sealed))
}

/// What [`rotate`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotated {
    /// Keys re-encrypted for the new key.
    pub resealed: usize,
    /// Keys that were encrypted for the new key already (a rotation run again).
    pub already: usize,
}

/// Re-encrypts every account's API key for `new` and installs `new` as the key-encryption key,
/// in one transaction: `reseal` turns a [`SealedKey`] into the ciphertext for `new` (the caller
/// decrypts with its secret and encrypts again). Keys already encrypted for `new` are left
/// alone, so a rotation that failed halfway is run again as it was. A `reseal` error aborts it
/// with nothing changed.
pub async fn rotate<F>(
    client: &mut tokio_postgres::Client,
    new: KeyEncryption<'_>,
    mut reseal: F,
) -> Result<Rotated>
where
    F: FnMut(&SealedKey) -> std::result::Result<Vec<u8>, String>,
{
    let tx = client.transaction().await?;
    tx.execute(queries::MIGRATION_LOCK, &[]).await?;
    if !accounts_installed(&tx).await? {
        return Err(Error::Argument(
            "schema chimpsync has no accounts (run `chimpsync setup` first)".into(),
        ));
    }
    if tx.query_opt(queries::KEY_ENCRYPTION, &[]).await?.is_none() {
        return Err(Error::Argument(
            "no key-encryption key is installed: there is nothing to rotate \
             (`chimpsync setup` with a multi-account mapping installs CHIMPSYNC_SECRET_KEY's)"
                .into(),
        ));
    }
    let mut rotated = Rotated::default();
    for sealed in sealed_keys(&tx).await? {
        if sealed.encrypted_for == new.fingerprint {
            rotated.already += 1;
            continue;
        }
        let ciphertext = reseal(&sealed)
            .map_err(|why| Error::Argument(format!("account {:?}: {why}", sealed.account)))?;
        tx.execute(
            queries::RESEAL_API_KEY,
            &[&sealed.account, &ciphertext, &new.fingerprint],
        )
        .await?;
        rotated.resealed += 1;
    }
    tx.execute(
        queries::RECORD_KEY_ENCRYPTION,
        &[&new.public_key, &new.fingerprint],
    )
    .await?;
    tx.commit().await?;
    info!(
        fingerprint = new.fingerprint,
        resealed = rotated.resealed,
        "key-encryption key rotated"
    );
    Ok(rotated)
}

/// How many accounts' keys are encrypted for another key than `fingerprint` (after a rotation:
/// keys an application connected with the old key while it ran).
pub async fn sealed_for_others(client: &impl GenericClient, fingerprint: &str) -> Result<i64> {
    Ok(client
        .query_one(queries::COUNT_SEALED_FOR_OTHERS, &[&fingerprint])
        .await?
        .get(0))
}

/// What an account's webhook calls are checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountWebhook {
    /// The secret last segment of the account's webhook URL.
    pub secret: String,
    /// The account's audience (events about another audience are stored, then ignored).
    pub audience_id: Option<String>,
}

impl std::fmt::Debug for AccountWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountWebhook")
            .field("secret", &"<redacted>")
            .field("audience_id", &self.audience_id)
            .finish()
    }
}

/// The account's webhook secret and audience (`None` when there is no such account).
pub async fn webhook(client: &impl GenericClient, account: &str) -> Result<Option<AccountWebhook>> {
    let row = client
        .query_opt(queries::ACCOUNT_WEBHOOK, &[&account])
        .await?;
    Ok(row.map(|r| AccountWebhook {
        secret: r.get("webhook_secret"),
        audience_id: r.get("audience_id"),
    }))
}

/// One change of an account's state (`chimpsync.account_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// The state it went to (`connected: active`, `needs_attention`, `removed`, ...).
    pub state: String,
    /// Why, when recorded.
    pub reason: Option<String>,
}

/// The account's `limit` latest state changes, newest first.
pub async fn events(
    client: &impl GenericClient,
    account: &str,
    limit: i64,
) -> Result<Vec<AccountEvent>> {
    let rows = client
        .query(queries::ACCOUNT_EVENTS, &[&account, &limit])
        .await?;
    Ok(rows
        .iter()
        .map(|r| AccountEvent {
            at: r.get("at"),
            state: r.get("state"),
            reason: r.get("reason"),
        })
        .collect())
}
