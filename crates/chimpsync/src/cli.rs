//! The command line: clap's types and nothing else. Defaults come from [`crate::defaults`].
//! Every setting is an argument with its environment variable, so `--help` lists them all; secret
//! values are never shown there.

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::defaults;

/// Keeps a Mailchimp audience in step with a customer table in Postgres.
///
/// Exit status: 0 success, 1 another failure, 2 wrong command line, 3 a setting or the mapping
/// file is wrong, 4 the database is unreachable or refuses the login, 5 Mailchimp refused or is
/// unreachable, 6 partly done (the output says what failed; `run --once`: rows it claimed were
/// left parked, waiting for a retry or unsent).
#[derive(Debug, Parser)]
#[command(name = "chimpsync", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub settings: Settings,
}

/// The settings every command reads (`docs/interface.md`); each also a flag of every command.
/// A blank value counts as unset.
#[derive(Debug, Args)]
#[command(next_help_heading = "Settings of every command")]
pub struct Settings {
    /// Postgres URL (libpq's sslmode and sslrootcert apply).
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<SecretString>,
    /// Mailchimp API key, <32 hex>-<dc>; never printed.
    #[arg(
        long,
        global = true,
        env = "MAILCHIMP_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub mailchimp_api_key: Option<SecretString>,
    /// The audience (list) id; overrides [audience].id of the mapping file.
    #[arg(long, global = true, env = "MAILCHIMP_AUDIENCE_ID", value_name = "ID")]
    pub mailchimp_audience_id: Option<String>,
    /// Mailchimp's API base URL [default: https://<dc>.api.mailchimp.com/3.0].
    #[arg(long, global = true, env = "MAILCHIMP_BASE_URL", value_name = "URL")]
    pub mailchimp_base_url: Option<String>,
    /// The mapping file.
    #[arg(long = "config", global = true, env = "CHIMPSYNC_CONFIG", value_name = "FILE",
          default_value = defaults::MAPPING_FILE)]
    pub mapping: String,
    /// Where `run` serves /healthz, /readyz, /metrics, and the webhook route unless
    /// --webhook-addr is set.
    #[arg(long, global = true, env = "CHIMPSYNC_HTTP_ADDR", value_name = "ADDR",
          default_value = defaults::HTTP_ADDR)]
    pub http_addr: String,
    /// Where `run` serves the webhook route alone (a second listener; --http-addr then serves
    /// no webhook route), e.g. 0.0.0.0:9188; unset, the webhook route is on --http-addr.
    #[arg(
        long,
        global = true,
        env = "CHIMPSYNC_WEBHOOK_ADDR",
        value_name = "ADDR"
    )]
    pub webhook_addr: Option<String>,
    /// The secret last segment of the webhook URL (at least 16 of A-Za-z0-9-_.~); unset, the
    /// webhook route is off.
    #[arg(
        long,
        global = true,
        env = "CHIMPSYNC_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub webhook_secret: Option<SecretString>,
    /// Many accounts: the key-encryption secret that decrypts the accounts' API keys.
    #[arg(
        long,
        global = true,
        env = "CHIMPSYNC_SECRET_KEY",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub secret_key: Option<SecretString>,
    /// Many accounts: the secret before the last `secret rotate`, while replicas move on.
    #[arg(
        long,
        global = true,
        env = "CHIMPSYNC_PREVIOUS_SECRET_KEY",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub previous_secret_key: Option<SecretString>,
    /// `secret rotate`: the secret to re-encrypt every account API key for.
    #[arg(
        long,
        global = true,
        env = "CHIMPSYNC_NEW_SECRET_KEY",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub new_secret_key: Option<SecretString>,
    /// The name a worker claims rows under, with its process id (sync_queue.lease_owner).
    #[arg(long, global = true, env = "HOSTNAME", value_name = "NAME",
          default_value = defaults::HOSTNAME)]
    pub hostname: String,
    /// Log format: json or pretty [default: json off a terminal, else pretty].
    #[arg(long, global = true, env = "LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or info,worker=debug [default: info].
    #[arg(long, global = true, env = "RUST_LOG", value_name = "FILTER")]
    pub log_filter: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the chimpsync schema and install the change triggers.
    Setup(SetupArgs),
    /// Check the config, the database, the Mailchimp key, the audience and the merge fields.
    Check {
        /// One JSON object instead of lines: `ok` and each check with its result.
        #[arg(long)]
        json: bool,
    },
    /// Enqueue every row that should be in the audience (the initial sync).
    Backfill {
        /// Rows per chunk (each chunk is one short transaction).
        #[arg(long, default_value_t = defaults::BACKFILL_CHUNK, env = "CHIMPSYNC_BACKFILL_CHUNK")]
        chunk_size: i64,
        /// Only this account's customers (Sync Contacts; needs `[source].account`).
        #[arg(long)]
        account: Option<String>,
    },
    /// Run the worker.
    Run {
        /// Drain everything that is due, then exit: 0 when every row it claimed was acknowledged,
        /// 6 when some are left parked, waiting for a retry, or unsent.
        #[arg(long)]
        once: bool,
        /// Instead of exiting when the chimpsync schema or the installed triggers do not fit
        /// (before `setup` has run), serve /healthz and an unready /readyz and wait for them.
        #[arg(long, env = "CHIMPSYNC_WAIT_FOR_SCHEMA")]
        wait_for_schema: bool,
        /// Days a webhook event is kept after it was applied (it holds addresses); 0 keeps
        /// every event.
        #[arg(
            long,
            default_value_t = defaults::INBOUND_RETENTION_DAYS,
            env = "CHIMPSYNC_INBOUND_RETENTION_DAYS"
        )]
        inbound_retention_days: f64,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// The queue at a glance (with many accounts, a count of accounts by state too).
    Status {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// One account of many: its state, audience, key (last 4), queue, last sync and recent
        /// state changes.
        #[arg(long)]
        account: Option<String>,
    },
    /// Put parked rows back in line.
    Retry {
        /// Every parked row.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Queue row ids (`sync_queue.id`).
        ids: Vec<i64>,
    },
    /// Send removals held by the mass-removal guard, after a person has looked.
    ReleaseRemovals {
        /// Every held removal.
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
    /// Manage the Mailchimp webhook that feeds `chimpsync run` (CHIMPSYNC_WEBHOOK_SECRET, or
    /// each account's own secret with many accounts).
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// Manage the Mailchimp accounts of multi-account mode (`chimpsync.accounts`).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// The key-encryption secret that account API keys are encrypted for (CHIMPSYNC_SECRET_KEY).
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Compare the audience with the table (members changed since the last run, or --full) and
    /// report the differences; --apply fixes them.
    Reconcile(ReconcileArgs),
    /// A self-contained demonstration against a local Postgres and an in-process emulator.
    #[cfg(feature = "demo")]
    Demo {
        /// Number of sample customers.
        #[arg(long, default_value_t = 3000)]
        customers: i64,
    },
}

