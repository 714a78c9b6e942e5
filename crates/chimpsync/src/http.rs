//! The HTTP endpoints of `chimpsync run`: `/healthz` (liveness: the worker loop makes progress),
//! `/readyz` (readiness: schema, database, mapping drift) and `/metrics` (Prometheus, `series`),
//! and the webhook route: beside them, or alone on a listener of its own at
//! `CHIMPSYNC_WEBHOOK_ADDR`, so that the port exposed to Mailchimp serves nothing else.

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
use crate::exit::Failure;
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
    /// Where the webhook route is served instead of `addr` (`CHIMPSYNC_WEBHOOK_ADDR`).
    webhook_addr: Option<SocketAddr>,
    /// Why the schema does not fit this worker, when it does not.
    hold: Option<worker::Hold>,
}

impl HttpState {
    /// State for the endpoints, served at `CHIMPSYNC_HTTP_ADDR` (the webhook route at
    /// `CHIMPSYNC_WEBHOOK_ADDR` when that is set).
    pub fn new(worker: worker::Worker, config: &Config) -> Result<HttpState> {
        let addr = address(&config.http_addr, "CHIMPSYNC_HTTP_ADDR", "0.0.0.0:9187")?;
        let webhook_addr = match &config.webhook_addr {
            Some(text) => Some(address(text, "CHIMPSYNC_WEBHOOK_ADDR", "0.0.0.0:9188")?),
            None => None,
        };
        // Port 0 (tests) picks a free port for each; any other port can be bound once only.
        if webhook_addr.is_some_and(|w| w == addr && w.port() != 0) {
            return Err(Failure::Config
                .error(format!(
                    "CHIMPSYNC_WEBHOOK_ADDR must differ from CHIMPSYNC_HTTP_ADDR ({addr}): the \
                     webhook route gets a port of its own, or leave it unset to serve it on {addr}"
                ))
                .into());
        }
        Ok(HttpState {
            worker,
            metrics: series::handle(),
            addr,
            webhooks: None,
            webhook_addr,
            hold: None,
        })
    }

    /// Also serves the Mailchimp webhook route (`GET, POST /webhooks/mailchimp/<secret>`), on
    /// the main address or on `CHIMPSYNC_WEBHOOK_ADDR`.
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

/// The router of the main address: the webhook route is merged in only when it has no address
/// of its own.
pub fn router(state: HttpState) -> Router {
    let webhooks = match state.webhook_addr {
        Some(_) => None,
        None => state.webhooks.as_ref().map(Receiver::router),
    };
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

/// `text` as a socket address, or a configuration error naming `variable`.
fn address(text: &str, variable: &str, example: &str) -> Result<SocketAddr> {
    text.trim().parse().map_err(|_| {
        Failure::Config
            .error(format!(
                "{variable} is not an address like {example}: {text:?}"
            ))
            .into()
    })
}

/// Binds `addr` (named by `variable` in the error).
async fn bind(addr: SocketAddr, variable: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({variable})"))
}

/// Serves `app` on `listener` until `shutdown`.
fn spawn(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    })
}

/// Binds every address and serves until `shutdown`; the handle ends when every listener has.
pub async fn serve(state: HttpState, shutdown: CancellationToken) -> Result<JoinHandle<()>> {
    // The webhook listener first: everything is bound before the main address is logged, which
    // is what a caller waits for.
    let webhooks = match (state.webhook_addr, &state.webhooks) {
        (Some(addr), Some(receiver)) => {
            let listener = bind(addr, "CHIMPSYNC_WEBHOOK_ADDR").await?;
            let webhook_addr = listener.local_addr().unwrap_or(addr);
            info!(%webhook_addr, "serving the Mailchimp webhook route on its own address");
            Some(spawn(listener, receiver.router(), &shutdown))
        }
        (Some(addr), None) => {
            info!(webhook_addr = %addr, "the webhook route is off: nothing to serve at CHIMPSYNC_WEBHOOK_ADDR");
            None
        }
        (None, _) => None,
    };
    let addr = state.addr;
    let listener = bind(addr, "CHIMPSYNC_HTTP_ADDR").await?;
    // The bound address, so `CHIMPSYNC_HTTP_ADDR=127.0.0.1:0` (tests) shows the port it got.
    let addr = listener.local_addr().unwrap_or(addr);
    info!(%addr, "serving /healthz, /readyz, /metrics");
    let main = spawn(listener, router(state), &shutdown);
    Ok(tokio::spawn(async move {
        let _ = main.await;
        if let Some(webhooks) = webhooks {
            let _ = webhooks.await;
        }
    }))
}
