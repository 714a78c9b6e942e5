//! The HTTP endpoints of `chimpsync run`: `/healthz`, `/readyz` and `/metrics` (Prometheus).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, Timeouts};
use crate::webhook::Receiver;

/// How long a positive answer of Mailchimp's `/ping` is reused before the key is checked again.
const READY_CACHE: Duration = Duration::from_secs(30);

/// How long `/readyz` waits for the database or Mailchimp before answering 503.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    worker: worker::Worker,
    /// The key `/readyz` checks; `None` with many accounts, whose keys the worker checks one by
    /// one (a refused key puts its account in needs_attention, not the replica out of service).
    client: Option<mailchimp::Client>,
    metrics: PrometheusHandle,
    ready_until: Arc<Mutex<Option<Instant>>>,
    addr: SocketAddr,
    /// The Mailchimp webhook route, when `CHIMPSYNC_WEBHOOK_SECRET` is set.
    webhooks: Option<Receiver>,
    /// Why the schema does not fit this worker, when it does not.
    hold: Option<worker::Hold>,
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "chimpsync_mailchimp_request_duration_seconds".into(),
                    ),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full("chimpsync_batch_size".into()),
                        &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0],
                    )
                })
                .expect("bucket lists are non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                warn!("a metrics recorder was already installed");
            }
            describe_metrics();
            handle
        })
        .clone()
}

/// The HELP text of every series (`docs/operations.md` explains each at length).
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "chimpsync_queue_rows",
        "Rows in chimpsync.sync_queue by state (pending, in_flight, retrying, parked)."
    );
    describe_gauge!(
        "chimpsync_queue_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest change not yet synced (parked rows excluded)."
    );
    describe_gauge!(
        "chimpsync_queue_held",
        "Removals held by the mass-removal guard, waiting for a person (chimpsync release-removals)."
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
    describe_histogram!("chimpsync_batch_size", "Members per batch upsert request.");
    describe_gauge!(
        "chimpsync_slots_held",
        "Mailchimp connection slots this replica holds now."
    );
    describe_gauge!(
        "chimpsync_slots_in_use",
        "Mailchimp connection slots all replicas hold together (advisory locks)."
    );
    describe_gauge!(
        "chimpsync_slots_cap",
        "The connection cap shared by all replicas (CHIMPSYNC_CONCURRENCY)."
    );
    describe_gauge!(
        "chimpsync_mapping_drift",
        "1 when the customer table no longer fits the installed mapping or changes are held for that reason (see `chimpsync status`), else 0."
    );
    describe_gauge!(
        "chimpsync_ready",
        "1 when the last /readyz check passed (database and Mailchimp key), else 0."
    );
    describe_gauge!(
        "chimpsync_schema_compatible",
        "1 while the chimpsync schema and the installed triggers fit this worker, 0 while it claims nothing because they do not."
    );
    // Counters exist from the start at 0, so rate() and absent() work before the first event.
    metrics::counter!("chimpsync_retries_total").increment(0);
    metrics::counter!("chimpsync_parked_total").increment(0);
    metrics::counter!("chimpsync_throttled_total").increment(0);
    metrics::gauge!("chimpsync_slots_held").increment(0.0);
    metrics::gauge!("chimpsync_queue_held").set(0.0);
    metrics::gauge!("chimpsync_mapping_drift").set(0.0);
}

impl HttpState {
    /// State for the endpoints, served at `CHIMPSYNC_HTTP_ADDR`.
    pub fn new(worker: worker::Worker, config: &Config) -> Result<HttpState> {
        let client = config.client(&Timeouts::default())?;
        HttpState::with_client(worker, config, Some(client))
    }

    /// State for a worker of many accounts: `/readyz` checks no Mailchimp key.
    pub fn for_accounts(worker: worker::Worker, config: &Config) -> Result<HttpState> {
        HttpState::with_client(worker, config, None)
    }

    fn with_client(
        worker: worker::Worker,
        config: &Config,
        client: Option<mailchimp::Client>,
    ) -> Result<HttpState> {
        let addr: SocketAddr = config
            .http_addr
            .parse()
            .context("CHIMPSYNC_HTTP_ADDR is not an address like 0.0.0.0:9187")?;
        Ok(HttpState {
            worker,
            client,
            metrics: metrics_handle(),
            ready_until: Arc::new(Mutex::new(None)),
            addr,
            webhooks: None,
            hold: None,
        })
    }

    /// Also serves the Mailchimp webhook route (`GET, POST /webhooks/mailchimp/<secret>`).
    pub fn with_webhooks(mut self, receiver: Option<Receiver>) -> HttpState {
        self.webhooks = receiver;
        self
    }

