//! The `chimpsync` command line: wiring of the store, the Mailchimp client and the worker, plus
//! the operator-facing pieces (status, retry, check, backfill, the HTTP endpoints, the demo).
//! Business rules live in the `worker` and `store` crates, not here.

pub mod config;
pub mod demo;
pub mod http;
pub mod provision;
pub mod reconcile;
pub mod telemetry;
pub mod webhook;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use config::{Env, Timeouts};
use store::{Mapping, Queue, TriggerShape};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Keeps a Mailchimp audience in step with a customer table in Postgres.
#[derive(Debug, Parser)]
#[command(name = "chimpsync", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade the chimpsync schema and install the change triggers.
    Setup {
        /// Print the SQL and change nothing.
        #[arg(long)]
        print_sql: bool,
        /// Trigger shape (statement-level is the measured default).
        #[arg(long, default_value = "statement", value_parser = ["statement", "row"])]
        trigger_shape: String,
        /// Also create this login role (if missing, without a password: the DBA sets one) and
        /// grant it only what `chimpsync run` needs; with --uninstall, drop it.
        #[arg(long, value_name = "NAME")]
        worker_role: Option<String>,
        /// Remove chimpsync from the database: the change triggers and the chimpsync schema
        /// (the customer table is untouched).
        #[arg(long, conflicts_with = "trigger_shape")]
        uninstall: bool,
        /// Also create the merge fields of [merge_fields] that the audience lacks (typed from the
        /// columns: number, date or text) and report each.
        #[arg(long, conflicts_with_all = ["print_sql", "uninstall"])]
        mailchimp: bool,
    },
    /// Check the config, the database, the Mailchimp key, the audience and the merge fields.
    Check,
    /// Enqueue every row that should be in the audience (the initial sync).
    Backfill {
        /// Rows per chunk (each chunk is one short transaction).
        #[arg(long, default_value_t = 5000, env = "CHIMPSYNC_BACKFILL_CHUNK")]
        chunk_size: i64,
    },
    /// Run the worker.
    Run {
        /// Drain everything that is due, then exit 0.
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// The queue at a glance.
    Status {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put parked rows back in line.
    Retry {
        /// Every parked row.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Queue row ids (`sync_queue.id`).
        ids: Vec<i64>,
    },
    /// Manage audiences.
    Audience {
        #[command(subcommand)]
        command: AudienceCommand,
    },
    /// Manage the Mailchimp webhook that feeds `chimpsync run` (CHIMPSYNC_WEBHOOK_SECRET).
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Compare the audience with the table (members changed since the last run, or --full) and
    /// report the differences; --apply fixes them.
    Reconcile(reconcile::ReconcileArgs),
    /// A self-contained demonstration against a local Postgres and an in-process emulator.
    Demo {
        /// Number of sample customers.
        #[arg(long, default_value_t = 3000)]
        customers: i64,
    },
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Register the webhook on the audience (idempotent: an existing one for the URL is reported).
    Register(provision::RegisterArgs),
}

#[derive(Debug, Subcommand)]
enum AudienceCommand {
    /// Create an audience and print its id.
    Create(AudienceArgs),
}

#[derive(Debug, Args)]
struct AudienceArgs {
    /// The audience name (default: "<company> Customers").
    #[arg(long)]
    name: Option<String>,
    /// Company name (required by Mailchimp's anti-spam rules).
    #[arg(long)]
    company: String,
    /// Postal address line.
    #[arg(long)]
    address1: String,
    /// City.
    #[arg(long)]
    city: String,
    /// State or region.
    #[arg(long, default_value = "")]
    state: String,
    /// Postal code.
    #[arg(long, default_value = "")]
    zip: String,
    /// ISO 3166 two-letter country code.
    #[arg(long, default_value = "US")]
    country: String,
    /// Sender name of campaigns (default: the company).
    #[arg(long)]
    from_name: Option<String>,
    /// Sender address of campaigns.
    #[arg(long)]
    from_email: String,
    /// Why contacts receive mail.
    #[arg(long)]
    permission_reminder: Option<String>,
    /// Campaign language.
    #[arg(long, default_value = "en")]
    language: String,
}

/// Worker limits, each with its documented default.
#[derive(Debug, Clone, Args)]
pub struct Tuning {
    /// Rows per claim and per batch call (1..=500).
    #[arg(long, default_value_t = 500, env = "CHIMPSYNC_BATCH_SIZE")]
    pub batch_size: usize,
    /// Mailchimp requests in flight at once, for all replicas together.
    #[arg(long, default_value_t = 10, env = "CHIMPSYNC_CONCURRENCY")]
    pub concurrency: usize,
    /// Seconds a claim holds its rows (must exceed the request timeout).
    #[arg(long, default_value_t = 120.0, env = "CHIMPSYNC_LEASE_SECONDS")]
    pub lease_seconds: f64,
    /// Seconds before a Mailchimp request is abandoned.
    #[arg(
        long,
        default_value_t = 30.0,
        env = "CHIMPSYNC_REQUEST_TIMEOUT_SECONDS"
    )]
    pub request_timeout_seconds: f64,
    /// Seconds to connect to Mailchimp.
    #[arg(
        long,
        default_value_t = 10.0,
        env = "CHIMPSYNC_CONNECT_TIMEOUT_SECONDS"
    )]
    pub connect_timeout_seconds: f64,
    /// Attempts before a row that keeps failing transiently is parked.
    #[arg(long, default_value_t = 12, env = "CHIMPSYNC_MAX_ATTEMPTS")]
    pub max_attempts: i32,
    /// First retry backoff in seconds (doubles per attempt, full jitter).
    #[arg(long, default_value_t = 1.0, env = "CHIMPSYNC_BACKOFF_BASE_SECONDS")]
    pub backoff_base_seconds: f64,
    /// Longest retry backoff in seconds.
    #[arg(long, default_value_t = 600.0, env = "CHIMPSYNC_BACKOFF_MAX_SECONDS")]
    pub backoff_max_seconds: f64,
    /// Idle poll interval in milliseconds (jittered).
    #[arg(long, default_value_t = 200, env = "CHIMPSYNC_POLL_INTERVAL_MS")]
    pub poll_interval_ms: u64,
    /// Seconds in-flight calls may finish after SIGTERM.
    #[arg(
        long,
        default_value_t = 20.0,
        env = "CHIMPSYNC_SHUTDOWN_DEADLINE_SECONDS"
    )]
    pub shutdown_deadline_seconds: f64,
    /// Database connections of this replica.
    #[arg(long, default_value_t = 16, env = "CHIMPSYNC_DB_POOL_SIZE")]
    pub db_pool_size: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            batch_size: 500,
            concurrency: 10,
            lease_seconds: 120.0,
            request_timeout_seconds: 30.0,
            connect_timeout_seconds: 10.0,
            max_attempts: 12,
            backoff_base_seconds: 1.0,
            backoff_max_seconds: 600.0,
            poll_interval_ms: 200,
            shutdown_deadline_seconds: 20.0,
            db_pool_size: 16,
        }
    }
}

