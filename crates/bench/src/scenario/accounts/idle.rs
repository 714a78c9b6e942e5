//! Many accounts, M3: what idle accounts cost the claim. 10 accounts with due rows (1,000
//! customers each, queued by `chimpsync backfill`); the claim the worker makes
//! ([`store::Queue::for_accounts`], `claim_batch` of 500: pick the accounts waiting longest,
//! then claim their rows) is timed in-process, each claim given back at once (`release`) so every
//! claim finds the same queue. Three phases, the same number of claims each, the queue vacuumed
//! before each:
//! - the 10 accounts alone;
//! - with 10,000 enabled accounts in all, the other 9,990 with nothing queued;
//! - the same, each idle account with one queued row that is not due (waiting a day, as after
//!   a failed attempt).
//!
//! No goal: the mean and p99 per claim and their ratio to the 10-account phase.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use super::{connect, customers, install, sql, Account};
use crate::env::{Bench, BenchDb};
use crate::report::{percentile, thousands, Report, Row};
use crate::scenario::Sizes;

/// Accounts with due rows.
const BUSY: u64 = 10;
/// Customers of each of them.
const BUSY_CUSTOMERS: u64 = 1_000;
/// Rows per claim (the worker's default batch).
const BATCH: i64 = 500;
/// Claims before each phase's timed ones (prepared statement, caches).
const WARM_UP: usize = 10;

/// Claim times of one phase, seconds.
struct Phase {
    mean: f64,
    p99: f64,
}

impl Phase {
    fn describe(&self) -> String {
        format!(
            "mean {:.2} ms, p99 {:.2} ms",
            self.mean * 1000.0,
            self.p99 * 1000.0
        )
    }
}

/// Runs the scenario.
pub async fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) -> Result<()> {
    let (total, claims) = (sizes.idle_accounts, sizes.idle_claims);
    let idle_n = total.saturating_sub(BUSY);
    eprintln!(
        "== M3: the claim with {} enabled accounts of which {BUSY} have due rows, against {BUSY} accounts",
        thousands(total)
    );
    let db = bench.database("accounts_idle").await?;
    db.customers_from(&customers(
        1,
        BUSY * BUSY_CUSTOMERS,
        BUSY_CUSTOMERS,
        "busy-",
    ))
    .await?;
    // The emulator is never called: the claims run in-process, nothing is sent.
    let emulator = bench.emulator(0, None).await?;
    let chimpsync = install(bench, &db, &emulator).await?;
    connect(&db, &Account::many("busy-", BUSY, 1)).await?;
    chimpsync.run(&["backfill"]).await?;
    let pool = store::pool(&db.url, 2, Duration::from_secs(60))?;
    let queue = store::Queue::for_accounts(pool);

    let alone = phase(&db, &queue, claims).await?;
    let idle = Account::many("idle-", idle_n, BUSY + 1);
    let started = Instant::now();
    connect(&db, &idle).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    let empty = phase(&db, &queue, claims).await?;
    // One customer per idle account: its trigger queues a row, which then waits a day.
    db.client()
        .await?
        .batch_execute(&customers(BUSY * BUSY_CUSTOMERS + 1, idle_n, 1, "idle-"))
        .await?;
    db.client()
        .await?
        .execute(sql::BACKOFF, &[&"idle-"])
        .await?;
    let waiting = phase(&db, &queue, claims).await?;

    let ratio = |p: &Phase| p.mean / alone.mean;
    let baseline = format!("{BUSY} accounts in all: {}", alone.describe());
    report.rows.push(Row::info(
        "M3",
        format!(
            "claim of {BATCH} (pick the account, claim its rows), {} enabled accounts of which {BUSY} have due rows, the others nothing queued; vs {BUSY} accounts in all",
            thousands(total)
        ),
        empty.describe(),
        baseline.clone(),
        Some(ratio(&empty)),
    ));
    report.rows.push(Row::info(
        "M3",
        format!(
            "the same, each of the {} idle accounts with one queued row not due (retry in a day)",
            thousands(idle_n)
        ),
        waiting.describe(),
        baseline,
        Some(ratio(&waiting)),
    ));
    report.note(format!(
        "M3 {claims} timed claims per phase (after {WARM_UP} untimed), each of up to {BATCH} rows and given back at once; ratio = mean / mean of the {BUSY}-account phase; p99 ratios {:.2} and {:.2}; connecting {} accounts took {connect_secs:.1} s",
        empty.p99 / alone.p99,
        waiting.p99 / alone.p99,
        thousands(idle_n)
    ));
    emulator.stop().await;
    db.finish().await
}

/// Times `claims` claims (after a warm-up), each released at once.
async fn phase(db: &BenchDb, queue: &store::Queue, claims: usize) -> Result<Phase> {
    db.client().await?.batch_execute(sql::VACUUM_QUEUE).await?;
    let mut times = Vec::with_capacity(claims);
    for i in 0..WARM_UP + claims {
        let started = Instant::now();
        let claim = queue
            .claim_batch("chimpsync-bench", BATCH, Duration::from_secs(60), None)
            .await?;
        let took = started.elapsed().as_secs_f64();
        ensure!(
            !claim.rows.is_empty() && claim.rows.iter().all(|r| r.account.starts_with("busy-")),
            "a claim found no due rows of a busy account (accounts {:?})",
            claim
                .rows
                .iter()
                .map(|r| r.account.as_str())
                .collect::<Vec<_>>()
        );
        let ids: Vec<i64> = claim.rows.iter().map(|r| r.id).collect();
        queue.release(claim.token, &ids).await?;
        if i >= WARM_UP {
            times.push(took);
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    Ok(Phase {
        mean,
        p99: percentile(&times, 99.0),
    })
}
