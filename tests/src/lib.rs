//! The harness of the end-to-end tests: a fresh database per test, the emulator in-process,
//! helpers to read the queue and compare the audience with the table.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::{Client, NoTls};

pub mod private_postgres;
pub mod reliability;

/// The server the tests use: `DATABASE_URL`, else the local default.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| chimpsync_demo::server::LOCAL.to_string())
}

/// A database made for one test. Call [`TestDb::finish`] at the end of a passing test to drop it;
/// a failing test leaves it behind for inspection.
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// Its connection URL.
    pub url: String,
    admin: Client,
}

async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| "connecting to Postgres (set DATABASE_URL)".to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Replaces the database name in a URL.
pub fn url_with_db(url: &str, db: &str) -> String {
    chimpsync_demo::server::with_database(url, db).expect("DATABASE_URL is a URL")
}

impl TestDb {
    /// Creates a fresh, empty database.
    pub async fn new() -> Result<TestDb> {
        TestDb::new_on(&server_url()).await
    }

    /// Creates a fresh, empty database on the server at `server` (a test's own Postgres).
    pub async fn new_on(server: &str) -> Result<TestDb> {
        let server = server.to_string();
        let admin = connect(&server).await?;
        let name = format!("chimpsync_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("create database {name}"))
            .await?;
        let url = url_with_db(&server, &name);
        Ok(TestDb { name, url, admin })
    }

    /// A new connection to the test database.
    pub async fn client(&self) -> Result<Client> {
        connect(&self.url).await
    }

    /// Drops the database (call when the test passed).
    pub async fn finish(self) -> Result<()> {
        chimpsync_demo::server::drop_database(&self.admin, &self.name).await
    }
}

/// Waits until `check` returns true, polling; fails after `timeout`. Used to wait on an
/// observable condition instead of sleeping a fixed time.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub use chimpsync_demo::fixture::{API_KEY, AUDIENCE, CUSTOMERS, MAPPING};

/// A database with the customer table and chimpsync set up, an emulator, a client and a queue.
pub struct Fixture {
    /// The database.
    pub db: TestDb,
    /// A connection for the test's own writes.
    pub sql: Client,
    /// The emulator.
    pub emulator: mailchimp_emulator::Emulator,
    /// A client for the emulator.
    pub mailchimp: mailchimp::Client,
    /// The queue.
    pub queue: store::Queue,
    /// The parsed mapping.
    pub mapping: store::Mapping,
}

impl Fixture {
    /// Sets everything up with the default mapping and emulator.
    pub async fn new() -> Result<Fixture> {
        Fixture::with(MAPPING, mailchimp_emulator::Config::default()).await
    }

    /// Sets everything up with a mapping text and an emulator configuration (the audience and
    /// key are added).
    pub async fn with(mapping: &str, config: mailchimp_emulator::Config) -> Result<Fixture> {
        Fixture::with_server(&server_url(), mapping, config).await
    }

