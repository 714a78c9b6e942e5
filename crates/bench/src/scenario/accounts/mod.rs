//! The scenarios of multi-account mode (`[source] account = "store"`): the initial sync of many
//! accounts against one account's ([`scale`]), live changes of many accounts while one account
//! runs Sync Contacts ([`fairness`]), and what idle accounts cost a claim ([`idle`]).
//!
//! Every account has its own API key and audience, served by the emulator binary as its own
//! Mailchimp account (`--account KEY=AUDIENCE`), and is connected through
//! `chimpsync.connect_account`, as an application's settings page does. The keys are encrypted
//! for a secret made by `chimpsync secret generate`, which `setup` and `run` are given.

pub mod fairness;
pub mod idle;
pub mod scale;

use std::sync::OnceLock;

use anyhow::{ensure, Context, Result};

use crate::env::{Bench, BenchDb, Chimpsync, EmulatorProc, MAPPING};

/// This module's SQL (benchmark code, in `crates/bench/sql/`).
pub mod sql {
    /// Customers of numbered accounts: `{{first}}`, `{{count}}`, `{{per_account}}`, `{{prefix}}`.
    pub const CUSTOMERS: &str = include_str!("../../../sql/accounts_customers.sql");
    /// `chimpsync.connect_account` of each (account, audience, key).
    pub const CONNECT: &str = include_str!("../../../sql/accounts_connect.sql");
    /// `chimpsync.sync_contacts` of each account.
    pub const SYNC_CONTACTS: &str = include_str!("../../../sql/accounts_sync_contacts.sql");
    /// The fairness scenario: each change's time to its acknowledgement.
    pub const ACKED: &str = include_str!("../../../sql/accounts_acked.sql");
    /// The acknowledged contacts of one account.
    pub const SYNCED: &str = include_str!("../../../sql/accounts_synced.sql");
    /// One account's Sync Contacts: requested still, rows queued.
    pub const PROGRESS: &str = include_str!("../../../sql/accounts_progress.sql");
    /// Sync Contacts requests not served yet.
    pub const REQUESTS: &str = include_str!("../../../sql/accounts_requests.sql");
    /// Puts the queue rows of some accounts a day into the future.
    pub const BACKOFF: &str = include_str!("../../../sql/accounts_backoff.sql");
    /// The index on (account column, key column) the operations guide advises.
    pub const CUSTOMER_INDEX: &str = include_str!("../../../sql/accounts_customer_index.sql");
    /// Vacuums the queue and the accounts.
    pub const VACUUM_QUEUE: &str = include_str!("../../../sql/accounts_vacuum_queue.sql");
}

/// One Mailchimp account of a scenario.
#[derive(Debug, Clone)]
pub struct Account {
    /// The account column's value (`store`).
    pub name: String,
    /// Its own API key.
    pub key: String,
    /// Its own audience.
    pub audience: String,
}

impl Account {
    /// Account `i` of those named `prefix`: named as [`sql::CUSTOMERS`] names them; `serial`
    /// (unique within a scenario) makes its key and audience.
    pub fn new(prefix: &str, i: u64, serial: u64) -> Account {
        Account {
            name: format!("{prefix}{i:05}"),
            key: format!("{serial:032x}-us{}", 1 + serial % 20),
            audience: format!("aud{serial:07}"),
        }
    }

    /// `count` accounts named `prefix`, serials from `first_serial`.
    pub fn many(prefix: &str, count: u64, first_serial: u64) -> Vec<Account> {
        (0..count)
            .map(|i| Account::new(prefix, i, first_serial + i))
            .collect()
    }
}

/// The statements that add `count` customers from id `first`, `per_account` to each account
/// named `prefix` (numbered from 0).
pub fn customers(first: u64, count: u64, per_account: u64, prefix: &str) -> String {
    sql::CUSTOMERS
        .replace("{{first}}", &first.to_string())
        .replace("{{count}}", &count.to_string())
        .replace("{{per_account}}", &per_account.to_string())
        .replace("{{prefix}}", prefix)
}

