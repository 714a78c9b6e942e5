//! The benchmark's surroundings: the Postgres server and a fresh `chimpsync_bench_*` database
//! per scenario, the release binaries (`chimpsync`, `mailchimp-emulator`) run as their own
//! processes so their CPU and memory are measured for real, and the mapping file they use.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::process::{Child, Command};
use tokio_postgres::{Client, NoTls};

use crate::sys;

pub use chimpsync_demo::fixture::{API_KEY, AUDIENCE, MAPPING};

/// The second audience (scenario 6's naive loop writes there, so both sides create members).
pub const AUDIENCE_NAIVE: &str = "be7c4a11b3";

/// Benchmark SQL (not chimpsync's runtime SQL: the style rule "SQL lives in `sql/` and enters
/// through the store crate" applies to the runtime crates; this crate keeps its own in `sql/`).
pub mod sql {
    /// The rows of the fixture's customer table, `{{count}}` of them.
    pub const CUSTOMERS: &str = include_str!("../sql/customers.sql");
    /// The naive outbox's claim of one row.
    pub const NAIVE_CLAIM: &str = include_str!("../sql/naive_claim.sql");
    /// The naive outbox's delete of that row.
    pub const NAIVE_DELETE: &str = include_str!("../sql/naive_delete.sql");
    /// Vacuums the freshly filled customer table (one statement: VACUUM runs outside a
    /// transaction).
    pub const SETTLE_VACUUM: &str = include_str!("../sql/settle_vacuum.sql");
    /// A checkpoint after that.
    pub const SETTLE_CHECKPOINT: &str = include_str!("../sql/settle_checkpoint.sql");
    /// Scenario 4's bulk update.
    pub const BULK_UPDATE: &str = include_str!("../sql/bulk_update.sql");
    /// Scenario 5's single change.
    pub const SINGLE_UPDATE: &str = include_str!("../sql/single_update.sql");
    /// Scenario 3's pgbench script, `{{rows}}` customers.
    pub const PGBENCH_UPDATE: &str = include_str!("../sql/pgbench_update.sql");
    /// How many rows the queue holds.
    pub const QUEUE_COUNT: &str = include_str!("../sql/queue_count.sql");
    /// Scenario 5's observer.
    pub const QUEUE_KEYS: &str = include_str!("../sql/queue_keys.sql");
    /// Empties the queue and the record of synced contacts.
    pub const RESET_QUEUE: &str = include_str!("../sql/reset_queue.sql");
    /// The minimal statement-level trigger (scenario 4's floor).
    pub const FLOOR_STATEMENT: &str = include_str!("../sql/floor_statement.sql");
    /// The minimal row-level trigger (scenario 3's floor).
    pub const FLOOR_ROW: &str = include_str!("../sql/floor_row.sql");
    /// Removes the floor trigger.
    pub const FLOOR_DROP: &str = include_str!("../sql/floor_drop.sql");
    /// The key-list trigger: one row per statement with the keys it changed.
    pub const KEYS_STATEMENT: &str = include_str!("../sql/keys_statement.sql");
    /// How many keys the key-list trigger recorded.
    pub const KEYS_COUNT: &str = include_str!("../sql/keys_count.sql");
    /// The append-only trigger, row-level (`sql/append_row.sql`).
    pub const APPEND_ROW: &str = include_str!("../sql/append_row.sql");
    /// The append-only trigger, statement-level (`sql/append_statement.sql`).
    pub const APPEND_STATEMENT: &str = include_str!("../sql/append_statement.sql");
    /// Keys the append-only trigger recorded.
    pub const APPEND_COUNT: &str = include_str!("../sql/append_count.sql");
}

/// Where the binaries are and how big the run is.
#[derive(Debug, Clone)]
pub struct Bench {
    /// The server (`DATABASE_URL`), whose database part is replaced per scenario.
    pub server: String,
    /// The `chimpsync` binary.
    pub chimpsync: PathBuf,
    /// The `mailchimp-emulator` binary.
    pub emulator: PathBuf,
    /// pgbench, if found.
    pub pgbench: Option<PathBuf>,
    /// Logs and mapping files.
    pub work: PathBuf,
    /// Keep the databases after the run.
    pub keep: bool,
    /// The postmaster's pid when the server runs on this machine (for its CPU time).
    pub postmaster: Option<u32>,
    /// `server_version`.
    pub pg_version: String,
}

