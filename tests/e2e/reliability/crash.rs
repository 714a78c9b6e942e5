//! Crash suite: the real `chimpsync run` SIGKILLed at seeded random moments, and once exactly
//! between Mailchimp's answer and the acknowledging delete, while writers keep changing
//! customers. A fresh worker must then leave the audience equal to the table.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Result};
use chimpsync_tests::{wait_until, Fixture, AUDIENCE, MAPPING};
use mailchimp::{MemberUpsert, Status, TagChange};
use mailchimp_emulator::Config;
use rand::{RngExt, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::{
    count, doubled_contacts, journal_acks, leased_by, run_writer, stopped_counts,
    unacknowledged_deletes, wait_drained, Scenario, Spawned, WriterPlan, WriterStats,
};

/// The seed of the kill delays and of the writers.
const SEED: u64 = 20_260_601;
/// Random kills, plus one forced between the call and the delete.
const KILLS: usize = 10;

/// `chimpsync run` with small batches and few slots, so that a run is many short batches and a
/// kill lands in the middle of one.
fn slow_worker(f: &Fixture) -> Result<std::process::Command> {
    let mut cmd = f.command(&["run"])?;
    cmd.env("CHIMPSYNC_BATCH_SIZE", "25")
        .env("CHIMPSYNC_CONCURRENCY", "4")
        .env("CHIMPSYNC_LEASE_SECONDS", "5")
        .env("CHIMPSYNC_REQUEST_TIMEOUT_SECONDS", "2");
    Ok(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_under_live_writes_loses_and_doubles_nothing() -> Result<()> {
    let mut record = Scenario::new(
        "crash",
        "reliability::crash::sigkill_at_random_points_under_live_writes_loses_and_doubles_nothing",
        "SIGKILL at random points under live writes",
    )
    .tried(&format!(
        "3,000 customers queued; 2 writers keep inserting, editing, renaming, re-consenting, \
         re-tagging and deleting customers; `chimpsync run` (batches of 25, 4 slots, 200 ms \
         Mailchimp latency) is started and SIGKILLed {KILLS} times after a seeded random 0-1.5 s, \
         then once more exactly between Mailchimp's answer and the acknowledging delete (its \
         queue rows row-locked by the test so the delete waits); then a fresh worker runs"
    ))
    .asserted(
        "the rows a killed worker had sent but not acknowledged are still queued; the fresh worker \
         drains the queue and exits 0 on SIGTERM; audience = table (0 lost), every customer's last \
         acknowledged row holds its final state (0 unacknowledged deletes), 0 doubled contacts, \
         0 parked; live customers = live members = synced_contacts rows, each with the customer's address",
    );
    let f = Fixture::with(
        MAPPING,
        Config {
            latency: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .await?;
    journal_acks(&f).await?;
    f.insert_customers(3000, 1).await?;

    let stop = CancellationToken::new();
    let writes = Arc::new(WriterStats::default());
    let writers: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(run_writer(
                f.db.url.clone(),
                WriterPlan {
                    seed: SEED + i,
                    ids: 3300,
                    changes: u64::MAX,
                    bad_every: 0,
                    pace: Duration::from_millis(5),
                    survive_outages: false,
                },
                writes.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    let mut phases: BTreeMap<&str, u32> = BTreeMap::new();
    for kill in 0..KILLS {
        let requests_before = f.emulator.stats().requests;
        let worker = Spawned::start(slow_worker(&f)?)?;
        // A seeded random moment: before the first claim, with batches claimed, with requests
        // in flight, between an answer and its acknowledgement. The first kill comes early, in
        // the process's start and first claim.
        let longest = if kill == 0 { 150 } else { 1500 };
        let delay = Duration::from_millis(rng.random_range(0..longest));
        tokio::time::sleep(delay).await;
        let leased = leased_by(&f, &worker.owner()).await?;
        let requests = f.emulator.stats().requests - requests_before;
        worker.kill()?;
        let phase = match (leased > 0, requests > 0) {
            (false, false) => "before its first claim",
            (true, false) => "rows claimed, nothing sent yet",
            (true, true) => "rows claimed and requests sent",
            (false, true) => "between batches",
        };
        *phases.entry(phase).or_default() += 1;
    }

    // Once exactly between Mailchimp's answer and the delete: the test holds the worker's queue
    // rows locked, so its acknowledgement waits (and retries); the kill lands there.
    let mut cmd = slow_worker(&f)?;
    cmd.env("RUST_LOG", "info,worker=debug");
    let worker = Spawned::start(cmd)?;
    let owner = worker.owner();
    wait_until(
        Duration::from_secs(30),
        "the worker to claim rows",
        || async { Ok(leased_by(&f, &owner).await? > 0) },
    )
    .await?;
    let mut locker = f.db.client().await?;
    let tx = locker.transaction().await?;
    let held: Vec<i64> = tx
        .query(
            "select id from chimpsync.sync_queue where lease_owner = $1 order by id for update",
            &[&owner],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(!held.is_empty(), "the worker's rows are held");
    wait_until(
        Duration::from_secs(30),
        "Mailchimp's answer and an acknowledgement waiting for the held rows",
        || async { Ok(worker.logged("ack failed; retrying") > 0) },
    )
    .await?;
    worker.kill()?;
    tx.rollback().await?;
    let still_queued = f
        .sql
        .query_one(
            "select count(*) from chimpsync.sync_queue where id = any($1)",
            &[&held],
        )
        .await?
        .get::<_, i64>(0);
    assert_eq!(
        still_queued,
        held.len() as i64,
        "rows sent but never acknowledged stay queued"
    );
    *phases
        .entry("answered, delete pending (forced)")
        .or_default() += 1;

    stop.cancel();
    for w in writers {
        w.await??;
    }

    // A fresh worker, at full speed.
    f.emulator.set_latency(Duration::from_millis(5));
    let unchanged_before = f.emulator.stats().unchanged_member_writes;
    let fresh = Spawned::start(f.command(&["run"])?)?;
    wait_drained(&f, Duration::from_secs(120)).await?;
    let (exit, log) = fresh.terminate()?;
    assert!(exit.success(), "the fresh worker stops cleanly: {exit}");
    let fresh_acked = stopped_counts(&log)
        .and_then(|e| e["acked"].as_u64())
        .unwrap_or(0);

    f.assert_converged().await?;
    let unacked = unacknowledged_deletes(&f).await?;
    assert!(unacked.is_empty(), "{unacked:#?}");
    let doubled = doubled_contacts(&f).await?;
    assert!(doubled.is_empty(), "{doubled:#?}");
    assert_eq!(f.queue.summary().await?.parked, 0);
    assert_eq!(
        count(&f, "select count(*) from chimpsync.sync_queue").await?,
        0
    );
    let live = count(
        &f,
        "select count(*) from customers where deleted_at is null and nullif(btrim(email), '') is not null",
    )
    .await?;
    let synced = count(&f, "select count(*) from chimpsync.synced_contacts").await?;
    let synced_right = count(
        &f,
        "select count(*) from chimpsync.synced_contacts s join customers c on c.id::text = s.customer_key
         where c.deleted_at is null and lower(btrim(c.email)) = lower(btrim(s.email))",
    )
    .await?;
    let members = f.emulator.members(AUDIENCE);
    let live_members = members.iter().filter(|m| m.status != "archived").count() as i64;
    assert_eq!(
        (synced, synced_right, live_members),
        (live, live, live),
        "live customers = synced_contacts rows (each with the customer's address) = live members"
    );

    let stats = f.emulator.stats();
    record.figure("kills", (KILLS + 1) as u64);
    for (phase, n) in &phases {
        record.figure(&format!("killed {phase}"), *n);
    }
    record.figure(
        "customer changes written",
        writes.changes.load(std::sync::atomic::Ordering::Relaxed) + 3000,
    );
    record.figure(
        "acknowledged rows (journal)",
        count(&f, "select count(*) from reliability.acked").await?,
    );
    record.figure("acknowledged by the fresh worker", fresh_acked);
    record.figure("live customers = live members", live);
    record.figure("lost", 0);
    record.figure("unacknowledged deletes", 0);
    record.figure("doubled contacts", 0);
    record.figure("member writes", stats.member_writes);
    record.figure("duplicated writes", stats.unchanged_member_writes);
    record.figure(
        "of them re-sent by the fresh worker",
        stats.unchanged_member_writes - unchanged_before,
    );
    record.save()?;
    f.finish().await
}

#[tokio::test]
async fn a_claim_that_died_after_mailchimp_applied_it_is_accounted_for_like_a_lost_answer(
) -> Result<()> {
    let mut record = Scenario::new(
        "crash",
        "reliability::crash::a_claim_that_died_after_mailchimp_applied_it_is_accounted_for_like_a_lost_answer",
        "killed after Mailchimp applied, customer changed before the retry",
    )
    .tried(
        "two synced customers change (one withdraws consent and becomes a breeder, one changes \
         address); a worker claims both rows, Mailchimp applies what it sent (unsubscribe, tag \
         breeder, rename), the worker dies before recording anything; the customers change again \
         (consent back, groomer again, a third address) before the lapsed rows are claimed again",
    )
    .asserted(
        "the next attempt accounts for what the dead claim may have applied: the member is \
         re-subscribed (pending, per resubscribe) and loses the breeder tag, the renamed member is \
         renamed again, not duplicated; audience = table, 2 members in all",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(
        "insert into customers values (1, 'ana@pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', true, null, null),
                                      (2, 'bo@pets.test', 'Bo', 'Ng', 'Berlin', 'vet', true, null, null)",
    )
    .await?;
    f.drain(&w).await?;
    f.exec(
        "update customers set consent_contact = false, customer_type = 'breeder' where id = 1;
         update customers set email = 'bo.2@pets.test' where id = 2",
    )
    .await?;
    // The claim of a worker that dies.
    let dead = f
        .queue
        .claim_batch("dead", 10, Duration::from_secs(30), None)
        .await?;
    assert_eq!(dead.rows.len(), 2);
    // What it sent, and Mailchimp applied, before it died.
    f.mailchimp
        .set_status(AUDIENCE, "ana@pets.test", Status::Unsubscribed)
        .await?;
    f.mailchimp
        .update_tags(
            AUDIENCE,
            "ana@pets.test",
            &[
                TagChange {
                    name: "groomer".into(),
                    active: false,
                },
                TagChange {
                    name: "breeder".into(),
                    active: true,
                },
            ],
        )
        .await?;
    f.mailchimp
        .rename_existing_member(
            AUDIENCE,
            "bo@pets.test",
            "bo.2@pets.test",
            &MemberUpsert::default(),
        )
        .await?;
    f.exec(
        "update customers set consent_contact = true, customer_type = 'groomer' where id = 1;
         update customers set email = 'bo.3@pets.test' where id = 2",
    )
    .await?;
    // Its lease lapses.
    f.exec(
        "update chimpsync.sync_queue set lease_expires_at = now() - interval '1 second',
                                         next_attempt_at = now() - interval '1 second'",
    )
    .await?;
    let o = f.drain(&w).await?;
    assert_eq!((o.acked, o.parked), (2, 0));
    let ana = f.member("ana@pets.test").expect("ana's member");
    assert_eq!(ana.status, "pending", "re-subscribed through confirmation");
    assert_eq!(ana.tags, vec!["groomer"], "the dead claim's tag is cleared");
    assert!(f.member("bo.2@pets.test").is_none(), "no copy left behind");
    assert!(f.member("bo.3@pets.test").is_some());
    assert_eq!(f.emulator.members(AUDIENCE).len(), 2);
    f.assert_converged().await?;
    record.figure("rows acknowledged", o.acked as u64);
    record.figure("members", 2);
    record.figure("lost", 0);
    record.figure("doubled contacts", 0);
    record.save()?;
    f.finish().await
}
