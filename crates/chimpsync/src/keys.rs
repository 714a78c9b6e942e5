//! One account of many, opened for a command (`audience create --account`, `reconcile
//! --account`, ...): its sealed key decrypted with the environment's key-encryption secrets into
//! a client, as the worker's `KeyRingOpener` does. The key lives only inside the client.

use anyhow::{anyhow, Result};
use mailchimp::Client;
use worker::{KeyRingOpener, OpenKey};

use crate::config::{Config, Timeouts};

/// One account of many, opened for a command: a client with its key, and its audience.
pub struct Account {
    /// The account.
    pub account: String,
    /// A client with the account's key.
    pub client: Client,
    /// Its audience (`None` until one is set).
    pub audience_id: Option<String>,
}

impl Account {
    /// The audience, or an error saying how to set one.
    pub fn audience(&self) -> Result<&str> {
        self.audience_id.as_deref().ok_or_else(|| {
            anyhow!(
                "account {} has no audience: `chimpsync audience create --account {0} ...` or \
                 `chimpsync account set {0} --audience ID`",
                self.account
            )
        })
    }
}

/// Opens `account`'s key (decrypted with CHIMPSYNC_SECRET_KEY) into a client with the default
/// timeouts; an error for an unknown account names it.
pub async fn open_account(config: &Config, pool: &store::Pool, account: &str) -> Result<Account> {
    let target = store::account_state::target(pool, account)
        .await?
        .ok_or_else(|| anyhow!("no account {account:?} (see `chimpsync account list`)"))?;
    let timeouts = Timeouts::default();
    let opener = KeyRingOpener::new(
        config.key_ring()?,
        config.base_url.clone(),
        timeouts.connect,
        timeouts.request,
    );
    let client = opener
        .client(&target.sealed_key, &target.encrypted_for)
        .map_err(|e| anyhow!("account {account}: {e}"))?;
    Ok(Account {
        account: account.to_string(),
        client,
        audience_id: target.audience_id,
    })
}
