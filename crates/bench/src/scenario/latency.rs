//! Scenario 5: latency from commit to acknowledgement at a steady 500 changes/s, emulator at
//! 20 ms. The worker (`chimpsync run`, its own process) runs throughout. The load: each change
//! is one UPDATE of a different, already synced customer, committed on its own, paced over 5
//! connections. The observer reads the queue every 10 ms: a customer's row disappears only
//! after Mailchimp acknowledged the change and the worker deleted it, so "commit returned" to
//! "row gone" is the latency (over-estimated by up to one observer period).
//! Goals: p50 <= 200 ms, p99 <= 1 s.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};

use super::{mib, Sizes};
use crate::env::{sql, terminate, Bench, Chimpsync, CpuMark};
use crate::report::{percentile, thousands, Report, Row};

const RATE: u64 = 500;
const LATENCY_MS: u64 = 20;
const CONNECTIONS: u64 = 5;
const OBSERVE_EVERY: Duration = Duration::from_millis(10);

/// Runs the scenario.
pub async fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) -> Result<()> {
    let changes = RATE * sizes.latency_seconds;
    eprintln!(
        "== 5: commit-to-ack latency at {RATE} changes/s for {} s, emulator {LATENCY_MS} ms",
        sizes.latency_seconds
    );
    let db = bench.database("latency").await?;
    db.customers(changes).await?;
    let emulator = bench.emulator(LATENCY_MS, Some(10)).await?;
    let http = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let mut chimpsync =
        Chimpsync::new(bench, &db, Some(&emulator.base_url)).env("CHIMPSYNC_HTTP_ADDR", &http);
    if let Ok(ms) = std::env::var("CHIMPSYNC_POLL_INTERVAL_MS") {
        chimpsync = chimpsync.env("CHIMPSYNC_POLL_INTERVAL_MS", ms);
    }
    chimpsync.run(&["setup"]).await?;
    chimpsync.run(&["backfill"]).await?;
    let worker = chimpsync.spawn(&["run"])?;

    // The initial sync first: the measured changes are edits of existing contacts.
    let deadline = Instant::now() + Duration::from_secs(120);
    while db.queued().await? > 0 {
        ensure!(Instant::now() < deadline, "the initial sync did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mark = CpuMark::now(bench);
    let worker_cpu = worker.cpu();
    let emulator_cpu = emulator.cpu();
    let load_started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let client = db.client().await?;
        let committed = committed.clone();
        writers.spawn(async move {
            let statement = client.prepare(sql::SINGLE_UPDATE).await?;
            let every = Duration::from_secs_f64(CONNECTIONS as f64 / RATE as f64);
            // Spread the connections' ticks over one period.
            let first = tokio::time::Instant::now() + every.mul_f64(c as f64 / CONNECTIONS as f64);
            let mut tick = tokio::time::interval_at(first, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut id = c as i64 + 1;
            while id <= changes as i64 {
                tick.tick().await;
                client
                    .execute(&statement, &[&id, &format!("changed-{id}")])
                    .await?;
                committed
                    .lock()
                    .expect("committed")
                    .insert(id.to_string(), Instant::now());
                id += CONNECTIONS as i64;
            }
            anyhow::Ok(())
        });
    }

    let observer = db.client().await?;
    let keys = observer.prepare(sql::QUEUE_KEYS).await?;
    let mut latencies: Vec<f64> = Vec::with_capacity(changes as usize);
    let mut load_done = None;
    let give_up = Instant::now() + Duration::from_secs(sizes.latency_seconds + 120);
    loop {
        let looked = Instant::now();
        let present: HashSet<String> = observer
            .query(&keys, &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        {
            let mut committed = committed.lock().expect("committed");
            committed.retain(|key, at| {
                // Only changes committed before this look began are visible to it.
                if *at < looked && !present.contains(key) {
                    latencies.push((looked - *at).as_secs_f64());
                    false
                } else {
                    true
                }
            });
        }
        while let Some(done) = writers.try_join_next() {
            done??;
        }
        if writers.is_empty() && load_done.is_none() {
            load_done = Some(load_started.elapsed());
        }
        if load_done.is_some() && committed.lock().expect("committed").is_empty() {
            break;
        }
        if Instant::now() > give_up {
            bail!(
                "{} changes were not acknowledged in time",
                committed.lock().expect("committed").len()
            );
        }
        tokio::time::sleep_until((looked + OBSERVE_EVERY).into()).await;
    }
    let split = mark
        .split(
            bench,
            vec![
                ("worker", worker.cpu() - worker_cpu),
                ("emulator", emulator.cpu() - emulator_cpu),
            ],
        )
        .await;
    terminate(worker.pid).await;
    let worker = worker.finish().await?;
    ensure!(
        latencies.len() as u64 == changes,
        "observed {} of {changes} changes",
        latencies.len()
    );
    latencies.sort_by(f64::total_cmp);
    let ms = |p: f64| percentile(&latencies, p) * 1000.0;
    let (p50, p99, max) = (ms(50.0), ms(99.0), ms(100.0));
    let load = load_done.unwrap_or_default().as_secs_f64();
    report.rows.push(Row::goal(
        "5",
        format!("commit -> ack latency p50, {RATE} changes/s, emulator {LATENCY_MS} ms"),
        format!("{p50:.0} ms"),
        "<= 200 ms",
        200.0 / p50,
    ));
    report.rows.push(Row::goal(
        "5",
        format!("commit -> ack latency p99, {RATE} changes/s, emulator {LATENCY_MS} ms"),
        format!("{p99:.0} ms"),
        "<= 1000 ms",
        1000.0 / p99,
    ));
    report.note(format!(
        "5 {} changes in {load:.1} s ({:.0}/s offered), max latency {max:.0} ms, p90 {:.0} ms; worker poll interval {}; worker peak RSS {:.1} MiB",
        thousands(changes),
        changes as f64 / load,
        ms(90.0),
        std::env::var("CHIMPSYNC_POLL_INTERVAL_MS")
            .map(|ms| format!("{ms} ms"))
            .unwrap_or_else(|_| "the default (200 ms)".into()),
        mib(worker.peak_rss_kib),
    ));
    report.note(format!("5 under load {}", split.describe()));
    emulator.stop().await;
    db.finish().await
}
