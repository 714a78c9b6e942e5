//! Scenario 1: the initial sync, emulator at 0 ms (cap 10 connections, Mailchimp's own), both
//! binaries as their own processes. Goals: <= 60 s end to end for 1M customers, worker peak RSS
//! <= 64 MiB. Measured twice, each time into an empty audience:
//! - one step after the other: `chimpsync backfill`, then `chimpsync run --once` until the queue
//!   is empty;
//! - as deployed: the worker (`chimpsync run`, a Deployment) is already running when the
//!   operator runs `chimpsync backfill`, and drains while the backfill fills; the clock stops
//!   when the backfill has finished and the queue is empty.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use super::{mib, per_second, Sizes};
use crate::env::{queued, sql, terminate, Bench, BenchDb, Chimpsync, CpuMark, AUDIENCE};
use crate::report::{thousands, Report, Row};

/// The seconds the goal allows for 1,000,000 customers (16.7k contacts/s).
const GOAL_SECONDS_PER_MILLION: f64 = 60.0;
/// The worker's memory goal.
const GOAL_RSS_MIB: f64 = 64.0;

/// Runs the scenario.
pub async fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) -> Result<()> {
    let n = sizes.initial_customers;
    eprintln!("== 1: initial sync of {} customers", thousands(n));
    let db = bench.database("initial_sync").await?;
    db.customers(n).await?;
    let emulator = bench.emulator(0, Some(10)).await?;
    let chimpsync = Chimpsync::new(bench, &db, Some(&emulator.base_url));
    chimpsync.run(&["setup"]).await?;

    let (backfill, backfill_split) = chimpsync
        .run_split(&["backfill"], "backfill", &emulator)
        .await?;
    let (drain, drain_split) = chimpsync
        .run_split(&["run", "--once"], "worker", &emulator)
        .await?;
    let total = backfill.wall + drain.wall;

    let members = emulator.members(AUDIENCE).await?;
    let left = db.queued().await?;
    ensure!(
        members == n && left == 0,
        "initial sync incomplete: {members} members of {n}, {left} rows left in the queue"
    );

    let goal = GOAL_SECONDS_PER_MILLION * n as f64 / 1_000_000.0;
    goal_rows(
        report,
        n,
        goal,
        total.as_secs_f64(),
        format!(
            "initial sync, {} customers, one step after the other: backfill, then drain to empty (emulator 0 ms)",
            thousands(n)
        ),
        ("initial sync: worker (`chimpsync run`) peak RSS", drain.peak_rss_kib),
    );
    report.note(format!(
        "1 initial sync: backfill {:.1} s ({}), drain {:.1} s ({}); backfill peak RSS {:.1} MiB, emulator peak RSS {:.0} MiB",
        backfill.wall.as_secs_f64(),
        per_second(n as f64 / backfill.wall.as_secs_f64()),
        drain.wall.as_secs_f64(),
        per_second(n as f64 / drain.wall.as_secs_f64()),
        mib(backfill.peak_rss_kib),
        mib(emulator.peak_rss_kib()),
    ));
    report.note(format!("1 backfill {}", backfill_split.describe()));
    report.note(format!("1 drain {}", drain_split.describe()));
    emulator.stop().await;

    overlapped(bench, &db, n, goal, report).await?;
    with_groups(bench, &db, n, total.as_secs_f64(), report).await?;
    db.finish().await
}

