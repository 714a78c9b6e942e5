//! Many accounts, M1: the initial sync at scale. 1,000 accounts of 1,000 customers each (1M
//! rows), every account with its own key and audience (emulator at 0 ms, a cap of 10
//! connections per key), connected through `chimpsync.connect_account`; then `chimpsync
//! backfill` and `chimpsync run --once` until the queue is empty. Against the same 1M customers
//! synced in single-account mode side by side in the same run (the same steps, one audience).
//! Goal: at least 80 % of the single-account rate. Checked: every audience holds its account's
//! customers.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use super::{check_members, connect, customers, install, pairs, Account};
use crate::env::{Bench, Chimpsync, AUDIENCE};
use crate::report::{thousands, Report, Row};
use crate::scenario::{mib, per_second, Sizes};
use crate::sys::CpuSplit;

/// The share of the single-account rate the goal asks for.
const GOAL_SHARE: f64 = 0.8;
/// The emulator's cap per key, Mailchimp's own.
const CAP: usize = 10;
/// Account names.
const PREFIX: &str = "acct-";

/// One initial sync: backfill, then drain.
struct Sync {
    backfill: Duration,
    drain: Duration,
    worker_rss_kib: u64,
    drain_split: CpuSplit,
}

impl Sync {
    fn total(&self) -> f64 {
        (self.backfill + self.drain).as_secs_f64()
    }
}

/// Runs the scenario.
pub async fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) -> Result<()> {
    let (accounts, each) = (sizes.accounts, sizes.account_customers);
    let n = accounts * each;
    eprintln!(
        "== M1: initial sync of {} accounts x {} customers, against one account",
        thousands(accounts),
        thousands(each)
    );
    let fill = customers(1, n, each, PREFIX);
    let single = single(bench, &fill, n).await?;
    let (many, connect_secs) = many(bench, &fill, accounts, each).await?;

    let (rate_single, rate_many) = (n as f64 / single.total(), n as f64 / many.total());
    let share = rate_many / rate_single;
    report.rows.push(Row::goal(
        "M1",
        format!(
            "initial sync, {} accounts x {} customers (each its own key and audience), backfill then drain to empty (emulator 0 ms), vs the same {} customers in one account",
            thousands(accounts),
            thousands(each),
            thousands(n)
        ),
        format!(
            "{:.1} s ({}) vs {:.1} s ({}) = {:.1} %",
            many.total(),
            per_second(rate_many),
            single.total(),
            per_second(rate_single),
            share * 100.0
        ),
        format!(
            ">= {:.0} % of the single-account rate",
            GOAL_SHARE * 100.0
        ),
        share / GOAL_SHARE,
    ));
    report.rows.push(Row::info(
        "M1",
        format!(
            "initial sync of {} accounts: worker peak RSS, vs one account",
            thousands(accounts)
        ),
        format!(
            "{:.1} MiB vs {:.1} MiB",
            mib(many.worker_rss_kib),
            mib(single.worker_rss_kib)
        ),
        "one account",
        Some(many.worker_rss_kib as f64 / single.worker_rss_kib.max(1) as f64),
    ));
    for (what, sync) in [("one account", &single), ("many accounts", &many)] {
        report.note(format!(
            "M1 {what}: backfill {:.1} s ({}), drain {:.1} s ({})",
            sync.backfill.as_secs_f64(),
            per_second(n as f64 / sync.backfill.as_secs_f64()),
            sync.drain.as_secs_f64(),
            per_second(n as f64 / sync.drain.as_secs_f64()),
        ));
        report.note(format!("M1 {what}: drain {}", sync.drain_split.describe()));
    }
    report.note(format!(
        "M1 connecting {} accounts (`chimpsync.connect_account`, each key encrypted by pgcrypto) took {connect_secs:.1} s",
        thousands(accounts)
    ));
    Ok(())
}

/// The initial sync of `n` customers into one audience.
async fn single(bench: &Bench, fill: &str, n: u64) -> Result<Sync> {
    let db = bench.database("accounts_single").await?;
    db.customers_from(fill).await?;
    let emulator = bench.emulator(0, Some(CAP)).await?;
    let chimpsync = Chimpsync::new(bench, &db, Some(&emulator.base_url));
    chimpsync.run(&["setup"]).await?;
    let backfill = chimpsync.run(&["backfill"]).await?;
    let (drain, drain_split) = chimpsync
        .run_split(&["run", "--once"], "worker", &emulator)
        .await?;
    let members = emulator.members(AUDIENCE).await?;
    let left = db.queued().await?;
    ensure!(
        members == n && left == 0,
        "single-account sync incomplete: {members} members of {n}, {left} rows left in the queue"
    );
    emulator.stop().await;
    db.finish().await?;
    Ok(Sync {
        backfill: backfill.wall,
        drain: drain.wall,
        worker_rss_kib: drain.peak_rss_kib,
        drain_split,
    })
}

/// The initial sync of `accounts` accounts of `each` customers; and how long connecting them
/// took.
async fn many(bench: &Bench, fill: &str, accounts: u64, each: u64) -> Result<(Sync, f64)> {
    let db = bench.database("accounts_scale").await?;
    db.customers_from(fill).await?;
    let list = Account::many(PREFIX, accounts, 1);
    let emulator = bench.emulator_with(0, Some(CAP), &pairs(&list)).await?;
    let chimpsync = install(bench, &db, &emulator).await?;
    let started = Instant::now();
    connect(&db, &list).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    let backfill = chimpsync.run(&["backfill"]).await?;
    let (drain, drain_split) = chimpsync
        .run_split(&["run", "--once"], "worker", &emulator)
        .await?;
    let left = db.queued().await?;
    ensure!(left == 0, "{left} rows left in the queue after the drain");
    check_members(&emulator, &list, |_| each).await?;
    emulator.stop().await;
    db.finish().await?;
    Ok((
        Sync {
            backfill: backfill.wall,
            drain: drain.wall,
            worker_rss_kib: drain.peak_rss_kib,
            drain_split,
        },
        connect_secs,
    ))
}