/// The bench's mapping with the account column: one account per `store`.
fn mapping() -> String {
    MAPPING.replace(
        "filter  = \"deleted_at is null\"",
        "filter  = \"deleted_at is null\"\naccount = \"store\"",
    )
}

/// A new `CHIMPSYNC_SECRET_KEY` from `chimpsync secret generate`, one per bench run (an RSA key
/// takes seconds to make in a debug build).
async fn secret(bench: &Bench) -> Result<String> {
    static SECRET: OnceLock<String> = OnceLock::new();
    if let Some(s) = SECRET.get() {
        return Ok(s.clone());
    }
    let out = tokio::process::Command::new(&bench.chimpsync)
        .args(["secret", "generate"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running chimpsync secret generate")?;
    ensure!(
        out.status.success(),
        "chimpsync secret generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?.trim().to_owned();
    Ok(SECRET.get_or_init(|| text).clone())
}

/// Makes `db` a multi-account installation: the mapping with the account column, `setup` with
/// a key-encryption secret, and the customer table's index on (account, key) that the
/// operations guide advises. Returns the `chimpsync` command with that secret.
async fn install<'a>(
    bench: &'a Bench,
    db: &'a BenchDb,
    emulator: &EmulatorProc,
) -> Result<Chimpsync<'a>> {
    std::fs::write(&db.mapping_path, mapping())?;
    let chimpsync = Chimpsync::new(bench, db, Some(&emulator.base_url))
        .env("CHIMPSYNC_SECRET_KEY", secret(bench).await?);
    chimpsync.run(&["setup"]).await?;
    db.client()
        .await?
        .batch_execute(sql::CUSTOMER_INDEX)
        .await?;
    Ok(chimpsync)
}

/// Connects `accounts` through `chimpsync.connect_account`, a thousand per statement.
async fn connect(db: &BenchDb, accounts: &[Account]) -> Result<()> {
    let client = db.client().await?;
    for chunk in accounts.chunks(1000) {
        let names: Vec<&str> = chunk.iter().map(|a| a.name.as_str()).collect();
        let audiences: Vec<&str> = chunk.iter().map(|a| a.audience.as_str()).collect();
        let keys: Vec<&str> = chunk.iter().map(|a| a.key.as_str()).collect();
        client
            .execute(sql::CONNECT, &[&names, &audiences, &keys])
            .await
            .context("connecting accounts")?;
    }
    Ok(())
}

/// The emulator's (key, audience) pairs of `accounts`.
fn pairs(accounts: &[Account]) -> Vec<(String, String)> {
    accounts
        .iter()
        .map(|a| (a.key.clone(), a.audience.clone()))
        .collect()
}

/// Checks that each account's audience holds `want(account)` members, asking the emulator with
/// that account's key (a few requests at a time).
async fn check_members(
    emulator: &EmulatorProc,
    accounts: &[Account],
    want: impl Fn(&Account) -> u64,
) -> Result<()> {
    let mut wrong = Vec::new();
    for chunk in accounts.chunks(16) {
        let mut asked = tokio::task::JoinSet::new();
        for a in chunk {
            let client = emulator.client_for(&a.key)?;
            let (a, want) = (a.clone(), want(a));
            asked.spawn(async move {
                let page = client
                    .list_members(
                        &a.audience,
                        &mailchimp::ListMembers {
                            count: 1,
                            ..Default::default()
                        },
                    )
                    .await?;
                anyhow::Ok((a.name, page.total_items, want))
            });
        }
        while let Some(done) = asked.join_next().await {
            let (name, got, want) = done??;
            if got != want {
                wrong.push(format!("{name}: {got} of {want}"));
            }
        }
    }
    ensure!(
        wrong.is_empty(),
        "{} of {} audiences do not hold their account's customers ({})",
        wrong.len(),
        accounts.len(),
        wrong.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
