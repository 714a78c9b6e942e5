//! The HTTP side: hyper 1 connections, authentication, limits, faults and routing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::faults::{Fault, FaultState};
use crate::model::Now;
use crate::problem::ApiError;
use crate::state::{Ctx, Query, Reply, State};
use crate::webhooks::{self, NewWebhook, Outbound};

const JSON: &str = "application/json; charset=utf-8";
const PROBLEM_JSON: &str = "application/problem+json; charset=utf-8";
/// Request bodies above this size are refused (a 500-member batch is far below it).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How long shutdown waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

type Resp = Response<Full<Bytes>>;

/// Everything the connections share.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub faults: Mutex<FaultState>,
    pub api_key: Option<String>,
    pub latency_micros: AtomicU64,
    /// `usize::MAX` means unlimited.
    pub max_connections: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub open: AtomicUsize,
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub max_in_flight: AtomicU64,
    pub max_concurrent: AtomicU64,
    pub busy_nanos: AtomicU64,
    /// Webhook deliveries: the queue of the background task and its log.
    pub outbound: Outbound,
}

impl Shared {
    /// Hands the webhook events recorded so far to the delivery task (never waits for them).
    pub(crate) fn flush_webhooks(&self) {
        let deliveries = lock(&self.state).take_deliveries();
        if !deliveries.is_empty() {
            self.outbound.send(deliveries);
        }
    }
}

/// Locks a mutex; a panic elsewhere never makes the state unusable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

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
}

/// Holds one count of a gauge for as long as it lives (also when hyper drops the request).
struct Counted(Arc<Shared>, Which);

