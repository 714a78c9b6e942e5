//! Where a claim's rows go: the one account of the environment, or, with many accounts, the
//! claimed account's audience through a client for its own API key and the gate of that key
//! (each key has its own connection cap and throttle pause, shared by every account on it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use mailchimp::Client;
use store::slots::SlotTable;
use store::Pool;
use tracing::{debug, warn};

use crate::gate::Gate;

/// Opens an account's sealed API key into a client. The binary provides it: it holds the
/// secret that decrypts the keys, and the client settings of the environment. An error says
/// why, without the key.
pub trait OpenKey: Send + Sync + 'static {
    /// A client for the key `sealed_key`, encrypted for the key-encryption key `encrypted_for`.
    fn client(&self, sealed_key: &[u8], encrypted_for: &str) -> Result<Client, String>;
}

/// Opens keys with the key-encryption secrets of `ring` into clients of the Mailchimp at
/// `base_url` (`None`: the key's data centre) with these timeouts. The key lives only inside the
/// client.
pub struct KeyRingOpener {
    ring: secrets::KeyRing,
    base_url: Option<String>,
    connect_timeout: std::time::Duration,
    request_timeout: std::time::Duration,
    /// The first client opened: every later one shares its connections (one pool and TLS
    /// setup for all accounts, not one per account).
    first: std::sync::OnceLock<Client>,
}

impl KeyRingOpener {
    /// See the type.
    pub fn new(
        ring: secrets::KeyRing,
        base_url: Option<String>,
        connect_timeout: std::time::Duration,
        request_timeout: std::time::Duration,
    ) -> KeyRingOpener {
        KeyRingOpener {
            ring,
            base_url,
            connect_timeout,
            request_timeout,
            first: std::sync::OnceLock::new(),
        }
    }
}

impl OpenKey for KeyRingOpener {
    fn client(&self, sealed_key: &[u8], encrypted_for: &str) -> Result<Client, String> {
        use secrecy::ExposeSecret;
        let key = self
            .ring
            .decrypt(sealed_key, encrypted_for)
            .map_err(|e| format!("the account's API key cannot be decrypted: {e}"))?;
        let key = mailchimp::ApiKey::parse(key.expose_secret())
            .map_err(|e| format!("the account's API key is malformed: {e}"))?;
        if let Some(first) = self.first.get() {
            return first
                .for_key(key, self.base_url.clone())
                .map_err(|e| format!("Mailchimp client: {e}"));
        }
        let mut config = mailchimp::ClientConfig::new(key);
        config.base_url = self.base_url.clone();
        config.connect_timeout = self.connect_timeout;
        config.request_timeout = self.request_timeout;
        let client = Client::new(config).map_err(|e| format!("Mailchimp client: {e}"))?;
        // Set once; a client opened at the same moment by another thread simply keeps its own.
        let _ = self.first.set(client.clone());
        Ok(client)
    }
}

/// Where one claim's rows go.
#[derive(Clone)]
pub(crate) struct Sending {
    pub(crate) client: Client,
    pub(crate) gate: Arc<Gate>,
    pub(crate) audience_id: String,
    /// With many accounts: the account as read (its key group and `updated_at`).
    pub(crate) account: Option<AccountSeen>,
}

#[derive(Clone)]
pub(crate) struct AccountSeen {
    pub(crate) key_group: i32,
    pub(crate) updated_at: DateTime<Utc>,
}

/// Why a claimed account cannot be sent to now.
pub(crate) enum Unsendable {
    /// The account was removed or lost its audience since the claim: its rows go back.
    Gone,
    /// Its key cannot be opened (the reason): the account needs attention.
    Key(String, DateTime<Utc>),
    /// The database failed.
    Database(store::Error),
}

/// The accounts' clients and gates, cached until the account changes.
pub(crate) struct Accounts {
    opener: Arc<dyn OpenKey>,
    slots: Arc<SlotTable>,
    gates: Mutex<HashMap<i32, Arc<Gate>>>,
    sendings: Mutex<HashMap<String, Sending>>,
}

impl Accounts {
    pub(crate) fn new(opener: Arc<dyn OpenKey>, slots: Arc<SlotTable>) -> Accounts {
        Accounts {
            opener,
            slots,
            gates: Mutex::new(HashMap::new()),
            sendings: Mutex::new(HashMap::new()),
        }
    }

    /// The gate of `key_group`, made on first use.
    fn gate(&self, key_group: i32) -> Arc<Gate> {
        let mut gates = self.gates.lock().expect("gates lock");
        gates
            .entry(key_group)
            .or_insert_with(|| Arc::new(Gate::for_key(self.slots.clone(), key_group)))
            .clone()
    }

    /// Where the rows of `account` go, reading the account (one short query) and opening its
    /// key only when the account changed since the last time.
    pub(crate) async fn sending(&self, pool: &Pool, account: &str) -> Result<Sending, Unsendable> {
        let target = match store::account_state::target(pool, account).await {
            Ok(Some(target)) => target,
            Ok(None) => return Err(Unsendable::Gone),
            Err(e) => return Err(Unsendable::Database(e)),
        };
        let Some(audience_id) = target.audience_id.clone() else {
            return Err(Unsendable::Gone);
        };
        if let Some(cached) = self.sendings.lock().expect("sendings lock").get(account) {
            if cached.account.as_ref().map(|a| a.updated_at) == Some(target.updated_at) {
                return Ok(cached.clone());
            }
        }
        // Decrypting a key is milliseconds of CPU (RSA): off the async threads, so that the
        // first batches of many accounts do not stall every other batch in flight.
        let opener = self.opener.clone();
        let (sealed, encrypted_for) = (target.sealed_key.clone(), target.encrypted_for.clone());
        let client = tokio::task::spawn_blocking(move || opener.client(&sealed, &encrypted_for))
            .await
            .unwrap_or_else(|e| Err(format!("opening the account's key failed: {e}")))
            .map_err(|reason| Unsendable::Key(reason, target.updated_at))?;
        let sending = Sending {
            client,
            gate: self.gate(target.key_group),
            audience_id,
            account: Some(AccountSeen {
                key_group: target.key_group,
                updated_at: target.updated_at,
            }),
        };
        self.sendings
            .lock()
            .expect("sendings lock")
            .insert(account.to_string(), sending.clone());
        Ok(sending)
    }
}

/// Puts `account` in `needs_attention` with `reason` (unless it changed since `seen`), logged
/// (`chimpsync run` counts every state change from `chimpsync.account_events`).
pub(crate) async fn needs_attention(pool: &Pool, account: &str, reason: &str, seen: DateTime<Utc>) {
    match store::account_state::needs_attention(pool, account, reason, seen).await {
        Ok(true) => {
            warn!(
                account,
                reason,
                "account needs attention: its rows wait until its key or audience is updated"
            );
        }
        // Marked already (by another batch of the account), or changed since it was read.
        Ok(false) => debug!(
            account,
            "account not marked: not active, or changed since read"
        ),
        Err(e) => warn!(account, error = %e, "could not mark the account as needing attention"),
    }
}
