//! Many accounts under crashes and faults: three accounts, two `chimpsync run` processes, live
//! changes (moves between accounts among them), Mailchimp failing and dropping answers, one
//! worker SIGKILLed again and again. Every account's audience must end equal to its customers,
//! no customer of one account in another's audience, and no key in any log line.

use std::time::Duration;

use anyhow::{ensure, Result};
use chimpsync_tests::{chimpsync_bin, wait_until};
use rand::{RngExt, SeedableRng};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use super::{Scenario, Spawned};
use crate::many_accounts::{mapping_text, Many, ACCOUNTS};

const SEED: u64 = 20_261_207;
const KILLS: usize = 6;

/// `chimpsync run` of the accounts, logging at debug level (a key must not appear even there).
fn run_command(m: &Many, mapping: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(chimpsync_bin());
    cmd.arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &m.db.url)
        .env("CHIMPSYNC_CONFIG", mapping)
        .env(
            "CHIMPSYNC_SECRET_KEY",
            m.secret.to_env_text().expose_secret(),
        )
        .env("MAILCHIMP_BASE_URL", m.emulator.base_url())
        .env("CHIMPSYNC_HTTP_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env(
            "RUST_LOG",
            "debug,tokio_postgres=info,hyper=info,hyper_util=info,reqwest=info,h2=info,pgp=debug",
        )
        .env("CHIMPSYNC_BATCH_SIZE", "40")
        .env("CHIMPSYNC_CONCURRENCY", "3")
        .env("CHIMPSYNC_LEASE_SECONDS", "5")
        .env("CHIMPSYNC_REQUEST_TIMEOUT_SECONDS", "2")
        .env("CHIMPSYNC_POLL_INTERVAL_MS", "50")
        .env("CHIMPSYNC_BACKOFF_BASE_SECONDS", "0.05")
        .env("CHIMPSYNC_BACKOFF_MAX_SECONDS", "0.2")
        .env("CHIMPSYNC_SHUTDOWN_DEADLINE_SECONDS", "5")
        // The demo table's removals come in bursts here; this scenario is about accounts.
        .env("CHIMPSYNC_HOLD_REMOVALS_PERCENT", "100");
    cmd
}

/// Changes customers until `stop`: names, consent, deletions, new customers, and moves to
/// another account.
async fn write(url: String, stop: CancellationToken) -> Result<u64> {
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    let mut changes = 0u64;
    let mut next_id = 5000i64;
    while !stop.is_cancelled() {
        let id = rng.random_range(1..=1500i64);
        let sql = match rng.random_range(0..10) {
            0..=3 => format!("update customers set first_name = 'W{changes}' where id = {id}"),
            4 => format!(
                "update customers set consent_contact = not consent_contact where id = {id}"
            ),
            5 | 6 => format!(
                "update customers set store = 'S{}' where id = {id}",
                rng.random_range(0..3)
            ),
            7 => format!("update customers set deleted_at = now() where id = {id}"),
            8 => format!("update customers set deleted_at = null where id = {id}"),
            _ => {
                next_id += 1;
                format!(
                    "insert into customers (id, email, first_name, store, consent_contact)
                     values ({next_id}, 'n{next_id}@pets.test', 'N', 'S{}', true)",
                    next_id % 3
                )
            }
        };
        client.batch_execute(&sql).await?;
        changes += 1;
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    Ok(changes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_accounts_two_workers_faults_and_sigkills_end_with_each_audience_its_customers(
) -> Result<()> {
    let mut record = Scenario::new(
        "accounts",
        "reliability::accounts::three_accounts_two_workers_faults_and_sigkills_end_with_each_audience_its_customers",
        "Three accounts, two workers, faults and SIGKILLs",
    )
    .tried(&format!(
        "3 accounts (one per store, each with its own key and audience), 1,500 customers; a \
         writer keeps renaming, re-consenting, deleting, restoring, adding customers and moving \
         them between accounts; Mailchimp fails 5 % and drops 3 % of writes, 20 ms latency; two \
         `chimpsync run` processes, one SIGKILLed {KILLS} times at seeded random moments and \
         restarted; then both drain and stop"
    ))
    .asserted(
        "each account's audience equals its customers (addresses, first names, statuses); no \
         member of an audience is a customer of another account; nothing parked; no log line of \
         either worker (at debug level) holds any account's API key",
    );
    let m = Many::new(mailchimp_emulator::Config {
        latency: Duration::from_millis(20),
        fail_rate: 0.05,
        drop_rate: 0.03,
        seed: SEED,
        ..Default::default()
    })
    .await?;
    m.insert_customers(1500, 1).await?;
    let mapping = std::env::temp_dir().join(format!("{}-accounts.toml", m.db.name));
    std::fs::write(&mapping, mapping_text())?;

    let stop = CancellationToken::new();
    let writer = tokio::spawn(write(m.db.url.clone(), stop.clone()));
    let steady = Spawned::start(run_command(&m, &mapping))?;
    let mut logs = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    for _ in 0..KILLS {
        let victim = Spawned::start(run_command(&m, &mapping))?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1500))).await;
        logs.push(victim.log());
        victim.kill()?;
    }
    stop.cancel();
    let changes = writer.await??;
    let last = Spawned::start(run_command(&m, &mapping))?;
    let drained = wait_until(
        Duration::from_secs(120),
        "every account drained",
        || async {
            let r = m
                .sql
                .query_one(
                    "select count(*) from chimpsync.sync_queue where parked_at is null",
                    &[],
                )
                .await?;
            Ok(r.get::<_, i64>(0) == 0)
        },
    )
    .await;
    if let Err(e) = drained {
        let log = last.log();
        let tail: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("\"DEBUG\""))
            .rev()
            .take(20)
            .collect();
        anyhow::bail!("{e}; the last worker's log ends:\n{}", tail.join("\n"));
    }
    for worker in [steady, last] {
        let (status, log) = worker.terminate()?;
        ensure!(status.success(), "a worker exited with {status}");
        logs.push(log);
    }
    let parked: i64 = m
        .sql
        .query_one(
            "select count(*) from chimpsync.sync_queue where parked_at is not null",
            &[],
        )
        .await?
        .get(0);
    ensure!(parked == 0, "{parked} rows parked");
    let diffs = m.differences().await?;
    ensure!(diffs.is_empty(), "differences: {diffs:#?}");
    let all_logs = logs.join("\n");
    for (_, key, _) in ACCOUNTS {
        let secret_part = key.split('-').next().unwrap_or(key);
        ensure!(
            !all_logs.contains(secret_part),
            "a log line holds an account's API key"
        );
    }
    let info_with_address = all_logs
        .lines()
        .filter(|l| l.contains("\"INFO\"") && l.contains("@pets.test"))
        .count();
    ensure!(
        info_with_address == 0,
        "{info_with_address} info lines hold an address"
    );
    record.figure("customer_changes", changes);
    record.figure("sigkills", KILLS as u64);
    record.figure("log_lines", all_logs.lines().count() as u64);
    record.figure("rows_parked", parked);
    record.figure("differences", diffs.len() as u64);
    record.save()?;
    m.db.finish().await
}
