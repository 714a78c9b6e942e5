//! Database fault suite: Postgres restarted under a running worker (a private server the test
//! starts, never the shared one), statements cut by `statement_timeout`, the queue table locked
//! by a long transaction, and customer writes racing the worker's claims and acks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Result};
use chimpsync_tests::{wait_until, Fixture, AUDIENCE, MAPPING};
use mailchimp_emulator::{Config, Fault};
use rand::{RngExt, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::{
    count, doubled_contacts, journal_acks, run_writer, unacknowledged_deletes, wait_drained,
    PrivatePostgres, Scenario, Spawned, WriterPlan, WriterStats,
};

/// Live (not archived) members in the audience.
fn live_members(f: &Fixture) -> usize {
    f.emulator
        .members(AUDIENCE)
        .iter()
        .filter(|m| m.status != "archived")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_a_running_worker_loses_nothing() -> Result<()> {
    let mut record = Scenario::new(
        "database",
        "reliability::database::postgres_restarted_under_a_running_worker_loses_nothing",
        "Postgres restarted in the middle of a run",
    )
    .tried(
        "a private Postgres (initdb, own port and socket); 3,000 customers queued, a writer \
         changing customers all along; `chimpsync run` (batches of 50, 4 slots, 50 ms Mailchimp \
         latency) is syncing when the server is crashed (`pg_ctl stop -m immediate`) and started \
         again, and later stopped cleanly (`-m fast`) and started again",
    )
    .asserted(
        "the same worker process notices (failed calls logged), stays up, reconnects and syncs again \
         after each restart (progress observed), drains the queue and exits 0 on SIGTERM; \
         audience = table (0 lost), 0 unacknowledged deletes, 0 doubled contacts, 0 parked",
    );
    let Some(pg) = PrivatePostgres::start("the Postgres-restart scenario")? else {
        return Ok(());
    };
    let mut f = Fixture::with_server(
        &format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port),
        MAPPING,
        Config {
            latency: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .await?;
    journal_acks(&f).await?;
    f.insert_customers(3000, 1).await?;
    let stop = CancellationToken::new();
    let writes = Arc::new(WriterStats::default());
    let writer = tokio::spawn(run_writer(
        f.db.url.clone(),
        WriterPlan {
            seed: 77,
            ids: 3300,
            changes: u64::MAX,
            bad_every: 0,
            pace: Duration::from_millis(5),
            survive_outages: true,
        },
        writes.clone(),
        stop.clone(),
    ));
    let mut cmd = f.command(&["run"])?;
    cmd.env("CHIMPSYNC_BATCH_SIZE", "50")
        .env("CHIMPSYNC_CONCURRENCY", "4")
        .env("RUST_LOG", "info,worker=debug");
    let mut worker = Spawned::start(cmd)?;
    // What the worker logs when a database call fails (claim, acknowledgement, slot).
    let trouble = |w: &Spawned| {
        [
            "claim failed",
            "ack failed",
            "cannot take a connection slot",
            "slot table unavailable",
        ]
        .iter()
        .map(|needle| w.logged(needle))
        .sum::<usize>()
    };
    let mut outages = Vec::new();
    for (mode, progress) in [("immediate", 500), ("fast", 1500)] {
        wait_until(Duration::from_secs(60), "the worker to sync", || async {
            Ok(live_members(&f) >= progress)
        })
        .await?;
        let failures_before = trouble(&worker);
        let down = std::time::Instant::now();
        pg.stop_server(mode)?;
        // Down until the worker has felt it for a while: its claims fail, or calls of batches
        // in flight (acknowledgements, slots) have failed ten times.
        let claims_before = worker.logged("claim failed");
        wait_until(
            Duration::from_secs(60),
            "the worker to notice the database is gone",
            || {
                let claims = worker.logged("claim failed");
                let all = trouble(&worker);
                async move { Ok(claims >= claims_before + 2 || all >= failures_before + 10) }
            },
        )
        .await?;
        ensure!(worker.alive(), "the worker survives the outage");
        pg.start_server()?;
        outages.push(down.elapsed());
        f.sql = f.db.client().await?;
        let synced = live_members(&f);
        let writes_before = f.emulator.stats().member_writes;
        wait_until(
            Duration::from_secs(60),
            "the worker to sync again after the restart",
            || async { Ok(f.emulator.stats().member_writes > writes_before) },
        )
        .await?;
        ensure!(
            worker.alive(),
            "the same process syncs again ({synced} members before)"
        );
    }
    stop.cancel();
    writer.await??;
    wait_drained(&f, Duration::from_secs(120)).await?;
    let claim_failures = trouble(&worker);
    let (exit, log) = worker.terminate()?;
    ensure!(exit.success(), "exit 0 after SIGTERM: {exit}\n{log}");
    f.assert_converged().await?;
    let unacked = unacknowledged_deletes(&f).await?;
    assert!(unacked.is_empty(), "{unacked:#?}");
    let doubled = doubled_contacts(&f).await?;
    assert!(doubled.is_empty(), "{doubled:#?}");
    assert_eq!(f.queue.summary().await?.parked, 0);
    let stats = f.emulator.stats();
    record.figure("restarts", 2);
    record.figure(
        "seconds the database was away",
        outages
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    record.figure("failed database calls logged", claim_failures as u64);
    record.figure(
        "customer changes written",
        writes.changes.load(Ordering::Relaxed) + 3000,
    );
    record.figure(
        "writer statements lost to the outages",
        writes.errors.load(Ordering::Relaxed),
    );
    record.figure(
        "acknowledged rows (journal)",
        count(&f, "select count(*) from reliability.acked").await?,
    );
    record.figure("lost", 0);
    record.figure("unacknowledged deletes", 0);
    record.figure("doubled contacts", 0);
    record.figure("duplicated writes", stats.unchanged_member_writes);
    record.save()?;
    // The fixture's admin connection died with the first restart: the private server goes away
    // as a whole instead of dropping the database.
    drop(f);
    drop(pg);
    Ok(())
}

/// Distinct start times of the statements of this database that wait for a lock and whose text
/// contains `needle`: two of them mean one was cut off and a new one started.
async fn waiting_statements(
    f: &Fixture,
    needle: &str,
    seen: &std::sync::Mutex<std::collections::BTreeSet<String>>,
) -> Result<usize> {
    let rows = f
        .sql
        .query(
            "select query_start::text from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'
               and position($1 in query) > 0",
            &[&needle],
        )
        .await?;
    let mut seen = seen.lock().expect("seen lock");
    for r in rows {
        seen.insert(r.get(0));
    }
    Ok(seen.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_and_an_ack_cut_by_statement_timeout_are_retried_and_converge() -> Result<()> {
    let mut record = Scenario::new(
        "database",
        "reliability::database::a_claim_and_an_ack_cut_by_statement_timeout_are_retried_and_converge",
        "statement timeout on the claim and on the ack",
    )
    .tried(
        "a worker whose connections have statement_timeout = 100 ms (below the 200 ms \
         lock_timeout); the test holds the queue table (lock table ... access exclusive) so the \
         claim waits and is cancelled, once through drain_once and once under the run loop; then \
         it row-locks a batch in flight (Mailchimp answer delayed 400 ms) so the acknowledgement \
         is cancelled, and releases the lock after seeing a second try",
    )
    .asserted(
        "drain_once reports the cancelled claim as a transient database error that names the \
         statement timeout and SQLSTATE 57014, and changes \
         nothing; the run loop keeps running through the cancellations and drains once the lock \
         is gone; the cancelled ack is retried and acknowledges every row of its batch (no retry, \
         no re-send); audience = table",
    );
    let f = Fixture::new().await?;
    f.insert_customers(200, 1).await?;
    let pool = store::pool(&f.db.url, 8, Duration::from_millis(100))?;
    let w = worker::Worker::new(
        store::Queue::new(pool),
        Fixture::client_for(&f.emulator)?,
        {
            let mut s = f.settings();
            s.batch_size = 50;
            s
        },
    )?;

    // The claim, through drain_once: its retries give up with the statement timeout.
    let mut locker = f.db.client().await?;
    let tx = locker.transaction().await?;
    tx.batch_execute("lock table chimpsync.sync_queue in access exclusive mode")
        .await?;
    let err = w
        .drain_once()
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("the claim must fail while the table is locked"))?;
    let text = err.to_string();
    assert!(
        text.contains("canceling statement due to statement timeout") && text.contains("57014"),
        "the error says what happened: {text}"
    );
    assert!(
        matches!(&err, worker::Error::Store(e) if e.is_transient()),
        "a cancelled statement is transient: {err:?}"
    );
    tx.rollback().await?;
    assert_eq!(
        count(
            &f,
            "select count(*) from chimpsync.sync_queue where attempts > 0"
        )
        .await?,
        0,
        "the cancelled claim changed nothing"
    );

    // The claim, under the run loop: cancelled again and again, and the loop goes on.
    let tx = locker.transaction().await?;
    tx.batch_execute("lock table chimpsync.sync_queue in access exclusive mode")
        .await?;
    let stop = CancellationToken::new();
    let run = {
        let (w, stop) = (w.clone(), stop.clone());
        tokio::spawn(async move { w.run(stop, false).await })
    };
    let seen = std::sync::Mutex::new(Default::default());
    wait_until(
        Duration::from_secs(30),
        "two claims cut off by the statement timeout",
        || async { Ok(waiting_statements(&f, "with counted as", &seen).await? >= 2) },
    )
    .await?;
    let cut_claims = seen.lock().expect("seen lock").len();
    assert!(!run.is_finished(), "the run loop survives");
    tx.rollback().await?;
    wait_drained(&f, Duration::from_secs(60)).await?;
    stop.cancel();
    run.await??;
    f.assert_converged().await?;

    // The ack: Mailchimp answers, the rows are locked by someone else, the ack's statement is
    // cancelled, retried, and goes through once the lock is gone.
    f.exec("update customers set last_name = 'Acked' where id <= 50")
        .await?;
    f.emulator
        .inject(Fault::Delay(Duration::from_millis(400)), 1);
    let requests_before = f.emulator.stats().requests;
    let in_flight = {
        let w = w.clone();
        tokio::spawn(async move { w.drain_once().await })
    };
    wait_until(Duration::from_secs(10), "the batch in flight", || async {
        Ok(f.queue.summary().await?.in_flight == 50)
    })
    .await?;
    let tx = locker.transaction().await?;
    let held = tx
        .query(
            "select id from chimpsync.sync_queue where lease_token is not null for update",
            &[],
        )
        .await?
        .len();
    assert_eq!(held, 50);
    let seen = std::sync::Mutex::new(Default::default());
    wait_until(
        Duration::from_secs(30),
        "two acknowledgements cut off by the statement timeout",
        || async {
            Ok(waiting_statements(&f, "delete from chimpsync.sync_queue q", &seen).await? >= 2)
        },
    )
    .await?;
    let cut_acks = seen.lock().expect("seen lock").len();
    tx.rollback().await?;
    let outcome = in_flight.await??;
    assert_eq!(
        (outcome.claimed, outcome.acked, outcome.retried),
        (50, 50, 0),
        "the cancelled ack was retried, not the rows"
    );
    assert_eq!(
        f.emulator.stats().requests - requests_before,
        1,
        "nothing was sent twice"
    );
    assert_eq!(
        count(&f, "select count(*) from chimpsync.sync_queue").await?,
        0
    );
    f.assert_converged().await?;
    record.figure("claims cut off under the run loop", cut_claims as u64);
    record.figure("acks cut off, then retried", cut_acks as u64);
    record.figure("rows acknowledged by the retried ack", outcome.acked as u64);
    record.figure("lost", 0);
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_table_locked_by_a_long_transaction_stalls_the_worker_without_harm() -> Result<()>
{
    let mut record = Scenario::new(
        "database",
        "reliability::database::the_queue_table_locked_by_a_long_transaction_stalls_the_worker_without_harm",
        "the queue table locked by a long transaction",
    )
    .tried(
        "`chimpsync run` syncing 2,000 customers (batches of 50, 30 ms latency); a transaction \
         takes `lock table chimpsync.sync_queue in access exclusive mode` and holds it until the \
         worker has failed to claim three times, then rolls back",
    )
    .asserted(
        "the worker does not crash: its claims give up after lock_timeout and it logs why \
         ('claim failed', naming the lock timeout and SQLSTATE 55P03), and it resumes by itself \
         when the lock is released; drains; exits 0 on SIGTERM; audience = table",
    );
    let f = Fixture::with(
        MAPPING,
        Config {
            latency: Duration::from_millis(30),
            ..Default::default()
        },
    )
    .await?;
    f.insert_customers(2000, 1).await?;
    let mut cmd = f.command(&["run"])?;
    cmd.env("CHIMPSYNC_BATCH_SIZE", "50");
    let mut worker = Spawned::start(cmd)?;
    wait_until(Duration::from_secs(30), "the worker to sync", || async {
        Ok(live_members(&f) >= 200)
    })
    .await?;
    let mut locker = f.db.client().await?;
    let tx = locker.transaction().await?;
    let locked_at = std::time::Instant::now();
    tx.batch_execute("lock table chimpsync.sync_queue in access exclusive mode")
        .await?;
    let before = worker.logged("claim failed");
    wait_until(
        Duration::from_secs(30),
        "three claims to give up on the lock",
        || {
            let n = worker.logged("claim failed");
            async move { Ok(n >= before + 3) }
        },
    )
    .await?;
    ensure!(worker.alive(), "the worker waits the lock out");
    let synced_while_locked = live_members(&f);
    tx.rollback().await?;
    let held_for = locked_at.elapsed();
    wait_drained(&f, Duration::from_secs(60)).await?;
    let failures = worker.logged("claim failed");
    let (exit, log) = worker.terminate()?;
    let reason = log
        .lines()
        .find(|l| l.contains("claim failed"))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|e| e["error"].as_str().map(String::from))
        .unwrap_or_default();
    assert!(
        reason.contains("lock timeout") && reason.contains("55P03"),
        "the log says why the claim failed: {reason:?}"
    );
    ensure!(exit.success(), "exit 0 after SIGTERM: {exit}\n{log}");
    f.assert_converged().await?;
    assert_eq!(f.queue.summary().await?.parked, 0);
    record.figure(
        "seconds the table was locked",
        format!("{:.1}", held_for.as_secs_f64()),
    );
    record.figure("claims that gave up (logged)", failures as u64);
    record.figure("logged reason", reason.as_str());
    record.figure(
        "members when the lock was released",
        synced_while_locked as u64,
    );
    record.figure("members at the end", live_members(&f) as u64);
    record.figure("lost", 0);
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_locked_by_a_long_transaction_hold_back_only_those_customers() -> Result<()> {
    let mut record = Scenario::new(
        "database",
        "reliability::database::rows_locked_by_a_long_transaction_hold_back_only_those_customers",
        "queue rows locked by a long transaction",
    )
    .tried(
        "500 customers queued; a transaction holds 20 of their queue rows (select ... for update) \
         while a worker runs; then it commits",
    )
    .asserted(
        "the claim skips the locked rows: the other 480 customers reach Mailchimp while the 20 \
         wait (not claimed, not failed); after the commit the 20 follow; audience = table",
    );
    let f = Fixture::new().await?;
    f.insert_customers(500, 1).await?;
    let mut locker = f.db.client().await?;
    let tx = locker.transaction().await?;
    tx.query(
        "select id from chimpsync.sync_queue where customer_key::int <= 20 for update",
        &[],
    )
    .await?;
    let w = f.worker(|s| s.batch_size = 50)?;
    let stop = CancellationToken::new();
    let run = {
        let (w, stop) = (w.clone(), stop.clone());
        tokio::spawn(async move { w.run(stop, false).await })
    };
    wait_until(
        Duration::from_secs(30),
        "the 480 others to sync and be acknowledged",
        || async {
            Ok(live_members(&f) == 480
                && count(&f, "select count(*) from chimpsync.sync_queue").await? == 20)
        },
    )
    .await?;
    for id in 1..=20 {
        assert!(f.member(&format!("c{id}@pets.test")).is_none());
    }
    let waiting = f.queue_rows().await?;
    assert!(
        waiting.len() == 20 && waiting.iter().all(|r| r.4 == 0 && r.3.is_none()),
        "the locked rows were never claimed: {waiting:?}"
    );
    tx.commit().await?;
    wait_drained(&f, Duration::from_secs(30)).await?;
    stop.cancel();
    run.await??;
    f.assert_converged().await?;
    record.figure("synced while 20 rows were locked", 480);
    record.figure("synced after the commit", 20);
    record.figure("lost", 0);
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_writes_are_not_held_up_by_the_worker() -> Result<()> {
    /// Statements per writer.
    const STATEMENTS: u64 = 500;
    let mut record = Scenario::new(
        "database",
        "reliability::database::customer_writes_are_not_held_up_by_the_worker",
        "customer writes while the worker claims and acknowledges",
    )
    .tried(
        "`chimpsync run` drains 4,000 customers (batches of 100, 10 slots, 10 ms latency) while 4 \
         writers make 500 updates each to the same customers, back to back: single rows and \
         ranges of 50 in one statement (each statement's trigger writes the queue rows the worker \
         is claiming and deleting)",
    )
    .asserted(
        "no customer statement fails (the worker gives way: lock_timeout 200 ms, below \
         deadlock_timeout, so Postgres never aborts the customer's transaction) and none waits \
         longer than 2 s; audience = table",
    );
    let f = Fixture::with(
        MAPPING,
        Config {
            latency: Duration::from_millis(10),
            ..Default::default()
        },
    )
    .await?;
    f.insert_customers(4000, 1).await?;
    let mut cmd = f.command(&["run"])?;
    cmd.env("CHIMPSYNC_BATCH_SIZE", "100");
    let worker = Spawned::start(cmd)?;
    let mut writers = Vec::new();
    for seed in 0..4u64 {
        let client = f.db.client().await?;
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut latencies: Vec<Duration> = Vec::new();
            for step in 1..=STATEMENTS {
                let id: i64 = rng.random_range(1..=4000);
                let sql = if step % 4 == 0 {
                    format!(
                        "update customers set store = 'W{seed}.{step}' where id between {id} and {}",
                        id + 49
                    )
                } else {
                    format!("update customers set last_name = 'W{seed}.{step}' where id = {id}")
                };
                let started = std::time::Instant::now();
                client.batch_execute(&sql).await?;
                latencies.push(started.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for w in writers {
        latencies.extend(w.await??);
    }
    wait_drained(&f, Duration::from_secs(60)).await?;
    let (exit, _) = worker.terminate()?;
    ensure!(exit.success());
    f.assert_converged().await?;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let max = *latencies.last().expect("statements ran");
    assert!(
        max < Duration::from_secs(2),
        "a customer write waited {max:?}"
    );
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    record.figure("customer statements", latencies.len() as u64);
    record.figure("failed", 0);
    record.figure("p50", ms(at(0.5)));
    record.figure("p99", ms(at(0.99)));
    record.figure("max", ms(max));
    record.save()?;
    f.finish().await
}

#[tokio::test]
async fn slots_held_in_another_database_do_not_count_against_this_one() -> Result<()> {
    let mut record = Scenario::new(
        "database",
        "reliability::database::slots_held_in_another_database_do_not_count_against_this_one",
        "connection slots of another database on the same server",
    )
    .tried(
        "two chimpsync installations in two databases of one server; the first holds both of its \
         2 slots",
    )
    .asserted(
        "the second sees 0 slots in use and takes one (advisory locks belong to a database, so the \
         count reads only this database's locks; counting every database's would over-report \
         the gauge and hold a replica back while another database holds slots)",
    );
    let a = Fixture::new().await?;
    let b = Fixture::new().await?;
    let slots_a = Arc::new(store::slots::SlotTable::new(a.queue.pool().clone(), 2));
    assert!(slots_a.try_acquire().await?.is_some());
    assert!(slots_a.try_acquire().await?.is_some());
    assert_eq!(slots_a.in_use().await?, 2);
    let slots_b = Arc::new(store::slots::SlotTable::new(b.queue.pool().clone(), 2));
    assert_eq!(
        slots_b.in_use().await?,
        0,
        "the other database's slots are not ours"
    );
    assert!(slots_b.try_acquire().await?.is_some());
    assert_eq!(slots_b.in_use().await?, 1);
    record.figure("slots in use seen by the second installation", 0);
    record.save()?;
    drop((slots_a, slots_b));
    a.finish().await?;
    b.finish().await
}
