//! Many accounts, M2: fairness. Account A runs Sync Contacts of 1M customers
//! (`chimpsync.sync_contacts`, served by the running worker: its backfill, then draining) while
//! 200 other accounts, already synced, each make live changes, 200 changes/s in all, emulator at
//! 20 ms (a cap of 10 connections per key). The worker (`chimpsync run`, its own process) runs
//! throughout. The live load starts once A's customers are being queued and stops when A's
//! queue is empty, or after at most `fair_seconds` (then A's figure is what it got acknowledged
//! in that time). A change is one UPDATE of a customer of a live account (each customer changed
//! once), committed on its own, paced over 5 connections and spread over the accounts. Its
//! latency runs from the return of its commit to the acknowledgement recorded for it
//! (`synced_contacts.synced_at`, the time of the statement that deleted its queue row), read
//! once the load is over: an observer polling the queue, as scenario 5's does, costs Postgres
//! in proportion to the changes not yet acknowledged, which is large exactly when the worker
//! falls behind. Goal: p99 <= 1 s. Also reported: A's throughput meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};

use super::{check_members, connect, customers, install, pairs, sql, Account};
use crate::env::{sql as bench_sql, terminate, Bench, CpuMark};
use crate::report::{percentile, thousands, Report, Row};
use crate::scenario::{mib, per_second, Sizes};

const LATENCY_MS: u64 = 20;
const CAP: usize = 10;
const CONNECTIONS: u64 = 5;
/// How often A's progress is read (two index probes).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The changes made: (account, customer key, when its commit returned as epoch seconds).
type Committed = Arc<Mutex<Vec<(String, String, f64)>>>;