    /// Unready while `hold` says why the schema does not fit.
    pub fn with_hold(mut self, hold: worker::Hold) -> HttpState {
        self.hold = Some(hold);
        self
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let (status, body) = readiness(&state).await;
    metrics::gauge!("chimpsync_ready").set(if status == StatusCode::OK { 1.0 } else { 0.0 });
    (status, body)
}

/// The schema handshake's last result comes first (a schema that does not fit also makes the
/// queue unreadable, and the handshake says why). The database is checked on every call (one cheap query, so a lost database shows at once);
/// the Mailchimp key's positive answer is reused for [`READY_CACHE`] (probes must not spend the
/// API's rate limit). Each check is bounded by [`READY_TIMEOUT`].
async fn readiness(state: &HttpState) -> (StatusCode, String) {
    let unready = StatusCode::SERVICE_UNAVAILABLE;
    if let Some(reason) = state.hold.as_ref().and_then(|h| h.borrow().clone()) {
        return (unready, format!("schema: {reason}\n"));
    }
    match tokio::time::timeout(READY_TIMEOUT, state.worker.queue().summary()).await {
        Err(_) => return (unready, "database: no answer in time\n".into()),
        Ok(Err(e)) => return (unready, format!("database: {e}\n")),
        Ok(Ok(_)) => {}
    }
    if let Ok(Ok(Some(reason))) = tokio::time::timeout(READY_TIMEOUT, drift(&state.worker)).await {
        return (unready, format!("{reason}\n"));
    }
    let Some(client) = &state.client else {
        return (StatusCode::OK, "ready\n".into());
    };
    let key_known_good = state
        .ready_until
        .lock()
        .expect("ready lock")
        .is_some_and(|t| t > Instant::now());
    if !key_known_good {
        match tokio::time::timeout(READY_TIMEOUT, client.ping()).await {
            Err(_) => return (unready, "mailchimp: no answer in time\n".into()),
            Ok(Err(e)) => return (unready, format!("mailchimp: {e}\n")),
            Ok(Ok(())) => {
                *state.ready_until.lock().expect("ready lock") = Some(Instant::now() + READY_CACHE);
            }
        }
    }
    (StatusCode::OK, "ready\n".into())
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    refresh_queue_gauges(&state.worker).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The mapping drift's one-line reason, if the table no longer fits the installed mapping.
pub async fn drift(worker: &worker::Worker) -> store::Result<Option<String>> {
    let client = worker.queue().pool().get().await?;
    Ok(store::drift::read(&client).await?.reason())
}

/// Sets the queue gauges from `chimpsync.queue_summary`.
pub async fn refresh_queue_gauges(worker: &worker::Worker) {
    match worker.queue().summary().await {
        Ok(s) => {
            metrics::gauge!("chimpsync_queue_rows", "state" => "pending").set(s.pending as f64);
            metrics::gauge!("chimpsync_queue_rows", "state" => "in_flight").set(s.in_flight as f64);
            metrics::gauge!("chimpsync_queue_rows", "state" => "retrying").set(s.retrying as f64);
            metrics::gauge!("chimpsync_queue_rows", "state" => "parked").set(s.parked as f64);
            metrics::gauge!("chimpsync_queue_oldest_pending_seconds").set(s.oldest_pending_seconds);
            metrics::gauge!("chimpsync_queue_held").set(s.held as f64);
            if let Some(t) = s.last_synced_at {
                metrics::gauge!("chimpsync_last_synced_timestamp_seconds")
                    .set(t.timestamp() as f64);
            }
        }
        Err(e) => warn!(error = %e, "cannot read the queue summary for metrics"),
    }
    match drift(worker).await {
        Ok(reason) => {
            metrics::gauge!("chimpsync_mapping_drift").set(if reason.is_some() { 1.0 } else { 0.0 })
        }
        Err(e) => warn!(error = %e, "cannot read the mapping drift for metrics"),
    }
    let slots = worker.gate().slots();
    metrics::gauge!("chimpsync_slots_cap").set(slots.cap() as f64);
    match slots.in_use().await {
        Ok(n) => metrics::gauge!("chimpsync_slots_in_use").set(n as f64),
        Err(e) => warn!(error = %e, "cannot count the connection slots in use for metrics"),
    }
}

/// The router (also used by tests).
pub fn router(state: HttpState) -> Router {
    let webhooks = state.webhooks.as_ref().map(Receiver::router);
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    match webhooks {
        Some(webhooks) => app.merge(webhooks),
        None => app,
    }
}

/// Binds and serves until `shutdown`.
pub async fn serve(state: HttpState, shutdown: CancellationToken) -> Result<JoinHandle<()>> {
    let addr = state.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (CHIMPSYNC_HTTP_ADDR)"))?;
    // The bound address, so `CHIMPSYNC_HTTP_ADDR=127.0.0.1:0` (tests) shows the port it got.
    let addr = listener.local_addr().unwrap_or(addr);
    info!(%addr, "serving /healthz, /readyz, /metrics");
    let app = router(state);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    }))
}
