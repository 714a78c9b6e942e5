//! `chimpsync status`: the queue at a glance, and with many accounts each account's.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use store::accounts::{self, AccountSummary};

use super::account::to_json;
use crate::config::Config;
use crate::db;

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Prints `chimpsync.queue_summary` as a table, or as one JSON object.
pub async fn run(config: &Config, json: bool) -> Result<()> {
    let queue = db::queue(config, 1).await?;
    let summary = queue
        .summary()
        .await
        .context("reading chimpsync.queue_summary (has `chimpsync setup` run?)")?;
    let client = queue.pool().get().await?;
    let accounts = accounts_of(&client).await?;
    let drift = match store::drift::read(&client).await {
        Ok(drift) => drift,
        Err(e) => {
            eprintln!("cannot read the mapping drift: {e}");
            store::drift::Drift::default()
        }
    };
    if json {
        let value = serde_json::json!({
            "pending": summary.pending,
            "in_flight": summary.in_flight,
            "retrying": summary.retrying,
            "parked": summary.parked,
            "oldest_pending_seconds": summary.oldest_pending_seconds,
            "last_synced_at": summary.last_synced_at.map(time),
            "held": summary.held,
            "held_reason": summary.held_reason,
            "mapping_drift": drift.problem,
            "held_changes": drift.held,
        });
        let mut value = value;
        if !accounts.is_empty() {
            value["accounts"] = accounts.iter().map(to_json).collect();
        }
        println!("{value}");
        return Ok(());
    }
    println!("pending                 {}", summary.pending);
    println!("in flight               {}", summary.in_flight);
    println!("retrying                {}", summary.retrying);
    println!("parked                  {}", summary.parked);
    println!(
        "oldest pending          {:.0} s",
        summary.oldest_pending_seconds
    );
    println!(
        "last synced             {}",
        summary
            .last_synced_at
            .map(time)
            .unwrap_or_else(|| "never".into())
    );
    if summary.held > 0 {
        println!(
            "held removals           {} ({})",
            summary.held,
            summary
                .held_reason
                .as_deref()
                .unwrap_or("no reason recorded")
        );
    }
    if !accounts.is_empty() {
        println!("accounts                {}", count_by_state(&accounts));
        let unknown: Vec<&str> = accounts
            .iter()
            .filter(|a| a.state == "unknown")
            .map(|a| a.account.as_str())
            .collect();
        if !unknown.is_empty() {
            // The first few names: `account list` has them all.
            let mut names = unknown
                .iter()
                .take(UNKNOWN_NAMED)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if unknown.len() > UNKNOWN_NAMED {
                names.push_str(", …");
            }
            println!(
                "not served              {} ({names}): customers name them, no account is connected; their rows wait",
                unknown.len(),
            );
        }
    }
    if let Some(reason) = drift.reason() {
        println!("\nDRIFT   {reason}");
    }
    if summary.parked > 0 {
        println!("\nparked rows wait for `chimpsync retry --all` (or a new change of the customer); why:");
        println!("  select id, customer_key, last_error from chimpsync.sync_queue where parked_at is not null;");
    }
    if summary.held > 0 {
        println!("\nheld removals are not sent: if the customers were removed on purpose, `chimpsync release-removals --all`;");
        println!("if by mistake, restore them (their changes cancel the hold). The rows:");
        println!("  select id, customer_key, held_at, held_reason from chimpsync.sync_queue where held_at is not null;");
    }
    Ok(())
}

/// The accounts of multi-account mode (`chimpsync.account_summary`); none when the schema has
/// no accounts table.
async fn accounts_of(client: &tokio_postgres::Client) -> Result<Vec<AccountSummary>> {
    if !accounts::accounts_installed(client).await? {
        return Ok(Vec::new());
    }
    accounts::list(client)
        .await
        .context("reading chimpsync.account_summary")
}

/// `3 active, 1 needs_attention`: the accounts chimpsync serves, by state.
fn count_by_state(accounts: &[AccountSummary]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in accounts.iter().filter(|a| a.state != "unknown") {
        *counts.entry(a.state.as_str()).or_default() += 1;
    }
    if counts.is_empty() {
        return "none connected".into();
    }
    counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many of the accounts no one serves the table names.
const UNKNOWN_NAMED: usize = 10;

/// How many state changes `status --account` shows.
const RECENT_EVENTS: i64 = 10;

/// `status --account`: one account's state, audience, key (last 4), queue, last sync and recent
/// state changes.
pub async fn account(config: &Config, account: &str, json: bool) -> Result<()> {
    let client = db::connect(config).await?;
    if !accounts::accounts_installed(&client).await? {
        bail!("schema chimpsync has no accounts table (is the mapping multi-account, and has `chimpsync setup` run?)");
    }
    let Some(a) = accounts::list(&client)
        .await
        .context("reading chimpsync.account_summary")?
        .into_iter()
        .find(|a| a.account == account)
    else {
        bail!("no account {account:?}: no customer names it and it is not connected (see `chimpsync account list`)");
    };
    let events = accounts::events(&client, account, RECENT_EVENTS).await?;
    if json {
        let mut value = to_json(&a);
        value["events"] = events
            .iter()
            .map(|e| serde_json::json!({"at": time(e.at), "state": e.state, "reason": e.reason}))
            .collect();
        println!("{value}");
        return Ok(());
    }
    let or = |v: Option<String>, none: &str| v.unwrap_or_else(|| none.to_string());
    println!("account                 {}", a.account);
    match &a.state_reason {
        Some(reason) => println!("state                   {} ({reason})", a.state),
        None => println!("state                   {}", a.state),
    }
    println!(
        "audience                {}",
        or(a.audience_id.clone(), "none")
    );
    println!(
        "key                     {}",
        or(a.api_key_last4.as_deref().map(|k| format!("…{k}")), "none")
    );
    println!("pending                 {}", a.pending);
    println!("in flight               {}", a.in_flight);
    println!("retrying                {}", a.retrying);
    println!("parked                  {}", a.parked);
    println!("held removals           {}", a.held);
    println!(
        "last synced             {}",
        or(a.last_synced_at.map(time), "never")
    );
    if let Some(t) = a.paused_until {
        println!("throttled until         {}", time(t));
    }
    if let Some(t) = a.sync_requested_at {
        println!("sync contacts requested {}", time(t));
    }
    if a.state == "unknown" {
        println!("\ncustomers name this account but it is not connected; their rows wait (chimpsync account add {account} --audience ID)");
    }
    if !events.is_empty() {
        println!("\nrecent state changes (newest first):");
        for e in &events {
            match &e.reason {
                Some(reason) => println!("  {}  {}  {reason}", time(e.at), e.state),
                None => println!("  {}  {}", time(e.at), e.state),
            }
        }
    }
    Ok(())
}