/// The one-step-after-the-other initial sync again, into an empty audience, with two interest
/// categories mapped (`INTEREST_GROUPS`: the pet type, its interests created as the first rows
/// need them, and two newsletters): side by side with `without` (seconds) of the same run.
async fn with_groups(
    bench: &Bench,
    db: &BenchDb,
    n: u64,
    without: f64,
    report: &mut Report,
) -> Result<()> {
    db.client().await?.batch_execute(sql::RESET_QUEUE).await?;
    let mapping =
        std::fs::read_to_string(&db.mapping_path)? + chimpsync_demo::fixture::INTEREST_GROUPS;
    let path = db.mapping_path.with_extension("groups.toml");
    std::fs::write(&path, mapping)?;
    let emulator = bench.emulator(0, Some(10)).await?;
    let chimpsync =
        Chimpsync::new(bench, db, Some(&emulator.base_url)).env("CHIMPSYNC_CONFIG", path.display());
    chimpsync.run(&["setup"]).await?;
    let (backfill, _) = chimpsync
        .run_split(&["backfill"], "backfill", &emulator)
        .await?;
    let (drain, drain_split) = chimpsync
        .run_split(&["run", "--once"], "worker", &emulator)
        .await?;
    let secs = backfill.wall.as_secs_f64() + drain.wall.as_secs_f64();
    let members = emulator.members(AUDIENCE).await?;
    ensure!(
        members == n && db.queued().await? == 0,
        "initial sync with interest groups incomplete: {members} members of {n}"
    );
    report.rows.push(Row::info(
        "1",
        format!(
            "initial sync, {} customers, with two interest categories mapped (one step after the other)",
            thousands(n)
        ),
        format!(
            "{secs:.1} s ({} contacts); without them {without:.1} s",
            per_second(n as f64 / secs)
        ),
        format!("{:.2}x the time without", secs / without),
        None,
    ));
    report.note(format!(
        "1 with interest groups: backfill {:.1} s, drain {:.1} s, worker peak RSS {:.1} MiB; drain {}",
        backfill.wall.as_secs_f64(),
        drain.wall.as_secs_f64(),
        mib(drain.peak_rss_kib),
        drain_split.describe()
    ));
    emulator.stop().await;
    Ok(())
}

/// The two goal rows of one way of running the initial sync of `n` customers: `secs` against
/// `goal` seconds, and the worker's peak RSS (labelled) against its goal.
fn goal_rows(
    report: &mut Report,
    n: u64,
    goal: f64,
    secs: f64,
    what: String,
    (rss_what, peak_rss_kib): (&str, u64),
) {
    report.rows.push(Row::goal(
        "1",
        what,
        format!("{secs:.1} s ({} contacts)", per_second(n as f64 / secs)),
        format!("<= {goal:.0} s (16.7k/s)"),
        goal / secs,
    ));
    let rss = mib(peak_rss_kib);
    report.rows.push(Row::goal(
        "1",
        rss_what,
        format!("{rss:.1} MiB"),
        format!("<= {GOAL_RSS_MIB:.0} MiB"),
        GOAL_RSS_MIB / rss,
    ));
}

/// The initial sync as deployed: the worker runs while the backfill fills the queue.
async fn overlapped(
    bench: &Bench,
    db: &BenchDb,
    n: u64,
    goal: f64,
    report: &mut Report,
) -> Result<()> {
    db.client().await?.batch_execute(sql::RESET_QUEUE).await?;
    let emulator = bench.emulator(0, Some(10)).await?;
    let http = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let chimpsync =
        Chimpsync::new(bench, db, Some(&emulator.base_url)).env("CHIMPSYNC_HTTP_ADDR", &http);
    let mark = CpuMark::now(bench);
    let emulator_cpu = emulator.cpu();
    let started = Instant::now();
    let worker = chimpsync.spawn(&["run"])?;
    let backfill = chimpsync.run(&["backfill"]).await?;
    let client = db.client().await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let left = queued(&client).await?;
        if left == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the queue did not drain: {left} left"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let split = mark
        .split(
            bench,
            vec![
                ("worker", worker.cpu()),
                ("backfill", backfill.cpu),
                ("emulator", emulator.cpu() - emulator_cpu),
            ],
        )
        .await;
    terminate(worker.pid).await;
    let worker = worker.finish().await?;
    let members = emulator.members(AUDIENCE).await?;
    ensure!(
        members == n,
        "initial sync incomplete: {members} members of {n}"
    );
    goal_rows(
        report,
        n,
        goal,
        secs,
        format!(
            "initial sync as deployed, {} customers: `backfill` while the worker runs, until the queue is empty",
            thousands(n)
        ),
        ("initial sync as deployed: worker peak RSS", worker.peak_rss_kib),
    );
    report.note(format!(
        "1 as deployed: backfill finished after {:.1} s, queue empty after {secs:.1} s",
        backfill.wall.as_secs_f64()
    ));
    report.note(format!("1 as deployed {}", split.describe()));
    emulator.stop().await;
    Ok(())
}
