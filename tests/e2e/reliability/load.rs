//! Load: changes from 16 concurrent writers while 3 worker processes (the real binary) drain
//! with Mailchimp faults on. The CI size runs in seconds; `CHIMPSYNC_SOAK=1` runs the full
//! 200,000 changes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use chimpsync_tests::{Fixture, MAPPING};
use mailchimp_emulator::Config;
use tokio_util::sync::CancellationToken;

use super::{
    count, doubled_contacts, journal_acks, run_writer, stopped_counts, unacknowledged_deletes,
    wait_drained, Scenario, Spawned, WriterPlan, WriterStats,
};

/// How big a run is.
struct Size {
    name: &'static str,
    /// Changes in all: the initial insert of `customers` rows plus the writers' statements.
    changes: u64,
    customers: i64,
    writers: u64,
    workers: usize,
    /// How long the queue may take to drain after the last write.
    drain: Duration,
}

fn size() -> Size {
    if std::env::var_os("CHIMPSYNC_SOAK").is_some_and(|v| !v.is_empty() && v != "0") {
        Size {
            name: "soak (CHIMPSYNC_SOAK=1)",
            changes: 200_000,
            customers: 20_000,
            writers: 16,
            workers: 3,
            drain: Duration::from_secs(1800),
        }
    } else {
        Size {
            name: "CI size",
            changes: 8_000,
            customers: 1_000,
            writers: 16,
            workers: 3,
            drain: Duration::from_secs(120),
        }
    }
}