/// `chimpsync setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Print the SQL and change nothing.
    #[arg(long)]
    pub print_sql: bool,
    /// Trigger shape (statement-level is the measured default).
    #[arg(long, default_value = "statement", value_parser = ["statement", "row"])]
    pub trigger_shape: String,
    /// Also create this login role (if missing, without a password: the DBA sets one) and
    /// grant it only what `chimpsync run` needs; with --uninstall, drop it.
    #[arg(long, value_name = "NAME")]
    pub worker_role: Option<String>,
    /// Remove chimpsync from the database: the change triggers and the chimpsync schema
    /// (the customer table is untouched).
    #[arg(long, conflicts_with = "trigger_shape")]
    pub uninstall: bool,
    /// With --uninstall: yes, drop it all (the queue's unsent changes included).
    #[arg(long, requires = "uninstall")]
    pub yes: bool,
    /// Also create the merge fields of [merge_fields] that the audience lacks (typed from the
    /// columns: number, date or text) and report each.
    #[arg(long, conflicts_with_all = ["print_sql", "uninstall"])]
    pub mailchimp: bool,
    /// Do not install the DDL guard (event triggers refusing a schema change that breaks the
    /// mapping), and remove it if present: for databases where setup may not create event
    /// triggers. The capture guard in the change triggers keeps the application's writes working
    /// either way.
    #[arg(long, conflicts_with = "uninstall")]
    pub no_ddl_guard: bool,
}

