//! Opens the accounts' API keys for the worker (many accounts): each sealed key is decrypted
//! with the key-encryption secrets of the environment and becomes a client with the
//! environment's Mailchimp settings. The key lives only inside the client.

use mailchimp::{ApiKey, Client, ClientConfig};
use secrecy::ExposeSecret;
use secrets::KeyRing;

use crate::config::Timeouts;

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