const FAIL_RATE: f64 = 0.05;
const DROP_RATE: f64 = 0.02;
/// One change in this many sets an address Mailchimp refuses (to be parked).
const BAD_EVERY: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_16_writers_drained_by_3_workers_with_faults_lose_nothing() -> Result<()> {
    let size = size();
    let mut record = Scenario::new(
        "load",
        "reliability::load::changes_from_16_writers_drained_by_3_workers_with_faults_lose_nothing",
        size.name,
    )
    .tried(&format!(
        "{} changes: {} customers inserted, then {} writers (one connection each, no pause) \
         insert, edit, rename, re-consent, re-tag, soft- and hard-delete random customers (1 change \
         in {BAD_EVERY} sets an invalid address); meanwhile {} `chimpsync run` processes (10 \
         slots shared, batches of 500) drain against Mailchimp answering {:.0} % of writes with \
         503 and dropping the answer of {:.0} % after applying them",
        size.changes,
        size.customers,
        size.writers,
        size.workers,
        FAIL_RATE * 100.0,
        DROP_RATE * 100.0
    ))
    .asserted(
        "0 lost (audience = table), 0 unacknowledged deletes, 0 doubled contacts; only invalid \
         addresses parked; every worker exits 0 on SIGTERM",
    );
    let f = Fixture::with(
        MAPPING,
        Config {
            fail_rate: FAIL_RATE,
            drop_rate: DROP_RATE,
            latency: Duration::from_millis(5),
            seed: 2026,
            ..Default::default()
        },
    )
    .await?;
    journal_acks(&f).await?;
    let workers: Vec<Spawned> = (0..size.workers)
        .map(|_| {
            let mut cmd = f.command(&["run"])?;
            cmd.env("CHIMPSYNC_REQUEST_TIMEOUT_SECONDS", "10")
                .env("CHIMPSYNC_LEASE_SECONDS", "30")
                .env("CHIMPSYNC_POLL_INTERVAL_MS", "100")
                // A fifth of the random changes remove a customer, within seconds: a mass removal
                // the guard would rightly hold for a person. This scenario measures the drain.
                .env("CHIMPSYNC_HOLD_REMOVALS_PERCENT", "100");
            Spawned::start(cmd)
        })
        .collect::<Result<_>>()?;

    let started = Instant::now();
    f.insert_customers(size.customers, 1).await?;
    let writes = Arc::new(WriterStats::default());
    let budget = size.changes - size.customers as u64;
    let writers: Vec<_> = (0..size.writers)
        .map(|i| {
            tokio::spawn(run_writer(
                f.db.url.clone(),
                WriterPlan {
                    seed: 1000 + i,
                    ids: size.customers + size.customers / 10,
                    changes: budget,
                    bad_every: BAD_EVERY,
                    pace: Duration::ZERO,
                    survive_outages: false,
                },
                writes.clone(),
                CancellationToken::new(),
            ))
        })
        .collect();
    for w in writers {
        w.await??;
    }
    let written = started.elapsed();
    let changes = writes.changes.load(Ordering::Relaxed) + size.customers as u64;
    wait_drained(&f, size.drain).await?;
    let drained = started.elapsed();

    let mut acked = 0;
    let mut retried = 0;
    let mut peaks = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        peaks.push(w.peak_rss_kib().unwrap_or(0));
        let (exit, log) = w.terminate()?;
        // Kept for a post-mortem (not rendered).
        let dir = chimpsync_tests::reliability::results_dir();
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("load-worker-{i}.log")), &log)?;
        ensure!(exit.success(), "a worker did not stop cleanly: {exit}");
        let stopped = stopped_counts(&log).unwrap_or_default();
        acked += stopped["acked"].as_u64().unwrap_or(0);
        retried += stopped["retried"].as_u64().unwrap_or(0);
    }

    let lost = f.differences().await?;
    let unacked = unacknowledged_deletes(&f).await?;
    let doubled = doubled_contacts(&f).await?;
    let parked = f.queue.summary().await?.parked;
    let parked_for_other_reasons = count(
        &f,
        "select count(*) from chimpsync.sync_queue where parked_at is not null
         and last_error not like '%valid email address%'",
    )
    .await?;
    let deletes = count(&f, "select count(*) from reliability.acked").await?;
    let stats = f.emulator.stats();
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);

    record.figure("changes written", changes);
    record.figure("customers", size.customers);
    record.figure(
        "writers / worker processes",
        format!("{} / {}", size.writers, size.workers),
    );
    record.figure("seconds writing", format!("{:.1}", written.as_secs_f64()));
    record.figure(
        "seconds until drained (from the first write)",
        format!("{:.1}", drained.as_secs_f64()),
    );
    record.figure(
        "changes per second, end to end",
        (changes as f64 / drained.as_secs_f64()).round() as u64,
    );
    record.figure("rows acknowledged (workers)", acked);
    record.figure("queue rows deleted on acknowledgement", deletes);
    record.figure("row retries", retried);
    record.figure("rows parked (invalid addresses)", parked);
    record.figure("rows lost", lost.len() as u64);
    record.figure("unacknowledged deletes", unacked.len() as u64);
    record.figure("doubled contacts", doubled.len() as u64);
    record.figure("Mailchimp requests", stats.requests);
    record.figure("answered 503", stats.failed);
    record.figure("answers dropped after applying", stats.dropped);
    record.figure("member writes", stats.member_writes);
    record.figure("duplicated writes", stats.unchanged_member_writes);
    record.figure(
        "peak worker memory, MiB (VmHWM)",
        peaks
            .iter()
            .map(|k| mib(*k))
            .collect::<Vec<_>>()
            .join(" / "),
    );

    ensure!(lost.is_empty(), "lost: {:#?}", &lost[..lost.len().min(20)]);
    ensure!(
        unacked.is_empty(),
        "{:#?}",
        &unacked[..unacked.len().min(20)]
    );
    ensure!(
        doubled.is_empty(),
        "{:#?}",
        &doubled[..doubled.len().min(20)]
    );
    ensure!(
        parked_for_other_reasons == 0,
        "only invalid addresses are parked"
    );
    ensure!(
        acked >= deletes as u64,
        "every delete is an acknowledgement: {acked} acked, {deletes} deleted"
    );
    ensure!(
        stats.failed > 0 && stats.dropped > 0,
        "faults were on: {stats:?}"
    );
    record.save()?;
    f.finish().await
}
