//! The process environment, read once at start ([`Config::from_env`]) and handed to every
//! command, plus the mapping file it names. Secrets are kept in [`SecretString`]s, so that
//! neither `Debug` nor an error message can show them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use mailchimp::{ApiKey, Client, ClientConfig};
use secrecy::{ExposeSecret, SecretString};
use secrets::{KeyRing, SecretKey};
use store::Mapping;

use crate::cli::Settings;
use crate::defaults;
use crate::exit::Failure;

/// The environment of the contract (`docs/interface.md`).
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL` (a secret: it may hold the password).
    pub database_url: Option<SecretString>,
    /// `MAILCHIMP_API_KEY`.
    pub api_key: Option<SecretString>,
    /// `MAILCHIMP_AUDIENCE_ID`.
    pub audience_id: Option<String>,
    /// `MAILCHIMP_BASE_URL`.
    pub base_url: Option<String>,
    /// `CHIMPSYNC_CONFIG`: the mapping file.
    pub mapping_path: PathBuf,
    /// `CHIMPSYNC_HTTP_ADDR`: where `run` serves its endpoints.
    pub http_addr: String,
    /// `CHIMPSYNC_WEBHOOK_ADDR`: where `run` serves the webhook route on a listener of its
    /// own; unset, the webhook route is served on `http_addr`.
    pub webhook_addr: Option<String>,
    /// `CHIMPSYNC_WEBHOOK_SECRET`, trimmed: the last path segment of the webhook route, which
    /// is served only when it is set.
    pub webhook_secret: Option<SecretString>,
    /// `CHIMPSYNC_SECRET_KEY`: the key-encryption secret that decrypts account API keys
    /// (multi-account mode).
    pub secret_key: Option<SecretString>,
    /// `CHIMPSYNC_PREVIOUS_SECRET_KEY`: the secret before the last rotation, while replicas
    /// move to the new one.
    pub previous_secret_key: Option<SecretString>,
    /// `CHIMPSYNC_NEW_SECRET_KEY`: the secret `secret rotate` re-encrypts the keys for.
    pub new_secret_key: Option<SecretString>,
    /// `HOSTNAME`: who claims queue rows, with the process id.
    pub hostname: String,
    /// `LOG_FORMAT` and `RUST_LOG`.
    pub log: LogConfig,
}

/// How logs are written.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    /// `LOG_FORMAT`: `json`, `pretty`, or unset (JSON off a terminal).
    pub format: Option<String>,
    /// `RUST_LOG`: the filter (`info` when unset or invalid).
    pub filter: Option<String>,
}

/// A setting's value, or `None` when it is blank.
fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A secret setting, or `None` when it is blank.
fn set_secret(value: Option<SecretString>) -> Option<SecretString> {
    value.filter(|v| !v.expose_secret().trim().is_empty())
}

impl Config {
    /// The settings of the command line (each read from its flag or environment variable).
    pub fn from_settings(s: Settings) -> Config {
        Config {
            database_url: set_secret(s.database_url),
            api_key: set_secret(s.mailchimp_api_key),
            audience_id: set(s.mailchimp_audience_id),
            base_url: set(s.mailchimp_base_url),
            mapping_path: PathBuf::from(
                set(Some(s.mapping)).unwrap_or_else(|| defaults::MAPPING_FILE.into()),
            ),
            http_addr: set(Some(s.http_addr)).unwrap_or_else(|| defaults::HTTP_ADDR.into()),
            webhook_addr: set(s.webhook_addr),
            webhook_secret: set_secret(s.webhook_secret)
                .map(|s| SecretString::from(s.expose_secret().trim())),
            secret_key: set_secret(s.secret_key),
            previous_secret_key: set_secret(s.previous_secret_key),
            new_secret_key: set_secret(s.new_secret_key),
            hostname: s.hostname,
            log: LogConfig {
                format: set(s.log_format),
                filter: set(s.log_filter),
            },
        }
    }

    /// `DATABASE_URL`, or an error saying how to set it.
    pub fn database_url(&self) -> Result<&str> {
        self.database_url
            .as_ref()
            .map(|url| url.expose_secret())
            .ok_or_else(|| {
                Failure::Config
                    .error("DATABASE_URL is not set (e.g. postgres://user@host:5432/db)")
                    .into()
            })
    }

    /// The mapping file, parsed and validated.
    pub fn mapping(&self) -> Result<Mapping> {
        let path = &self.mapping_path;
        let text = std::fs::read_to_string(path).with_context(|| {
            Failure::Config.error(format!(
                "cannot read the mapping file {} (set CHIMPSYNC_CONFIG)",
                path.display()
            ))
        })?;
        Mapping::parse(&text).map_err(|e| {
            Failure::Config
                .error(format!("{}: {e}", path.display()))
                .into()
        })
    }

    /// The audience id: `MAILCHIMP_AUDIENCE_ID`, else `[audience].id`.
    pub fn audience_id(&self, mapping: &Mapping) -> Result<String> {
        self.audience_id
            .clone()
            .or_else(|| mapping.audience.id.clone())
            .ok_or_else(|| {
                Failure::Config
                    .error("no audience: set MAILCHIMP_AUDIENCE_ID or [audience].id in the mapping file")
                    .into()
            })
    }

    /// A Mailchimp client from `MAILCHIMP_API_KEY` and `MAILCHIMP_BASE_URL`.
    pub fn client(&self, timeouts: &Timeouts) -> Result<Client> {
        let Some(key) = &self.api_key else {
            bail!(Failure::Config.error(
                "MAILCHIMP_API_KEY is not set (the key looks like <32 hex>-<dc>, e.g. ...-us6)"
            ));
        };
        let key = ApiKey::parse(key.expose_secret())
            .map_err(|e| Failure::Config.error(format!("MAILCHIMP_API_KEY: {e}")))?;
        let mut config = ClientConfig::new(key);
        config.base_url = self.base_url.clone();
        config.connect_timeout = timeouts.connect;
        config.request_timeout = timeouts.request;
        Client::new(config).map_err(|e| anyhow!("Mailchimp client: {e}"))
    }

    /// `CHIMPSYNC_SECRET_KEY`, read, or an error saying how to make one.
    pub fn secret_key(&self) -> Result<SecretKey> {
        read_secret(
            "CHIMPSYNC_SECRET_KEY",
            self.secret_key.as_ref(),
            "multi-account mode ([source].account) encrypts account API keys for it; \
             `chimpsync secret generate` makes one",
        )
    }

    /// `CHIMPSYNC_NEW_SECRET_KEY`, read (for `secret rotate`).
    pub fn new_secret_key(&self) -> Result<SecretKey> {
        read_secret(
            "CHIMPSYNC_NEW_SECRET_KEY",
            self.new_secret_key.as_ref(),
            "`secret rotate` re-encrypts the account API keys for it; \
             `chimpsync secret generate` makes one",
        )
    }

    /// The secrets that decrypt account API keys: `CHIMPSYNC_SECRET_KEY` and, when set,
    /// `CHIMPSYNC_PREVIOUS_SECRET_KEY`.
    pub fn key_ring(&self) -> Result<KeyRing> {
        let previous = match &self.previous_secret_key {
            Some(text) => Some(SecretKey::from_env_text(text.expose_secret()).map_err(|e| {
                Failure::Config.error(format!("CHIMPSYNC_PREVIOUS_SECRET_KEY: {e}"))
            })?),
            None => None,
        };
        Ok(KeyRing::new(self.secret_key()?, previous))
    }

    /// Who claims queue rows: `<HOSTNAME>/<pid>` (`sync_queue.lease_owner`).
    pub fn worker_owner(&self) -> String {
        worker::settings::owner(Some(&self.hostname))
    }
}

/// A secret key setting, parsed; the errors name the setting and never show its value.
fn read_secret(name: &str, value: Option<&SecretString>, why: &str) -> Result<SecretKey> {
    let Some(text) = value else {
        bail!(Failure::Config.error(format!("{name} is not set: {why}")));
    };
    SecretKey::from_env_text(text.expose_secret())
        .map_err(|e| Failure::Config.error(format!("{name}: {e}")).into())
}

/// `seconds` as a duration, or an error naming the setting.
pub fn seconds(name: &str, seconds: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        Failure::Config
            .error(format!(
                "{name}: {seconds} is not a valid number of seconds"
            ))
            .into()
    })
}

/// HTTP timeouts of the Mailchimp client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP/TLS connect.
    pub connect: Duration,
    /// Whole request.
    pub request: Duration,
}

impl Timeouts {
    /// From seconds, checked.
    pub fn from_seconds(connect: f64, request: f64) -> Result<Timeouts> {
        Ok(Timeouts {
            connect: seconds("connect timeout", connect)?,
            request: seconds("request timeout", request)?,
        })
    }
}

impl Default for Timeouts {
    /// The defaults, for the commands that take no timeout options.
    fn default() -> Timeouts {
        Timeouts::from_seconds(
            defaults::CONNECT_TIMEOUT_SECONDS,
            defaults::REQUEST_TIMEOUT_SECONDS,
        )
        .expect("the default timeouts are valid")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    /// `chimpsync ARGS status`: the command line's Debug text, and the settings.
    fn parse(args: &[&str]) -> (String, Config) {
        let argv = std::iter::once("chimpsync").chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv.chain(["status"])).expect("parses");
        (format!("{cli:?}"), Config::from_settings(cli.settings))
    }

    const PLANTED: &[&str] = &[
        "--database-url",
        "postgres://app:pw-PLANTED-1@db.internal:5432/shop",
        "--mailchimp-api-key",
        "0123456789abcdefPLANTED23456789ab-us6",
        "--webhook-secret",
        "  hook-PLANTED-0123456789  ",
        "--mailchimp-audience-id",
        "a1b2c3d4e5",
        "--secret-key",
        "secret-PLANTED-current",
        "--previous-secret-key",
        "secret-PLANTED-previous",
        "--new-secret-key",
        "secret-PLANTED-new",
    ];

    #[test]
    fn debug_shows_no_secret() {
        let (cli, config) = parse(PLANTED);
        let shown = format!("{config:?} {config:#?} {cli:?}");
        assert!(!shown.contains("PLANTED"), "{shown}");
        assert!(shown.contains("a1b2c3d4e5"), "{shown}");
        assert_eq!(
            config.database_url().unwrap(),
            "postgres://app:pw-PLANTED-1@db.internal:5432/shop"
        );
        let secret = config.webhook_secret.as_ref().unwrap().expose_secret();
        assert_eq!(secret, "hook-PLANTED-0123456789");
        let previous = config.previous_secret_key.as_ref().unwrap().expose_secret();
        assert_eq!(previous, "secret-PLANTED-previous");
        // An unusable secret is refused by name, without its value.
        for error in [
            config.secret_key().unwrap_err().to_string(),
            config.new_secret_key().unwrap_err().to_string(),
            config.key_ring().unwrap_err().to_string(),
        ] {
            assert!(!error.contains("PLANTED"), "{error}");
            assert!(error.contains("SECRET_KEY:"), "{error}");
        }
    }

    #[test]
    fn blank_settings_are_unset_and_defaults_apply() {
        let blank: Vec<&str> = [
            "--database-url",
            "--mailchimp-api-key",
            "--webhook-secret",
            "--secret-key",
            "--previous-secret-key",
            "--config",
            "--http-addr",
            "--webhook-addr",
        ]
        .iter()
        .flat_map(|flag| [*flag, " "])
        .collect();
        let (_, config) = parse(&blank);
        assert!(config.database_url().is_err());
        assert!(config.api_key.is_none() && config.webhook_secret.is_none());
        assert!(config.secret_key.is_none() && config.previous_secret_key.is_none());
        let error = config.secret_key().unwrap_err().to_string();
        assert!(error.contains("CHIMPSYNC_SECRET_KEY is not set"), "{error}");
        assert_eq!(config.mapping_path, PathBuf::from(defaults::MAPPING_FILE));
        assert_eq!(config.http_addr, defaults::HTTP_ADDR);
        assert!(config.webhook_addr.is_none());
    }
}
