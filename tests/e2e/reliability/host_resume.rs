//! Retries resume where they stopped: multi-step operations (an address change whose rename
//! Mailchimp refuses, so the old member is removed and the new address upserted; a rename
//! followed by a tag change; a removal that clears the tags first) under 10 % 503s and 5 %
//! dropped answers, with a fixed seed. Measures attempts and calls per row and asserts that every
//! customer converges; then shows that steps acknowledged for one version of a row are never
//! skipped for a newer one.

use std::time::Duration;

use anyhow::{ensure, Result};
use chimpsync_tests::{wait_until, Fixture, AUDIENCE, MAPPING};
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
