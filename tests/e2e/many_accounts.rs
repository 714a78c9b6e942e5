//! Many accounts from one installation, end to end against the emulator: each account's audience
//! holds its customers and no other account's; a customer moving to another account leaves the
//! old audience; an account switched off keeps its rows and sends them once when switched on; a
//! key Mailchimp refuses puts only its account in `needs_attention`, parking nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use chimpsync_tests::{TestDb, CUSTOMERS, MAPPING};
use secrets::{KeyRing, SecretKey};
use store::accounts::KeyEncryption;
use store::{Mapping, SetupOptions, TriggerShape};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// One Mailchimp account per store of the demo table: (store, key, audience).
pub const ACCOUNTS: [(&str, &str, &str); 3] = [
    ("S0", "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0-us1", "aud0000000"),
    ("S1", "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1-us2", "aud1111111"),
    ("S2", "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2-us3", "aud2222222"),
];

/// The demo mapping with one account per store.
pub fn mapping_text() -> String {
    MAPPING.replace(
        "filter  = \"deleted_at is null\"",
        "filter  = \"deleted_at is null\"\naccount = \"store\"",
    )
}

/// A database with the demo table in multi-account mode, three accounts connected through the
/// SQL functions alone, and an emulator serving the three Mailchimp accounts.
pub struct Many {
    pub db: TestDb,
    pub sql: Client,
    pub emulator: mailchimp_emulator::Emulator,
    pub secret: SecretKey,
    pub pool: store::Pool,
    /// (store, key, audience) of each account.
    pub accounts: Vec<(&'static str, &'static str, &'static str)>,
}

/// The test secret: generated once per test binary (an RSA key takes a while in a debug build).
pub fn test_secret() -> SecretKey {
    static SECRET: std::sync::OnceLock<SecretKey> = std::sync::OnceLock::new();
    SECRET
        .get_or_init(|| SecretKey::generate().expect("a key-encryption key"))
        .clone()
}

/// A new database with the demo table, set up in multi-account mode with the test secret (no
/// account connected yet).
pub async fn installed() -> Result<(TestDb, Client, SecretKey)> {
    let db = TestDb::new().await?;
    let mut sql = db.client().await?;
    sql.batch_execute(CUSTOMERS).await?;
    let secret = tokio::task::spawn_blocking(test_secret).await?;
    let (public_key, fingerprint) = (secret.public_key_armored(), secret.fingerprint());
    let options = SetupOptions {
        key_encryption: Some(KeyEncryption {
            public_key: &public_key,
            fingerprint: &fingerprint,
        }),
        ..SetupOptions::default()
    };
    store::setup_with(
        &mut sql,
        &Mapping::parse(&mapping_text())?,
        TriggerShape::Statement,
        options,
    )
    .await?;
    Ok((db, sql, secret))
}

impl Many {
    pub async fn new(config: mailchimp_emulator::Config) -> Result<Many> {
        Many::with_accounts(config, &ACCOUNTS).await
    }

