//! The Prometheus series of `chimpsync run`: the recorder, the HELP text of every series, the
//! series that exist from the start at zero, and the gauges read at scrape time (the queue, the
//! mapping drift, the connection slots, the database pool and the process itself).
//! `docs/operations.md` explains each series at length.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::warn;

/// Buckets of the durations of Mailchimp requests: 5 ms to a minute.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets of the durations of a claim or an acknowledgement: a millisecond (an idle claim on an
/// empty queue) to the claim's retries giving up (about 10 s).
const QUEUE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The queue's states as `chimpsync_queue_rows` labels them.
const QUEUE_STATES: [&str; 4] = ["pending", "in_flight", "retrying", "parked"];

/// The process-wide Prometheus recorder (installed once).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = |b: PrometheusBuilder, name: &str, buckets: &[f64]| {
                b.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
            };
            let builder = buckets(
                PrometheusBuilder::new(),
                "chimpsync_mailchimp_request_duration_seconds",
                REQUEST_BUCKETS,
            )
            .and_then(|b| {
                buckets(
                    b,
                    "chimpsync_batch_size",
                    &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0],
                )
            })
            .and_then(|b| buckets(b, "chimpsync_claim_duration_seconds", QUEUE_BUCKETS))
            .and_then(|b| buckets(b, "chimpsync_ack_duration_seconds", QUEUE_BUCKETS))
            .expect("bucket lists are non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                warn!("a metrics recorder was already installed");
            }
            describe();
            start_at_zero();
            handle
        })
        .clone()
}

/// The HELP text of every series.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "chimpsync_build_info",
        "Always 1; the version label says which chimpsync this replica runs."
    );
    describe_gauge!(
        "chimpsync_queue_rows",
        "Rows in chimpsync.sync_queue by state (pending, in_flight, retrying, parked); NaN when the last read failed."
    );
    describe_gauge!(
        "chimpsync_queue_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest change not yet synced (parked rows excluded); NaN when the last read failed."
    );
    describe_gauge!(
        "chimpsync_queue_held",
        "Removals held by the mass-removal guard, waiting for a person (chimpsync release-removals); NaN when the last read failed."
    );
    describe_gauge!(
        "chimpsync_last_synced_timestamp_seconds",
        Unit::Seconds,
        "When Mailchimp last acknowledged a change, by any replica (Unix time)."
    );
    describe_gauge!(
        "chimpsync_last_success_timestamp_seconds",
        Unit::Seconds,
        "When this replica last had a row acknowledged (Unix time)."
    );
    describe_counter!(
        "chimpsync_rows_synced_total",
        "Rows processed by this replica, by operation (upsert, rename, remove) and result (acked, retried, parked)."
    );
    describe_counter!(
        "chimpsync_retries_total",
        "Rows rescheduled after a transient failure."
    );
    describe_counter!(
        "chimpsync_parked_total",
        "Rows parked after a permanent failure or too many attempts."
    );
    describe_counter!(
        "chimpsync_throttled_total",
        "Mailchimp answers of 429 Too Many Requests (each pauses this replica's requests)."
    );
    describe_histogram!(
        "chimpsync_mailchimp_request_duration_seconds",
        Unit::Seconds,
        "Mailchimp request duration by endpoint and status class (2xx, 4xx, 5xx, throttled, transport, other)."
    );
    describe_gauge!(
        "chimpsync_mailchimp_up",
        "1 when Mailchimp's last answer (a request, or the /ping every 30 s) showed it reachable with a working key, 0 when it was a transport error, a 5xx or a refused key."
    );
    describe_histogram!("chimpsync_batch_size", "Members per batch upsert request.");
    describe_histogram!(
        "chimpsync_claim_duration_seconds",
        Unit::Seconds,
        "Time of each claim of a batch (the claim statement and its retries)."
    );
    describe_histogram!(
        "chimpsync_ack_duration_seconds",
        Unit::Seconds,
        "Time of each acknowledgement of a batch (the fenced delete and its retries)."
    );
    describe_gauge!(
        "chimpsync_slots_held",
        "Mailchimp connection slots this replica holds now."
    );
    describe_gauge!(
        "chimpsync_slots_in_use",
        "Mailchimp connection slots all replicas hold together (advisory locks); NaN when the last read failed."
    );
    describe_gauge!(
        "chimpsync_slots_cap",
        "The connection cap shared by all replicas (CHIMPSYNC_CONCURRENCY)."
    );
    describe_gauge!(
        "chimpsync_db_pool_size",
        "Database connections this replica may open (CHIMPSYNC_DB_POOL_SIZE)."
    );
    describe_gauge!(
        "chimpsync_db_pool_connections",
        "Database connections this replica has open now."
    );
    describe_gauge!(
        "chimpsync_db_pool_available",
        "Open database connections of this replica that are idle now."
    );
    describe_gauge!(
        "chimpsync_db_pool_waiting",
        "Tasks of this replica waiting for a database connection now."
    );
    describe_gauge!(
        "chimpsync_mapping_drift",
        "1 when the customer table no longer fits the installed mapping or changes are held for that reason (see `chimpsync status`), else 0; NaN when the last read failed."
    );
    describe_gauge!(
        "chimpsync_ready",
        "1 when the last /readyz check passed (schema, database, mapping drift), else 0."
    );
    describe_gauge!(
        "chimpsync_schema_compatible",
        "1 while the chimpsync schema and the installed triggers fit this worker, 0 while it claims nothing because they do not."
    );
    describe_counter!(
        "chimpsync_inbound_events_total",
        "Mailchimp events (webhooks) whose [inbound] statement this replica applied, or that failed (each failed attempt), by outcome."
    );
    describe_counter!(
        "chimpsync_webhook_calls_total",
        "Webhook calls this replica answered, by result (stored, duplicate, ignored, held, not_found, error)."
    );
    describe_gauge!(
        "chimpsync_accounts",
        "Many accounts: accounts by state (active, disabled, needs_attention, unknown)."
    );
    describe_counter!(
        "chimpsync_account_state_changes_total",
        "Many accounts: changes of an account's state, by the new state."
    );
    describe_counter!(
        "chimpsync_process_cpu_seconds_total",
        Unit::Seconds,
        "CPU time this process used, user and system."
    );
    describe_gauge!(
        "chimpsync_process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of this process."
    );
    describe_gauge!(
        "chimpsync_process_open_fds",
        "File descriptors this process has open (sockets included)."
    );
}