/// Connects one client.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

use chimpsync_demo::server::redact;

/// How many rows the queue holds, read on `client`.
pub async fn queued(client: &Client) -> Result<i64> {
    Ok(client.query_one(sql::QUEUE_COUNT, &[]).await?.get(0))
}

/// Finds pgbench: on `PATH`, else in the newest `/usr/lib/postgresql/*/bin`.
fn find_pgbench() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin/pgbench"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    if let Some(p) = candidates.pop() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("pgbench"))
            .find(|p| p.exists())
    })
}

impl Bench {
    /// Builds (unless `no_build`) and locates the binaries, checks the server.
    pub async fn prepare(no_build: bool, keep: bool) -> Result<Bench> {
        let server = std::env::var("DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| chimpsync_demo::server::LOCAL.into());
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let bin_dir = exe
            .parent()
            .ok_or_else(|| anyhow!("the bench binary has no directory"))?
            .to_path_buf();
        if !no_build {
            build_binaries()?;
        }
        let chimpsync = bin_dir.join("chimpsync");
        let emulator = bin_dir.join("mailchimp-emulator");
        for b in [&chimpsync, &emulator] {
            if !b.exists() {
                bail!(
                    "{} is missing; build it (cargo build{} -p chimpsync -p mailchimp-emulator) or drop --no-build",
                    b.display(),
                    if cfg!(debug_assertions) { "" } else { " --release" }
                );
            }
        }
        let admin = connect(&server).await?;
        let pg_version: String = admin.query_one("show server_version", &[]).await?.get(0);
        let backend: i32 = admin
            .query_one("select pg_backend_pid()", &[])
            .await?
            .get(0);
        let postmaster = if sys::have_proc() {
            sys::parent_of(backend as u32).filter(|p| sys::cpu_seconds(*p).is_some())
        } else {
            None
        };
        let work = std::env::temp_dir().join(format!("chimpsync-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        Ok(Bench {
            server,
            chimpsync,
            emulator,
            pgbench: find_pgbench(),
            work,
            keep,
            postmaster,
            pg_version,
        })
    }

    /// Postgres CPU seconds so far (None when the server is not local).
    pub fn postgres_cpu(&self) -> Option<f64> {
        self.postmaster.and_then(sys::postgres_cpu_seconds)
    }

    /// A fresh database `chimpsync_bench_<suffix>` (an old one of that name is dropped).
    pub async fn database(&self, suffix: &str) -> Result<BenchDb> {
        let name = format!("chimpsync_bench_{suffix}");
        let admin = connect(&self.server).await?;
        chimpsync_demo::server::recreate(&admin, &name).await?;
        let url = chimpsync_demo::server::with_database(&self.server, &name)?;
        let mapping_path = self.work.join(format!("{name}.toml"));
        std::fs::write(&mapping_path, MAPPING)?;
        Ok(BenchDb {
            name,
            url,
            admin,
            mapping_path,
            keep: self.keep,
        })
    }

    /// Starts the emulator binary with one latency and connection cap, both audiences, and the
    /// `STORE` merge field the mapping uses.
    pub async fn emulator(
        &self,
        latency_ms: u64,
        max_connections: Option<usize>,
    ) -> Result<EmulatorProc> {
        self.emulator_with(latency_ms, max_connections, &[]).await
    }

    /// [`Bench::emulator`] that also serves `accounts` (key, audience), each its own Mailchimp
    /// account with its own connection cap; their audiences get the `STORE` merge field too.
    pub async fn emulator_with(
        &self,
        latency_ms: u64,
        max_connections: Option<usize>,
        accounts: &[(String, String)],
    ) -> Result<EmulatorProc> {
        let port = free_port()?;
        let log = std::fs::File::create(self.work.join(format!("emulator-{port}.log")))?;
        let mut cmd = Command::new(&self.emulator);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--api-key")
            .arg(API_KEY)
            .arg("--audience")
            .arg(AUDIENCE)
            .arg("--audience")
            .arg(AUDIENCE_NAIVE)
            .arg("--latency-ms")
            .arg(latency_ms.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(n) = max_connections {
            cmd.arg("--max-connections").arg(n.to_string());
        }
        for (key, audience) in accounts {
            cmd.arg("--account").arg(format!("{key}={audience}"));
        }
        let child = cmd.spawn().context("starting mailchimp-emulator")?;
        let pid = child.id().ok_or_else(|| anyhow!("emulator has no pid"))?;
        let base_url = format!("http://127.0.0.1:{port}/3.0");
        let emulator = EmulatorProc {
            child,
            pid,
            base_url,
        };
        let client = emulator.client()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if client.ping().await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("the emulator did not answer /ping within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for list in [AUDIENCE, AUDIENCE_NAIVE] {
            client
                .create_merge_field(list, &chimpsync_demo::fixture::store_merge_field())
                .await
                .context("creating the STORE merge field")?;
        }
        // A few at a time: each key has its own cap, and at 20 ms a thousand one after the other
        // would take 20 s.
        for chunk in accounts.chunks(16) {
            let mut made = tokio::task::JoinSet::new();
            for (key, audience) in chunk {
                let (client, audience) = (emulator.client_for(key)?, audience.clone());
                made.spawn(async move {
                    client
                        .create_merge_field(
                            &audience,
                            &chimpsync_demo::fixture::store_merge_field(),
                        )
                        .await
                });
            }
            while let Some(done) = made.join_next().await {
                done?.context("creating an account's STORE merge field")?;
            }
        }
        Ok(emulator)
    }
}

/// Builds the two binaries the scenarios run, in the bench's own profile, so a release bench
/// measures release binaries.
fn build_binaries() -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(&root).args([
        "build",
        "--quiet",
        "--locked",
        "-p",
        "chimpsync",
        "-p",
        "mailchimp-emulator",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    eprintln!("building chimpsync and mailchimp-emulator ...");
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of chimpsync and mailchimp-emulator failed");
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Sends SIGTERM (through kill(1): the workspace forbids unsafe code, hence no libc call).
pub async fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .await;
}

/// A database made for one scenario.
pub struct BenchDb {
    /// `chimpsync_bench_*`.
    pub name: String,
    /// Its URL.
    pub url: String,
    admin: Client,
    /// The mapping file for the binaries.
    pub mapping_path: PathBuf,
    keep: bool,
}

impl BenchDb {
    /// A new connection.
    pub async fn client(&self) -> Result<Client> {
        connect(&self.url).await
    }

    /// How many rows the queue holds, read on a new connection.
    pub async fn queued(&self) -> Result<i64> {
        queued(&self.client().await?).await
    }

    /// Creates and fills the customer table.
    pub async fn customers(&self, count: u64) -> Result<()> {
        self.customers_from(&sql::CUSTOMERS.replace("{{count}}", &count.to_string()))
            .await
    }

    /// Creates the customer table and fills it with the statements `fill`.
    pub async fn customers_from(&self, fill: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .batch_execute(chimpsync_demo::fixture::CUSTOMERS)
            .await
            .context("creating the customer table")?;
        client
            .batch_execute(fill)
            .await
            .context("filling the customer table")?;
        // A customer table in use is not freshly bulk-loaded: vacuumed (visibility map, hint
        // bits) and checkpointed, so that neither autovacuum nor the first reader's hint-bit
        // writes nor a forced checkpoint land inside a measurement (they made the Postgres CPU
        // of the same 1M-row drain vary between 36 and 60 core-seconds).
        client
            .batch_execute(sql::SETTLE_VACUUM)
            .await
            .context("vacuuming the customer table")?;
        client.batch_execute(sql::SETTLE_CHECKPOINT).await?;
        Ok(())
    }

    /// Drops the database (unless `--keep-db`).
    pub async fn finish(self) -> Result<()> {
        if !self.keep {
            chimpsync_demo::server::drop_database(&self.admin, &self.name).await?;
        }
        Ok(())
    }
}

/// A running `mailchimp-emulator`.
pub struct EmulatorProc {
    child: Child,
    /// Its pid.
    pub pid: u32,
    /// `http://127.0.0.1:PORT/3.0`.
    pub base_url: String,
}

impl EmulatorProc {
    /// A client for it.
    pub fn client(&self) -> Result<mailchimp::Client> {
        self.client_for(API_KEY)
    }

    /// A client with the API key `key` (one account of [`Bench::emulator_with`]).
    pub fn client_for(&self, key: &str) -> Result<mailchimp::Client> {
        let mut config = mailchimp::ClientConfig::new(mailchimp::ApiKey::parse(key)?);
        config.base_url = Some(self.base_url.clone());
        config.request_timeout = Duration::from_secs(30);
        Ok(mailchimp::Client::new(config)?)
    }

    /// Its counters (`GET /_emulator/stats`).
    pub async fn stats(&self) -> Result<serde_json::Value> {
        let url = self.base_url.replace("/3.0", "/_emulator/stats");
        Ok(reqwest::get(url).await?.json().await?)
    }

    /// How many members the audience has (all statuses).
    pub async fn members(&self, list: &str) -> Result<u64> {
        let page = self
            .client()?
            .list_members(
                list,
                &mailchimp::ListMembers {
                    count: 1,
                    ..Default::default()
                },
            )
            .await?;
        Ok(page.total_items)
    }

    /// CPU seconds so far.
    pub fn cpu(&self) -> f64 {
        sys::cpu_seconds(self.pid).unwrap_or(0.0)
    }

    /// Peak RSS so far, KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        sys::peak_rss_kib(self.pid).unwrap_or(0)
    }

    /// Stops it (SIGTERM, then waits).
    pub async fn stop(mut self) {
        terminate(self.pid).await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// What a finished process used.
#[derive(Debug, Clone, Default)]
pub struct ProcRun {
    /// From spawn to exit.
    pub wall: Duration,
    /// User + system CPU seconds.
    pub cpu: f64,
    /// Peak RSS (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

/// A process being watched: its peak RSS and CPU are sampled every 20 ms while it runs.
pub struct Watched {
    child: Child,
    /// Its pid.
    pub pid: u32,
    started: Instant,
    samples: Arc<Mutex<(u64, f64)>>,
    sampler: tokio::task::JoinHandle<()>,
    stdout_path: PathBuf,
}

impl Watched {
    fn spawn(mut cmd: Command, stdout_path: PathBuf, stderr_path: PathBuf) -> Result<Watched> {
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path)?)
            .stderr(std::fs::File::create(&stderr_path)?)
            .kill_on_drop(true);
        let started = Instant::now();
        let child = cmd.spawn().context("starting a process")?;
        let pid = child.id().ok_or_else(|| anyhow!("no pid"))?;
        let samples = Arc::new(Mutex::new((0u64, 0f64)));
        let sampler = {
            let samples = samples.clone();
            tokio::spawn(async move {
                loop {
                    let rss = sys::peak_rss_kib(pid);
                    let cpu = sys::cpu_seconds(pid);
                    match (rss, cpu) {
                        (Some(rss), Some(cpu)) => {
                            let mut s = samples.lock().expect("samples");
                            s.0 = s.0.max(rss);
                            s.1 = s.1.max(cpu);
                        }
                        _ => return,
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        Ok(Watched {
            child,
            pid,
            started,
            samples,
            sampler,
            stdout_path,
        })
    }

    /// CPU seconds so far.
    pub fn cpu(&self) -> f64 {
        sys::cpu_seconds(self.pid).unwrap_or_else(|| self.samples.lock().expect("samples").1)
    }

    /// Waits for the exit; fails on a non-zero exit status.
    pub async fn finish(mut self) -> Result<ProcRun> {
        let reaped_before = sys::reaped_children_cpu_seconds();
        let status = self.child.wait().await?;
        let wall = self.started.elapsed();
        let reaped = sys::reaped_children_cpu_seconds() - reaped_before;
        self.sampler.abort();
        let (rss, sampled_cpu) = *self.samples.lock().expect("samples");
        if !status.success() {
            bail!(
                "process {} failed ({status}); see {}",
                self.pid,
                self.stdout_path.with_extension("err").display()
            );
        }
        Ok(ProcRun {
            wall,
            cpu: reaped.max(sampled_cpu),
            peak_rss_kib: rss,
        })
    }
}

/// The `chimpsync` binary pointed at one database and one emulator.
pub struct Chimpsync<'a> {
    bench: &'a Bench,
    db: &'a BenchDb,
    base_url: Option<String>,
    env: Vec<(String, String)>,
}

impl<'a> Chimpsync<'a> {
    /// For `db`; `base_url` is the emulator's (None for commands that do not call Mailchimp).
    pub fn new(bench: &'a Bench, db: &'a BenchDb, base_url: Option<&str>) -> Chimpsync<'a> {
        Chimpsync {
            bench,
            db,
            base_url: base_url.map(str::to_owned),
            env: Vec::new(),
        }
    }

    /// Adds an environment variable (tuning).
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_owned(), value.to_string()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bench.chimpsync);
        cmd.args(args)
            .env("DATABASE_URL", &self.db.url)
            .env("CHIMPSYNC_CONFIG", &self.db.mapping_path)
            .env("MAILCHIMP_API_KEY", API_KEY)
            .env("LOG_FORMAT", "json")
            .env_remove("MAILCHIMP_AUDIENCE_ID");
        if let Some(base) = &self.base_url {
            cmd.env("MAILCHIMP_BASE_URL", base);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts `chimpsync <args>`, watched.
    pub fn spawn(&self, args: &[&str]) -> Result<Watched> {
        let stem = format!(
            "{}-{}-{}",
            self.db.name,
            args.first().copied().unwrap_or("chimpsync"),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        Watched::spawn(
            self.command(args),
            self.bench.work.join(format!("{stem}.out")),
            self.bench.work.join(format!("{stem}.err")),
        )
    }

    /// Runs `chimpsync <args>` to its end.
    pub async fn run(&self, args: &[&str]) -> Result<ProcRun> {
        self.spawn(args)?
            .finish()
            .await
            .with_context(|| format!("chimpsync {}", args.join(" ")))
    }

    /// Runs `chimpsync <args>` to its end beside `emulator`, and the CPU split of that time: the
    /// command's CPU under `label`, the emulator's, and what [`CpuMark::split`] adds.
    pub async fn run_split(
        &self,
        args: &[&str],
        label: &str,
        emulator: &EmulatorProc,
    ) -> Result<(ProcRun, sys::CpuSplit)> {
        let mark = CpuMark::now(self.bench);
        let emulator_cpu = emulator.cpu();
        let run = self.run(args).await?;
        let split = mark
            .split(
                self.bench,
                vec![
                    (label, run.cpu),
                    ("emulator", emulator.cpu() - emulator_cpu),
                ],
            )
            .await;
        Ok((run, split))
    }
}

/// CPU counters at one instant, to turn into a [`sys::CpuSplit`] later.
pub struct CpuMark {
    at: Instant,
    postgres: Option<f64>,
    machine: Option<f64>,
    bench: f64,
}

impl CpuMark {
    /// Now.
    pub fn now(bench: &Bench) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            postgres: bench.postgres_cpu(),
            machine: sys::machine_cpu_seconds().map(|(busy, _)| busy),
            bench: sys::cpu_seconds(std::process::id()).unwrap_or(0.0),
        }
    }

    /// The split from this mark to now, with the given per-process CPU seconds (the bench's
    /// own CPU is added). Waits a moment first: the CPU of a backend whose client just exited
    /// counts for the server only once the postmaster has reaped it.
    pub async fn split(&self, bench: &Bench, parts: Vec<(&str, f64)>) -> sys::CpuSplit {
        let wall = self.at.elapsed();
        let bench_cpu = sys::cpu_seconds(std::process::id()).unwrap_or(0.0) - self.bench;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let later = CpuMark::now(bench);
        let mut parts: Vec<(String, f64)> =
            parts.into_iter().map(|(l, s)| (l.to_owned(), s)).collect();
        parts.push(("bench".into(), bench_cpu));
        sys::CpuSplit {
            wall,
            parts,
            postgres: later.postgres.zip(self.postgres).map(|(b, a)| b - a),
            machine_busy: later.machine.zip(self.machine).map(|(b, a)| b - a),
        }
    }
}