/// Runs the scenario.
pub async fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) -> Result<()> {
    let (big_n, live_n, rate) = (sizes.fair_big, sizes.fair_live_accounts, sizes.fair_rate);
    // Enough customers that each is changed once at most.
    let per_live = (sizes.fair_seconds * rate).div_ceil(live_n) + 1;
    eprintln!(
        "== M2: {} accounts making {rate} changes/s while one runs Sync Contacts of {} customers, emulator {LATENCY_MS} ms",
        thousands(live_n),
        thousands(big_n)
    );
    let db = bench.database("accounts_fairness").await?;
    db.customers_from(&format!(
        "{}\n{}",
        customers(1, big_n, big_n, "big-"),
        customers(big_n + 1, live_n * per_live, per_live, "live-")
    ))
    .await?;
    let big = Account::new("big-", 0, 1);
    let live = Account::many("live-", live_n, 2);
    let mut all = vec![big.clone()];
    all.extend(live.iter().cloned());
    let emulator = bench
        .emulator_with(LATENCY_MS, Some(CAP), &pairs(&all))
        .await?;
    let http = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let chimpsync = install(bench, &db, &emulator)
        .await?
        .env("CHIMPSYNC_HTTP_ADDR", &http);
    connect(&db, &all).await?;
    let client = db.client().await?;
    let live_names: Vec<String> = live.iter().map(|a| a.name.clone()).collect();
    debug_assert_eq!(live_names.first().map(String::as_str), Some("live-00000"));
    client.execute(sql::SYNC_CONTACTS, &[&live_names]).await?;
    let worker = chimpsync.spawn(&["run"])?;

    // The live accounts' own Sync Contacts first: the measured changes are edits of contacts.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let requests: i64 = client.query_one(sql::REQUESTS, &[]).await?.get(0);
        if requests == 0 && db.queued().await? == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the live accounts' initial sync did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mark = CpuMark::now(bench);
    let (worker_cpu, emulator_cpu) = (worker.cpu(), emulator.cpu());
    let requested = Instant::now();
    client
        .execute(sql::SYNC_CONTACTS, &[&vec![big.name.clone()]])
        .await?;
    let progress = client.prepare(sql::PROGRESS).await?;
    // The load starts when the worker has begun queueing A's customers.
    loop {
        let r = client.query_one(&progress, &[&big.name]).await?;
        if r.get::<_, bool>("queued") || !r.get::<_, bool>("requested") {
            break;
        }
        ensure!(
            requested.elapsed() < Duration::from_secs(60),
            "the worker did not start A's Sync Contacts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load_started = Instant::now();
    let queueing_began = requested.elapsed();
    let stop = Arc::new(AtomicBool::new(false));
    let committed: Committed = Arc::new(Mutex::new(Vec::new()));
    let mut writers = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let writer = Writer {
            client: db.client().await?,
            committed: committed.clone(),
            stop: stop.clone(),
            first_id: big_n as i64 + 1,
            accounts: live_n as i64,
            per_account: per_live as i64,
        };
        writers.spawn(writer.run(c, rate));
    }

    let (mut served, mut done) = (None, None);
    let longest = Duration::from_secs(sizes.fair_seconds);
    while done.is_none() && load_started.elapsed() < longest {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let r = client.query_one(&progress, &[&big.name]).await?;
        let (waiting, queued) = (r.get::<_, bool>("requested"), r.get::<_, bool>("queued"));
        if !waiting && served.is_none() {
            served = Some(requested.elapsed());
        }
        if !waiting && !queued {
            done = Some(requested.elapsed());
        }
        if writers.is_empty() {
            break;
        }
        while let Some(finished) = writers.try_join_next() {
            finished??;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let load_secs = load_started.elapsed().as_secs_f64();
    let big_synced = client
        .query_one(sql::SYNCED, &[&big.name])
        .await?
        .get::<_, i64>(0) as u64;
    while let Some(finished) = writers.join_next().await {
        finished??;
    }

    // Every change acknowledged, then each one's latency.
    let (accounts, keys, times) = {
        let committed = committed.lock().expect("committed");
        let mut columns = (Vec::new(), Vec::new(), Vec::new());
        for (account, key, at) in committed.iter() {
            columns.0.push(account.clone());
            columns.1.push(key.clone());
            columns.2.push(*at);
        }
        columns
    };
    let acked = client.prepare(sql::ACKED).await?;
    let give_up = Instant::now() + Duration::from_secs(300);
    let mut latencies: Vec<f64> = loop {
        let rows = client.query(&acked, &[&accounts, &keys, &times]).await?;
        let seen: Vec<f64> = rows
            .iter()
            .filter_map(|r| r.get::<_, Option<f64>>(0))
            .collect();
        if seen.len() == rows.len() {
            break seen;
        }
        if Instant::now() > give_up {
            bail!(
                "{} of {} live changes were not acknowledged within 300 s of the load's end",
                rows.len() - seen.len(),
                rows.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
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
    // The stopped worker has recorded every acknowledgement of A it got (or given the rows
    // back): A's audience holds what synced_contacts says, each live audience its customers.
    let big_members: i64 = client.query_one(sql::SYNCED, &[&big.name]).await?.get(0);
    check_members(&emulator, &all, |a| {
        if a.name == big.name {
            big_members as u64
        } else {
            per_live
        }
    })
    .await?;
    ensure!(
        done.is_none() || big_members as u64 == big_n,
        "A's Sync Contacts finished with {big_members} of {big_n} contacts acknowledged"
    );
    ensure!(!latencies.is_empty(), "no live change was made");

    latencies.sort_by(f64::total_cmp);
    let ms = |p: f64| percentile(&latencies, p) * 1000.0;
    let (p50, p99) = (ms(50.0), ms(99.0));
    let changes = latencies.len();
    let what = format!(
        "{} accounts' live changes ({rate}/s in all) while another account runs Sync Contacts of {} customers: commit -> ack latency",
        thousands(live_n),
        thousands(big_n)
    );
    report.rows.push(Row::goal(
        "M2",
        format!("{what} p99, emulator {LATENCY_MS} ms"),
        format!("{p99:.0} ms"),
        "<= 1000 ms",
        1000.0 / p99,
    ));
    report.rows.push(Row::info(
        "M2",
        format!("{what} p50"),
        format!("{p50:.0} ms"),
        "scenario 5's goal: <= 200 ms",
        Some(200.0 / p50),
    ));
    let big_what = match done {
        Some(done) => format!(
            "all {} in {:.1} s from its first queued row",
            thousands(big_n),
            (done - queueing_began).as_secs_f64()
        ),
        None => format!(
            "{} of {} in the {load_secs:.0} s of load, unfinished",
            thousands(big_synced),
            thousands(big_n)
        ),
    };
    let big_secs = done.map_or(load_secs, |d| (d - queueing_began).as_secs_f64());
    let big_rows = if done.is_some() { big_n } else { big_synced };
    report.rows.push(Row::info(
        "M2",
        format!(
            "meanwhile: the Sync Contacts of {} customers, acknowledged per second",
            thousands(big_n)
        ),
        format!("{} ({big_what})", per_second(big_rows as f64 / big_secs)),
        "",
        None,
    ));
    report.note(format!(
        "M2 {} live changes in {load_secs:.1} s ({:.0}/s offered), p90 {:.0} ms, max {:.0} ms; after A's request the worker began queueing its customers at {:.1} s (it looks for requests every 5 s), had queued them all at {}, and A's queue was {}; the load ran while A's Sync Contacts did, at most {} s; worker peak RSS {:.1} MiB",
        thousands(changes as u64),
        changes as f64 / load_secs,
        ms(90.0),
        ms(100.0),
        queueing_began.as_secs_f64(),
        served.map_or("no time".into(), |s| format!("{:.1} s", s.as_secs_f64())),
        done.map_or("not empty yet".into(), |d| format!("empty at {:.1} s", d.as_secs_f64())),
        sizes.fair_seconds,
        mib(worker.peak_rss_kib),
    ));
    report.note(format!("M2 from the request on {}", split.describe()));
    emulator.stop().await;
    db.finish().await
}

/// One connection of the live load.
struct Writer {
    client: tokio_postgres::Client,
    committed: Committed,
    stop: Arc<AtomicBool>,
    first_id: i64,
    accounts: i64,
    per_account: i64,
}

impl Writer {
    /// Commits changes at `rate / CONNECTIONS` per second until told to stop or every customer
    /// was changed once: change k (this connection's k = c, c + CONNECTIONS, ...) edits a
    /// customer of live account k mod accounts, so consecutive changes go to different accounts.
    async fn run(self, c: u64, rate: u64) -> Result<()> {
        let statement = self.client.prepare(bench_sql::SINGLE_UPDATE).await?;
        let every = Duration::from_secs_f64(CONNECTIONS as f64 / rate as f64);
        // Spread the connections' ticks over one period.
        let first = tokio::time::Instant::now() + every.mul_f64(c as f64 / CONNECTIONS as f64);
        let mut tick = tokio::time::interval_at(first, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut k = c as i64;
        while !self.stop.load(Ordering::Relaxed) && k < self.accounts * self.per_account {
            tick.tick().await;
            let account = k % self.accounts;
            let nth = k / self.accounts;
            let id = self.first_id + account * self.per_account + nth;
            self.client
                .execute(&statement, &[&id, &format!("changed-{k}")])
                .await?;
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs_f64();
            self.committed.lock().expect("committed").push((
                format!("live-{account:05}"),
                id.to_string(),
                at,
            ));
            k += CONNECTIONS as i64;
        }
        Ok(())
    }
}
