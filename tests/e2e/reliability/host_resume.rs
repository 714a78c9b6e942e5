//! Retries resume where they stopped: multi-step operations (an address change whose rename
//! Mailchimp refuses, so the old member is removed and the new address upserted; a rename
//! followed by a tag change; a removal that clears the tags first) under 10 % 503s and 5 %
//! dropped answers, with a fixed seed. Measures attempts and calls per row and asserts that every
//! customer converges; then shows that steps acknowledged for one version of a row are never
//! skipped for a newer one.

use std::time::Duration;

use anyhow::{ensure, Result};
use chimpsync_tests::{wait_until, Fixture, MAPPING};
use mailchimp_emulator::{Config, Fault};

use super::{doubled_contacts, Scenario};

/// The fault generator's seed.
const SEED: u64 = 13;
/// Customers per kind of operation.
const PER_KIND: i64 = 100;

/// Journals the attempts of every deleted (acknowledged) queue row into `resume.acked`.
async fn journal_attempts(f: &Fixture) -> Result<()> {
    f.exec(
        "create schema resume;
         create table resume.acked (customer_key text not null, attempts integer not null);
         create function resume.journal() returns trigger language plpgsql as $$
         begin
             insert into resume.acked select customer_key, attempts from gone;
             return null;
         end $$;
         create trigger journal after delete on chimpsync.sync_queue
             referencing old table as gone for each statement execute function resume.journal();",
    )
    .await
}

/// Attempts and calls per row of one kind of operation.
struct Measured {
    mean: f64,
    p95: i32,
    max: i32,
    calls_per_row: f64,
}

