//! Settings from the environment and the mapping file, checked before anything touches data.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use mailchimp::{ApiKey, Client, ClientConfig};
use store::Mapping;

/// The environment of the contract (`docs/interface.md`).
#[derive(Debug, Clone)]
pub struct Env {
    /// `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `MAILCHIMP_API_KEY` (never printed).
    pub api_key: Option<String>,
    /// `MAILCHIMP_AUDIENCE_ID`.
    pub audience_id: Option<String>,
    /// `MAILCHIMP_BASE_URL`.
    pub base_url: Option<String>,
    /// `CHIMPSYNC_CONFIG`.
    pub config_path: PathBuf,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Env {
    /// Reads the environment.
    pub fn read() -> Env {
        Env {
            database_url: var("DATABASE_URL"),
            api_key: var("MAILCHIMP_API_KEY"),
            audience_id: var("MAILCHIMP_AUDIENCE_ID"),
            base_url: var("MAILCHIMP_BASE_URL"),
            config_path: var("CHIMPSYNC_CONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("chimpsync.toml")),
        }
    }

    /// `DATABASE_URL`, or an error saying how to set it.
    pub fn database_url(&self) -> Result<&str> {
        self.database_url
            .as_deref()
            .ok_or_else(|| anyhow!("DATABASE_URL is not set (e.g. postgres://user@host:5432/db)"))
    }

    /// The mapping file, parsed and validated.
    pub fn mapping(&self) -> Result<Mapping> {
        let path = &self.config_path;
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the mapping file {} (set CHIMPSYNC_CONFIG)",
                path.display()
            )
        })?;
        Mapping::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    /// The audience id: `MAILCHIMP_AUDIENCE_ID`, else `[audience].id`.
    pub fn audience_id(&self, mapping: &Mapping) -> Result<String> {
        self.audience_id
            .clone()
            .or_else(|| mapping.audience.id.clone())
            .ok_or_else(|| {
                anyhow!(
                    "no audience: set MAILCHIMP_AUDIENCE_ID or [audience].id in the mapping file"
                )
            })
    }

    /// A Mailchimp client from `MAILCHIMP_API_KEY` and `MAILCHIMP_BASE_URL`.
    pub fn client(&self, timeouts: &Timeouts) -> Result<Client> {
        let Some(key) = &self.api_key else {
            bail!("MAILCHIMP_API_KEY is not set (the key looks like <32 hex>-<dc>, e.g. ...-us6)");
        };
        let key = ApiKey::parse(key).map_err(|e| anyhow!("MAILCHIMP_API_KEY: {e}"))?;
        let mut config = ClientConfig::new(key);
        config.base_url = self.base_url.clone();
        config.connect_timeout = timeouts.connect;
        config.request_timeout = timeouts.request;
        Client::new(config).map_err(|e| anyhow!("Mailchimp client: {e}"))
    }
}

/// HTTP timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP/TLS connect.
    pub connect: std::time::Duration,
    /// Whole request.
    pub request: std::time::Duration,
}
