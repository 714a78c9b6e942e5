//! The webhook receiver served by `chimpsync run` when `CHIMPSYNC_WEBHOOK_SECRET` is set:
//! `GET, POST /webhooks/mailchimp/<secret>`.
//!
//! Mailchimp validates the URL with a GET (answered 200) and sends events as form-encoded POSTs
//! with PHP-style bracket keys (`data[merges][FNAME]=…`). A POST is parsed, stored in
//! `chimpsync.inbound_events` (committed before the answer, so a crash loses nothing and a replay
//! is recognised), answered 200 at once, and applied in the background through the mapping's
//! `[inbound]` statements ([`store::inbound`]). A failed apply is retried by
//! [`Receiver::retry_loop`]. The secret in the path is compared in constant time; a wrong one
//! gets 401 and nothing is stored.
//!
//! With many accounts ([`Receiver::for_accounts`]) the route is
//! `/webhooks/mailchimp/<account>/<secret>`, the secret being the account's
//! `chimpsync.accounts.webhook_secret`. An event is stored as the account's, checked against its
//! audience, so applying it touches only the account's customers. A wrong secret or an unknown
//! account gets 404 (the route does not say which accounts exist) and nothing is stored.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use mailchimp::{NewWebhook, WebhookEvents, WebhookSources};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use store::inbound::{EventSource, Inbound, NewEvent, Outcome, Recorded};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The route, with the secret as its last segment.
pub const ROUTE: &str = "/webhooks/mailchimp/{secret}";

/// The route with many accounts: each account's own secret.
pub const ACCOUNT_ROUTE: &str = "/webhooks/mailchimp/{account}/{secret}";

/// The path of `account`'s webhook with its `secret` (the account percent-encoded).
pub fn account_path(account: &str, secret: &str) -> String {
    let mut url = url::Url::parse("http://localhost/webhooks/mailchimp").expect("a valid URL");
    url.path_segments_mut()
        .expect("an http URL has a path")
        .push(account)
        .push(secret);
    url.path().to_string()
}

/// How often the retry loop looks for events whose apply failed (or never ran). Default 5 s.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Events applied per round of the retry loop.
const RETRY_BATCH: i64 = 100;

/// A secret shorter than this is refused: it is the only thing protecting the route.
const MIN_SECRET_LEN: usize = 16;

/// Storing an event must finish well within Mailchimp's 10 s; after this the call is answered
/// 503 and Mailchimp sends it again.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Events applied at once by the handlers (each holds a database connection the worker shares);
/// more wait their turn.
const APPLYING: usize = 4;

/// The webhook chimpsync registers at `url`: every member event (no campaign events) from
/// contacts and admins, and from the API when `api` is set.
pub fn registration(url: String, api: bool) -> NewWebhook {
    NewWebhook {
        url,
        events: WebhookEvents {
            subscribe: true,
            unsubscribe: true,
            profile: true,
            cleaned: true,
            upemail: true,
            campaign: false,
        },
        sources: WebhookSources {
            user: true,
            admin: true,
            api,
        },
    }
}

/// The receiver: what the handlers need. Cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    /// Why the schema does not fit, when it does not: events are then refused (503, so
    /// Mailchimp sends them again) and not applied.
    hold: Option<worker::Hold>,
}

struct Inner {
    scope: Scope,
    inbound: Inbound,
    applying: tokio::sync::Semaphore,
}

/// Whose events the receiver takes.
enum Scope {
    /// One audience, behind `CHIMPSYNC_WEBHOOK_SECRET`.
    One {
        secret: SecretString,
        audience_id: String,
    },
    /// Every account of `chimpsync.accounts`, each behind its own secret (read from `pool` on
    /// every call, so a connected account or a new secret takes effect at once).
    Accounts { pool: store::Pool },
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Receiver");
        match &self.inner.scope {
            Scope::One { audience_id, .. } => d
                .field("audience_id", audience_id)
                .field("secret", &"<redacted>"),
            Scope::Accounts { .. } => d.field("accounts", &true),
        };
        d.finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver for `audience_id` with `secret` as the last path segment.
    pub fn new(inbound: Inbound, audience_id: String, secret: SecretString) -> Result<Receiver> {
        let text = secret.expose_secret();
        if text.len() < MIN_SECRET_LEN
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        {
            bail!(
                "CHIMPSYNC_WEBHOOK_SECRET must be at least {MIN_SECRET_LEN} characters of A-Z, a-z, 0-9, - _ . ~ \
                 (e.g. `openssl rand -hex 24`)"
            );
        }
        Ok(Receiver::with_scope(
            inbound,
            Scope::One {
                secret,
                audience_id,
            },
        ))
    }