impl Drop for Counted {
    fn drop(&mut self) {
        let gauge = match self.1 {
            Which::Open => &self.0.open,
            Which::InFlight => &self.0.in_flight,
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
        let answer = simulation(&shared, req.method(), &rest, &query);
        shared.flush_webhooks();
        return Ok(answer);
    }
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = uuid::Uuid::new_v4().to_string();
    let latency = Duration::from_micros(shared.latency_micros.load(Ordering::Relaxed));

    // `open` counts every request being answered (refused ones too, while they wait out the
    // latency): that is the client's concurrency. `in_flight` counts the admitted ones only.
    let now_open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
    let _open = Counted(shared.clone(), Which::Open);
    shared
        .max_concurrent
        .fetch_max(now_open as u64, Ordering::Relaxed);
    let now_in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let guard = Counted(shared.clone(), Which::InFlight);
    let limit = shared.max_connections.load(Ordering::Relaxed);
    if now_in_flight > limit {
        drop(guard);
        shared.throttled.fetch_add(1, Ordering::Relaxed);
        sleep(latency).await;
        return Ok(problem(&ApiError::too_many_requests(limit), &request_id));
    }
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

    if let Err(e) = authenticate(&shared, &parts.headers) {
        return Ok(problem(&e, &request_id));
    }

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
    };
    let started = std::time::Instant::now();
    let outcome = match webhook_collection(&parts.method, parts.uri.path()) {
        // Creating a webhook waits for the validator's GET, outside the state lock.
        Some(list_id) => create_webhook(&shared, &list_id, &body, &ctx).await,
        None => dispatch(&shared, &parts.method, parts.uri.path(), &body, &ctx),
    };
    let busy = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    shared.busy_nanos.fetch_add(busy, Ordering::Relaxed);
    shared.flush_webhooks();
    tracing::debug!(
        request.method = %parts.method,
        request.path = parts.uri.path(),
        response.status = match &outcome { Ok(Reply::Json(s, _)) => *s, Ok(Reply::NoContent) => 204, Err(e) => e.status },
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

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// The key of `Authorization: Basic base64(user:key)`, `Bearer key` or `OAuth key`.
fn api_key_of(headers: &hyper::HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    let key = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(base64_decode(rest)?).ok()?;
        match decoded.split_once(':') {
            Some((_, password)) => password.to_owned(),
            None => decoded,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth") {
        rest.to_owned()
    } else {
        return None;
    };
    (!key.is_empty()).then_some(key)
}

fn authenticate(shared: &Shared, headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    let key = api_key_of(headers).ok_or_else(ApiError::api_key_missing)?;
    match &shared.api_key {
        Some(expected) if *expected != key => Err(ApiError::api_key_invalid()),
        _ => Ok(()),
    }
}

/// Standard base64 (padding optional); `None` on any other character.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in input.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The Marketing API resources the emulator serves.
enum Route {
    Root,
    Ping,
    Lists,
    List(String),
    Members(String),
    Member(String, String),
    MemberTags(String, String),
    DeletePermanent(String, String),
    MergeFields(String),
    MergeField(String, String),
    Webhooks(String),
    Webhook(String, String),
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let seg = |i: usize| segs[i].clone();
        let member = |i: usize| crate::email::path_key(&segs[i]);
        Some(match segs.len() {
            0 => Route::Root,
            1 if segs[0] == "ping" => Route::Ping,
            1 if segs[0] == "lists" => Route::Lists,
            2 if segs[0] == "lists" => Route::List(seg(1)),
            3 if segs[0] == "lists" && segs[2] == "members" => Route::Members(seg(1)),
            3 if segs[0] == "lists" && segs[2] == "merge-fields" => Route::MergeFields(seg(1)),
            4 if segs[0] == "lists" && segs[2] == "members" => Route::Member(seg(1), member(3)),
            4 if segs[0] == "lists" && segs[2] == "merge-fields" => {
                Route::MergeField(seg(1), seg(3))
            }
            3 if segs[0] == "lists" && segs[2] == "webhooks" => Route::Webhooks(seg(1)),
            4 if segs[0] == "lists" && segs[2] == "webhooks" => Route::Webhook(seg(1), seg(3)),
            5 if segs[0] == "lists" && segs[2] == "members" && segs[4] == "tags" => {
                Route::MemberTags(seg(1), member(3))
            }
            6 if segs[0] == "lists"
                && segs[2] == "members"
                && segs[4] == "actions"
                && segs[5] == "delete-permanent" =>
            {
                Route::DeletePermanent(seg(1), member(3))
            }
            _ => return None,
        })
    }

    fn allow(&self) -> &'static str {
        match self {
            Route::Root | Route::Ping => "GET",
            Route::Lists
            | Route::Members(_)
            | Route::MergeFields(_)
            | Route::MemberTags(..)
            | Route::Webhooks(_) => "GET, POST",
            Route::List(_) => "GET, POST, DELETE",
            Route::Member(..) => "GET, PUT, PATCH, DELETE",
            Route::DeletePermanent(..) => "POST",
            Route::MergeField(..) | Route::Webhook(..) => "GET, DELETE",
        }
    }
}

