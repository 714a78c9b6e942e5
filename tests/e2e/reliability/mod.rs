//! Proof that nothing is lost or doubled. Crashes of the real binary, Mailchimp faults
//! on every kind of call, database faults (a private Postgres restarted, statement timeouts,
//! locks), bad input, and a load run. Each scenario asserts its outcome and then records what it
//! measured (`chimpsync_tests::reliability`); `reliability-report` renders `RELIABILITY.md`.
//!
//! What the other end-to-end tests prove is not repeated (see the list at the end of
//! `RELIABILITY.md`).

mod accounts;
mod crash;
mod database;
mod host_ddl;
mod host_handshake;
mod host_resume;
mod host_truncate;
mod input;
mod load;
mod mailchimp;

use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use chimpsync_tests::{wait_until, Fixture, AUDIENCE};
use rand::{RngExt, SeedableRng};
use tokio_util::sync::CancellationToken;

pub(crate) use chimpsync_tests::reliability::Scenario;

/// Whether nothing is pending, in flight or waiting for a retry (parked rows may remain).
pub(crate) async fn drained(f: &Fixture) -> Result<bool> {
    let s = f.queue.summary().await?;
    Ok(s.pending + s.in_flight + s.retrying == 0)
}

/// Waits until the queue is drained.
pub(crate) async fn wait_drained(f: &Fixture, timeout: Duration) -> Result<()> {
    wait_until(timeout, "the queue to drain", || drained(f)).await
}

/// One number from the test database.
pub(crate) async fn count(f: &Fixture, sql: &str) -> Result<i64> {
    Ok(f.sql.query_one(sql, &[]).await?.get(0))
}

/// Rows the worker `owner` (its `lease_owner`) holds under a live lease.
pub(crate) async fn leased_by(f: &Fixture, owner: &str) -> Result<i64> {
    Ok(f.sql
        .query_one(
            "select count(*) from chimpsync.sync_queue where lease_owner = $1 and lease_expires_at > now()",
            &[&owner],
        )
        .await?
        .get(0))
}

// ---------------------------------------------------------------------------------------------
// The journal of acknowledgements

/// Journals every delete of a queue row (a delete is an acknowledgement: `ack_batch.sql` is the
/// only statement that deletes queue rows) into `reliability.acked`.
pub(crate) async fn journal_acks(f: &Fixture) -> Result<()> {
    f.exec(
        "create schema reliability;
         create table reliability.acked (
             n bigint generated always as identity primary key,
             customer_key text not null, operation text not null, email text,
             payload jsonb not null, version bigint not null);
         create function reliability.journal() returns trigger language plpgsql as $$
         begin
             insert into reliability.acked (customer_key, operation, email, payload, version)
             select customer_key, operation, email, payload, version from gone order by id;
             return null;
         end $$;
         create trigger journal after delete on chimpsync.sync_queue
             referencing old table as gone for each statement execute function reliability.journal();",
    )
    .await
}

/// Customers whose last acknowledged (deleted) queue row does not hold the table's final state:
/// a row deleted although what it carried is not what the customer ended as means a newer change
/// was dropped by an acknowledgement of an older one. Call when the queue is drained. Customers
/// with a parked row are skipped (they are not synced by design).
pub(crate) async fn unacknowledged_deletes(f: &Fixture) -> Result<Vec<String>> {
    let rows = f
        .sql
        .query(
            "with last as (
                 select distinct on (customer_key) * from reliability.acked
                 order by customer_key, n desc)
             select l.customer_key, l.operation, l.email, c.email, l.payload::text
             from last l
             left join customers c on c.id::text = l.customer_key
             where not exists (select 1 from chimpsync.sync_queue q where q.customer_key = l.customer_key)
               and not case
                   when c.id is null or c.deleted_at is not null or nullif(btrim(c.email), '') is null
                       then l.operation = 'remove'
                   else l.operation = 'upsert'
                        and l.email = c.email
                        and l.payload #>> '{merge_fields,FNAME}' is not distinct from c.first_name
                        and l.payload #>> '{merge_fields,LNAME}' is not distinct from c.last_name
                        and l.payload #>> '{merge_fields,STORE}' is not distinct from c.store
                        and l.payload #>> '{tags,customer_type}' is not distinct from c.customer_type
                        and (l.payload ->> 'consent')::boolean = coalesce(c.consent_contact, false)
               end",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "customer {}: last acknowledged {} {:?} {} but the table holds {:?}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, Option<String>>(2),
                r.get::<_, String>(4),
                r.get::<_, Option<String>>(3)
            )
        })
        .collect())
}