    /// A receiver for every account of many, at [`ACCOUNT_ROUTE`].
    pub fn for_accounts(inbound: Inbound, pool: store::Pool) -> Receiver {
        Receiver::with_scope(inbound, Scope::Accounts { pool })
    }

    fn with_scope(inbound: Inbound, scope: Scope) -> Receiver {
        Receiver {
            inner: Arc::new(Inner {
                scope,
                inbound,
                applying: tokio::sync::Semaphore::new(APPLYING),
            }),
            hold: None,
        }
    }

    /// The receiver, storing and applying events only while `hold` says nothing against it.
    pub fn with_hold(mut self, hold: worker::Hold) -> Receiver {
        self.hold = Some(hold);
        self
    }

    /// Whether the schema does not fit now.
    fn held(&self) -> bool {
        self.hold.as_ref().is_some_and(|h| h.borrow().is_some())
    }

    /// The inbound side (stores and applies events).
    pub fn inbound(&self) -> &Inbound {
        &self.inner.inbound
    }

    /// The single audience whose secret `given` is, if it is.
    fn one_audience(&self, given: &str) -> Option<&str> {
        match &self.inner.scope {
            Scope::One {
                secret,
                audience_id,
            } => secret_matches(given, secret.expose_secret()).then_some(audience_id.as_str()),
            Scope::Accounts { .. } => None,
        }
    }

    /// The audience of `account` if `given` is its secret (`""` while it has none); `None` for
    /// a wrong secret or an unknown account, and on a database error (logged), which Mailchimp
    /// retries.
    async fn account_audience(&self, account: &str, given: &str) -> Result<Option<String>> {
        let Scope::Accounts { pool } = &self.inner.scope else {
            return Ok(None);
        };
        let client = pool.get().await?;
        let hook = store::accounts::webhook(&**client, account).await?;
        // An unknown account costs the same comparison as a wrong secret.
        let secret = hook.as_ref().map(|h| h.secret.as_str()).unwrap_or("");
        let matched = secret_matches(given, secret) && hook.is_some();
        Ok(matched.then(|| hook.and_then(|h| h.audience_id).unwrap_or_default()))
    }

    /// `GET, POST /webhooks/mailchimp/{secret}`, or with many accounts
    /// `GET, POST /webhooks/mailchimp/{account}/{secret}`.
    pub fn router(&self) -> Router {
        match self.inner.scope {
            Scope::One { .. } => Router::new()
                .route(ROUTE, get(validate).post(receive))
                .with_state(self.clone()),
            Scope::Accounts { .. } => Router::new()
                .route(ACCOUNT_ROUTE, get(validate_account).post(receive_account))
                .with_state(self.clone()),
        }
    }

