//! `chimpsync demo`: a pet business's customer table, the Mailchimp emulator in-process, and the
//! whole loop: setup, backfill, live changes flowing through the queue, and a final side-by-side
//! check that the audience matches the table; then many businesses from one installation, one
//! synced and one switched off, then on (`accounts`).
//!
//! The [`fixture`] (table, mapping, audience, key) is also what the end-to-end tests and the
//! benchmark start from. The demo calls the store and the worker directly, so that this crate
//! and the emulator stay out of a `chimpsync` built without its `demo` feature.

mod compare;
pub mod fixture;
pub mod server;

mod accounts;

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use mailchimp::{ApiKey, Client, ClientConfig};
use mailchimp_emulator::{Config as EmulatorConfig, Emulator};
use store::{Mapping, Queue, TriggerShape};
use tokio_util::sync::CancellationToken;

use fixture::{queries, API_KEY, AUDIENCE};

/// The database the demo creates (again) on the server.
const DEMO_DB: &str = "chimpsync_demo";

/// Rows per backfill chunk.
const BACKFILL_CHUNK: i64 = 5000;

/// How long the queue may take to drain after a step.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The live changes: what each shows, its SQL, and the address to look up afterwards.
const STEPS: [(&str, &str, &str); 8] = [
    ("a new customer", "insert into customers (id, email, first_name, last_name, store, customer_type, consent_contact, pet_type) values (900001, 'marta.nunes@petmail.test', 'Marta', 'Nunes', 'Porto', 'dog owner', true, 'Dog')", "marta.nunes@petmail.test"),
    ("an edit (last name)", "update customers set last_name = 'Nunes-Costa' where id = 900001", "marta.nunes@petmail.test"),
    ("an email change (the member is renamed, no duplicate)", "update customers set email = 'marta@pawpost.test' where id = 900001", "marta@pawpost.test"),
    ("customer type changed (old tag off, new tag on)", "update customers set customer_type = 'breeder' where id = 900001", "marta@pawpost.test"),
    ("pet type changed (the old interest off, the new one on; a new pet type becomes a new interest)", "update customers set pet_type = 'Parrot' where id = 900001", "marta@pawpost.test"),
    ("consent removed (unsubscribed, and the Email permission withdrawn)", "update customers set consent_contact = false where id = 900001", "marta@pawpost.test"),
    ("deleted (archived)", "delete from customers where id = 900001", "marta@pawpost.test"),
    ("a fake address (Mailchimp refuses it: parked, not retried forever)", "insert into customers (id, email, first_name, last_name, consent_contact) values (900002, 'nobody@example.com', 'No', 'Body', true)", "nobody@example.com"),
];

pub(crate) fn say(line: impl AsRef<str>) {
    println!("{}", line.as_ref());
}