/// Live (not archived) members that no live customer owns, and customers with more than one
/// live member. Parked customers' addresses are not counted.
pub(crate) async fn doubled_contacts(f: &Fixture) -> Result<Vec<String>> {
    let owners: std::collections::HashMap<String, String> = f
        .sql
        .query(
            "select lower(btrim(email)), id::text from customers
             where deleted_at is null and nullif(btrim(email), '') is not null
             union all
             select lower(btrim(email)), customer_key from chimpsync.sync_queue
             where parked_at is not null and email is not null
             union all
             select lower(s.email), s.customer_key from chimpsync.synced_contacts s
             join chimpsync.sync_queue q on q.customer_key = s.customer_key and q.parked_at is not null
             union all
             select lower(btrim(e)), q.customer_key from chimpsync.sync_queue q,
                    jsonb_array_elements_text(coalesce(q.maybe_applied -> 'emails', '[]'::jsonb)) e
             where q.parked_at is not null",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut doubled = Vec::new();
    let mut per_customer: std::collections::HashMap<String, usize> = Default::default();
    for m in f.emulator.members(AUDIENCE) {
        if m.status == "archived" {
            continue;
        }
        match owners.get(&m.email_address.to_lowercase()) {
            Some(owner) => *per_customer.entry(owner.clone()).or_default() += 1,
            None => doubled.push(format!("member {} has no customer", m.email_address)),
        }
    }
    for (customer, n) in per_customer {
        if n > 1 {
            doubled.push(format!("customer {customer} has {n} live members"));
        }
    }
    Ok(doubled)
}

// ---------------------------------------------------------------------------------------------
// Live writers

/// Counters of a writer.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    /// Statements that committed and changed a row.
    pub changes: AtomicU64,
    /// Statements that failed (and were retried or skipped).
    pub errors: AtomicU64,
    /// The slowest committed statement, in microseconds.
    pub max_micros: AtomicU64,
}

/// What a writer does.
#[derive(Debug, Clone)]
pub(crate) struct WriterPlan {
    /// Seed of its random sequence.
    pub seed: u64,
    /// Customer ids it touches (`1..=ids`).
    pub ids: i64,
    /// Stop after this many committed changes (or when cancelled).
    pub changes: u64,
    /// Every this-many changes, an address Mailchimp refuses (0 = never).
    pub bad_every: u64,
    /// Pause between statements (0 = none), to spread the writes over the run.
    pub pace: Duration,
    /// Reconnect and go on when the database goes away (a restart test); otherwise an error
    /// fails the writer.
    pub survive_outages: bool,
}