fn secs(name: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| anyhow!("{name}: {v} is not a valid number of seconds"))
}

impl Tuning {
    /// HTTP timeouts.
    pub fn timeouts(&self) -> Result<Timeouts> {
        Ok(Timeouts {
            connect: secs("connect timeout", self.connect_timeout_seconds)?,
            request: secs("request timeout", self.request_timeout_seconds)?,
        })
    }

    /// Worker settings for an audience.
    pub fn settings(&self, audience_id: String, mapping: &Mapping) -> Result<worker::Settings> {
        let mut s = worker::Settings::new(audience_id);
        s.audience = mapping.audience.clone();
        s.batch_size = self.batch_size;
        s.concurrency = self.concurrency;
        s.lease = secs("lease", self.lease_seconds)?;
        s.request_timeout = secs("request timeout", self.request_timeout_seconds)?;
        s.retry = worker::policy::RetryPolicy {
            base: secs("backoff base", self.backoff_base_seconds)?,
            max: secs("backoff max", self.backoff_max_seconds)?,
            max_attempts: self.max_attempts,
        };
        s.poll_interval = Duration::from_millis(self.poll_interval_ms);
        s.shutdown_deadline = secs("shutdown deadline", self.shutdown_deadline_seconds)?;
        s.validate()?;
        Ok(s)
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chimpsync: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line: the reason, with its causes.
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !line.contains(&cause) {
                    line.push_str(": ");
                    line.push_str(&cause);
                }
            }
            eprintln!("chimpsync: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> Result<ExitCode> {
    let env = Env::read();
    match cli.command {
        Command::Setup {
            print_sql,
            trigger_shape,
            worker_role,
            uninstall,
            mailchimp,
        } => {
            let shape = if trigger_shape == "row" {
                TriggerShape::Row
            } else {
                TriggerShape::Statement
            };
            if uninstall {
                setup_uninstall(&env, print_sql, worker_role.as_deref()).await?;
            } else {
                setup(&env, print_sql, shape).await?;
                if let Some(role) = worker_role.as_deref() {
                    setup_worker_role(&env, print_sql, role).await?;
                }
                if mailchimp {
                    provision::merge_fields(&env).await?;
                }
            }
        }
        Command::Check => return check(&env).await,
        Command::Backfill { chunk_size } => backfill(&env, chunk_size).await?,
        Command::Run { once, tuning } => run(&env, once, tuning).await?,
        Command::Status { json } => status(&env, json).await?,
        Command::Retry { all, ids } => retry(&env, all, &ids).await?,
        Command::Audience {
            command: AudienceCommand::Create(args),
        } => audience_create(&env, args).await?,
        Command::Webhook {
            command: WebhookCommand::Register(args),
        } => provision::register_webhook(&env, args).await?,
        Command::Reconcile(args) => reconcile::run(&env, args).await?,
        Command::Demo { customers } => demo::run(customers).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn connect(env: &Env) -> Result<tokio_postgres::Client> {
    let url = env.database_url()?;
    store::connect(url)
        .await
        .context("cannot reach the database at DATABASE_URL")
}

async fn queue(env: &Env, size: usize) -> Result<Queue> {
    let url = env.database_url()?;
    let pool = store::pool(url, size, Duration::from_secs(60))?;
    // Fail now, with a clear message, rather than on the first query.
    let _probe = pool
        .get()
        .await
        .map_err(store::Error::from)
        .context("cannot reach the database at DATABASE_URL")?;
    Ok(Queue::new(pool))
}

async fn setup(env: &Env, print_sql: bool, shape: TriggerShape) -> Result<()> {
    let mapping = env.mapping()?;
    let mut client = connect(env).await?;
    if print_sql {
        let generated = store::Generated::for_mapping(&client, &mapping).await?;
        print!("{}", store::setup_sql(&generated, shape));
        return Ok(());
    }
    let report = store::setup(&mut client, &mapping, shape).await?;
    if let Some(old) = &report.removed_from {
        println!("removed the change triggers from {old}");
    }
    if report.applied_migrations.is_empty() {
        println!("schema chimpsync is up to date");
    } else {
        println!("applied migrations {:?}", report.applied_migrations);
    }
    if report.triggers_installed {
        println!(
            "change triggers installed on {} ({} level)",
            report.table,
            shape.as_str()
        );
    } else {
        println!(
            "change triggers on {} already match the mapping; left as they are",
            report.table
        );
    }
    Ok(())
}

async fn setup_worker_role(env: &Env, print_sql: bool, role: &str) -> Result<()> {
    if print_sql {
        print!("{}", store::admin::worker_role_sql(role)?);
        return Ok(());
    }
    let mut client = connect(env).await?;
    store::admin::grant_worker_role(&mut client, role).await?;
    println!("role {role} may run the worker (set its password: alter role ... password '...')");
    Ok(())
}

async fn setup_uninstall(env: &Env, print_sql: bool, role: Option<&str>) -> Result<()> {
    if print_sql {
        print!("{}", store::admin::uninstall_sql(role)?);
        return Ok(());
    }
    let mut client = connect(env).await?;
    let report = store::admin::uninstall(&mut client, role).await?;
    if let Some(table) = &report.triggers_removed_from {
        println!("removed the change triggers from {table}");
    }
    if report.schema_dropped {
        println!("dropped schema chimpsync");
    } else {
        println!("schema chimpsync was not installed");
    }
    if let Some(role) = &report.role_dropped {
        println!("dropped role {role} (if it existed)");
    }
    Ok(())
}

async fn status(env: &Env, json: bool) -> Result<()> {
    let queue = queue(env, 1).await?;
    let summary = queue
        .summary()
        .await
        .context("reading chimpsync.queue_summary (has `chimpsync setup` run?)")?;
    if json {
        let value = serde_json::json!({
            "pending": summary.pending,
            "in_flight": summary.in_flight,
            "retrying": summary.retrying,
            "parked": summary.parked,
            "oldest_pending_seconds": summary.oldest_pending_seconds,
            "last_synced_at": summary.last_synced_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        });
        println!("{value}");
    } else {
        println!("pending                 {}", summary.pending);
        println!("in flight               {}", summary.in_flight);
        println!("retrying                {}", summary.retrying);
        println!("parked                  {}", summary.parked);
        println!(
            "oldest pending          {:.0} s",
            summary.oldest_pending_seconds
        );
        println!(
            "last synced             {}",
            summary
                .last_synced_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "never".into())
        );
        if summary.parked > 0 {
            println!("\nparked rows wait for `chimpsync retry --all` (or a new change of the customer); why:");
            println!("  select id, customer_key, last_error from chimpsync.sync_queue where parked_at is not null;");
        }
    }
    Ok(())
}

async fn retry(env: &Env, all: bool, ids: &[i64]) -> Result<()> {
    if !all && ids.is_empty() {
        bail!("name the rows to retry (chimpsync retry ID ...) or use --all");
    }
    let queue = queue(env, 1).await?;
    let retried = queue.retry_parked(all, ids).await?;
    if !all {
        let missing: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !retried.contains(id))
            .collect();
        if !missing.is_empty() {
            warn!(
                ?missing,
                "not parked (already retried, synced, or no such row)"
            );
            println!("not parked: {missing:?}");
        }
    }
    println!("{} parked row(s) put back in line", retried.len());
    Ok(())
}

async fn check(env: &Env) -> Result<ExitCode> {
    let mut problems: Vec<String> = Vec::new();
    let ok = |line: &str| println!("ok      {line}");
    let mapping = match env.mapping() {
        Ok(m) => {
            ok(&format!("mapping file {}", env.config_path.display()));
            Some(m)
        }
        Err(e) => {
            problems.push(format!("{e:#}"));
            None
        }
    };
    match connect(env).await {
        Ok(client) => {
            ok("database reachable");
            if let Some(mapping) = &mapping {
                match store::Generated::for_mapping(&client, mapping).await {
                    Ok(g) => ok(&format!("table {} has every mapped column", g.table())),
                    Err(e) => problems.push(e.to_string()),
                }
                let installed: bool = client
                    .query_one(store::sql::queries::SCHEMA_EXISTS, &[])
                    .await
                    .map(|r| r.get(0))
                    .unwrap_or(false);
                if installed {
                    ok("schema chimpsync installed");
                } else {
                    problems
                        .push("schema chimpsync is not installed: run `chimpsync setup`".into());
                }
            }
        }
        Err(e) => problems.push(format!("{e:#}")),
    }
    let timeouts = Tuning::default().timeouts()?;
    match env.client(&timeouts) {
        Ok(client) => match client.ping().await {
            Ok(()) => {
                ok("Mailchimp key works (GET /ping)");
                if let Some(mapping) = &mapping {
                    match env.audience_id(mapping) {
                        Ok(id) => match client.get_audience(&id).await {
                            Ok(audience) => {
                                ok(&format!(
                                    "audience {id} ({:?}, {} members)",
                                    audience.name, audience.member_count
                                ));
                                match client.merge_fields(&id).await {
                                    Ok(fields) => {
                                        for tag in mapping.merge_fields.keys() {
                                            if fields.iter().any(|f| &f.tag == tag) {
                                                ok(&format!("merge field {tag} exists"));
                                            } else {
                                                problems.push(format!("merge_fields.{tag}: the audience has no merge field {tag}; `chimpsync setup --mailchimp` creates it"));
                                            }
                                        }
                                    }
                                    Err(e) => problems.push(format!("reading merge fields: {e}")),
                                }
                            }
                            Err(e) => problems.push(format!("audience {id}: {e}")),
                        },
                        Err(e) => problems.push(e.to_string()),
                    }
                }
            }
            Err(e) => problems.push(format!("Mailchimp: {e}")),
        },
        Err(e) => problems.push(e.to_string()),
    }
    for p in &problems {
        println!("PROBLEM {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn backfill(env: &Env, chunk_size: i64) -> Result<()> {
    if !(1..=100_000).contains(&chunk_size) {
        bail!("--chunk-size must be between 1 and 100000");
    }
    let mapping = env.mapping()?;
    let client = connect(env).await?;
    let backfill = store::backfill::Backfill::new(&client, &mapping).await?;
    let total = backfill.total(&client).await?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = std::time::Instant::now();
    let (mut scanned, mut enqueued, mut chunks) = (0u64, 0u64, 0u64);
    let mut after: Option<String> = None;
    loop {
        let chunk = backfill
            .chunk(&client, after.as_deref(), chunk_size)
            .await?;
        if chunk.scanned == 0 {
            break;
        }
        scanned += chunk.scanned;
        enqueued += chunk.enqueued;
        chunks += 1;
        bar.set_position(scanned);
        bar.set_message(format!("{enqueued} enqueued"));
        if chunks % 20 == 0 {
            info!(scanned, enqueued, total, "backfill progress");
        }
        after = chunk.last_key;
        if after.is_none() {
            break;
        }
    }
    bar.finish_and_clear();
    let took = started.elapsed();
    info!(
        scanned,
        enqueued,
        seconds = took.as_secs_f64(),
        "backfill done"
    );
    println!(
        "backfill: read {scanned} rows, enqueued {enqueued} (already pending or outside the filter: {}) in {:.1} s",
        scanned - enqueued,
        took.as_secs_f64()
    );
    Ok(())
}

/// Builds the worker from the environment (shared by `run` and tests of the binary).
pub async fn build_worker(env: &Env, tuning: &Tuning) -> Result<(worker::Worker, Mapping)> {
    let mapping = env.mapping()?;
    let audience = env.audience_id(&mapping)?;
    let settings = tuning.settings(audience, &mapping)?;
    let client = env.client(&tuning.timeouts()?)?;
    let queue = queue(env, tuning.db_pool_size.max(2)).await?;
    let worker = worker::Worker::new(queue, client, settings)?;
    Ok((worker, mapping))
}

async fn run(env: &Env, once: bool, tuning: Tuning) -> Result<()> {
    let (worker, mapping) = build_worker(env, &tuning).await?;
    let shutdown = CancellationToken::new();
    let server = if once {
        None
    } else {
        let receiver = webhook::Receiver::from_env(
            worker.queue().pool().clone(),
            &mapping,
            env.audience_id(&mapping)?,
        )
        .await?;
        if let Some(receiver) = &receiver {
            info!("serving the Mailchimp webhook route");
            tokio::spawn(
                receiver
                    .clone()
                    .retry_loop(webhook::RETRY_INTERVAL, shutdown.clone()),
            );
        }
        let state = http::HttpState::new(worker.clone(), env)?.with_webhooks(receiver);
        Some(http::serve(state, shutdown.clone()).await?)
    };
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received: shutting down");
            shutdown.cancel();
        });
    }
    let outcome = worker.run(shutdown.clone(), once).await?;
    shutdown.cancel();
    if let Some(server) = server {
        let _ = server.await;
    }
    if once {
        println!(
            "run --once: {} acknowledged, {} retrying, {} parked",
            outcome.acked, outcome.retried, outcome.parked
        );
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn audience_create(env: &Env, args: AudienceArgs) -> Result<()> {
    let client = env.client(&Tuning::default().timeouts()?)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{} Customers", args.company));
    let request = mailchimp::NewAudience {
        name,
        company: args.company.clone(),
        address1: args.address1,
        city: args.city,
        state: args.state,
        zip: args.zip,
        country: args.country,
        permission_reminder: args.permission_reminder.unwrap_or_else(|| {
            format!(
                "You are receiving this because you are a customer of {}.",
                args.company
            )
        }),
        from_name: args.from_name.unwrap_or_else(|| args.company.clone()),
        from_email: args.from_email,
        language: args.language,
    };
    let audience = client
        .create_audience(&request)
        .await
        .map_err(|e| anyhow!("creating the audience: {e}"))?;
    println!("{}", audience.id);
    Ok(())
}