/// `chimpsync account ...`. Each works wherever schema chimpsync has its accounts table; the
/// worker serves the accounts when the mapping names `[source].account`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Connect an account (its key from MAILCHIMP_API_KEY, or one line of stdin), or replace the
    /// audience and key of a connected one.
    Add(AccountAddArgs),
    /// Change an account's audience or key; clears "needs attention".
    Set(AccountSetArgs),
    /// Switch an account's sync off: nothing is sent, its queue keeps its rows.
    Disable {
        /// The account (the value of the mapping's [source].account column).
        account: String,
    },
    /// Switch an account's sync on: what changed while it was off is sent.
    Enable {
        /// The account.
        account: String,
    },
    /// Forget an account, its queue rows, synced contacts and webhook events (its audience in
    /// Mailchimp is left alone).
    Remove {
        /// The account.
        account: String,
    },
    /// The accounts, their state and queues (keys show as their last 4 characters).
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `chimpsync account add`.
#[derive(Debug, Args)]
pub struct AccountAddArgs {
    /// The account (the value of the mapping's [source].account column).
    pub account: String,
    /// The account's audience id.
    #[arg(long = "audience", value_name = "ID")]
    pub audience: String,
    /// Read the API key from one line of stdin instead of MAILCHIMP_API_KEY.
    #[arg(long)]
    pub api_key_stdin: bool,
    /// Connect it switched off.
    #[arg(long)]
    pub disabled: bool,
    /// Queue every customer of the account (its first sync).
    #[arg(long)]
    pub sync_contacts: bool,
}

/// `chimpsync account set`.
#[derive(Debug, Args)]
pub struct AccountSetArgs {
    /// The account.
    pub account: String,
    /// The new audience id.
    #[arg(long = "audience", value_name = "ID")]
    pub audience: Option<String>,
    /// Read a new API key from one line of stdin.
    #[arg(long)]
    pub api_key_stdin: bool,
}

/// `chimpsync secret ...`.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a new CHIMPSYNC_SECRET_KEY value (one line on stdout, nothing else).
    Generate,
    /// Re-encrypt every account API key from CHIMPSYNC_SECRET_KEY to CHIMPSYNC_NEW_SECRET_KEY in
    /// one transaction, and install the new public key.
    Rotate,
}

/// `chimpsync webhook ...`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register the webhook on the audience (idempotent: an existing one for the URL is reported).
    Register(RegisterArgs),
}

/// `chimpsync webhook register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The public URL of `chimpsync run`'s receiver:
    /// https://<host>/webhooks/mailchimp/<CHIMPSYNC_WEBHOOK_SECRET>; with --account, only the
    /// base (https://<host>): the account's path and secret are added.
    #[arg(long)]
    pub url: String,
    /// One account of many: registers its URL on its audience, with its key.
    #[arg(long)]
    pub account: Option<String>,
    /// Also hear about changes made through the API, chimpsync's own included (off by default:
    /// chimpsync knows what it wrote).
    #[arg(long)]
    pub include_api_changes: bool,
}

/// `chimpsync audience ...`.
#[derive(Debug, Subcommand)]
pub enum AudienceCommand {
    /// Create an audience and print its id.
    Create(AudienceArgs),
}

/// `chimpsync audience create`.
#[derive(Debug, Args)]
pub struct AudienceArgs {
    /// One account of many: create the audience with its key and make it the account's.
    #[arg(long)]
    pub account: Option<String>,
    /// The audience name (default: "<company> Customers").
    #[arg(long)]
    pub name: Option<String>,
    /// Company name (required by Mailchimp's anti-spam rules).
    #[arg(long)]
    pub company: String,
    /// Postal address line.
    #[arg(long)]
    pub address1: String,
    /// City.
    #[arg(long)]
    pub city: String,
    /// State or region.
    #[arg(long, default_value = "")]
    pub state: String,
    /// Postal code.
    #[arg(long, default_value = "")]
    pub zip: String,
    /// ISO 3166 two-letter country code.
    #[arg(long, default_value = "US")]
    pub country: String,
    /// Sender name of campaigns (default: the company).
    #[arg(long)]
    pub from_name: Option<String>,
    /// Sender address of campaigns.
    #[arg(long)]
    pub from_email: String,
    /// Why contacts receive mail.
    #[arg(long)]
    pub permission_reminder: Option<String>,
    /// Campaign language.
    #[arg(long, default_value = "en")]
    pub language: String,
}

/// `chimpsync reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Compare the members changed in Mailchimp since this time (RFC 3339, `YYYY-MM-DD
    /// HH:MM:SS` in UTC, or a date). Default: since the last `reconcile --apply` (everything on
    /// the first run).
    #[arg(long, conflicts_with = "full")]
    pub since: Option<String>,
    /// Compare every member, and report customers missing from the audience.
    #[arg(long)]
    pub full: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Fix what differs: queue the customers whose member differs, run the mapping's [inbound]
    /// statements for what changed on Mailchimp's side.
    #[arg(long)]
    pub apply: bool,
    /// With --apply, also remove (archive, or unsubscribe per [audience].on_remove) members that
    /// belong to no customer.
    #[arg(long, requires = "apply")]
    pub remove_extra: bool,
    /// Mailchimp requests in flight at once, shared with the workers (must match theirs).
    #[arg(long, default_value_t = defaults::CONCURRENCY, env = "CHIMPSYNC_CONCURRENCY")]
    pub concurrency: usize,
    /// The account whose audience and customers are compared (required with many accounts).
    #[arg(long)]
    pub account: Option<String>,
}