/// One random change of a customer, as a single statement.
fn random_change(rng: &mut impl RngExt, plan: &WriterPlan, step: u64) -> String {
    let id: i64 = rng.random_range(1..=plan.ids);
    let tag = ["'dog owner'", "'cat owner'", "'groomer'", "null"][rng.random_range(0..4)];
    if plan.bad_every > 0 && step % plan.bad_every == plan.bad_every - 1 {
        return format!(
            "update customers set email = 'not an address {id}.{step}' where id = {id}"
        );
    }
    let seed = plan.seed;
    match rng.random_range(0..10) {
        0 => format!(
            "insert into customers (id, email, first_name, last_name, store, customer_type, consent_contact)
             values ({id}, 'n{id}.{seed}.{step}@pets.test', 'N{step}', 'New', 'S1', 'cat owner', true)
             on conflict (id) do update set deleted_at = null"
        ),
        1 | 2 => format!("update customers set last_name = 'L{seed}.{step}' where id = {id}"),
        3 => format!("update customers set first_name = 'F{seed}.{step}', store = 'S{}' where id = {id}", step % 5),
        4 => format!("update customers set email = 'm{id}.{seed}.{step}@pets.test' where id = {id}"),
        5 => format!(
            "update customers set consent_contact = not coalesce(consent_contact, false) where id = {id}"
        ),
        6 => format!("update customers set customer_type = {tag} where id = {id}"),
        7 => format!("delete from customers where id = {id}"),
        8 => format!(
            "update customers set deleted_at = case when deleted_at is null then now() end where id = {id}"
        ),
        _ => format!(
            "update customers set notes = 'unmapped {step}', last_name = 'L{seed}.{step}' where id = {id}"
        ),
    }
}

/// Runs a writer until it made `plan.changes` changes or `stop` is cancelled.
pub(crate) async fn run_writer(
    url: String,
    plan: WriterPlan,
    stats: Arc<WriterStats>,
    stop: CancellationToken,
) -> Result<()> {
    let connect = |url: String| async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        anyhow::Ok(client)
    };
    let mut client = connect(url.clone()).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(plan.seed);
    let mut step = 0u64;
    while stats.changes.load(Ordering::Relaxed) < plan.changes && !stop.is_cancelled() {
        let sql = random_change(&mut rng, &plan, step);
        step += 1;
        let started = std::time::Instant::now();
        match client.execute(sql.as_str(), &[]).await {
            Ok(n) => {
                if n > 0 {
                    stats.changes.fetch_add(1, Ordering::Relaxed);
                }
                stats
                    .max_micros
                    .fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            Err(e) if plan.survive_outages => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                if client.is_closed() || e.code().is_none() {
                    // The database went away: reconnect until it is back (or we are stopped).
                    loop {
                        if stop.is_cancelled() {
                            return Ok(());
                        }
                        match connect(url.clone()).await {
                            Ok(c) => {
                                client = c;
                                break;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("writer {}: {sql}", plan.seed)),
        }
        if !plan.pace.is_zero() {
            tokio::time::sleep(plan.pace).await;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The real binary as a process

/// A `chimpsync` process with its stderr (JSON log lines) collected.
pub(crate) struct Spawned {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Spawned {
    /// Starts `cmd` with stderr piped.
    pub(crate) fn start(mut cmd: Command) -> Result<Spawned> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting chimpsync")?;
        let pipe = child.stderr.take().context("stderr is piped")?;
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().expect("log lock").push(line);
                }
            })
        };
        Ok(Spawned {
            child,
            lines,
            reader: Some(reader),
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker's `lease_owner` (host/pid, as `worker::settings::owner` makes it).
    pub(crate) fn owner(&self) -> String {
        format!("chimpsync/{}", self.pid())
    }

    /// Whether it still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How many log lines contain `needle`.
    pub(crate) fn logged(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The log so far.
    pub(crate) fn log(&self) -> String {
        self.lines.lock().expect("log lock").join("\n")
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// SIGKILL, and reap it.
    pub(crate) fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok(())
    }

    /// SIGTERM; waits for the exit. Returns the exit status and the whole log.
    pub(crate) fn terminate(mut self) -> Result<(ExitStatus, String)> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let exit = self.child.wait()?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok((exit, self.log()))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The numbers of a worker's final `worker stopped` line.
pub(crate) fn stopped_counts(log: &str) -> Option<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["message"] == "worker stopped")
}

pub(crate) use chimpsync_tests::private_postgres::PrivatePostgres;
