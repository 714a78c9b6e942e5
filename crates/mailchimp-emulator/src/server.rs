//! The HTTP side: hyper 1 connections, admission (the cap on requests in flight), latency,
//! authentication and faults around each request; `router` picks the operation.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::accounts::AccountId;
use crate::auth::authenticate;
use crate::faults::Fault;
use crate::lock::lock;
use crate::model::Now;
use crate::problem::ApiError;
use crate::query::Query;
use crate::responses::{bare, problem, response, success, Resp, JSON};
use crate::router;
use crate::routes::Route;
use crate::shared::Shared;
use crate::state::Ctx;

/// Request bodies above this size are refused (a 500-member batch is far below it).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long shutdown waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections until `shutdown` changes (or its sender is dropped).
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut stop = shutdown.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| handle(shared.clone(), peer, req));
                    let conn = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        result = conn.as_mut() => {
                            if let Err(error) = result {
                                tracing::debug!(%error, "connection ended");
                            }
                        }
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}

enum Which {
    Open,
    InFlight,
    Account(AccountId),
}

/// Holds one count of a gauge for as long as it lives (also when hyper drops the request).
struct Counted(Arc<Shared>, Which);

impl Drop for Counted {
    fn drop(&mut self) {
        let gauge = match self.1 {
            Which::Open => &self.0.open,
            Which::InFlight => &self.0.in_flight,
            Which::Account(id) => &self.0.accounts.get(id).in_flight,
        };
        gauge.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Resp, DropConnection> {
    if let Some(rest) = req.uri().path().strip_prefix("/_emulator") {
        let rest = rest.to_owned();
        let query = Query::parse(req.uri().query());
        let answer = router::simulation(&shared, req.method(), &rest, &query);
        shared.flush_webhooks();
        return Ok(answer);
    }
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = uuid::Uuid::new_v4().to_string();
    let latency = Duration::from_micros(shared.latency_micros.load(Ordering::Relaxed));
    // The key is read first, as the cap on requests in flight is per account; a refused key is
    // answered after the latency, like any other answer, and takes no account's slot.
    let account = authenticate(&shared.accounts, req.headers());

    // `open` counts every request being answered (refused ones too, while they wait out the
    // latency): that is the client's concurrency. `in_flight` counts the admitted ones only.
    let now_open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
    let _open = Counted(shared.clone(), Which::Open);
    shared
        .max_concurrent
        .fetch_max(now_open as u64, Ordering::Relaxed);
    let _account_slot = match &account {
        Ok(id) => match admit(&shared, *id) {
            Ok(slot) => Some(slot),
            Err(limit) => {
                shared.throttled.fetch_add(1, Ordering::Relaxed);
                sleep(latency).await;
                return Ok(problem(&ApiError::too_many_requests(limit), &request_id));
            }
        },
        Err(_) => None,
    };
    let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _in_flight = Counted(shared.clone(), Which::InFlight);
    shared
        .max_in_flight
        .fetch_max(now_in_flight as u64, Ordering::Relaxed);
    sleep(latency).await;

    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(problem(
                &ApiError::invalid_detail("The request body is too large or was cut off."),
                &request_id,
            ))
        }
    };

    let account = match account {
        Ok(id) => id,
        Err(e) => return Ok(problem(&e, &request_id)),
    };

    let is_write = matches!(
        parts.method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let fault = if is_write {
        lock(&shared.faults).next_for_write()
    } else {
        None
    };
    match &fault {
        Some(Fault::ServiceUnavailable) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return Ok(problem(&ApiError::service_unavailable(), &request_id));
        }
        Some(Fault::TooManyRequests) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            let limit = match shared.max_connections.load(Ordering::Relaxed) {
                usize::MAX => 10,
                n => n,
            };
            return Ok(problem(&ApiError::too_many_requests(limit), &request_id));
        }
        Some(Fault::BareForbidden) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return Ok(bare(StatusCode::FORBIDDEN, &request_id));
        }
        Some(Fault::BareTooManyRequests) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return Ok(bare(StatusCode::TOO_MANY_REQUESTS, &request_id));
        }
        Some(Fault::Delay(d)) => sleep(*d).await,
        Some(Fault::GarbageJson | Fault::DropAfterApply) | None => {}
    }

    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let base = format!("http://{host}/3.0");
    let peer_ip = peer.ip().to_string();
    let query = Query::parse(parts.uri.query());
    let now = Now::current();
    let ctx = Ctx {
        now: &now,
        base: &base,
        peer_ip: &peer_ip,
        query: &query,
        account,
    };
    let started = std::time::Instant::now();
    let route = Route::of(parts.uri.path());
    let outcome = router::api(&shared, route, &parts.method, &body, &ctx).await;
    let busy = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    shared.busy_nanos.fetch_add(busy, Ordering::Relaxed);
    shared.flush_webhooks();
    tracing::debug!(
        request.method = %parts.method,
        request.path = parts.uri.path(),
        response.status = outcome.as_ref().map_or_else(|e| e.status, |r| r.status()),
        "request"
    );

    match fault {
        Some(Fault::DropAfterApply) => {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            Err(DropConnection)
        }
        Some(Fault::GarbageJson) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            Ok(response(
                StatusCode::OK,
                Some(JSON),
                &request_id,
                Bytes::from_static(b"<html><body>502 Bad Gateway</body></html>{\"id\":"),
            ))
        }
        _ => Ok(match outcome {
            Ok(reply) => success(reply, &request_id),
            Err(e) => problem(&e, &request_id),
        }),
    }
}

/// Takes one of the account's slots of requests in flight, or answers the limit it is at.
fn admit(shared: &Arc<Shared>, id: AccountId) -> Result<Counted, usize> {
    let account = shared.accounts.get(id);
    account.requests.fetch_add(1, Ordering::Relaxed);
    let now_in_flight = account.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let slot = Counted(shared.clone(), Which::Account(id));
    let limit = shared.max_connections.load(Ordering::Relaxed);
    if now_in_flight > limit {
        drop(slot);
        account.throttled.fetch_add(1, Ordering::Relaxed);
        return Err(limit);
    }
    account
        .max_in_flight
        .fetch_max(now_in_flight as u64, Ordering::Relaxed);
    Ok(slot)
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
