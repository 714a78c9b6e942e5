//! Scenario 2: the Mailchimp-bound drain. The emulator answers after 250 ms and refuses more
//! than 10 requests at once; with 500 members per batch the ceiling is 10 x 500 / 0.25 s =
//! 20k contacts/s. Goal: >= 90 % of it.

use anyhow::{ensure, Result};

use super::{per_second, Sizes};
use crate::env::{Bench, Chimpsync, AUDIENCE};
use crate::report::{thousands, Report, Row};

const LATENCY_MS: u64 = 250;
const CAP: usize = 10;
const CEILING: f64 = CAP as f64 * 500.0 / (LATENCY_MS as f64 / 1000.0);

/// Runs the scenario.
pub async fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) -> Result<()> {
    let n = sizes.bound_changes;
    eprintln!(
        "== 2: Mailchimp-bound drain of {} changes at {LATENCY_MS} ms",
        thousands(n)
    );
    let db = bench.database("mailchimp_bound").await?;
    db.customers(n).await?;
    let emulator = bench.emulator(LATENCY_MS, Some(CAP)).await?;
    let chimpsync = Chimpsync::new(bench, &db, Some(&emulator.base_url));
    chimpsync.run(&["setup"]).await?;
    chimpsync.run(&["backfill"]).await?;

    let (drain, split) = chimpsync
        .run_split(&["run", "--once"], "worker", &emulator)
        .await?;
    let members = emulator.members(AUDIENCE).await?;
    ensure!(members == n, "drain incomplete: {members} members of {n}");
    let stats = emulator.stats().await?;

    let rate = n as f64 / drain.wall.as_secs_f64();
    let share = rate / CEILING;
    report.rows.push(Row::goal(
        "2",
        format!(
            "Mailchimp-bound drain, {} changes, emulator {LATENCY_MS} ms, cap {CAP}",
            thousands(n)
        ),
        format!(
            "{} ({:.1} % of the 20k/s ceiling)",
            per_second(rate),
            share * 100.0
        ),
        ">= 90 % of ceiling (18k/s)",
        share / 0.9,
    ));
    report.note(format!(
        "2 drain {:.2} s; emulator: {} requests, {} throttled (429), max {} in flight; worker peak RSS {:.1} MiB",
        drain.wall.as_secs_f64(),
        stats["requests"],
        stats["throttled"],
        stats["max_in_flight"],
        super::mib(drain.peak_rss_kib),
    ));
    // What a request costs beyond its latency inside the emulator itself: reading and applying
    // the batch and writing the answer, including the wait for the emulator's one state lock
    // (requests that finish their latency together are applied one after the other).
    let requests = stats["requests"].as_f64().unwrap_or(0.0);
    let busy = stats["busy_nanos"].as_f64().unwrap_or(0.0) / 1e9;
    if requests > 0.0 {
        let extra = busy / requests;
        let latency = LATENCY_MS as f64 / 1000.0;
        let ceiling = CAP as f64 * 500.0 / (latency + extra);
        report.note(format!(
            "2 each request spent {:.1} ms in the emulator after its {LATENCY_MS} ms (applying the batch, writing the answer, waiting for the state lock); with that, 10 slots carry at most {} = {:.1} % of the nominal ceiling, and the drain reached {:.1} % of that",
            extra * 1000.0,
            per_second(ceiling),
            ceiling / CEILING * 100.0,
            rate / ceiling * 100.0
        ));
    }
    report.note(format!("2 drain {}", split.describe()));
    emulator.stop().await;
    db.finish().await
}
