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

use crate::config::Env;

/// How long a positive readiness answer is reused before the key is checked again.
const READY_CACHE: Duration = Duration::from_secs(30);

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    worker: worker::Worker,
    client: mailchimp::Client,
    metrics: PrometheusHandle,
    ready_until: Arc<Mutex<Option<Instant>>>,
    addr: SocketAddr,
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
            handle
        })
        .clone()
}

impl HttpState {
    /// State for the endpoints; the listen address comes from `CHIMPSYNC_HTTP_ADDR`.
    pub fn new(worker: worker::Worker, env: &Env) -> Result<HttpState> {
        let addr: SocketAddr = std::env::var("CHIMPSYNC_HTTP_ADDR")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "0.0.0.0:9187".into())
            .parse()
            .context("CHIMPSYNC_HTTP_ADDR is not an address like 0.0.0.0:9187")?;
        let client = env.client(&crate::Tuning::default().timeouts()?)?;
        Ok(HttpState {
            worker,
            client,
            metrics: metrics_handle(),
            ready_until: Arc::new(Mutex::new(None)),
            addr,
        })
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state
        .ready_until
        .lock()
        .expect("ready lock")
        .is_some_and(|t| t > Instant::now())
    {
        return (StatusCode::OK, "ready\n".to_string());
    }
    if let Err(e) = state.worker.queue().summary().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n"));
    }
    if let Err(e) = state.client.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("mailchimp: {e}\n"));
    }
    *state.ready_until.lock().expect("ready lock") = Some(Instant::now() + READY_CACHE);
    (StatusCode::OK, "ready\n".to_string())
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

/// Sets the queue gauges from `chimpsync.queue_summary`.
pub async fn refresh_queue_gauges(worker: &worker::Worker) {
    match worker.queue().summary().await {
        Ok(s) => {
            metrics::gauge!("chimpsync_queue_rows", "state" => "pending").set(s.pending as f64);
            metrics::gauge!("chimpsync_queue_rows", "state" => "in_flight").set(s.in_flight as f64);
            metrics::gauge!("chimpsync_queue_rows", "state" => "retrying").set(s.retrying as f64);
            metrics::gauge!("chimpsync_queue_rows", "state" => "parked").set(s.parked as f64);
            metrics::gauge!("chimpsync_queue_oldest_pending_seconds").set(s.oldest_pending_seconds);
            if let Some(t) = s.last_synced_at {
                metrics::gauge!("chimpsync_last_synced_timestamp_seconds")
                    .set(t.timestamp() as f64);
            }
        }
        Err(e) => warn!(error = %e, "cannot read the queue summary for metrics"),
    }
}

/// The router (also used by tests).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds and serves until `shutdown`.
pub async fn serve(state: HttpState, shutdown: CancellationToken) -> Result<JoinHandle<()>> {
    let addr = state.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (CHIMPSYNC_HTTP_ADDR)"))?;
    info!(%addr, "serving /healthz, /readyz, /metrics");
    let app = router(state);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    }))
}
