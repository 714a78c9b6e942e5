//! The schema handshake and the retention of inbound events: `run` and `backfill` refuse a
//! schema or installed mapping that does not fit, a running worker stops claiming when the
//! schema moves under it and resumes when it fits again, an upgrade from the schema of the
//! release before (migrations 0001 and 0002) while that release's worker holds claims loses
//! nothing, and applied webhook events are deleted after their retention.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use chimpsync_tests::{wait_until, Fixture, AUDIENCE, MAPPING};
use mailchimp::{MemberUpsert, Status, TagChange};
use mailchimp_emulator::Config;
use serde_json::Value;

use super::{
    count, doubled_contacts, journal_acks, leased_by, unacknowledged_deletes, wait_drained,
    Scenario, Spawned,
};

/// The claim and acknowledgement of the release whose schema stopped at migration 0002.
const OLD_CLAIM: &str = include_str!("../../fixtures/schema-0002/claim_batch.sql");
const OLD_ACK: &str = include_str!("../../fixtures/schema-0002/ack_batch.sql");

const WAIT: Duration = Duration::from_secs(60);

/// Runs `chimpsync <args>` to its end: (success, stderr).
async fn finished(mut cmd: std::process::Command) -> Result<(bool, String)> {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .context("running chimpsync")?;
    Ok((out.status.success(), String::from_utf8(out.stderr)?))
}

/// Fails unless `cmd` exits non-zero with exactly one line on stderr, `chimpsync: <want>`.
async fn refuses(cmd: std::process::Command, want: &str) -> Result<()> {
    let (success, stderr) = finished(cmd).await?;
    ensure!(!success, "chimpsync should have refused; stderr:\n{stderr}");
    ensure!(
        stderr.trim_end() == format!("chimpsync: {want}"),
        "expected the one line `chimpsync: {want}`, got:\n{stderr}"
    );
    Ok(())
}

/// A `chimpsync run` in the background with the address it serves HTTP on.
struct Served {
    process: Spawned,
    base: String,
    http: reqwest::Client,
}

impl Served {
    async fn start(cmd: std::process::Command) -> Result<Served> {
        let mut process = Spawned::start(cmd)?;
        let started = Instant::now();
        let addr = loop {
            let found = process.log().lines().find_map(|line| {
                let event: Value = serde_json::from_str(line).ok()?;
                let message = event.get("message")?.as_str()?;
                message
                    .starts_with("serving")
                    .then(|| event.get("addr")?.as_str().map(str::to_string))
                    .flatten()
            });
            if let Some(addr) = found {
                break addr;
            }
            ensure!(
                process.alive(),
                "chimpsync run exited before serving:\n{}",
                process.log()
            );
            ensure!(started.elapsed() < WAIT, "chimpsync run did not serve");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Served {
            process,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
        })
    }