fn dispatch(
    shared: &Shared,
    method: &Method,
    path: &str,
    body: &Bytes,
    ctx: &Ctx<'_>,
) -> Result<Reply, ApiError> {
    let route = path
        .strip_prefix("/3.0")
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .and_then(Route::parse)
        .ok_or_else(ApiError::not_found)?;
    let json = || -> Result<Value, ApiError> {
        serde_json::from_slice(body).map_err(|_| ApiError::json_parse())
    };
    let m = method.clone();
    let not_allowed = || Err(ApiError::method_not_allowed(route.allow()));
    // Parse before locking: the lock only covers the state change and the answer.
    match (&route, m) {
        (Route::Root, Method::GET) => Ok(lock(&shared.state).account(ctx)),
        (Route::Ping, Method::GET) => Ok(Reply::Json(
            200,
            br#"{"health_status":"Everything's Chimpy!"}"#.to_vec(),
        )),
        (Route::Lists, Method::GET) => lock(&shared.state).get_lists(ctx),
        (Route::Lists, Method::POST) => {
            let body = json()?;
            lock(&shared.state).create_list(&body, ctx)
        }
        (Route::List(id), Method::GET) => lock(&shared.state).get_list(id, ctx),
        (Route::List(id), Method::POST) => {
            let body = json()?;
            // The guard is a temporary: the lock is released before the answer is written.
            let applied = lock(&shared.state).batch_subscribe(id, &body, ctx)?;
            Ok(applied.reply(ctx.base))
        }
        (Route::List(id), Method::DELETE) => lock(&shared.state).delete_list(id),
        (Route::Members(id), Method::GET) => lock(&shared.state).get_members(id, ctx),
        (Route::Members(id), Method::POST) => {
            let body = json()?;
            lock(&shared.state).post_member(id, &body, ctx)
        }
        (Route::Member(id, key), Method::GET) => lock(&shared.state).get_member(id, key, ctx),
        (Route::Member(id, key), Method::PUT) => {
            let body = json()?;
            lock(&shared.state).put_member(id, key, &body, ctx)
        }
        (Route::Member(id, key), Method::PATCH) => {
            let body = json()?;
            lock(&shared.state).patch_member(id, key, &body, ctx)
        }
        (Route::Member(id, key), Method::DELETE) => {
            lock(&shared.state).archive_member(id, key, ctx)
        }
        (Route::MemberTags(id, key), Method::GET) => lock(&shared.state).get_tags(id, key, ctx),
        (Route::MemberTags(id, key), Method::POST) => {
            let body = json()?;
            lock(&shared.state).post_tags(id, key, &body, ctx)
        }
        (Route::DeletePermanent(id, key), Method::POST) => {
            lock(&shared.state).delete_permanent(id, key)
        }
        (Route::MergeFields(id), Method::GET) => lock(&shared.state).get_merge_fields(id, ctx),
        (Route::MergeFields(id), Method::POST) => {
            let body = json()?;
            lock(&shared.state).create_merge_field(id, &body)
        }
        (Route::MergeField(id, merge_id), Method::GET) => {
            lock(&shared.state).get_merge_field(id, merge_id)
        }
        (Route::MergeField(id, merge_id), Method::DELETE) => {
            lock(&shared.state).delete_merge_field(id, merge_id)
        }
        (Route::Webhooks(id), Method::GET) => lock(&shared.state).get_webhooks(id, ctx),
        (Route::Webhook(id, hook), Method::GET) => lock(&shared.state).get_webhook(id, hook, ctx),
        (Route::Webhook(id, hook), Method::DELETE) => lock(&shared.state).delete_webhook(id, hook),
        _ => not_allowed(),
    }
}

/// The list id of `POST /3.0/lists/{id}/webhooks`, the one route answered asynchronously.
fn webhook_collection(method: &Method, path: &str) -> Option<String> {
    if method != Method::POST {
        return None;
    }
    match path
        .strip_prefix("/3.0")
        .filter(|rest| rest.starts_with('/'))
        .and_then(Route::parse)?
    {
        Route::Webhooks(id) => Some(id),
        _ => None,
    }
}

/// `POST /lists/{id}/webhooks`: checks the body, sends the validator's GET to the URL (which must
/// answer 200), then registers the webhook. "A url may only exist on a list once."
async fn create_webhook(
    shared: &Shared,
    list_id: &str,
    body: &Bytes,
    ctx: &Ctx<'_>,
) -> Result<Reply, ApiError> {
    let body: Value = serde_json::from_slice(body).map_err(|_| ApiError::json_parse())?;
    let new = NewWebhook::parse(&body)?;
    lock(&shared.state).check_webhook_url(list_id, &new.url)?;
    let validator = reqwest::Client::builder()
        .user_agent(webhooks::VALIDATOR_USER_AGENT)
        .timeout(webhooks::TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| webhooks::validation_failed(&format!("could not be sent ({e})")))?;
    match validator.get(&new.url).send().await {
        Ok(resp) if resp.status() == reqwest::StatusCode::OK => {}
        Ok(resp) => {
            return Err(webhooks::validation_failed(&format!(
                "was answered {}",
                resp.status().as_u16()
            )))
        }
        Err(_) => return Err(webhooks::validation_failed("got no answer")),
    }
    lock(&shared.state).add_webhook(list_id, new, ctx)
}