/// Applies `change` to customers `first..first + PER_KIND` with faults on, drains, and measures.
async fn measure(f: &Fixture, w: &worker::Worker, first: i64, change: &str) -> Result<Measured> {
    let last = first + PER_KIND - 1;
    f.exec(&format!("{change} where id between {first} and {last}"))
        .await?;
    let before = f.emulator.stats().requests;
    f.emulator.set_fail_rate(0.10);
    f.emulator.set_drop_rate(0.05);
    let drained = f.drain(w).await;
    f.emulator.set_fail_rate(0.0);
    f.emulator.set_drop_rate(0.0);
    drained?;
    let calls = f.emulator.stats().requests - before;
    let mut attempts: Vec<i32> = f
        .sql
        .query(
            "select attempts from resume.acked
             where customer_key::bigint between $1 and $2",
            &[&first, &last],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(
        attempts.len() == PER_KIND as usize,
        "every row of customers {first}..={last} is acknowledged once: {} acknowledgements",
        attempts.len()
    );
    attempts.sort_unstable();
    let n = attempts.len();
    Ok(Measured {
        mean: attempts.iter().map(|a| f64::from(*a)).sum::<f64>() / n as f64,
        p95: attempts[(n * 95).div_ceil(100) - 1],
        max: attempts[n - 1],
        calls_per_row: calls as f64 / n as f64,
    })
}

/// Everything converged: audience = table, no queue row left (none parked), no doubled contact.
async fn converged(f: &Fixture) -> Result<()> {
    f.assert_converged().await?;
    ensure!(f.queue_rows().await?.is_empty(), "the queue drains");
    let doubled = doubled_contacts(f).await?;
    ensure!(doubled.is_empty(), "{doubled:?}");
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[tokio::test]
async fn multi_step_operations_under_faults_resume_where_they_stopped() -> Result<()> {
    let mut record = Scenario::new(
        "host",
        "reliability::host_resume::multi_step_operations_under_faults_resume_where_they_stopped",
        "Retries of multi-step operations resume where they stopped",
    )
    .tried(&format!(
        "{} synced customers; under 10 % 503s and 5 % dropped answers (seed {SEED}), one kind \
         of multi-step operation at a time for {PER_KIND} customers each: an address and tag \
         change of unsubscribed members (Mailchimp refuses the rename: tags off and archive of \
         the old address, upsert of the new one, tags), an address and tag change of subscribed \
         members (rename, then tags), and a removal (tags off, then archive); the worker drains \
         after each",
        3 * PER_KIND
    ))
    .asserted(
        "every row is acknowledged and none parked; every customer converges: the member at the \
         new address with the right fields, status and tags, the old address archived, no \
         duplicate contact; removed customers' members are archived with their tags cleared",
    );
    let f = Fixture::with(
        MAPPING,
        Config {
            seed: SEED,
            ..Config::default()
        },
    )
    .await?;
    let w = f.worker(|_| {})?;
    f.insert_customers(3 * PER_KIND, 1).await?;
    f.exec(&format!(
        "update customers set consent_contact = id > {PER_KIND}"
    ))
    .await?;
    f.drain(&w).await?;
    converged(&f).await?;
    journal_attempts(&f).await?;

    let address_and_tag =
        "update customers set email = 'moved' || id || '@pets.test', customer_type = 'breeder'";
    let kinds = [
        ("fallback", address_and_tag),
        ("rename", address_and_tag),
        ("removal", "delete from customers"),
    ];
    for (i, (kind, change)) in kinds.into_iter().enumerate() {
        let first = 1 + i as i64 * PER_KIND;
        let m = measure(&f, &w, first, change).await?;
        converged(&f).await?;
        record.figure(&format!("{kind}: attempts per row mean"), round2(m.mean));
        record.figure(&format!("{kind}: attempts per row p95"), m.p95);
        record.figure(&format!("{kind}: attempts per row max"), m.max);
        record.figure(&format!("{kind}: calls per row"), round2(m.calls_per_row));
    }
    for id in 1..=2 * PER_KIND {
        let old = f.member(&format!("c{id}@pets.test"));
        ensure!(
            old.as_ref().is_none_or(|m| m.status == "archived"),
            "customer {id}: the old address is not live: {old:?}"
        );
    }
    for id in 2 * PER_KIND + 1..=3 * PER_KIND {
        let m = f.member(&format!("c{id}@pets.test"));
        ensure!(
            m.as_ref()
                .is_some_and(|m| m.status == "archived" && m.tags.is_empty()),
            "customer {id}: archived with its tags cleared: {m:?}"
        );
    }
    let stats = f.emulator.stats();
    record.figure("503 answers", stats.failed);
    record.figure("dropped answers", stats.dropped);
    f.finish().await?;
    record.save()
}

/// The row's version and the version its record of acknowledged steps names (if any).
async fn versions(f: &Fixture, id: i64) -> Result<(i64, Option<i64>)> {
    let row = f
        .sql
        .query_one(
            "select version, (done_steps ->> 'version')::bigint from chimpsync.sync_queue
             where customer_key = $1",
            &[&id.to_string()],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Claims until a batch with a row in it was processed (the row waits out its backoff first).
async fn next_attempt(w: &worker::Worker) -> Result<worker::DrainOutcome> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let o = w.drain_once().await?;
        if o.claimed > 0 {
            return Ok(o);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the row never came due"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn steps_acknowledged_for_an_older_version_of_a_row_are_not_skipped() -> Result<()> {
    let mut record = Scenario::new(
        "host",
        "reliability::host_resume::steps_acknowledged_for_an_older_version_of_a_row_are_not_skipped",
        "Acknowledged steps are never skipped for a newer version of the row",
    )
    .tried(
        "an address and tag change whose rename is acknowledged and whose tag update fails \
         (503), then is sent again and its answer lost; then the customer's tag is cleared. \
         Again with the tag cleared while the rename is in flight, so that the failed attempt \
         records its steps on the changed row",
    )
    .asserted(
        "the retry at the same version sends only the tag update; a change of the row resets \
         the record, and a record written for an older version is ignored: the member ends at \
         the new address without the tag a lost answer set",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.insert_customers(2, 1).await?;
    f.drain(&w).await?;

    // Customer 1: the rename is acknowledged, the tag update refused.
    f.exec("update customers set email = 'a1@pets.test', customer_type = 'breeder' where id = 1")
        .await?;
    f.emulator.inject(Fault::Delay(Duration::ZERO), 1);
    f.emulator.inject(Fault::ServiceUnavailable, 1);
    let first = w.drain_once().await?;
    ensure!(first.retried == 1, "{first:?}");
    let (version, recorded) = versions(&f, 1).await?;
    ensure!(
        recorded == Some(version),
        "the rename is recorded: {recorded:?}"
    );
    // The retry sends the tag update only, and its answer is lost (the tags are applied).
    f.emulator.inject(Fault::DropAfterApply, 1);
    let before = f.emulator.stats().requests;
    let second = next_attempt(&w).await?;
    let resumed_calls = f.emulator.stats().requests - before;
    ensure!(second.retried == 1, "{second:?}");
    ensure!(
        resumed_calls == 1,
        "the acknowledged rename is not sent again: {resumed_calls} calls"
    );
    // The customer changes: the record is reset with the new version.
    f.exec("update customers set customer_type = null where id = 1")
        .await?;
    let (_, recorded) = versions(&f, 1).await?;
    ensure!(recorded.is_none(), "a change resets the record");

    // Customer 2: the change commits while the rename is in flight; the attempt then fails and
    // records its steps, for the older version, on the changed row.
    f.exec("update customers set email = 'b1@pets.test', customer_type = 'breeder' where id = 2")
        .await?;
    f.emulator
        .inject(Fault::Delay(Duration::from_millis(800)), 1);
    f.emulator.inject(Fault::DropAfterApply, 1);
    let before = f.emulator.stats().requests;
    let change = async {
        wait_until(
            Duration::from_secs(10),
            "the rename to be in flight",
            || async { Ok(f.emulator.stats().requests > before) },
        )
        .await?;
        f.exec("update customers set customer_type = null where id = 2")
            .await
    };
    let (attempt, changed) = tokio::join!(w.drain_once(), change);
    changed?;
    ensure!(attempt?.retried == 1, "the tag update's answer is lost");
    let (version, recorded) = versions(&f, 2).await?;
    ensure!(
        recorded.is_some_and(|v| v < version),
        "the record names the older version: {recorded:?} < {version}"
    );

    f.drain(&w).await?;
    converged(&f).await?;
    for email in ["a1@pets.test", "b1@pets.test"] {
        let m = f.member(email);
        ensure!(
            m.as_ref().is_some_and(|m| m.tags.is_empty()),
            "{email}: the tag a lost answer set is cleared: {m:?}"
        );
    }
    record.figure(
        "calls of the attempt after an acknowledged rename",
        resumed_calls,
    );
    f.finish().await?;
    record.save()
}