    async fn get(&self, path: &str) -> Result<(u16, String)> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// Waits until `/readyz` answers `status` with a body containing `needle`; returns the body.
    async fn readyz(&self, status: u16, needle: &str) -> Result<String> {
        let started = Instant::now();
        loop {
            let (got, body) = self.get("/readyz").await?;
            if got == status && body.contains(needle) {
                return Ok(body);
            }
            ensure!(
                started.elapsed() < WAIT,
                "/readyz never answered {status} with {needle:?}; last: {got} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of an unlabelled series in `/metrics`.
    async fn metric(&self, name: &str) -> Result<Option<f64>> {
        let (_, body) = self.get("/metrics").await?;
        Ok(body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()))
    }
}

/// The claims made so far (each claim adds one attempt to each of its rows; acknowledged rows
/// are counted from the journal).
async fn claims_so_far(f: &Fixture) -> Result<i64> {
    count(
        f,
        "select (select coalesce(sum(attempts), 0) from chimpsync.sync_queue)::bigint
              + (select count(*) from reliability.acked)",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_backfill_refuse_a_schema_or_mapping_that_does_not_fit() -> Result<()> {
    let f = Fixture::new().await?;
    let version = store::SCHEMA_VERSION;

    // (b) The mapping file has a merge field the installed triggers do not carry.
    let added = MAPPING.replace(
        "STORE = \"store\"",
        "STORE = \"store\"\nPETNAME = \"notes\"",
    );
    let petname = "merge_fields.PETNAME is in the mapping file but not in the installed \
                   triggers: run `chimpsync setup`";
    for args in [&["run"][..], &["run", "--once"], &["backfill"]] {
        let mut cmd = f.command(args)?;
        cmd.env("CHIMPSYNC_CONFIG", f.mapping_file(&added)?);
        refuses(cmd, petname).await?;
    }
    // Audience policies are read by each process from its own file: they may differ.
    let policies = MAPPING.replace("[audience]", "[audience]\non_remove = \"unsubscribe\"");
    let mut cmd = f.command(&["run", "--once"])?;
    cmd.env("CHIMPSYNC_CONFIG", f.mapping_file(&policies)?);
    let (success, stderr) = finished(cmd).await?;
    ensure!(success, "run --once with other policies failed:\n{stderr}");

    // (a) A schema newer than this chimpsync.
    f.exec("insert into chimpsync.schema_migrations (version, name) values (9999, 'future')")
        .await?;
    let newer = format!(
        "the database's chimpsync schema is at version 9999, newer than this chimpsync \
         ({version}): upgrade chimpsync"
    );
    refuses(f.command(&["run"])?, &newer).await?;
    refuses(f.command(&["backfill"])?, &newer).await?;

    // An older one (a migration of this build missing).
    f.exec(&format!(
        "delete from chimpsync.schema_migrations where version in (9999, {version})"
    ))
    .await?;
    let older = count(
        &f,
        "select max(version)::bigint from chimpsync.schema_migrations",
    )
    .await?;
    refuses(
        f.command(&["run"])?,
        &format!(
            "the database's chimpsync schema is at version {older}, this chimpsync needs \
             {version}: run `chimpsync setup`"
        ),
    )
    .await?;

    // None at all.
    f.exec("drop schema chimpsync cascade").await?;
    let missing = format!(
        "the database has no chimpsync schema, this chimpsync needs version {version}: run \
         `chimpsync setup`"
    );
    refuses(f.command(&["run"])?, &missing).await?;
    refuses(f.command(&["backfill"])?, &missing).await?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stops_claiming_when_the_schema_moves_under_it_and_loses_nothing() -> Result<()> {
    let mut record = Scenario::new(
        "host",
        "reliability::host_handshake::a_worker_stops_claiming_when_the_schema_moves_under_it_and_loses_nothing",
        "The schema moves ahead under a running worker",
    )
    .tried(
        "1,500 customers queued; `chimpsync run` (batches of 10, one slot, 200 ms Mailchimp \
         latency) holds claims when a migration it does not know is recorded in \
         chimpsync.schema_migrations; the application updates 150 customers meanwhile; the \
         migration row is removed again; then `setup` is re-run with a mapping without the tag \
         column, and once more with the worker's mapping",
    )
    .asserted(
        "within one re-check the worker answers /readyz 503 naming the schema version, logs it \
         once at warn, sets chimpsync_schema_compatible 0, finishes and records its in-flight \
         batches and claims nothing more; it resumes when the schema fits again, and holds again \
         (naming tags.columns) while the installed triggers capture another mapping; at the end \
         audience = table, 0 unacknowledged deletes, 0 doubled contacts",
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
    f.insert_customers(1500, 1).await?;
    let mut cmd = f.command(&["run"])?;
    cmd.env("CHIMPSYNC_BATCH_SIZE", "10")
        .env("CHIMPSYNC_CONCURRENCY", "1");
    let run = Served::start(cmd).await?;
    let owner = run.process.owner();
    wait_until(WAIT, "the worker to hold claims", || async {
        Ok(leased_by(&f, &owner).await? > 0)
    })
    .await?;

    // A newer chimpsync's migration lands while batches are in flight.
    let moved = Instant::now();
    let in_flight = leased_by(&f, &owner).await?;
    f.exec("insert into chimpsync.schema_migrations (version, name) values (9999, 'future')")
        .await?;
    let body = run.readyz(503, "newer than this chimpsync").await?;
    record.figure(
        "seconds until unready",
        moved.elapsed().as_secs_f64().round(),
    );
    record.figure("rows in flight when the schema moved", in_flight);
    ensure!(
        body.starts_with("schema: the database's chimpsync schema is at version 9999"),
        "{body}"
    );
    ensure!(run.metric("chimpsync_schema_compatible").await? == Some(0.0));
    wait_until(WAIT, "the in-flight batches to be recorded", || async {
        Ok(leased_by(&f, &owner).await? == 0)
    })
    .await?;
    ensure!(
        run.process.logged("claiming nothing until the schema fits") == 1,
        "{}",
        run.process.log()
    );
    f.exec("update customers set last_name = 'held ' || id where id % 10 = 0")
        .await?;
    // Two seconds of watching: every claim would add an attempt or a journalled delete.
    let claims = claims_so_far(&f).await?;
    let requests = f.emulator.stats().requests;
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(2) {
        ensure!(claims_so_far(&f).await? == claims, "claimed while held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        f.emulator.stats().requests == requests,
        "called Mailchimp while held"
    );
    let pending = count(&f, "select count(*) from chimpsync.sync_queue").await?;
    ensure!(pending > 0, "the queue drained before the schema moved");
    record.figure("rows waiting while held", pending);

    // It fits again: the worker resumes.
    f.exec("delete from chimpsync.schema_migrations where version = 9999")
        .await?;
    run.readyz(200, "ready").await?;
    ensure!(run.metric("chimpsync_schema_compatible").await? == Some(1.0));

    // `setup` with another mapping: the triggers no longer capture what the worker's file says.
    f.emulator.set_latency(Duration::ZERO);
    let tagless = store::Mapping::parse(&MAPPING.replace("[\"customer_type\"]", "[]"))?;
    let mut admin = f.db.client().await?;
    store::setup(&mut admin, &tagless, store::TriggerShape::Statement).await?;
    let body = run.readyz(503, "tags.columns").await?;
    ensure!(
        body.trim_end()
            == "schema: tags.columns \"customer_type\" is in the mapping file but not in the \
                installed triggers: run `chimpsync setup`",
        "{body}"
    );
    store::setup(&mut admin, &f.mapping, store::TriggerShape::Statement).await?;
    run.readyz(200, "ready").await?;

    wait_drained(&f, Duration::from_secs(180)).await?;
    let (status, log) = run.process.terminate()?;
    ensure!(status.success(), "the worker did not stop cleanly:\n{log}");
    f.assert_converged().await?;
    let unacked = unacknowledged_deletes(&f).await?;
    ensure!(unacked.is_empty(), "{unacked:?}");
    let doubled = doubled_contacts(&f).await?;
    ensure!(doubled.is_empty(), "{doubled:?}");
    record.figure(
        "customers in the audience",
        f.emulator.members(AUDIENCE).len(),
    );
    record.figure("lost", 0);
    record.save()?;
    f.finish().await
}

/// The payload's merge fields and tags as the old worker sent them.
fn member_of(payload: &Value, consent: bool) -> (MemberUpsert, Vec<TagChange>) {
    let status = if consent {
        Status::Subscribed
    } else {
        Status::Unsubscribed
    };
    let merge_fields = payload["merge_fields"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let tags = payload["tags"]
        .as_object()
        .map(|t| {
            t.values()
                .filter_map(Value::as_str)
                .map(|name| TagChange {
                    name: name.to_string(),
                    active: true,
                })
                .collect()
        })
        .unwrap_or_default();
    let body = MemberUpsert {
        email_address: None,
        status_if_new: Some(status),
        status: Some(status),
        merge_fields,
        ..Default::default()
    };
    (body, tags)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_from_schema_0002_while_the_old_worker_holds_claims_loses_nothing() -> Result<()>
{
    let mut record = Scenario::new(
        "host",
        "reliability::host_handshake::an_upgrade_from_schema_0002_while_the_old_worker_holds_claims_loses_nothing",
        "Upgrade from the previous release's schema with its claims held",
    )
    .tried(
        "a database at schema version 2 (migrations 0001 and 0002 only) with 300 customers \
         queued; a worker of that release claims two batches of 50 with its own claim SQL; \
         `setup` of this build upgrades the schema while both claims are held; the application \
         then changes one customer of each batch; the old worker sends its first batch to \
         Mailchimp and acknowledges it with its own ack SQL, and dies holding the second; a \
         worker of this build drains the queue",
    )
    .asserted(
        "setup applies every later migration without waiting for the claims; the old ack \
         deletes the 49 unchanged rows and releases the changed one (fenced by version); the \
         second batch is claimed again once its lease lapses; audience = table, every customer \
         in Mailchimp, 0 doubled contacts",
    );
    let f = Fixture::new().await?;
    // The schema of the release before: drop this build's, then apply only 0001 and 0002.
    f.exec("drop schema chimpsync cascade").await?;
    f.exec(store::sql::queries::BOOTSTRAP).await?;
    for (version, name, sql) in store::sql::MIGRATIONS.iter().filter(|m| m.0 <= 2) {
        f.exec(sql).await?;
        f.sql
            .execute(store::sql::queries::RECORD_MIGRATION, &[version, name])
            .await?;
    }
    f.insert_customers(300, 1).await?;
    // What that release's triggers and backfill queued: one upsert per customer.
    f.exec(
        "insert into chimpsync.sync_queue (customer_key, operation, email, payload)
         select id::text, 'upsert', email,
                jsonb_build_object(
                    'merge_fields', jsonb_build_object('FNAME', coalesce(first_name, ''),
                                                       'LNAME', coalesce(last_name, ''),
                                                       'STORE', coalesce(store, '')),
                    'tags', jsonb_build_object('customer_type', customer_type),
                    'consent', coalesce(consent_contact, false))
         from customers order by id",
    )
    .await?;
    let claim = |token: uuid::Uuid, lease: f64| {
        let sql = &f.sql;
        async move {
            sql.query(
                OLD_CLAIM,
                &[
                    &"old/1",
                    &token,
                    &50i64,
                    &lease,
                    &None::<chrono::DateTime<chrono::Utc>>,
                ],
            )
            .await
        }
    };
    let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let batch = claim(first, 300.0).await?;
    let dying = claim(second, 2.0).await?;
    ensure!(batch.len() == 50 && dying.len() == 50);

    let mut admin = f.db.client().await?;
    let upgrade = Instant::now();
    let report = store::setup(&mut admin, &f.mapping, store::TriggerShape::Statement).await?;
    record.figure(
        "setup seconds",
        (upgrade.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    let later: Vec<i32> = store::sql::MIGRATIONS
        .iter()
        .map(|m| m.0)
        .filter(|v| *v > 2)
        .collect();
    ensure!(report.applied_migrations == later, "{report:?}");
    ensure!(store::handshake::check(&admin, &f.mapping).await?.is_none());

    // The application changes one customer of each claimed batch after the upgrade.
    let changed: String = batch[0].get("customer_key");
    let changed_dying: String = dying[0].get("customer_key");
    f.exec(&format!(
        "update customers set last_name = 'after the upgrade' where id in ({changed}, {changed_dying})"
    ))
    .await?;

    // The old worker sends its first batch and acknowledges it with its own SQL.
    let (mut ids, mut versions, mut keys, mut emails, mut consents, mut tags, mut removed) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for row in &batch {
        let email: String = row.get("email");
        let payload: Value = row.get("payload");
        let consent = payload["consent"].as_bool().unwrap_or(false);
        let (body, tag_changes) = member_of(&payload, consent);
        f.mailchimp.upsert_member(AUDIENCE, &email, &body).await?;
        f.mailchimp
            .update_tags(AUDIENCE, &email, &tag_changes)
            .await?;
        ids.push(row.get::<_, i64>("id"));
        versions.push(row.get::<_, i64>("version"));
        keys.push(row.get::<_, String>("customer_key"));
        emails.push(email);
        consents.push(consent);
        tags.push(Value::from(
            tag_changes
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>(),
        ));
        removed.push(false);
    }
    let acked = f
        .sql
        .query_one(
            OLD_ACK,
            &[
                &first, &ids, &versions, &keys, &emails, &consents, &tags, &removed,
            ],
        )
        .await?;
    let (deleted, released): (i64, i64) = (acked.get("deleted"), acked.get("released"));
    ensure!(
        (deleted, released) == (49, 1),
        "old ack: {deleted} deleted, {released} released"
    );
    record.figure("rows the old ack deleted", deleted);
    record.figure(
        "rows the old ack released (changed after the upgrade)",
        released,
    );

    // A worker of this build drains, the dead worker's batch included once its lease lapses.
    let worker = f.worker(|_| {})?;
    let outcome = f.drain(&worker).await?;
    ensure!(outcome.parked == 0, "{outcome:?}");
    f.assert_converged().await?;
    let members = f.emulator.members(AUDIENCE).len();
    ensure!(members == 300, "{members} members for 300 customers");
    let doubled = doubled_contacts(&f).await?;
    ensure!(doubled.is_empty(), "{doubled:?}");
    record.figure("customers in the audience", members);
    record.figure("lost", 0);
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_inbound_events_are_deleted_after_their_retention() -> Result<()> {
    let mut record = Scenario::new(
        "host",
        "reliability::host_handshake::applied_inbound_events_are_deleted_after_their_retention",
        "Inbound events past their retention",
    )
    .tried(
        "chimpsync.inbound_events holds 2,500 applied and 10 ignored events from 8 days ago, \
         applied events from yesterday, and events from 8 days ago still received or failed; \
         the retention runs with 7 days, then `chimpsync run` starts with its default",
    )
    .asserted(
        "each statement deletes at most 1,000 events; only applied and ignored events older \
         than the retention go; recent, unapplied and failed events stay",
    );
    let f = Fixture::new().await?;
    let insert = |n: i64, status: &str, age: &str, tag: &str| {
        format!(
            "insert into chimpsync.inbound_events
                 (event_type, email, payload, status, received_at, applied_at, next_attempt_at)
             select 'unsubscribe', 'e' || g || '@pets.test', jsonb_build_object('n', g, 't', '{tag}'),
                    '{status}', now() - interval '{age}',
                    case when '{status}' = 'applied' then now() - interval '{age}' end,
                    case when '{status}' in ('received', 'failed') then now() end
             from generate_series(1, {n}) g"
        )
    };
    f.exec(&insert(2500, "applied", "8 days", "old")).await?;
    f.exec(&insert(10, "ignored", "8 days", "ignored")).await?;
    f.exec(&insert(5, "applied", "1 day", "recent")).await?;
    f.exec(&insert(3, "received", "8 days", "waiting")).await?;
    f.exec(&insert(2, "failed", "8 days", "failed")).await?;
    let week = Duration::from_secs(7 * 86_400);
    let mut statements = Vec::new();
    loop {
        let deleted = store::inbound::prune(f.queue.pool(), week, 1000).await?;
        if deleted == 0 {
            break;
        }
        statements.push(deleted);
    }
    ensure!(statements == [1000, 1000, 510], "{statements:?}");
    let fixture = &f;
    let left = |status: &str| {
        let sql =
            format!("select count(*) from chimpsync.inbound_events where status = '{status}'");
        async move { count(fixture, &sql).await }
    };
    ensure!(left("applied").await? == 5 && left("ignored").await? == 0);
    ensure!(left("received").await? == 3 && left("failed").await? == 2);
    record.figure("events deleted per statement", format!("{statements:?}"));

    // The worker does it by itself.
    f.exec(&insert(20, "applied", "8 days", "again")).await?;
    let run = Spawned::start(f.command(&["run"])?)?;
    wait_until(WAIT, "the worker to delete old applied events", || async {
        Ok(left("applied").await? == 5)
    })
    .await?;
    let (status, log) = run.terminate()?;
    ensure!(status.success(), "{log}");
    ensure!(left("received").await? == 3 && left("failed").await? == 2);
    record.save()?;
    f.finish().await
}
