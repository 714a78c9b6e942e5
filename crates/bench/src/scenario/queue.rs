//! Scenario 6: the queue machinery, ours against the naive outbox, side by side on the same
//! table and the same emulator (0 ms).
//!
//! - With Mailchimp calls (the goal): ours is the real engine in-process ([`worker::Worker::run`]
//!   with `once`: claim 500 under a lease, one batch upsert, fenced ack). The naive loop takes
//!   one row `for update skip locked`, sends it with a single-member PUT (without tags, so it
//!   does less than ours), deletes it and commits, the transaction open across the call.
//!   Goal: ours >= 20 x the naive loop (one loop, as the issue defines it). Also shown: ten
//!   naive loops in parallel, the worker's own concurrency.
//! - Database only (no HTTP): [`store::Queue::claim_batch`] + [`store::Queue::ack`] against the
//!   naive claim + delete, to show what the SQL alone does.
//!
//! The naive loop runs for a fixed time and is stopped; its rate is what it did in that time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use backon::{ExponentialBuilder, Retryable};
use mailchimp::{MemberUpsert, Status};
use store::{Ack, Queue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{per_second, Sizes};
use crate::env::{
    sql, Bench, BenchDb, Chimpsync, CpuMark, EmulatorProc, AUDIENCE, AUDIENCE_NAIVE, MAPPING,
};
use crate::report::{thousands, Report, Row};

const CONSUMERS: usize = 10;

async fn refill(chimpsync: &Chimpsync<'_>, db: &BenchDb) -> Result<()> {
    db.client().await?.batch_execute(sql::RESET_QUEUE).await?;
    chimpsync.run(&["backfill"]).await?;
    db.client()
        .await?
        .batch_execute("vacuum analyze chimpsync.sync_queue")
        .await?;
    Ok(())
}

/// Runs the scenario.
pub async fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) -> Result<()> {
    let n = sizes.queue_rows;
    eprintln!(
        "== 6: queue machinery, ours vs the naive outbox, {} rows",
        thousands(n)
    );
    let db = bench.database("queue").await?;
    db.customers(n).await?;
    let emulator = bench.emulator(0, Some(CONSUMERS)).await?;
    let chimpsync = Chimpsync::new(bench, &db, Some(&emulator.base_url));
    chimpsync.run(&["setup"]).await?;
    let seconds = Duration::from_secs(sizes.naive_seconds);

    refill(&chimpsync, &db).await?;
    let (mark, emulator_cpu) = (CpuMark::now(bench), emulator.cpu());
    let naive_one = naive(&db, Some(&emulator), seconds, 1).await?;
    let naive_split_rate = naive_one;
    let naive_split = mark
        .split(bench, vec![("emulator", emulator.cpu() - emulator_cpu)])
        .await;
    eprintln!(
        "  naive loop, 1 consumer, with HTTP: {}",
        per_second(naive_one)
    );
    refill(&chimpsync, &db).await?;
    let naive_many = naive(&db, Some(&emulator), seconds, CONSUMERS).await?;
    eprintln!(
        "  naive loop, {CONSUMERS} consumers, with HTTP: {}",
        per_second(naive_many)
    );
    refill(&chimpsync, &db).await?;
    let (mark, emulator_cpu) = (CpuMark::now(bench), emulator.cpu());
    let ours_http = ours(&db, &emulator).await?;
    let ours_split = mark
        .split(bench, vec![("emulator", emulator.cpu() - emulator_cpu)])
        .await;
    // The single naive loop is latency-bound and so the most sensitive to other load on a
    // shared machine: it runs again after ours, and the better of its two runs counts.
    refill(&chimpsync, &db).await?;
    let naive_again = naive(&db, Some(&emulator), seconds, 1).await?;
    eprintln!(
        "  naive loop, 1 consumer, with HTTP, again: {}",
        per_second(naive_again)
    );
    let naive_one = naive_one.max(naive_again);
    // Ours runs twice as well (the second time its members exist, like the naive loop's second
    // run), and the better counts: the same treatment on both sides.
    refill(&chimpsync, &db).await?;
    let ours_again = ours(&db, &emulator).await?;
    eprintln!(
        "  ours, with HTTP: {} and {}",
        per_second(ours_http),
        per_second(ours_again)
    );
    let ours_first = ours_http;
    let ours_http = ours_http.max(ours_again);
    ensure!(
        emulator.members(AUDIENCE).await? == n,
        "our worker did not create every member"
    );
    report.rows.push(Row::goal(
        "6",
        "queue machinery with Mailchimp calls (emulator 0 ms): our worker vs the naive one-row loop",
        format!(
            "{} vs {} rows/s = {:.1} x",
            per_second(ours_http),
            per_second(naive_one),
            ours_http / naive_one
        ),
        ">= 20 x the naive loop",
        (ours_http / naive_one) / 20.0,
    ));
    report.rows.push(Row::info(
        "6",
        format!(
            "the same, against {CONSUMERS} naive loops in parallel (the worker's own concurrency)"
        ),
        format!(
            "{} vs {} rows/s = {:.1} x",
            per_second(ours_http),
            per_second(naive_many),
            ours_http / naive_many
        ),
        format!("{CONSUMERS} naive loops"),
        Some(ours_http / naive_many),
    ));

    refill(&chimpsync, &db).await?;
    let naive_db = naive(&db, None, seconds, 1).await?;
    eprintln!(
        "  naive loop, 1 consumer, database only: {}",
        per_second(naive_db)
    );
    refill(&chimpsync, &db).await?;
    let ours_db = ours_db(&db).await?;
    eprintln!("  ours, database only: {}", per_second(ours_db));
    report.rows.push(Row::info(
        "6",
        format!("queue machinery, database only (no HTTP): {CONSUMERS} x (claim_batch 500 + ack) vs the naive one-row claim + delete"),
        format!(
            "{} vs {} rows/s = {:.1} x",
            per_second(ours_db),
            per_second(naive_db),
            ours_db / naive_db
        ),
        "naive loop",
        Some(ours_db / naive_db),
    ));
    report.note(format!(
        "6 ours drained {} rows each time; each naive run was stopped after {} s; the single naive loop with HTTP ran before and after ours: {} and {}, ours with HTTP twice: {} and {} (the better of each counts)",
        thousands(n),
        sizes.naive_seconds,
        per_second(naive_split_rate),
        per_second(naive_again),
        per_second(ours_first),
        per_second(ours_again),
    ));
    report.note(format!(
        "6 first naive loop with HTTP (its CPU is the bench's) {}",
        naive_split.describe()
    ));
    report.note(format!(
        "6 our worker with HTTP (in-process: its CPU is the bench's) {}",
        ours_split.describe()
    ));
    emulator.stop().await;
    db.finish().await
}

