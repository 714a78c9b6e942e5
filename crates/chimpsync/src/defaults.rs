//! Every default of the binary's settings: the command line's attributes and the commands that
//! take no worker options both read them here. The worker's own settings are defined (and their
//! defaults documented) in `worker::settings`; this module only states them in the command line's
//! units.

use worker::settings;

/// Rows per claim and per batch call.
pub const BATCH_SIZE: usize = settings::DEFAULT_BATCH_SIZE;
/// Mailchimp requests in flight at once, for all replicas together.
pub const CONCURRENCY: usize = settings::DEFAULT_CONCURRENCY;
/// Seconds a claim holds its rows.
pub const LEASE_SECONDS: f64 = settings::DEFAULT_LEASE.as_secs_f64();
/// Seconds before a Mailchimp request is abandoned.
pub const REQUEST_TIMEOUT_SECONDS: f64 = settings::DEFAULT_REQUEST_TIMEOUT.as_secs_f64();
/// Seconds to connect to Mailchimp.
pub const CONNECT_TIMEOUT_SECONDS: f64 = 10.0;
/// Attempts before a row that keeps failing transiently is parked.
pub const MAX_ATTEMPTS: i32 = settings::DEFAULT_MAX_ATTEMPTS;
/// First retry backoff in seconds.
pub const BACKOFF_BASE_SECONDS: f64 = settings::DEFAULT_BACKOFF_BASE.as_secs_f64();
/// Longest retry backoff in seconds.
pub const BACKOFF_MAX_SECONDS: f64 = settings::DEFAULT_BACKOFF_MAX.as_secs_f64();
/// Idle poll interval in milliseconds.
pub const POLL_INTERVAL_MS: u64 = settings::DEFAULT_POLL_INTERVAL.as_millis() as u64;
/// Seconds in-flight calls may finish after SIGTERM.
pub const SHUTDOWN_DEADLINE_SECONDS: f64 = settings::DEFAULT_SHUTDOWN_DEADLINE.as_secs_f64();
/// The share of the synced contacts, in percent, past which queued removals are held.
pub const HOLD_REMOVALS_PERCENT: f64 = settings::DEFAULT_REMOVAL_SHARE * 100.0;
/// Removals within the window that are never held.
pub const HOLD_REMOVALS_MIN_ROWS: i64 = settings::DEFAULT_REMOVAL_MIN_ROWS;
/// Seconds back that queued removals count towards the guard.
pub const HOLD_REMOVALS_WINDOW_SECONDS: f64 = settings::DEFAULT_REMOVAL_WINDOW.as_secs_f64();
/// Seconds the worker loop may attempt no claim before the liveness probe fails.
pub const LIVENESS_TIMEOUT_SECONDS: f64 = settings::DEFAULT_LIVENESS_TIMEOUT.as_secs_f64();
/// Database connections of a worker replica.
pub const DB_POOL_SIZE: usize = 16;
/// Days an applied webhook event is kept: a week to look into a complaint about one, and no
/// longer, since each holds an address.
pub const INBOUND_RETENTION_DAYS: f64 = 7.0;
/// Rows per backfill chunk.
pub const BACKFILL_CHUNK: i64 = 5000;
/// Where `chimpsync run` serves its HTTP endpoints.
pub const HTTP_ADDR: &str = "0.0.0.0:9187";
/// The mapping file, relative to the working directory.
pub const MAPPING_FILE: &str = "chimpsync.toml";
/// The name a worker claims under when `HOSTNAME` is not set.
pub const HOSTNAME: &str = settings::DEFAULT_HOST;