    /// [`Fixture::with`] on the Postgres server at `server` (a URL of any database on it).
    pub async fn with_server(
        server: &str,
        mapping: &str,
        mut config: mailchimp_emulator::Config,
    ) -> Result<Fixture> {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("TEST_LOG").unwrap_or_default(),
                ))
                .with_writer(|| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(
                            std::env::var("TEST_LOG_FILE")
                                .unwrap_or_else(|_| "/tmp/chimpsync-test.log".into()),
                        )
                        .expect("test log file")
                })
                .with_ansi(false)
                .try_init();
        }
        let db = TestDb::new_on(server).await?;
        let mut sql = db.client().await?;
        sql.batch_execute(CUSTOMERS).await?;
        let mapping = store::Mapping::parse(mapping)?;
        store::setup(&mut sql, &mapping, store::TriggerShape::Statement).await?;
        config.api_key = Some(API_KEY.into());
        config.audiences.push(AUDIENCE.into());
        // Faults start after the fixture's own setup calls.
        let (fail_rate, drop_rate) = (config.fail_rate, config.drop_rate);
        config.fail_rate = 0.0;
        config.drop_rate = 0.0;
        let emulator = mailchimp_emulator::Emulator::start("127.0.0.1:0".parse()?, config).await?;
        let mailchimp = Self::client_for(&emulator)?;
        mailchimp
            .create_merge_field(AUDIENCE, &chimpsync_demo::fixture::store_merge_field())
            .await?;
        emulator.set_fail_rate(fail_rate);
        emulator.set_drop_rate(drop_rate);
        let pool = store::pool(&db.url, 16, Duration::from_secs(30))?;
        Ok(Fixture {
            db,
            sql,
            emulator,
            mailchimp,
            queue: store::Queue::new(pool),
            mapping,
        })
    }

    /// A client for an emulator with short timeouts.
    pub fn client_for(emulator: &mailchimp_emulator::Emulator) -> Result<mailchimp::Client> {
        let mut config = mailchimp::ClientConfig::new(mailchimp::ApiKey::parse(API_KEY)?);
        config.base_url = Some(emulator.base_url());
        config.request_timeout = Duration::from_secs(10);
        config.connect_timeout = Duration::from_secs(2);
        Ok(mailchimp::Client::new(config)?)
    }

    /// Test settings: quick retries, short lease.
    pub fn settings(&self) -> worker::Settings {
        let mut s = worker::Settings::new(AUDIENCE);
        s.audience = self.mapping.audience.clone();
        s.interests = self.mapping.interests.clone();
        s.lease = Duration::from_secs(30);
        s.request_timeout = Duration::from_secs(10);
        s.retry = worker::retry::RetryPolicy {
            base: Duration::from_millis(10),
            max: Duration::from_millis(100),
            max_attempts: 50,
        };
        s.poll_interval = Duration::from_millis(20);
        s.shutdown_deadline = Duration::from_secs(5);
        s
    }

    /// A worker with the test settings, adjusted by `tweak`.
    pub fn worker(&self, tweak: impl FnOnce(&mut worker::Settings)) -> Result<worker::Worker> {
        let mut s = self.settings();
        tweak(&mut s);
        Ok(worker::Worker::new(
            self.queue.clone(),
            Self::client_for(&self.emulator)?,
            s,
        )?)
    }

    /// Drives `drain_once` until nothing is pending, in flight or waiting for a retry.
    pub async fn drain(&self, worker: &worker::Worker) -> Result<worker::DrainOutcome> {
        let mut total = worker::DrainOutcome::default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let o = worker.drain_once().await?;
            total.add(&o);
            if o.claimed == 0 {
                let s = self.queue.summary().await?;
                if s.pending + s.in_flight + s.retrying == 0 {
                    return Ok(total);
                }
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "queue did not drain: {s:?}"
                );
                // Rows wait for their retry time: poll for them to come due.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Runs SQL on the test database.
    pub async fn exec(&self, sql: &str) -> Result<()> {
        self.sql.batch_execute(sql).await?;
        Ok(())
    }

    /// Inserts `n` customers from id `first` (address `c<id>@pets.test`): a quarter without
    /// consent, three stores, three customer types.
    pub async fn insert_customers(&self, n: i64, first: i64) -> Result<()> {
        self.exec(&format!(
            "insert into customers (id, email, first_name, last_name, store, customer_type, consent_contact)
             select g, 'c' || g || '@pets.test', 'F' || g, 'L' || g, 'S' || (g % 3),
                    (array['dog owner','cat owner','groomer'])[1 + g % 3], g % 4 <> 0
             from generate_series({first}, {}) g",
            first + n - 1
        ))
        .await
    }

    /// The member with this address, if any.
    pub fn member(&self, email: &str) -> Option<mailchimp_emulator::MemberView> {
        self.emulator.member(AUDIENCE, email)
    }

    /// Queue rows: (id, customer_key, parked, last_error, attempts).
    pub async fn queue_rows(&self) -> Result<Vec<(i64, String, bool, Option<String>, i32)>> {
        Ok(self
            .sql
            .query(
                "select id, customer_key, parked_at is not null, last_error, attempts from chimpsync.sync_queue order by id",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect())
    }

    /// Compares the audience with the table; returns the differences (empty = converged).
    /// Parked customers are skipped (they are reported by `status`, not synced).
    pub async fn differences(&self) -> Result<Vec<String>> {
        let rows = self
            .sql
            .query(
                "select c.id::text, lower(btrim(c.email)), coalesce(c.first_name, ''), coalesce(c.last_name, ''),
                        coalesce(c.store, ''), c.customer_type, coalesce(c.consent_contact, false)
                 from customers c
                 where c.deleted_at is null and nullif(btrim(c.email), '') is not null
                   and not exists (select 1 from chimpsync.sync_queue q where q.customer_key = c.id::text and q.parked_at is not null)",
                &[],
            )
            .await?;
        let mut diffs = Vec::new();
        let mut wanted = std::collections::HashSet::new();
        for r in &rows {
            let key: String = r.get(0);
            let email: String = r.get(1);
            wanted.insert(email.clone());
            let Some(m) = self.member(&email) else {
                diffs.push(format!("customer {key}: no member {email}"));
                continue;
            };
            let consent: bool = r.get(6);
            let status_ok = if consent {
                m.status == "subscribed" || m.status == "pending"
            } else {
                m.status == "unsubscribed"
            };
            if !status_ok {
                diffs.push(format!(
                    "customer {key}: consent {consent} but status {}",
                    m.status
                ));
            }
            for (tag, idx) in [("FNAME", 2), ("LNAME", 3), ("STORE", 4)] {
                let want: String = r.get(idx);
                let got = m
                    .merge_fields
                    .get(tag)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string();
                if want != got {
                    diffs.push(format!("customer {key}: {tag} {want:?} != {got:?}"));
                }
            }
            let kind: Option<String> = r.get(5);
            let want_tags: Vec<String> = kind.into_iter().map(|k| k.to_lowercase()).collect();
            let got_tags: Vec<String> = m.tags.iter().map(|t| t.to_lowercase()).collect();
            if want_tags != got_tags {
                diffs.push(format!(
                    "customer {key}: tags {want_tags:?} != {got_tags:?}"
                ));
            }
        }
        // A parked customer's addresses: the one its row wants, and those its member may still
        // live under (a parked email change leaves the member at the last synced address, or at
        // one an attempt with a lost answer may have moved it to).
        let parked: std::collections::HashSet<String> = self
            .sql
            .query(
                "select lower(btrim(email)) from chimpsync.sync_queue where parked_at is not null and email is not null
                 union
                 select lower(s.email) from chimpsync.synced_contacts s
                 join chimpsync.sync_queue q on q.customer_key = s.customer_key and q.parked_at is not null
                 union
                 select lower(btrim(e)) from chimpsync.sync_queue q,
                        jsonb_array_elements_text(coalesce(q.maybe_applied -> 'emails', '[]'::jsonb)) e
                 where q.parked_at is not null",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for m in self.emulator.members(AUDIENCE) {
            let email = m.email_address.to_lowercase();
            if m.status != "archived" && !wanted.contains(&email) && !parked.contains(&email) {
                diffs.push(format!("member {email} ({}) has no customer", m.status));
            }
        }
        Ok(diffs)
    }

    /// Fails with the differences unless the audience equals the table.
    pub async fn assert_converged(&self) -> Result<()> {
        let diffs = self.differences().await?;
        anyhow::ensure!(
            diffs.is_empty(),
            "audience differs from the table ({}):\n{}",
            diffs.len(),
            diffs
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        Ok(())
    }

    /// Drops the database and stops the emulator (call when the test passed).
    pub async fn finish(self) -> Result<()> {
        self.emulator.shutdown().await;
        drop(self.queue);
        self.db.finish().await
    }
}

/// The real `chimpsync` binary, built in this package (`chimpsync-under-test`, next to the test
/// executable's `deps/` folder), or `CHIMPSYNC_BIN`.
pub fn chimpsync_bin() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("CHIMPSYNC_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    dir.join("chimpsync-under-test")
}

impl Fixture {
    /// Writes `mapping` to a file for the binary and returns its path.
    pub fn mapping_file(&self, mapping: &str) -> Result<std::path::PathBuf> {
        let path = std::env::temp_dir().join(format!(
            "{}-{}.toml",
            self.db.name,
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, mapping)?;
        Ok(path)
    }

    /// A `chimpsync` command wired to this fixture's database, emulator and the default mapping,
    /// with short test timings.
    pub fn command(&self, args: &[&str]) -> Result<std::process::Command> {
        let mut cmd = std::process::Command::new(chimpsync_bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.db.url)
            .env("MAILCHIMP_API_KEY", API_KEY)
            .env("MAILCHIMP_BASE_URL", self.emulator.base_url())
            .env("CHIMPSYNC_CONFIG", self.mapping_file(MAPPING)?)
            .env("CHIMPSYNC_HTTP_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("CHIMPSYNC_LEASE_SECONDS", "4")
            .env("CHIMPSYNC_REQUEST_TIMEOUT_SECONDS", "2")
            .env("CHIMPSYNC_POLL_INTERVAL_MS", "50")
            .env("CHIMPSYNC_BACKOFF_BASE_SECONDS", "0.05")
            .env("CHIMPSYNC_BACKOFF_MAX_SECONDS", "0.2")
            .env("CHIMPSYNC_SHUTDOWN_DEADLINE_SECONDS", "5");
        Ok(cmd)
    }
}
