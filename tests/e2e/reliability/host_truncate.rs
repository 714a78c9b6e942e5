//! A TRUNCATE of the customer table, and the mass-removal guard: removals queued at once for
//! most of the synced audience are held, not sent; a restore cancels them, a person releases
//! them; an ordinary delete passes.

use anyhow::{ensure, Context, Result};
use chimpsync_tests::{Fixture, AUDIENCE, MAPPING};
use mailchimp_emulator::Config;

use super::{count, Scenario};

/// Customers synced before the truncate.
const SYNCED: i64 = 300;

/// Members in the audience with `status`.
fn members_with(f: &Fixture, status: &str) -> usize {
    f.emulator
        .members(AUDIENCE)
        .iter()
        .filter(|m| m.status == status)
        .count()
}

/// A fixture with `SYNCED` customers synced to the audience.
async fn synced(mapping: &str) -> Result<(Fixture, worker::Worker)> {
    let f = Fixture::with(mapping, Config::default()).await?;
    let w = f.worker(|_| {})?;
    f.insert_customers(SYNCED, 1).await?;
    let o = f.drain(&w).await?;
    ensure!(o.acked == SYNCED as usize, "initial sync: {o:?}");
    ensure!(members_with(&f, "archived") == 0);
    Ok((f, w))
}

