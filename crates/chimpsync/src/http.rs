//! The HTTP endpoints of `chimpsync run`: `/healthz` (liveness: the worker loop makes progress),
//! `/readyz` (readiness: schema, database, mapping drift) and `/metrics` (Prometheus, `series`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::series;
use crate::webhook::Receiver;

/// How long `/readyz` waits for the database before answering 503.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    worker: worker::Worker,
    metrics: PrometheusHandle,
    addr: SocketAddr,
    /// The Mailchimp webhook route, when `CHIMPSYNC_WEBHOOK_SECRET` is set.
    webhooks: Option<Receiver>,
    /// Why the schema does not fit this worker, when it does not.
    hold: Option<worker::Hold>,
}

impl HttpState {
    /// State for the endpoints, served at `CHIMPSYNC_HTTP_ADDR`.
    pub fn new(worker: worker::Worker, config: &Config) -> Result<HttpState> {
        let addr: SocketAddr = config
            .http_addr
            .parse()
            .context("CHIMPSYNC_HTTP_ADDR is not an address like 0.0.0.0:9187")?;
        Ok(HttpState {
            worker,
            metrics: series::handle(),
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

/// 200 while the worker loop makes progress; 503 with the reason once it has attempted no claim
/// for longer than the liveness timeout (waits by design excepted: `worker::liveness`).
async fn healthz(State(state): State<HttpState>) -> (StatusCode, String) {
    let timeout = state.worker.settings().liveness_timeout;
    match state.worker.heartbeat().check(timeout, Instant::now()) {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let (status, body) = readiness(&state).await;
    metrics::gauge!("chimpsync_ready").set(if status == StatusCode::OK { 1.0 } else { 0.0 });
    (status, body)
}

/// The schema handshake's last result comes first (a schema that does not fit also makes the
/// queue unreadable, and the handshake says why); then the database, checked on every call (one
/// cheap query, so a lost database shows at once), bounded by [`READY_TIMEOUT`]; then the
/// mapping drift. Mailchimp is not checked: while it is away the worker retries and the rows
/// wait, which taking replicas out of service would not help; `chimpsync_mailchimp_up` shows it.
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
    if let Ok(Ok(Some(reason))) =
        tokio::time::timeout(READY_TIMEOUT, series::drift(&state.worker)).await
    {
        return (unready, format!("{reason}\n"));
    }
    (StatusCode::OK, "ready\n".into())
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    series::refresh(&state.worker).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
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