    /// [`Many::new`] with these accounts (store, key, audience); a key may serve two.
    pub async fn with_accounts(
        mut config: mailchimp_emulator::Config,
        accounts: &[(&'static str, &'static str, &'static str)],
    ) -> Result<Many> {
        let (db, sql, secret) = installed().await?;
        config.accounts = accounts
            .iter()
            .map(|(_, key, audience)| (key.to_string(), audience.to_string()))
            .collect();
        let (fail_rate, drop_rate) = (config.fail_rate, config.drop_rate);
        config.fail_rate = 0.0;
        config.drop_rate = 0.0;
        let emulator = mailchimp_emulator::Emulator::start("127.0.0.1:0".parse()?, config).await?;
        for &(store_name, key, audience) in accounts {
            let mut c = mailchimp::ClientConfig::new(mailchimp::ApiKey::parse(key)?);
            c.base_url = Some(emulator.base_url());
            mailchimp::Client::new(c)?
                .create_merge_field(audience, &chimpsync_demo::fixture::store_merge_field())
                .await?;
            sql.execute(
                "select chimpsync.connect_account($1, $2, $3)",
                &[&store_name, &audience, &key],
            )
            .await?;
        }
        emulator.set_fail_rate(fail_rate);
        emulator.set_drop_rate(drop_rate);
        let pool = store::pool(&db.url, 16, Duration::from_secs(30))?;
        Ok(Many {
            db,
            sql,
            emulator,
            secret,
            pool,
            accounts: accounts.to_vec(),
        })
    }

    /// A worker of the accounts with quick test timings.
    pub fn worker(&self) -> Result<worker::Worker> {
        let mut s = worker::Settings::new("(each account's own)");
        s.lease = Duration::from_secs(30);
        s.request_timeout = Duration::from_secs(10);
        s.retry = worker::retry::RetryPolicy {
            base: Duration::from_millis(10),
            max: Duration::from_millis(100),
            max_attempts: 50,
        };
        s.poll_interval = Duration::from_millis(20);
        s.shutdown_deadline = Duration::from_secs(5);
        let keys = worker::KeyRingOpener::new(
            KeyRing::new(self.secret.clone(), None),
            Some(self.emulator.base_url()),
            Duration::from_secs(2),
            Duration::from_secs(10),
        );
        Ok(worker::Worker::for_accounts(
            store::Queue::for_accounts(self.pool.clone()),
            Arc::new(keys),
            s,
        )?)
    }

    /// Runs `workers` workers at once until nothing is due (each `run --once`).
    pub async fn drain(&self, workers: usize) -> Result<worker::DrainOutcome> {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let w = self.worker()?;
            tasks.spawn(async move { w.run(CancellationToken::new(), true).await });
        }
        let mut total = worker::DrainOutcome::default();
        while let Some(done) = tasks.join_next().await {
            total.add(&done??);
        }
        Ok(total)
    }

    /// Inserts `n` customers from id `first`, spread over the three stores (accounts).
    pub async fn insert_customers(&self, n: i64, first: i64) -> Result<()> {
        self.sql
            .batch_execute(&format!(
                "insert into customers (id, email, first_name, last_name, store, customer_type, consent_contact)
                 select g, 'c' || g || '@pets.test', 'F' || g, 'L' || g, 'S' || (g % 3),
                        (array['dog owner','cat owner','groomer'])[1 + g % 3], g % 4 <> 0
                 from generate_series({first}, {}) g",
                first + n - 1
            ))
            .await?;
        Ok(())
    }

    /// For each account: how its audience differs from its customers (addresses of live
    /// members, their first names and statuses), empty when they agree.
    pub async fn differences(&self) -> Result<Vec<String>> {
        let rows = self
            .sql
            .query(
                "select c.store, lower(btrim(c.email)), coalesce(c.first_name, ''), coalesce(c.consent_contact, false)
                 from customers c
                 where c.deleted_at is null and nullif(btrim(c.email), '') is not null",
                &[],
            )
            .await?;
        let mut wanted: BTreeMap<String, BTreeMap<String, (String, bool)>> = BTreeMap::new();
        for r in &rows {
            let store_name: Option<String> = r.get(0);
            let Some(store_name) = store_name else {
                continue;
            };
            wanted
                .entry(store_name)
                .or_default()
                .insert(r.get(1), (r.get(2), r.get(3)));
        }
        let mut diffs = Vec::new();
        for &(store_name, key, audience) in &self.accounts {
            let want = wanted.remove(store_name).unwrap_or_default();
            let members = self.emulator.members_of(key, audience);
            let live: BTreeMap<String, &mailchimp_emulator::MemberView> = members
                .iter()
                .filter(|m| m.status != "archived")
                .map(|m| (m.email_address.to_lowercase(), m))
                .collect();
            for (email, (first_name, consent)) in &want {
                let Some(m) = live.get(email) else {
                    diffs.push(format!("{store_name}: no member {email}"));
                    continue;
                };
                let got = m.merge_fields.get("FNAME").and_then(|v| v.as_str());
                if got != Some(first_name.as_str()) {
                    diffs.push(format!(
                        "{store_name}: {email} FNAME {got:?} != {first_name:?}"
                    ));
                }
                let status_ok = if *consent {
                    m.status == "subscribed" || m.status == "pending"
                } else {
                    m.status == "unsubscribed"
                };
                if !status_ok {
                    diffs.push(format!(
                        "{store_name}: {email} consent {consent}, status {}",
                        m.status
                    ));
                }
            }
            for email in live.keys() {
                if !want.contains_key(email) {
                    diffs.push(format!(
                        "{store_name}: member {email} is no customer of this account"
                    ));
                }
            }
        }
        Ok(diffs)
    }

    /// The account's state and reason.
    pub async fn state(&self, account: &str) -> Result<(String, Option<String>)> {
        let r = self
            .sql
            .query_one(
                "select state, state_reason from chimpsync.accounts where account = $1",
                &[&account],
            )
            .await?;
        Ok((r.get(0), r.get(1)))
    }

    /// Queue rows of the account: (all, parked).
    pub async fn queued(&self, account: &str) -> Result<(i64, i64)> {
        let r = self
            .sql
            .query_one(
                "select count(*), count(*) filter (where parked_at is not null)
                 from chimpsync.sync_queue where account = $1",
                &[&account],
            )
            .await?;
        Ok((r.get(0), r.get(1)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_audience_holds_its_customers_and_no_others() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    m.insert_customers(300, 1).await?;
    // One address in two accounts: two members, one in each audience.
    m.sql
        .batch_execute(
            "insert into customers (id, email, first_name, store, consent_contact) values
             (1001, 'shared@pets.test', 'Ann', 'S0', true),
             (1002, 'shared@pets.test', 'Bob', 'S1', true)",
        )
        .await?;
    let outcome = m.drain(2).await?;
    ensure!(outcome.parked == 0, "parked rows: {outcome:?}");
    let diffs = m.differences().await?;
    ensure!(diffs.is_empty(), "differences: {diffs:#?}");
    let (_, key0, aud0) = ACCOUNTS[0];
    let (_, key1, aud1) = ACCOUNTS[1];
    let ann = m
        .emulator
        .member_of(key0, aud0, "shared@pets.test")
        .context("Ann")?;
    let bob = m
        .emulator
        .member_of(key1, aud1, "shared@pets.test")
        .context("Bob")?;
    ensure!(ann.merge_fields.get("FNAME").and_then(|v| v.as_str()) == Some("Ann"));
    ensure!(bob.merge_fields.get("FNAME").and_then(|v| v.as_str()) == Some("Bob"));
    // Every batch call was one account's: each account's calls went with its own key.
    for (_, key, _) in ACCOUNTS {
        let stats = m.emulator.account_stats(key).context("stats")?;
        ensure!(stats.requests > 0, "no request with {key}");
    }
    let last_sync: i64 = m
        .sql
        .query_one(
            "select count(*) from chimpsync.accounts where last_synced_at is not null",
            &[],
        )
        .await?
        .get(0);
    ensure!(last_sync == 3, "accounts with a Last Sync: {last_sync}");
    m.db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_moving_to_another_account_leaves_the_old_audience() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    m.insert_customers(30, 1).await?;
    m.drain(1).await?;
    // Customer 3 is in S0; it moves to S2.
    m.sql
        .batch_execute("update customers set store = 'S2' where id = 3")
        .await?;
    m.drain(1).await?;
    let diffs = m.differences().await?;
    ensure!(diffs.is_empty(), "differences: {diffs:#?}");
    let (_, key0, aud0) = ACCOUNTS[0];
    let (_, key2, aud2) = ACCOUNTS[2];
    let old = m
        .emulator
        .member_of(key0, aud0, "c3@pets.test")
        .context("old member")?;
    ensure!(
        old.status == "archived",
        "old account's member is {}",
        old.status
    );
    ensure!(m.emulator.member_of(key2, aud2, "c3@pets.test").is_some());
    let synced: Vec<String> = m
        .sql
        .query(
            "select account from chimpsync.synced_contacts where customer_key = '3'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(synced == ["S2"], "synced under {synced:?}");
    m.db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_switched_off_keeps_its_rows_and_sends_them_once_when_switched_on() -> Result<()>
{
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    m.insert_customers(60, 1).await?;
    m.drain(1).await?;
    m.sql
        .batch_execute("select chimpsync.disable_account('S1')")
        .await?;
    // Twice changed while off: the queue keeps only the latest of each customer.
    m.sql
        .batch_execute(
            "update customers set first_name = 'Off1' where store = 'S1';
             update customers set first_name = 'Off2' where store = 'S1';
             update customers set first_name = 'Other' where store = 'S0';",
        )
        .await?;
    let (_, key1, _) = ACCOUNTS[1];
    let before = m.emulator.account_stats(key1).context("stats")?.requests;
    m.drain(2).await?;
    ensure!(
        m.emulator.account_stats(key1).context("stats")?.requests == before,
        "a request went to the switched-off account"
    );
    let (queued, parked) = m.queued("S1").await?;
    ensure!(
        queued == 20 && parked == 0,
        "S1 queue: {queued} rows, {parked} parked"
    );
    ensure!(m.state("S1").await?.0 == "disabled");
    let summary: (String, i64) = {
        let r = m
            .sql
            .query_one(
                "select state, pending from chimpsync.account_summary where account = 'S1'",
                &[],
            )
            .await?;
        (r.get(0), r.get(1))
    };
    ensure!(
        summary == ("disabled".to_string(), 20),
        "summary {summary:?}"
    );
    m.sql
        .batch_execute("select chimpsync.enable_account('S1')")
        .await?;
    let outcome = m.drain(2).await?;
    ensure!(outcome.acked == 20, "sent after switching on: {outcome:?}");
    let diffs = m.differences().await?;
    ensure!(diffs.is_empty(), "differences: {diffs:#?}");
    m.db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_puts_only_its_account_in_needs_attention_and_parks_nothing() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    let (_, key1, _) = ACCOUNTS[1];
    m.emulator.revoke_key(key1);
    m.insert_customers(90, 1).await?;
    let outcome = m.drain(2).await?;
    let (state, reason) = m.state("S1").await?;
    ensure!(state == "needs_attention", "S1 is {state}");
    let reason = reason.unwrap_or_default();
    ensure!(reason.contains("API Key Invalid"), "reason: {reason}");
    // Within one attempt: its 30 rows were claimed and given back once, then never claimed
    // again (a retry loop would give them back again and again).
    ensure!(outcome.released == 30, "rows given back: {outcome:?}");
    let (queued, parked) = m.queued("S1").await?;
    ensure!(
        queued == 30 && parked == 0,
        "S1 queue: {queued} rows, {parked} parked"
    );
    let attempts: i64 = m
        .sql
        .query_one(
            "select coalesce(max(attempts), 0)::bigint from chimpsync.sync_queue where account = 'S1'",
            &[],
        )
        .await?
        .get(0);
    ensure!(attempts == 0, "rows of S1 counted {attempts} attempts");
    // The other accounts synced fully.
    let diffs: Vec<String> = m
        .differences()
        .await?
        .into_iter()
        .filter(|d| !d.starts_with("S1"))
        .collect();
    ensure!(diffs.is_empty(), "differences: {diffs:#?}");
    // The key is fixed (here: restored and set again): the account resumes.
    m.emulator.restore_key(key1);
    m.sql
        .execute(
            "select chimpsync.update_account($1, api_key => $2)",
            &[&"S1", &key1],
        )
        .await?;
    ensure!(m.state("S1").await?.0 == "active");
    m.drain(1).await?;
    let diffs = m.differences().await?;
    ensure!(diffs.is_empty(), "differences: {diffs:#?}");
    let events: Vec<String> = m
        .sql
        .query(
            "select state from chimpsync.account_events where account = 'S1' order by id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(
        events == ["connected: active", "needs_attention", "active"],
        "S1's events: {events:?}"
    );
    m.db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_of_an_unknown_account_wait_unsent() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    m.insert_customers(9, 1).await?;
    m.sql
        .batch_execute(
            "insert into customers (id, email, first_name, store, consent_contact)
             values (500, 'new@pets.test', 'New', 'S9', true)",
        )
        .await?;
    m.drain(1).await?;
    let unknown: (String, i64) = {
        let r = m
            .sql
            .query_one(
                "select state, pending from chimpsync.account_summary where account = 'S9'",
                &[],
            )
            .await?;
        (r.get(0), r.get(1))
    };
    ensure!(unknown == ("unknown".to_string(), 1), "S9: {unknown:?}");
    ensure!(m.differences().await?.is_empty());
    // Connecting the account later sends them.
    let (_, key, _) = ACCOUNTS[0];
    m.emulator.create_audience_for(key, "aud9999999");
    let mut c = mailchimp::ClientConfig::new(mailchimp::ApiKey::parse(key)?);
    c.base_url = Some(m.emulator.base_url());
    mailchimp::Client::new(c)?
        .create_merge_field("aud9999999", &chimpsync_demo::fixture::store_merge_field())
        .await?;
    m.sql
        .execute(
            "select chimpsync.connect_account('S9', 'aud9999999', $1)",
            &[&key],
        )
        .await?;
    m.drain(1).await?;
    ensure!(m
        .emulator
        .member_of(key, "aud9999999", "new@pets.test")
        .is_some());
    m.db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_key_pauses_only_the_accounts_on_it() -> Result<()> {
    // S0 and S1 share one key; S2 has its own. Mailchimp allows one connection per key.
    let shared = "d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3-us4";
    let accounts = [
        ("S0", shared, "aud0000000"),
        ("S1", shared, "aud1111111"),
        ACCOUNTS[2],
    ];
    let m = Many::with_accounts(
        mailchimp_emulator::Config {
            latency: Duration::from_millis(300),
            max_connections: Some(1),
            ..Default::default()
        },
        &accounts,
    )
    .await?;
    m.insert_customers(90, 1).await?;
    // One batch per account, sent at once: S0's and S1's batches meet at the shared key's limit.
    // The throttled rows wait out their backoff and the key's pause, then go.
    chimpsync_tests::wait_until(Duration::from_secs(30), "every account drained", || async {
        m.drain(1).await?;
        Ok(m.queued("S0").await?.0 + m.queued("S1").await?.0 + m.queued("S2").await?.0 == 0)
    })
    .await?;
    let diffs = m.differences().await?;
    ensure!(diffs.is_empty(), "differences: {diffs:#?}");
    let shared_stats = m.emulator.account_stats(shared).context("stats")?;
    let own_stats = m.emulator.account_stats(ACCOUNTS[2].1).context("stats")?;
    ensure!(
        shared_stats.throttled > 0,
        "the shared key was never throttled"
    );
    ensure!(own_stats.throttled == 0, "the other key was throttled");
    let paused: Vec<(String, bool)> = m
        .sql
        .query(
            "select account, paused_until is not null from chimpsync.accounts order by account",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    ensure!(
        paused
            == [
                ("S0".to_string(), true),
                ("S1".to_string(), true),
                ("S2".to_string(), false)
            ],
        "paused: {paused:?}"
    );
    m.db.finish().await
}

impl Many {
    /// A `chimpsync` command of these accounts (`CHIMPSYNC_SECRET_KEY`, the emulator, test
    /// timings).
    pub fn command(&self, args: &[&str]) -> Result<std::process::Command> {
        use secrecy::ExposeSecret;
        let mapping = std::env::temp_dir().join(format!("{}-many.toml", self.db.name));
        std::fs::write(&mapping, mapping_text())?;
        let mut cmd = std::process::Command::new(chimpsync_tests::chimpsync_bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.db.url)
            .env("CHIMPSYNC_CONFIG", mapping)
            .env(
                "CHIMPSYNC_SECRET_KEY",
                self.secret.to_env_text().expose_secret(),
            )
            .env("MAILCHIMP_BASE_URL", self.emulator.base_url())
            .env("CHIMPSYNC_HTTP_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("CHIMPSYNC_POLL_INTERVAL_MS", "50");
        Ok(cmd)
    }

    /// Queue rows per account.
    pub async fn queued_by_account(&self) -> Result<Vec<(String, i64)>> {
        Ok(self
            .sql
            .query(
                "select account, count(*) from chimpsync.sync_queue group by account order by account",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}

/// Customers who were in the table before the triggers: only a backfill queues them.
async fn customers_before_triggers(m: &Many, n: i64) -> Result<()> {
    m.sql
        .batch_execute("set session_replication_role = replica")
        .await?;
    m.insert_customers(n, 1).await?;
    m.sql
        .batch_execute("set session_replication_role = origin")
        .await?;
    ensure!(m.queued_by_account().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_contacts_of_one_account_queues_its_customers_only() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    customers_before_triggers(&m, 60).await?;
    // From a terminal: `backfill --account`.
    let out = m.command(&["backfill", "--account", "S1"])?.output()?;
    ensure!(
        out.status.success(),
        "backfill --account: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        m.queued_by_account().await? == [("S1".to_string(), 20)],
        "queued: {:?}",
        m.queued_by_account().await?
    );
    // From the settings page: the SQL function's request, served by a running worker.
    m.sql
        .batch_execute("select chimpsync.sync_contacts('S2')")
        .await?;
    let mut run = m.command(&["run"])?;
    let mut child = run
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let served = chimpsync_tests::wait_until(
        Duration::from_secs(60),
        "S2's request served and its customers synced",
        || async {
            let pending: i64 = m
                .sql
                .query_one(
                    "select count(*) from chimpsync.accounts where sync_requested_at is not null",
                    &[],
                )
                .await?
                .get(0);
            let (_, key, audience) = ACCOUNTS[2];
            Ok(pending == 0 && m.emulator.members_of(key, audience).len() == 20)
        },
    )
    .await;
    child.kill()?;
    child.wait()?;
    served?;
    let (_, key0, aud0) = ACCOUNTS[0];
    ensure!(
        m.emulator.members_of(key0, aud0).is_empty(),
        "S0 was synced without a request"
    );
    m.db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audience_gone_puts_its_account_in_needs_attention() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    let (_, key2, aud2) = ACCOUNTS[2];
    ensure!(m.emulator.delete_audience(key2, aud2));
    m.insert_customers(30, 1).await?;
    let outcome = m.drain(1).await?;
    let (state, reason) = m.state("S2").await?;
    ensure!(state == "needs_attention", "S2 is {state}");
    let reason = reason.unwrap_or_default();
    ensure!(reason.contains("no such audience"), "reason: {reason}");
    ensure!(outcome.parked == 0 && outcome.released == 10, "{outcome:?}");
    ensure!(m.queued("S2").await? == (10, 0));
    m.db.finish().await
}