/// Test-only routes under `/_emulator` (no authentication, no faults, not counted).
fn simulation(shared: &Shared, method: &Method, path: &str, query: &Query) -> Resp {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let now = Now::current();
    let answer = |status: StatusCode, body: Value| {
        response(
            status,
            Some(JSON),
            "emulator",
            Bytes::from(body.to_string()),
        )
    };
    let done = |ok: bool| {
        if ok {
            answer(StatusCode::OK, json!({"ok": true}))
        } else {
            answer(StatusCode::NOT_FOUND, json!({"ok": false}))
        }
    };
    match (method, segs.as_slice()) {
        (&Method::GET, ["stats"]) => {
            let s = crate::stats_of(shared);
            answer(
                StatusCode::OK,
                json!({
                    "requests": s.requests, "throttled": s.throttled, "failed": s.failed,
                    "dropped": s.dropped, "max_in_flight": s.max_in_flight,
                    "max_concurrent": s.max_concurrent,
                    "member_writes": s.member_writes,
                    "unchanged_member_writes": s.unchanged_member_writes,
                    "busy_nanos": s.busy_nanos,
                    "webhooks_delivered": s.webhooks_delivered,
                    "webhooks_failed": s.webhooks_failed,
                    "webhooks_pending": s.webhooks_pending,
                }),
            )
        }
        (&Method::PUT | &Method::POST, ["lists", id]) => {
            lock(&shared.state).ensure_audience(id, &now);
            done(true)
        }
        (&Method::POST, ["lists", id, "members", who, action]) => {
            let mut state = lock(&shared.state);
            match *action {
                "unsubscribe" => done(state.simulate_unsubscribe(id, who, &now)),
                "bounce" => done(state.simulate_bounce(id, who, &now)),
                "confirm" => done(state.simulate_confirm(id, who, &now)),
                "email-change" => match query.get("new_email") {
                    Some(new_email) => done(state.simulate_email_change(id, who, new_email, &now)),
                    None => done(false),
                },
                "profile" => {
                    let merges: serde_json::Map<String, Value> = query
                        .0
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    done(state.simulate_profile_update(id, who, &merges, &now))
                }
                _ => done(false),
            }
        }
        _ => done(false),
    }
}

fn response(status: StatusCode, content_type: Option<&str>, request_id: &str, body: Bytes) -> Resp {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static(JSON)),
        );
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    headers.insert("server", HeaderValue::from_static("openresty"));
    resp
}

fn success(reply: Reply, request_id: &str) -> Resp {
    match reply {
        Reply::Json(status, body) => response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            Some(JSON),
            request_id,
            Bytes::from(body),
        ),
        // Mailchimp sends a JSON content type even on its empty 204s.
        Reply::NoContent => response(StatusCode::NO_CONTENT, Some(JSON), request_id, Bytes::new()),
    }
}

fn problem(e: &ApiError, request_id: &str) -> Resp {
    let mut resp = response(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        Some(PROBLEM_JSON),
        request_id,
        Bytes::from(e.to_json(request_id)),
    );
    if let Some(allow) = e.allow {
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

fn bare(status: StatusCode, request_id: &str) -> Resp {
    response(status, None, request_id, Bytes::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_yields_the_password_and_bearer_the_token() {
        let mut h = hyper::HeaderMap::new();
        // "anystring:key-us6"
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic YW55c3RyaW5nOmtleS11czY="),
        );
        assert_eq!(api_key_of(&h).as_deref(), Some("key-us6"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer tok"));
        assert_eq!(api_key_of(&h).as_deref(), Some("tok"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(api_key_of(&h), None);
    }

    #[test]
    fn percent_escapes_in_paths_are_decoded_but_plus_stays() {
        assert_eq!(percent_decode("a%40b.co"), "a@b.co");
        assert_eq!(percent_decode("a+b%2"), "a+b%2");
    }
}
