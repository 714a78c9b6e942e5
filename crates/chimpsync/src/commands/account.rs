//! `chimpsync account`: the Mailchimp accounts of multi-account mode, through the same SQL
//! functions a settings page calls. API keys go into the database as text and are encrypted
//! there for the key-encryption key; this command never prints one (only its last 4).

use std::io::BufRead;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use store::accounts::{self, AccountSummary, Connect};

use crate::cli::{AccountAddArgs, AccountCommand, AccountSetArgs};
use crate::config::Config;
use crate::db;
use crate::exit::Failure;

/// Runs an `account` subcommand.
pub async fn run(config: &Config, command: AccountCommand) -> Result<()> {
    let client = db::connect(config).await?;
    if !accounts::accounts_installed(&client).await? {
        bail!(
            "schema chimpsync has no accounts table: run `chimpsync setup` (with a mapping that \
             names [source].account and CHIMPSYNC_SECRET_KEY set)"
        );
    }
    match command {
        AccountCommand::Add(args) => add(config, &client, args).await,
        AccountCommand::Set(args) => set(&client, args).await,
        AccountCommand::Disable { account } => {
            accounts::set_enabled(&client, &account, false).await?;
            println!("account {account}: sync switched off; its queue keeps its rows");
            Ok(())
        }
        AccountCommand::Enable { account } => {
            accounts::set_enabled(&client, &account, true).await?;
            println!("account {account}: sync switched on; what changed meanwhile is sent");
            Ok(())
        }
        AccountCommand::Remove { account } => {
            accounts::remove(&client, &account).await?;
            println!(
                "account {account} removed with its queue rows, synced contacts and webhook \
                 events (its audience in Mailchimp is left alone)"
            );
            Ok(())
        }
        AccountCommand::List { json } => list(&client, json).await,
    }
}

/// The key: one line of stdin, or `from_env` (`MAILCHIMP_API_KEY`); checked for the
/// `<key>-<dc>` shape.
fn api_key(from_env: Option<&SecretString>, stdin: bool) -> Result<SecretString> {
    let key = if stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the API key from stdin")?;
        let key = SecretString::from(line.trim());
        // The line's buffer held the key too.
        secrecy::zeroize::Zeroize::zeroize(&mut line);
        key
    } else {
        from_env.cloned().ok_or_else(|| {
            anyhow!(
                "no API key: set MAILCHIMP_API_KEY or pass --api-key-stdin and write it on stdin"
            )
        })?
    };
    if key.expose_secret().is_empty() {
        bail!(Failure::Config.error("the API key is empty"));
    }
    mailchimp::ApiKey::parse(key.expose_secret()).map_err(|e| anyhow!("the API key: {e}"))?;
    Ok(key)
}

async fn add(config: &Config, client: &tokio_postgres::Client, args: AccountAddArgs) -> Result<()> {
    let key = api_key(config.api_key.as_ref(), args.api_key_stdin)?;
    let options = Connect {
        account: &args.account,
        audience_id: Some(&args.audience),
        enabled: !args.disabled,
        sync_contacts: args.sync_contacts,
    };
    accounts::connect(client, options, key.expose_secret()).await?;
    println!(
        "account {} connected to audience {} with key {} ({}){}",
        args.account,
        args.audience,
        last4(key.expose_secret()),
        if args.disabled {
            "switched off"
        } else {
            "active"
        },
        if args.sync_contacts {
            "; its customers are queued"
        } else {
            ""
        }
    );
    Ok(())
}

async fn set(client: &tokio_postgres::Client, args: AccountSetArgs) -> Result<()> {
    if args.audience.is_none() && !args.api_key_stdin {
        bail!(Failure::Usage.error("nothing to change: pass --audience ID and/or --api-key-stdin"));
    }
    let key = if args.api_key_stdin {
        // `account set` takes a new key only from stdin: MAILCHIMP_API_KEY is often set for
        // other commands and must not replace an account's key by accident.
        Some(api_key(None, true)?)
    } else {
        None
    };
    accounts::update(
        client,
        &args.account,
        args.audience.as_deref(),
        key.as_ref().map(|k| k.expose_secret()),
    )
    .await?;
    let mut changed = Vec::new();
    if let Some(audience) = &args.audience {
        changed.push(format!("audience {audience}"));
    }
    if let Some(key) = &key {
        changed.push(format!("key {}", last4(key.expose_secret())));
    }
    println!("account {} updated: {}", args.account, changed.join(", "));
    Ok(())
}

/// `…abcd`: the last 4 characters, as `account list` shows a key.
fn last4(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

pub(super) fn time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

async fn list(client: &tokio_postgres::Client, json: bool) -> Result<()> {
    let accounts = accounts::list(client)
        .await
        .context("reading chimpsync.account_summary")?;
    if json {
        let value: Vec<serde_json::Value> = accounts.iter().map(to_json).collect();
        println!("{}", serde_json::Value::Array(value));
        return Ok(());
    }
    if accounts.is_empty() {
        println!("no accounts (connect one: chimpsync account add ACCOUNT --audience ID)");
        return Ok(());
    }
    let rows: Vec<[String; 9]> = accounts
        .iter()
        .map(|a| {
            [
                a.account.clone(),
                a.state.clone(),
                a.state_reason.clone().unwrap_or_default(),
                a.audience_id.clone().unwrap_or_default(),
                a.api_key_last4
                    .as_deref()
                    .map(|k| format!("…{k}"))
                    .unwrap_or_default(),
                a.pending.to_string(),
                a.retrying.to_string(),
                a.parked.to_string(),
                time(a.last_synced_at).unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    let header = [
        "ACCOUNT",
        "STATE",
        "REASON",
        "AUDIENCE",
        "KEY",
        "PENDING",
        "RETRYING",
        "PARKED",
        "LAST SYNCED",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    if accounts.iter().any(|a| a.state == "unknown") {
        println!(
            "\nstate unknown: customers name the account but it is not connected; their rows \
             wait (chimpsync account add ACCOUNT --audience ID)"
        );
    }
    Ok(())
}

/// An account as `account list --json` and `status --json` show it (the key as its last 4).
pub(super) fn to_json(a: &AccountSummary) -> serde_json::Value {
    serde_json::json!({
        "account": a.account,
        "state": a.state,
        "reason": a.state_reason,
        "enabled": a.enabled,
        "audience_id": a.audience_id,
        "api_key": a.api_key_last4.as_deref().map(|k| format!("…{k}")),
        "pending": a.pending,
        "in_flight": a.in_flight,
        "retrying": a.retrying,
        "parked": a.parked,
        "held": a.held,
        "last_synced_at": time(a.last_synced_at),
        "paused_until": time(a.paused_until),
        "sync_requested_at": time(a.sync_requested_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_shows_as_its_last_four_characters() {
        assert_eq!(last4("0123456789abcdef0123456789abcdef-us21"), "…us21");
        assert_eq!(last4("ab"), "…ab");
    }
}