    /// Applies events whose apply failed or never ran (a crash between storing and applying),
    /// every `interval`, until `shutdown`.
    pub async fn retry_loop(self, interval: Duration, shutdown: CancellationToken) {
        loop {
            let round = if self.held() {
                Ok(Vec::new())
            } else {
                self.inner
                    .inbound
                    .apply_due(RETRY_BATCH, None, worker::retry::inbound_event)
                    .await
            };
            match round {
                Ok(done) => {
                    for (id, outcome) in &done {
                        log_outcome(*id, outcome);
                    }
                }
                Err(e) => warn!(error = %e, "inbound retry round failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

fn log_outcome(id: i64, outcome: &Outcome) {
    match outcome {
        Outcome::Applied { rows } => {
            metrics::counter!("chimpsync_inbound_events_total", "outcome" => "applied")
                .increment(1);
            info!(event.id = id, rows = ?rows, "inbound event applied");
        }
        Outcome::Failed { retry_at, .. } => {
            metrics::counter!("chimpsync_inbound_events_total", "outcome" => "failed").increment(1);
            // The error may quote customer data: it is in inbound_events.last_error, not here.
            warn!(event.id = id, retry_at = ?retry_at, "inbound event failed (see chimpsync.inbound_events.last_error)");
        }
        Outcome::NotDue => {}
    }
}

/// Whether `given` is `secret`, in constant time. An empty secret matches nothing.
fn secret_matches(given: &str, secret: &str) -> bool {
    let equal: bool = given.as_bytes().ct_eq(secret.as_bytes()).into();
    equal && !secret.is_empty()
}

/// The validator's GET: 200 with the right secret.
async fn validate(State(r): State<Receiver>, Path(secret): Path<String>) -> StatusCode {
    if r.one_audience(&secret).is_some() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// An event: stored, answered, then applied in the background.
async fn receive(
    State(r): State<Receiver>,
    Path(secret): Path<String>,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(audience_id) = r.one_audience(&secret).map(str::to_owned) else {
        return (StatusCode::UNAUTHORIZED, "unauthorized\n");
    };
    store_and_apply(&r, "", &audience_id, &body).await
}

/// The validator's GET of an account's URL: 200 with the account's secret, else 404.
async fn validate_account(
    State(r): State<Receiver>,
    Path((account, secret)): Path<(String, String)>,
) -> StatusCode {
    match r.account_audience(&account, &secret).await {
        Ok(Some(_)) => StatusCode::OK,
        Ok(None) => StatusCode::NOT_FOUND,
        Err(e) => {
            warn!(error = %e, "cannot check an account's webhook call");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// An event of one account: stored as the account's, against its audience.
async fn receive_account(
    State(r): State<Receiver>,
    Path((account, secret)): Path<(String, String)>,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let checked = tokio::time::timeout(STORE_TIMEOUT, r.account_audience(&account, &secret)).await;
    match checked {
        Ok(Ok(Some(audience_id))) => store_and_apply(&r, &account, &audience_id, &body).await,
        Ok(Ok(None)) => {
            metrics::counter!("chimpsync_webhook_calls_total", "result" => "not_found")
                .increment(1);
            (StatusCode::NOT_FOUND, "not found\n")
        }
        Ok(Err(e)) => {
            metrics::counter!("chimpsync_webhook_calls_total", "result" => "error").increment(1);
            warn!(error = %e, "cannot check an account's webhook call");
            (StatusCode::SERVICE_UNAVAILABLE, "try again\n")
        }
        Err(_) => {
            metrics::counter!("chimpsync_webhook_calls_total", "result" => "error").increment(1);
            warn!("no database connection in time to check an account's webhook call");
            (StatusCode::SERVICE_UNAVAILABLE, "try again\n")
        }
    }
}

/// Stores the event of `body` as `account`'s (`""` with one account), answers, and applies it
/// in the background.
async fn store_and_apply(
    r: &Receiver,
    account: &str,
    audience_id: &str,
    body: &[u8],
) -> (StatusCode, &'static str) {
    if r.held() {
        // Not stored: the schema is not the one this receiver writes; Mailchimp retries.
        metrics::counter!("chimpsync_webhook_calls_total", "result" => "held").increment(1);
        return (StatusCode::SERVICE_UNAVAILABLE, "try again\n");
    }
    let Some(event) = event_from_form(body) else {
        return (StatusCode::BAD_REQUEST, "no event type\n");
    };
    let stored = tokio::time::timeout(
        STORE_TIMEOUT,
        r.inner.inbound.record_for(account, &event, audience_id),
    )
    .await
    .unwrap_or_else(|_| {
        Err(store::Error::Pool(
            "no database connection in time to store the event".into(),
        ))
    });
    match stored {
        Ok(Recorded::New(id)) => {
            metrics::counter!("chimpsync_webhook_calls_total", "result" => "stored").increment(1);
            debug!(event.id = id, event.type = %event.event_type, "webhook event stored");
            let r = r.clone();
            tokio::spawn(async move {
                let Ok(_permit) = r.inner.applying.acquire().await else {
                    return;
                };
                match r
                    .inner
                    .inbound
                    .apply(id, worker::retry::inbound_event)
                    .await
                {
                    Ok(outcome) => log_outcome(id, &outcome),
                    // Stays stored: the retry loop applies it.
                    Err(e) => warn!(event.id = id, error = %e, "applying an inbound event failed"),
                }
            });
            (StatusCode::OK, "ok\n")
        }
        Ok(Recorded::Ignored(id)) => {
            metrics::counter!("chimpsync_webhook_calls_total", "result" => "ignored").increment(1);
            debug!(event.id = id, event.type = %event.event_type, "webhook event ignored");
            (StatusCode::OK, "ignored\n")
        }
        Ok(Recorded::Duplicate) => {
            metrics::counter!("chimpsync_webhook_calls_total", "result" => "duplicate")
                .increment(1);
            debug!(event.type = %event.event_type, "webhook event already stored");
            (StatusCode::OK, "duplicate\n")
        }
        Err(e) => {
            // Not stored: Mailchimp retries the call.
            metrics::counter!("chimpsync_webhook_calls_total", "result" => "error").increment(1);
            warn!(error = %e, "cannot store a webhook event");
            (StatusCode::SERVICE_UNAVAILABLE, "try again\n")
        }
    }
}

/// The event a form-encoded webhook body describes; `None` without a `type`.
pub fn event_from_form(body: &[u8]) -> Option<NewEvent> {
    let form = parse_form(body);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let event_type = text(form.get("type")).filter(|t| !t.trim().is_empty())?;
    let data = form.get("data");
    let field = |name: &str| text(data.and_then(|d| d.get(name))).filter(|s| !s.is_empty());
    let (email, new_email) = if event_type == "upemail" {
        (field("old_email"), field("new_email"))
    } else {
        (field("email"), None)
    };
    Some(NewEvent {
        source: EventSource::Webhook,
        event_type,
        fired_at: text(form.get("fired_at")),
        list_id: field("list_id"),
        email,
        new_email,
        payload: Value::Object(form),
    })
}

/// Parses `application/x-www-form-urlencoded` with PHP's bracket keys into nested JSON:
/// `data[merges][FNAME]=Ana` becomes `{"data": {"merges": {"FNAME": "Ana"}}}`; `a[]=x` appends to
/// an array. A later value for the same key wins; a key whose brackets do not close is taken as
/// it is.
pub fn parse_form(body: &[u8]) -> Map<String, Value> {
    let mut root = Map::new();
    for (key, value) in form_urlencoded::parse(body) {
        let path = split_key(&key);
        insert(&mut root, &path, Value::String(value.into_owned()));
    }
    root
}

fn split_key(key: &str) -> Vec<String> {
    let Some(open) = key.find('[') else {
        return vec![key.to_owned()];
    };
    let (base, mut rest) = key.split_at(open);
    if base.is_empty() {
        return vec![key.to_owned()];
    }
    let mut parts = vec![base.to_owned()];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            return vec![key.to_owned()];
        };
        parts.push(stripped[..close].to_owned());
        rest = &stripped[close + 1..];
    }
    if !rest.is_empty() {
        return vec![key.to_owned()];
    }
    parts
}

fn insert(map: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.insert(first.clone(), value);
        return;
    }
    let slot = map.entry(first.clone()).or_insert(Value::Null);
    insert_into(slot, rest, value);
}

fn insert_into(slot: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *slot = value;
        return;
    };
    if first.is_empty() {
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        if let Value::Array(items) = slot {
            let mut item = Value::Null;
            insert_into(&mut item, rest, value);
            items.push(item);
        }
        return;
    }
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(map) = slot {
        let next = map.entry(first.clone()).or_insert(Value::Null);
        insert_into(next, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bracket_keys_become_nested_objects() {
        let body = b"type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data%5Bid%5D=8a25ff1d98\
&data[list_id]=a6b5da1054&data[email]=api%40mailchimp.com&data[merges][EMAIL]=api%40mailchimp.com\
&data[merges][FNAME]=Mail+Chimp&data[merges][ADDRESS][addr1]=1+Main&data[merges][INTERESTS]=Group1%2CGroup2\
&tags[]=a&tags[]=b&odd[key=1";
        let form = parse_form(body);
        assert_eq!(
            Value::Object(form),
            json!({
                "type": "subscribe",
                "fired_at": "2009-03-26 21:35:57",
                "data": {
                    "id": "8a25ff1d98", "list_id": "a6b5da1054", "email": "api@mailchimp.com",
                    "merges": {"EMAIL": "api@mailchimp.com", "FNAME": "Mail Chimp",
                               "ADDRESS": {"addr1": "1 Main"}, "INTERESTS": "Group1,Group2"}
                },
                "tags": ["a", "b"],
                "odd[key": "1",
            })
        );
    }

    #[test]
    fn an_upemail_event_names_the_old_and_the_new_address() {
        let e = event_from_form(
            b"type=upemail&fired_at=2009-03-26+22%3A15%3A09&data[list_id]=a6b5da1054\
&data[new_id]=51da8c3259&data[new_email]=api%2Bnew%40mailchimp.com&data[old_email]=api%2Bold%40mailchimp.com",
        )
        .unwrap();
        assert_eq!(e.event_type, "upemail");
        assert_eq!(e.email.as_deref(), Some("api+old@mailchimp.com"));
        assert_eq!(e.new_email.as_deref(), Some("api+new@mailchimp.com"));
        assert_eq!(e.list_id.as_deref(), Some("a6b5da1054"));
        assert_eq!(e.fired_at.as_deref(), Some("2009-03-26 22:15:09"));
        let e = event_from_form(b"type=cleaned&data[email]=x%40y.test&data[reason]=hard").unwrap();
        assert_eq!((e.email.as_deref(), e.new_email), (Some("x@y.test"), None));
        assert!(event_from_form(b"data[email]=x%40y.test").is_none());
    }
}