/// `chimpsync` run to completion; its stdout.
fn chimpsync(f: &Fixture, args: &[&str]) -> Result<String> {
    let out = f.command(args)?.output().context("running chimpsync")?;
    ensure!(
        out.status.success(),
        "chimpsync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Truncates, then lets the worker claim: every removal is held and nothing is sent. Returns the
/// held count and reason as `status --json` shows them.
async fn truncate_and_hold(f: &Fixture, w: &worker::Worker) -> Result<(i64, String)> {
    f.exec("truncate customers").await?;
    let removals = count(
        f,
        "select count(*) from chimpsync.sync_queue where operation = 'remove'",
    )
    .await?;
    ensure!(removals == SYNCED, "{removals} removals queued");
    let o = f.drain(w).await?;
    ensure!(o.claimed == 0, "held removals are not claimed: {o:?}");
    ensure!(
        members_with(f, "archived") == 0,
        "nothing was removed in Mailchimp"
    );
    let status: serde_json::Value = serde_json::from_str(&chimpsync(f, &["status", "--json"])?)?;
    let held = status["held"].as_i64().context("status --json has held")?;
    let reason = status["held_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(held == SYNCED, "status: {status}");
    ensure!(
        reason.contains("300 removals queued within 1 h = 100 % of 300 synced contacts")
            && reason.contains("chimpsync release-removals"),
        "reason: {reason}"
    );
    let text = chimpsync(f, &["status"])?;
    ensure!(
        text.contains("held removals           300 (held: 300 removals"),
        "{text}"
    );
    Ok((held, reason))
}

#[tokio::test]
async fn a_truncate_followed_by_a_restore_archives_nothing() -> Result<()> {
    let mut record = Scenario::new(
        "host",
        "reliability::host_truncate::a_truncate_followed_by_a_restore_archives_nothing",
        "TRUNCATE of the customer table, then a restore",
    )
    .tried(
        "300 customers synced; `truncate customers`; the worker drains; then the same 300 \
         customers are inserted again (a restore) and the worker drains again",
    )
    .asserted(
        "the truncate queues the removal of all 300 synced contacts; the guard holds them (300 \
         removals within an hour = 100 % of the audience, limit 10 %): no claim, no member \
         archived, `status` shows them held with the reason; the restore's inserts turn every \
         held row back into an upsert (0 held); after the drain no member is archived and the \
         audience equals the table",
    );
    let (f, w) = synced(MAPPING).await?;
    let (held, reason) = truncate_and_hold(&f, &w).await?;
    record.figure("removals held", held);
    record.figure("reason", reason);
    f.insert_customers(SYNCED, 1).await?;
    let s = f.queue.summary().await?;
    ensure!(s.held == 0, "the restore ended the hold: {s:?}");
    let o = f.drain(&w).await?;
    ensure!(o.acked == SYNCED as usize, "{o:?}");
    let archived = members_with(&f, "archived");
    ensure!(archived == 0, "{archived} members archived");
    f.assert_converged().await?;
    record.figure("upserts after the restore", o.acked as u64);
    record.figure("members archived", archived as u64);
    record.save()?;
    f.finish().await
}

/// Truncates, releases the held removals with the binary, drains; returns how many members
/// ended with `status`.
async fn truncate_release_drain(mapping: &str, status: &str) -> Result<(i64, usize)> {
    let (f, w) = synced(mapping).await?;
    let (held, _) = truncate_and_hold(&f, &w).await?;
    let out = chimpsync(&f, &["release-removals", "--all"])?;
    ensure!(out.contains("300 held removal(s) released"), "{out}");
    ensure!(f.queue.summary().await?.held == 0);
    let o = f.drain(&w).await?;
    ensure!(o.acked == SYNCED as usize, "{o:?}");
    let n = members_with(&f, status);
    ensure!(
        count(&f, "select count(*) from chimpsync.synced_contacts").await? == 0,
        "every removal was acknowledged"
    );
    f.finish().await?;
    Ok((held, n))
}

#[tokio::test]
async fn a_truncate_released_by_a_person_removes_everyone_per_on_remove() -> Result<()> {
    let mut record = Scenario::new(
        "host",
        "reliability::host_truncate::a_truncate_released_by_a_person_removes_everyone_per_on_remove",
        "TRUNCATE of the customer table, then `release-removals`",
    )
    .tried(
        "300 customers synced; `truncate customers`; the worker drains (the removals are held); \
         `chimpsync release-removals --all`; the worker drains again. Once with `on_remove` \
         archive (the default), once with unsubscribe",
    )
    .asserted(
        "the release says it released 300; the drain then removes every member: 300 archived \
         (archive), 300 unsubscribed and none archived (unsubscribe)",
    );
    let (held, archived) = truncate_release_drain(MAPPING, "archived").await?;
    ensure!(archived == SYNCED as usize, "{archived} archived");
    let unsubscribing = MAPPING.replace(
        "id = \"a1b2c3d4e5\"",
        "id = \"a1b2c3d4e5\"\non_remove = \"unsubscribe\"",
    );
    let (_, unsubscribed) = truncate_release_drain(&unsubscribing, "unsubscribed").await?;
    ensure!(
        unsubscribed == SYNCED as usize,
        "{unsubscribed} unsubscribed"
    );
    record.figure("removals held", held);
    record.figure("archived after the release (archive)", archived as u64);
    record.figure(
        "unsubscribed after the release (unsubscribe)",
        unsubscribed as u64,
    );
    record.save()
}

#[tokio::test]
async fn an_ordinary_delete_below_the_limit_is_sent_and_not_held() -> Result<()> {
    let (f, w) = synced(MAPPING).await?;
    f.exec("delete from customers where id <= 20").await?;
    let o = f.drain(&w).await?;
    ensure!(o.acked == 20, "{o:?}");
    ensure!(f.queue.summary().await?.held == 0);
    ensure!(members_with(&f, "archived") == 20);
    f.finish().await
}

#[tokio::test]
async fn a_mass_update_out_of_the_filter_is_held_like_a_truncate() -> Result<()> {
    // Every customer leaves the filter (`deleted_at is null`) at once, as a wrong soft-delete or
    // a filter that no longer matches the rows would make them.
    let (f, w) = synced(MAPPING).await?;
    f.exec("update customers set deleted_at = now() where id > 10")
        .await?;
    let o = f.drain(&w).await?;
    ensure!(o.claimed == 0, "{o:?}");
    let s = f.queue.summary().await?;
    ensure!(s.held == SYNCED - 10, "{s:?}");
    let reason = s.held_reason.unwrap_or_default();
    ensure!(
        reason.contains("290 removals queued within 1 h = 97 % of 300 synced contacts"),
        "{reason}"
    );
    ensure!(members_with(&f, "archived") == 0);
    // Rows that come back before the release are upserts again; the others stay held.
    f.exec("update customers set deleted_at = null where id <= 100")
        .await?;
    ensure!(f.queue.summary().await?.held == SYNCED - 100);
    f.finish().await
}

#[tokio::test]
async fn a_truncate_forgets_unsent_changes_and_skips_mailchimps_own_writes() -> Result<()> {
    let f = Fixture::new().await?;
    f.insert_customers(50, 1).await?;
    f.exec("truncate customers").await?;
    ensure!(
        f.queue_rows().await?.is_empty(),
        "customers never synced need no removal"
    );
    f.insert_customers(5, 1).await?;
    f.exec("begin; set local chimpsync.origin = 'mailchimp'; truncate customers; commit")
        .await?;
    ensure!(
        count(
            &f,
            "select count(*) from chimpsync.sync_queue where operation = 'upsert'"
        )
        .await?
            == 5,
        "a truncate by chimpsync's own inbound path queues nothing"
    );
    f.finish().await
}