/// Worker limits, each with its documented default.
#[derive(Debug, Clone, Args)]
pub struct Tuning {
    /// Rows per claim and per batch call (1..=500).
    #[arg(long, default_value_t = defaults::BATCH_SIZE, env = "CHIMPSYNC_BATCH_SIZE")]
    pub batch_size: usize,
    /// Mailchimp requests in flight at once, for all replicas together.
    #[arg(long, default_value_t = defaults::CONCURRENCY, env = "CHIMPSYNC_CONCURRENCY")]
    pub concurrency: usize,
    /// Seconds a claim holds its rows (must exceed the request timeout).
    #[arg(long, default_value_t = defaults::LEASE_SECONDS, env = "CHIMPSYNC_LEASE_SECONDS")]
    pub lease_seconds: f64,
    /// Seconds before a Mailchimp request is abandoned.
    #[arg(
        long,
        default_value_t = defaults::REQUEST_TIMEOUT_SECONDS,
        env = "CHIMPSYNC_REQUEST_TIMEOUT_SECONDS"
    )]
    pub request_timeout_seconds: f64,
    /// Seconds to connect to Mailchimp.
    #[arg(
        long,
        default_value_t = defaults::CONNECT_TIMEOUT_SECONDS,
        env = "CHIMPSYNC_CONNECT_TIMEOUT_SECONDS"
    )]
    pub connect_timeout_seconds: f64,
    /// Attempts before a row that keeps failing transiently is parked.
    #[arg(long, default_value_t = defaults::MAX_ATTEMPTS, env = "CHIMPSYNC_MAX_ATTEMPTS")]
    pub max_attempts: i32,
    /// First retry backoff in seconds (doubles per attempt, full jitter).
    #[arg(
        long,
        default_value_t = defaults::BACKOFF_BASE_SECONDS,
        env = "CHIMPSYNC_BACKOFF_BASE_SECONDS"
    )]
    pub backoff_base_seconds: f64,
    /// Longest retry backoff in seconds.
    #[arg(
        long,
        default_value_t = defaults::BACKOFF_MAX_SECONDS,
        env = "CHIMPSYNC_BACKOFF_MAX_SECONDS"
    )]
    pub backoff_max_seconds: f64,
    /// Idle poll interval in milliseconds (jittered).
    #[arg(long, default_value_t = defaults::POLL_INTERVAL_MS, env = "CHIMPSYNC_POLL_INTERVAL_MS")]
    pub poll_interval_ms: u64,
    /// Seconds in-flight calls may finish after SIGTERM.
    #[arg(
        long,
        default_value_t = defaults::SHUTDOWN_DEADLINE_SECONDS,
        env = "CHIMPSYNC_SHUTDOWN_DEADLINE_SECONDS"
    )]
    pub shutdown_deadline_seconds: f64,
    /// Hold the removals queued within the window once they pass this percentage of the
    /// synced contacts (0-100).
    #[arg(
        long,
        default_value_t = defaults::HOLD_REMOVALS_PERCENT,
        env = "CHIMPSYNC_HOLD_REMOVALS_PERCENT"
    )]
    pub hold_removals_percent: f64,
    /// Removals within the window that are never held, whatever the audience's size.
    #[arg(
        long,
        default_value_t = defaults::HOLD_REMOVALS_MIN_ROWS,
        env = "CHIMPSYNC_HOLD_REMOVALS_MIN_ROWS"
    )]
    pub hold_removals_min_rows: i64,
    /// Seconds back that queued removals count towards the guard.
    #[arg(
        long,
        default_value_t = defaults::HOLD_REMOVALS_WINDOW_SECONDS,
        env = "CHIMPSYNC_HOLD_REMOVALS_WINDOW_SECONDS"
    )]
    pub hold_removals_window_seconds: f64,
    /// Database connections of this replica.
    #[arg(long, default_value_t = defaults::DB_POOL_SIZE, env = "CHIMPSYNC_DB_POOL_SIZE")]
    pub db_pool_size: usize,
    /// Seconds the worker loop may attempt no claim before /healthz fails (waiting for the
    /// schema and throttle pauses excepted); must exceed the lease.
    #[arg(
        long,
        default_value_t = defaults::LIVENESS_TIMEOUT_SECONDS,
        env = "CHIMPSYNC_LIVENESS_TIMEOUT_SECONDS"
    )]
    pub liveness_timeout_seconds: f64,
}
