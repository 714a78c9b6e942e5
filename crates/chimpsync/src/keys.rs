//! Opens the accounts' API keys for the worker (many accounts): each sealed key is decrypted
//! with the key-encryption secrets of the environment and becomes a client with the
//! environment's Mailchimp settings. The key lives only inside the client. The commands that
//! act on one account ([`open_account`]) open its key the same way.

use anyhow::{anyhow, Result};
use mailchimp::{ApiKey, Client, ClientConfig};
use secrecy::ExposeSecret;
use secrets::KeyRing;
use worker::OpenKey;

use crate::config::{Config, Timeouts};

/// See the module docs.
pub struct KeyOpener {
    ring: KeyRing,
    base_url: Option<String>,
    timeouts: Timeouts,
}

impl KeyOpener {
    pub fn new(ring: KeyRing, base_url: Option<String>, timeouts: Timeouts) -> KeyOpener {
        KeyOpener {
            ring,
            base_url,
            timeouts,
        }
    }
}

impl worker::OpenKey for KeyOpener {
    fn client(&self, sealed_key: &[u8], encrypted_for: &str) -> Result<Client, String> {
        let key = self
            .ring
            .decrypt(sealed_key, encrypted_for)
            .map_err(|e| format!("the account's API key cannot be decrypted: {e}"))?;
        let key = ApiKey::parse(key.expose_secret())
            .map_err(|e| format!("the account's API key is malformed: {e}"))?;
        let mut config = ClientConfig::new(key);
        config.base_url = self.base_url.clone();
        config.connect_timeout = self.timeouts.connect;
        config.request_timeout = self.timeouts.request;
        Client::new(config).map_err(|e| format!("Mailchimp client: {e}"))
    }
}

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
    let opener = KeyOpener::new(
        config.key_ring()?,
        config.base_url.clone(),
        Timeouts::default(),
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