/// The naive outbox: `consumers` loops of claim one, (send it,) delete, commit. Rows per second.
async fn naive(
    db: &BenchDb,
    emulator: Option<&EmulatorProc>,
    run_for: Duration,
    consumers: usize,
) -> Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + run_for;
    let started = Instant::now();
    let mut loops = JoinSet::new();
    for _ in 0..consumers {
        let mut client = db.client().await?;
        let mailchimp = emulator.map(|e| e.client()).transpose()?;
        let done = done.clone();
        loops.spawn(async move {
            let claim = client.prepare(sql::NAIVE_CLAIM).await?;
            let delete = client.prepare(sql::NAIVE_DELETE).await?;
            while Instant::now() < stop {
                let tx = client.transaction().await?;
                let Some(row) = tx.query_opt(&claim, &[]).await? else {
                    break;
                };
                let id: i64 = row.get("id");
                if let Some(mailchimp) = &mailchimp {
                    let email: String = row.get("email");
                    let payload: serde_json::Value = row.get("payload");
                    let consent = payload["consent"].as_bool().unwrap_or(false);
                    let body = MemberUpsert {
                        email_address: None,
                        status_if_new: Some(if consent {
                            Status::Subscribed
                        } else {
                            Status::Unsubscribed
                        }),
                        status: None,
                        merge_fields: payload["merge_fields"]
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    };
                    mailchimp
                        .upsert_member(AUDIENCE_NAIVE, &email, &body)
                        .await?;
                }
                tx.execute(&delete, &[&id]).await?;
                tx.commit().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = loops.join_next().await {
        r??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn queue(db: &BenchDb) -> Result<Queue> {
    Ok(Queue::new(store::pool(
        &db.url,
        CONSUMERS + 6,
        Duration::from_secs(60),
    )?))
}

/// Our engine draining everything, in-process. Rows per second.
async fn ours(db: &BenchDb, emulator: &EmulatorProc) -> Result<f64> {
    let queue = queue(db)?;
    let total: i64 = queue
        .pool()
        .get()
        .await?
        .query_one("select count(*) from chimpsync.sync_queue", &[])
        .await?
        .get(0);
    let mapping = store::Mapping::parse(MAPPING)?;
    let mut settings = worker::Settings::new(AUDIENCE);
    settings.audience = mapping.audience.clone();
    settings.concurrency = CONSUMERS;
    let worker = worker::Worker::new(queue, emulator.client()?, settings)?;
    let started = Instant::now();
    let outcome = worker.run(CancellationToken::new(), true).await?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        outcome.acked as i64 == total,
        "acknowledged {} of {total}",
        outcome.acked
    );
    Ok(total as f64 / secs)
}

/// Like the worker: a transient failure (a lock timeout under contention) is retried, a few
/// times, after a short pause.
fn transient() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(500))
        .with_max_times(10)
}

/// Our claim + ack without Mailchimp, `CONSUMERS` loops. Rows per second.
async fn ours_db(db: &BenchDb) -> Result<f64> {
    let queue = queue(db)?;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut loops = JoinSet::new();
    for i in 0..CONSUMERS {
        let queue = queue.clone();
        let done = done.clone();
        loops.spawn(async move {
            let owner = format!("bench/{i}");
            loop {
                let claim = (|| queue.claim_batch(&owner, 500, Duration::from_secs(120), None))
                    .retry(transient())
                    .when(store::Error::is_transient)
                    .await?;
                if claim.rows.is_empty() {
                    return anyhow::Ok(());
                }
                let acks: Vec<Ack> = claim
                    .rows
                    .iter()
                    .map(|r| Ack {
                        id: r.id,
                        version: r.version,
                        customer_key: r.customer_key.clone(),
                        email: r.email.clone().unwrap_or_default(),
                        consent: r.payload.consent,
                        tags: r.payload.tags(),
                        removed: false,
                    })
                    .collect();
                let counts = (|| queue.ack(claim.token, &acks))
                    .retry(transient())
                    .when(store::Error::is_transient)
                    .await?;
                done.fetch_add(counts.deleted, Ordering::Relaxed);
            }
        });
    }
    while let Some(r) = loops.join_next().await {
        r??;
    }
    let secs = started.elapsed().as_secs_f64();
    let left: i64 = queue
        .pool()
        .get()
        .await?
        .query_one("select count(*) from chimpsync.sync_queue", &[])
        .await?
        .get(0);
    ensure!(left == 0, "{left} rows left after claim + ack");
    Ok(done.load(Ordering::Relaxed) as f64 / secs)
}