/// Series that exist from the start, so rate(), absent() and dashboards work before the first
/// event.
fn start_at_zero() {
    metrics::gauge!("chimpsync_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::counter!("chimpsync_retries_total").increment(0);
    metrics::counter!("chimpsync_parked_total").increment(0);
    metrics::counter!("chimpsync_throttled_total").increment(0);
    for operation in ["upsert", "rename", "remove"] {
        for result in ["acked", "retried", "parked"] {
            metrics::counter!("chimpsync_rows_synced_total", "operation" => operation, "result" => result)
                .increment(0);
        }
    }
    for outcome in ["applied", "failed"] {
        metrics::counter!("chimpsync_inbound_events_total", "outcome" => outcome).increment(0);
    }
    for result in [
        "stored",
        "duplicate",
        "ignored",
        "held",
        "not_found",
        "error",
    ] {
        metrics::counter!("chimpsync_webhook_calls_total", "result" => result).increment(0);
    }
    // Histograms: taking a handle registers the series, which the exporter renders with zero
    // buckets, _sum and _count until the first sample; nothing is recorded, so no figure is
    // skewed. Every label pair of the request durations, so that an error rate has its zero too.
    for endpoint in worker::gate::ENDPOINTS {
        for status_class in worker::gate::STATUS_CLASSES {
            let _ = metrics::histogram!(
                "chimpsync_mailchimp_request_duration_seconds",
                "endpoint" => endpoint,
                "status_class" => status_class
            );
        }
    }
    for name in [
        "chimpsync_batch_size",
        "chimpsync_claim_duration_seconds",
        "chimpsync_ack_duration_seconds",
    ] {
        let _ = metrics::histogram!(name);
    }
    metrics::gauge!("chimpsync_slots_held").increment(0.0);
    metrics::gauge!("chimpsync_queue_held").set(0.0);
    metrics::gauge!("chimpsync_mapping_drift").set(0.0);
}

/// The mapping drift's one-line reason, if the table no longer fits the installed mapping.
pub async fn drift(worker: &worker::Worker) -> store::Result<Option<String>> {
    let client = worker.queue().pool().get().await?;
    Ok(store::drift::read(&client).await?.reason())
}

/// Sets the gauges read at scrape time. A gauge whose source cannot be read is set to NaN
/// rather than left at its last value, which would look current.
pub async fn refresh(worker: &worker::Worker) {
    match worker.queue().summary().await {
        Ok(s) => {
            let rows = [s.pending, s.in_flight, s.retrying, s.parked];
            for (state, n) in QUEUE_STATES.into_iter().zip(rows) {
                metrics::gauge!("chimpsync_queue_rows", "state" => state).set(n as f64);
            }
            metrics::gauge!("chimpsync_queue_oldest_pending_seconds").set(s.oldest_pending_seconds);
            metrics::gauge!("chimpsync_queue_held").set(s.held as f64);
            if let Some(t) = s.last_synced_at {
                metrics::gauge!("chimpsync_last_synced_timestamp_seconds")
                    .set(t.timestamp() as f64);
            }
        }
        Err(e) => {
            warn!(error = %e, "cannot read the queue summary for metrics");
            for state in QUEUE_STATES {
                metrics::gauge!("chimpsync_queue_rows", "state" => state).set(f64::NAN);
            }
            metrics::gauge!("chimpsync_queue_oldest_pending_seconds").set(f64::NAN);
            metrics::gauge!("chimpsync_queue_held").set(f64::NAN);
        }
    }
    let drift = match drift(worker).await {
        Ok(reason) => f64::from(u8::from(reason.is_some())),
        Err(e) => {
            warn!(error = %e, "cannot read the mapping drift for metrics");
            f64::NAN
        }
    };
    metrics::gauge!("chimpsync_mapping_drift").set(drift);
    let slots = worker.gate().slots();
    metrics::gauge!("chimpsync_slots_cap").set(slots.cap() as f64);
    let in_use = match slots.in_use().await {
        Ok(n) => n as f64,
        Err(e) => {
            warn!(error = %e, "cannot count the connection slots in use for metrics");
            f64::NAN
        }
    };
    metrics::gauge!("chimpsync_slots_in_use").set(in_use);
    let pool = worker.queue().pool().status();
    metrics::gauge!("chimpsync_db_pool_size").set(pool.max_size as f64);
    metrics::gauge!("chimpsync_db_pool_connections").set(pool.size as f64);
    metrics::gauge!("chimpsync_db_pool_available").set(pool.available as f64);
    metrics::gauge!("chimpsync_db_pool_waiting").set(pool.waiting as f64);
    process();
}

/// CPU time, resident memory and open file descriptors, from `/proc/self` (Linux; elsewhere
/// nothing is set).
fn process() {
    let Some(usage) = proc_self::read() else {
        return;
    };
    // Counters are whole numbers here: whole seconds, which rate() over minutes resolves well.
    metrics::counter!("chimpsync_process_cpu_seconds_total").absolute(usage.cpu_seconds);
    metrics::gauge!("chimpsync_process_resident_memory_bytes").set(usage.resident_bytes as f64);
    metrics::gauge!("chimpsync_process_open_fds").set(usage.open_fds as f64);
}

/// Reading `/proc/self`.
mod proc_self {
    /// The unit of `/proc`'s CPU times: `USER_HZ`, which Linux fixes at 100 for user space on
    /// every architecture.
    const TICKS_PER_SECOND: u64 = 100;

    /// What the process uses now.
    pub struct Usage {
        /// User and system CPU time, whole seconds.
        pub cpu_seconds: u64,
        /// Resident memory.
        pub resident_bytes: u64,
        /// Open file descriptors.
        pub open_fds: u64,
    }

    /// `None` where there is no `/proc` (not Linux).
    pub fn read() -> Option<Usage> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(Usage {
            cpu_seconds: cpu_ticks(&stat)? / TICKS_PER_SECOND,
            resident_bytes: resident_bytes(&status)?,
            open_fds,
        })
    }

    /// `utime + stime` of `/proc/self/stat`: the 14th and 15th fields, counted after the
    /// command name, which is in parentheses and may itself contain spaces.
    pub fn cpu_ticks(stat: &str) -> Option<u64> {
        let after_name = &stat[stat.rfind(')')? + 1..];
        let mut fields = after_name.split_whitespace().skip(11);
        let user: u64 = fields.next()?.parse().ok()?;
        let system: u64 = fields.next()?.parse().ok()?;
        Some(user + system)
    }

    /// `VmRSS` of `/proc/self/status` (in kB there, whatever the page size).
    pub fn resident_bytes(status: &str) -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn cpu_ticks_are_read_after_a_command_name_with_spaces() {
            let stat = "42 (chimp sync) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 10";
            assert_eq!(super::cpu_ticks(stat), Some(300));
        }

        #[test]
        fn resident_memory_is_read_in_kilobytes() {
            let status = "Name:\tchimpsync\nVmRSS:\t   2048 kB\nThreads:\t4\n";
            assert_eq!(super::resident_bytes(status), Some(2048 * 1024));
        }

        #[test]
        #[cfg(target_os = "linux")]
        fn this_process_can_be_read() {
            let usage = super::read().expect("/proc/self on Linux");
            assert!(usage.resident_bytes > 0 && usage.open_fds > 0);
        }
    }
}