/// Runs the demo on the Postgres server at `server` ([`server::LOCAL`] when `None`), in a
/// database of its own.
pub async fn run(server: Option<&str>, customers: i64) -> Result<()> {
    if !(10..=1_000_000).contains(&customers) {
        bail!("--customers must be between 10 and 1000000");
    }
    let server = server.unwrap_or(server::LOCAL);
    let admin = store::connect(server).await.map_err(|e| {
        anyhow!(
            "chimpsync demo needs a PostgreSQL server and could not reach {}: {e}. Start one (e.g. \
             `pg_ctlcluster 15 main start`) or point DATABASE_URL at one, e.g. \
             DATABASE_URL={} chimpsync demo",
            server::redact(server),
            server::LOCAL
        )
    })?;
    say("== chimpsync demo ==");
    say(format!(
        "1. A fresh database {DEMO_DB} with {customers} customers of a pet business"
    ));
    server::recreate(&admin, DEMO_DB)
        .await
        .context("creating the demo database")?;
    let url = server::with_database(server, DEMO_DB)?;
    let mut db = store::connect(&url).await?;
    db.batch_execute(fixture::CUSTOMERS).await?;
    db.batch_execute(&fixture::sample(customers)).await?;

    say("2. The Mailchimp emulator, in-process, with one audience (GDPR fields on)");
    let emulator = Emulator::start(
        "127.0.0.1:0".parse().expect("literal address"),
        EmulatorConfig {
            api_key: Some(API_KEY.into()),
            gdpr_audiences: vec![AUDIENCE.into()],
            ..Default::default()
        },
    )
    .await
    .context("starting the emulator")?;
    let mut config = ClientConfig::new(ApiKey::parse(API_KEY)?);
    config.base_url = Some(emulator.base_url());
    let client = Client::new(config)?;
    client
        .create_merge_field(AUDIENCE, &fixture::store_merge_field())
        .await?;
    say(format!("   listening at {}", emulator.base_url()));

    say("3. chimpsync setup with this mapping file:");
    let text = fixture::demo_mapping();
    for line in text.trim_start().lines() {
        say(format!("     {line}"));
    }
    let mapping = Mapping::parse(&text)?;
    store::setup(&mut db, &mapping, TriggerShape::Statement).await?;

    say("4. chimpsync backfill (the initial sync), then the worker drains the queue");
    let enqueued = backfill(&db, &mapping).await?;
    let pool = store::pool(&url, 8, Duration::from_secs(30))?;
    let queue = Queue::new(pool);
    print_status("   queue after backfill:", &queue).await?;
    let mut settings = worker::Settings::new(AUDIENCE);
    settings.audience = mapping.audience.clone();
    settings.interests = mapping.interests.clone();
    settings.poll_interval = Duration::from_millis(50);
    settings.retry.base = Duration::from_millis(200);
    let worker = worker::Worker::new(queue.clone(), client.clone(), settings)?;
    let stop = CancellationToken::new();
    let running = {
        let worker = worker.clone();
        let stop = stop.clone();
        tokio::spawn(async move { worker.run(stop, false).await })
    };
    let started = Instant::now();
    wait_drained(&queue).await?;
    say(format!(
        "   {enqueued} contacts synced in {:.2} s; the audience now has {} members",
        started.elapsed().as_secs_f64(),
        emulator.members(AUDIENCE).len()
    ));

    say("5. Live changes, each flowing through the queue into the audience:");
    for (what, sql, email) in STEPS {
        db.batch_execute(sql).await?;
        wait_drained(&queue).await?;
        let groups = worker::groups::read(&client, AUDIENCE).await?;
        let shown = match client.get_member(AUDIENCE, email).await {
            Ok(m) => format!(
                "{} status={} FNAME={} LNAME={} tags={:?} interests={:?} Email permission={}",
                m.email_address,
                m.status.as_str(),
                m.merge_fields
                    .get("FNAME")
                    .and_then(|v| v.as_str())
                    .unwrap_or(""),
                m.merge_fields
                    .get("LNAME")
                    .and_then(|v| v.as_str())
                    .unwrap_or(""),
                m.tags,
                compare::interests_on(&groups, &m),
                compare::permission(&m, "Email").map_or("none".into(), |on| on.to_string()),
            ),
            Err(e) => format!("{email}: not in the audience ({e})"),
        };
        say(format!(
            "   - {what}:\n       sql: {sql}\n       mailchimp: {shown}"
        ));
    }
    let old = client
        .get_member(AUDIENCE, "marta.nunes@petmail.test")
        .await;
    say(format!(
        "   the old address after the rename: {}",
        match old {
            Ok(m) => format!("still there ({})", m.status.as_str()),
            Err(_) => "gone (renamed, not duplicated)".into(),
        }
    ));
    print_status("   queue now:", &queue).await?;
    for row in db.query(queries::PARKED, &[]).await? {
        say(format!(
            "   parked row {} (customer {}): {}",
            row.get::<_, i64>(0),
            row.get::<_, String>(1),
            row.get::<_, Option<String>>(2).unwrap_or_default()
        ));
    }

    say("6. Side by side: the table against the audience (read through the Mailchimp API)");
    let report = compare::compare(&db, &client).await?;
    for line in &report.sample {
        say(format!("   {line}"));
    }
    say(format!(
        "   {} customers in the table, {} match their member exactly, {} differ, {} parked (shown above)",
        report.customers, report.matching, report.differing.len(), report.parked
    ));
    for d in report.differing.iter().take(10) {
        say(format!("   DIFFERENT: {d}"));
    }
    stop.cancel();
    running.await.map_err(|e| anyhow!("worker task: {e}"))??;
    emulator.shutdown().await;
    if !report.differing.is_empty() {
        bail!(
            "the audience does not match the table ({} differences)",
            report.differing.len()
        );
    }
    say(format!("The audience matches the table. Demo database left in place: psql -d {DEMO_DB} -c 'table chimpsync.queue_summary'"));
    accounts::run(server, &admin, customers.min(4000)).await
}

/// Enqueues every customer, chunk by chunk; returns how many rows were enqueued.
async fn backfill(db: &tokio_postgres::Client, mapping: &Mapping) -> Result<u64> {
    let backfill = store::backfill::Backfill::new(db, mapping).await?;
    let mut after: Option<String> = None;
    let mut enqueued = 0;
    loop {
        let chunk = backfill.chunk(db, after.as_deref(), BACKFILL_CHUNK).await?;
        enqueued += chunk.enqueued;
        after = chunk.last_key;
        if after.is_none() {
            return Ok(enqueued);
        }
    }
}

async fn print_status(title: &str, queue: &Queue) -> Result<()> {
    let s = queue.summary().await?;
    say(format!(
        "{title} pending={} in_flight={} retrying={} parked={}",
        s.pending, s.in_flight, s.retrying, s.parked
    ));
    Ok(())
}

async fn wait_drained(queue: &Queue) -> Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let s = queue.summary().await?;
        if s.pending == 0 && s.in_flight == 0 && s.retrying == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the queue did not drain within {DRAIN_TIMEOUT:?}: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
