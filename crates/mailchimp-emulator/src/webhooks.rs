//! Webhooks: the registrations of an audience, the events member changes produce, and their
//! delivery to the registered URLs as Mailchimp sends them (docs/mailchimp-api.md §9).
//!
//! Operations on the state only *record* events (in `State::outbox`); the server turns them
//! into deliveries after the state lock is released and hands them to one background task,
//! which POSTs them in order and retries failures a few times. An API answer never waits for a
//! delivery.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::model::{Audience, Member, Now, Status};
use crate::problem::{wrong_type, ApiError};

/// `User-Agent` of event deliveries.
const USER_AGENT: &str = "MailChimp.com";
/// `User-Agent` of the GET sent when a webhook is created.
pub(crate) const VALIDATOR_USER_AGENT: &str = "MailChimp.com WebHook Validator";
/// Mailchimp gives an endpoint 10 s to answer.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per delivery (Mailchimp retries over 75 minutes; the emulator a few times quickly).
pub(crate) const MAX_ATTEMPTS: u32 = 4;
/// Pause before the second attempt; doubled for each further one.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Which events a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Events {
    pub subscribe: bool,
    pub unsubscribe: bool,
    pub profile: bool,
    pub cleaned: bool,
    pub upemail: bool,
    pub campaign: bool,
}

/// Whose changes a webhook hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sources {
    pub user: bool,
    pub admin: bool,
    pub api: bool,
}

/// A registered webhook.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Events,
    pub sources: Sources,
}

impl Webhook {
    pub(crate) fn to_json(&self, list_id: &str, base: &str) -> Value {
        let e = &self.events;
        let s = &self.sources;
        json!({
            "id": self.id,
            "url": self.url,
            "events": {
                "subscribe": e.subscribe, "unsubscribe": e.unsubscribe, "profile": e.profile,
                "cleaned": e.cleaned, "upemail": e.upemail, "campaign": e.campaign,
            },
            "sources": {"user": s.user, "admin": s.admin, "api": s.api},
            "list_id": list_id,
            "_links": [{"rel": "self", "href": format!("{base}/lists/{list_id}/webhooks/{}", self.id), "method": "GET"}],
        })
    }

    fn wants(&self, event: &Event) -> bool {
        let by_type = match event.kind {
            EventKind::Subscribe => self.events.subscribe,
            EventKind::Unsubscribe => self.events.unsubscribe,
            EventKind::Profile => self.events.profile,
            EventKind::Cleaned => self.events.cleaned,
            EventKind::Upemail => self.events.upemail,
        };
        let by_source = match event.source {
            Source::User => self.sources.user,
            Source::Admin => self.sources.admin,
            Source::Api => self.sources.api,
            // Bounces are Mailchimp's own doing: no source flag filters them.
            Source::System => true,
        };
        by_type && by_source
    }
}

/// The body of `POST /lists/{id}/webhooks`, checked. Absent flags take the documented
/// defaults: every event on, sources user and admin on, api off.
pub(crate) struct NewWebhook {
    pub url: String,
    pub events: Events,
    pub sources: Sources,
}

impl NewWebhook {
    pub(crate) fn parse(body: &Value) -> Result<NewWebhook, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(wrong_type("", "object", body));
        };
        let url = match obj.get("url") {
            None | Some(Value::Null) => return Err(ApiError::required("url")),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(other) => return Err(wrong_type("url", "string", other)),
        };
        let parsed = reqwest::Url::parse(&url).ok();
        if !parsed
            .as_ref()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            return Err(ApiError::invalid_field(
                "url",
                "This value should be a valid URL.",
            ));
        }
        let flags = |name: &str| -> Result<Option<&Map<String, Value>>, ApiError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(m)) => Ok(Some(m)),
                Some(other) => Err(wrong_type(name, "object", other)),
            }
        };
        let flag = |map: Option<&Map<String, Value>>,
                    group: &str,
                    name: &str,
                    default: bool|
         -> Result<bool, ApiError> {
            match map.and_then(|m| m.get(name)) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(other) => Err(wrong_type(&format!("{group}.{name}"), "boolean", other)),
            }
        };
        let ev = flags("events")?;
        let src = flags("sources")?;
        Ok(NewWebhook {
            url,
            events: Events {
                subscribe: flag(ev, "events", "subscribe", true)?,
                unsubscribe: flag(ev, "events", "unsubscribe", true)?,
                profile: flag(ev, "events", "profile", true)?,
                cleaned: flag(ev, "events", "cleaned", true)?,
                upemail: flag(ev, "events", "upemail", true)?,
                campaign: flag(ev, "events", "campaign", true)?,
            },
            sources: Sources {
                user: flag(src, "sources", "user", true)?,
                admin: flag(src, "sources", "admin", true)?,
                api: flag(src, "sources", "api", false)?,
            },
        })
    }
}

/// "a url may only exist on a list once" (wording ours).
pub(crate) fn duplicate_url() -> ApiError {
    ApiError::invalid_field(
        "url",
        "This URL is already registered as a webhook on this list.",
    )
}

/// The validator's GET did not get a 200 (wording ours).
pub(crate) fn validation_failed(what: &str) -> ApiError {
    ApiError::invalid_field(
        "url",
        format!("The webhook URL could not be validated: the validator's GET {what}; it must answer 200."),
    )
}

/// The event types the emulator produces (campaign events are not emulated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Subscribe,
    Unsubscribe,
    Profile,
    Cleaned,
    Upemail,
}

impl EventKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::Subscribe => "subscribe",
            EventKind::Unsubscribe => "unsubscribe",
            EventKind::Profile => "profile",
            EventKind::Cleaned => "cleaned",
            EventKind::Upemail => "upemail",
        }
    }
}

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The contact (unsubscribe link, profile page, confirmation).
    User,
    /// Someone in the Mailchimp web app (not emulated yet; kept for the filter).
    #[allow(dead_code)] // the emulator has no admin UI; sources.admin is still honoured
    Admin,
    /// A Marketing API call.
    Api,
    /// Mailchimp itself (a bounce).
    System,
}

/// A change worth telling webhooks about: the form fields after `type` and `fired_at`.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub list_id: String,
    pub kind: EventKind,
    pub source: Source,
    pub fired_at: String,
    pub data: Vec<(String, String)>,
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), Mailchimp's `fired_at` format.
fn fired_at(now: &Now) -> String {
    chrono::DateTime::from_timestamp(now.secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `data[merges][…]`: EMAIL, then every merge field of the audience (unset = ""), address
/// objects flattened as `data[merges][ADDRESS][addr1]`.
fn merges(aud: &Audience, m: &Member, out: &mut Vec<(String, String)>) {
    out.push(("data[merges][EMAIL]".into(), m.email.clone()));
    for f in &aud.merge_fields {
        match m.merge.get(&f.tag) {
            Some(Value::Object(parts)) => {
                for (k, v) in parts {
                    out.push((format!("data[merges][{}][{k}]", f.tag), text(v)));
                }
            }
            Some(v) => out.push((format!("data[merges][{}]", f.tag), text(v))),
            None => out.push((format!("data[merges][{}]", f.tag), String::new())),
        }
    }
}

fn member_data(aud: &Audience, m: &Member, with_signup: bool) -> Vec<(String, String)> {
    let mut data = vec![
        ("data[id]".to_owned(), m.unique_email_id.clone()),
        ("data[list_id]".to_owned(), aud.id.clone()),
        ("data[email]".to_owned(), m.email.clone()),
        ("data[email_type]".to_owned(), m.email_type.clone()),
    ];
    merges(aud, m, &mut data);
    data.push(("data[ip_opt]".into(), m.ip_opt.clone()));
    if with_signup {
        data.push(("data[ip_signup]".into(), m.ip_signup.clone()));
    }
    data.push(("data[web_id]".into(), m.web_id.to_string()));
    data
}

/// What a member looked like before a change (taken only when the audience has webhooks).
#[derive(Debug, Clone)]
pub(crate) struct Before {
    pub status: Status,
    pub email: String,
    pub merge: BTreeMap<String, Value>,
}

impl Before {
    pub(crate) fn of(m: &Member) -> Before {
        Before {
            status: m.status,
            email: m.email.clone(),
            merge: m.merge.clone(),
        }
    }
}

/// The events a change from `before` (None: the member did not exist) to `after` produces,
/// in Mailchimp's payload shapes.
pub(crate) fn events_for(
    aud: &Audience,
    before: Option<&Before>,
    after: &Member,
    source: Source,
    now: &Now,
) -> Vec<Event> {
    let event = |kind: EventKind, data: Vec<(String, String)>| Event {
        list_id: aud.id.clone(),
        kind,
        source,
        fired_at: fired_at(now),
        data,
    };
    let mut out = Vec::new();
    let live = |s: Status| s != Status::Archived;
    if let Some(b) = before {
        if live(b.status) && !b.email.eq_ignore_ascii_case(&after.email) {
            out.push(event(
                EventKind::Upemail,
                vec![
                    ("data[list_id]".into(), aud.id.clone()),
                    ("data[new_id]".into(), after.unique_email_id.clone()),
                    ("data[new_email]".into(), after.email.clone()),
                    ("data[old_email]".into(), b.email.clone()),
                ],
            ));
        }
    }
    let was = before.map(|b| b.status);
    if was != Some(after.status) {
        match after.status {
            Status::Subscribed => {
                out.push(event(EventKind::Subscribe, member_data(aud, after, true)))
            }
            Status::Unsubscribed if was.is_some_and(live) => {
                out.push(unsubscribe(aud, after, "unsub", source, now))
            }
            Status::Cleaned => out.push(event(
                EventKind::Cleaned,
                vec![
                    ("data[list_id]".into(), aud.id.clone()),
                    ("data[campaign_id]".into(), String::new()),
                    ("data[reason]".into(), "hard".into()),
                    ("data[email]".into(), after.email.clone()),
                ],
            )),
            Status::Archived if was.is_some_and(live) => {
                out.push(unsubscribe(aud, after, "delete", source, now))
            }
            _ => {}
        }
    } else if let Some(b) = before {
        if live(after.status) && b.merge != after.merge {
            out.push(event(EventKind::Profile, member_data(aud, after, false)));
        }
    }
    out
}

/// An `unsubscribe` event; `action` is `unsub` or `delete` (archived or deleted).
pub(crate) fn unsubscribe(
    aud: &Audience,
    m: &Member,
    action: &str,
    source: Source,
    now: &Now,
) -> Event {
    let mut data = vec![
        ("data[action]".to_owned(), action.to_owned()),
        ("data[reason]".to_owned(), "manual".to_owned()),
    ];
    let mut rest = member_data(aud, m, false);
    rest.push(("data[campaign_id]".into(), String::new()));
    data.extend(rest);
    Event {
        list_id: aud.id.clone(),
        kind: EventKind::Unsubscribe,
        source,
        fired_at: fired_at(now),
        data,
    }
}

/// One POST to make.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub url: String,
    pub kind: EventKind,
    pub body: String,
}

/// The deliveries `events` make for the audience's webhooks.
pub(crate) fn deliveries(aud: &Audience, events: &[Event]) -> Vec<Delivery> {
    let mut out = Vec::new();
    for event in events {
        for hook in aud.webhooks.iter().filter(|h| h.wants(event)) {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("type", event.kind.as_str());
            form.append_pair("fired_at", &event.fired_at);
            for (k, v) in &event.data {
                form.append_pair(k, v);
            }
            out.push(Delivery {
                url: hook.url.clone(),
                kind: event.kind,
                body: form.finish(),
            });
        }
    }
    out
}

/// A finished delivery, for tests (see `Emulator::webhook_deliveries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The webhook's URL.
    pub url: String,
    /// `subscribe`, `unsubscribe`, `profile`, `cleaned` or `upemail`.
    pub event: String,
    /// The form-encoded body sent.
    pub body: String,
    /// How many POSTs were made.
    pub attempts: u32,
    /// Whether one of them was answered with a 2xx.
    pub delivered: bool,
    /// The status of the last answer (`None`: no answer, e.g. connection refused).
    pub last_status: Option<u16>,
}

/// The delivery queue and its log, shared by the server and the delivery task.
pub(crate) struct Outbound {
    sender: mpsc::UnboundedSender<Delivery>,
    pub log: Arc<DeliveryLog>,
}

/// What the delivery task did.
#[derive(Default)]
pub(crate) struct DeliveryLog {
    pub finished: Mutex<Vec<WebhookDelivery>>,
    pub queued: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

impl Outbound {
    /// Starts the delivery task (it ends when the last sender is dropped).
    pub(crate) fn start() -> Outbound {
        let (sender, receiver) = mpsc::unbounded_channel();
        let log = Arc::new(DeliveryLog::default());
        tokio::spawn(deliver_all(receiver, log.clone()));
        Outbound { sender, log }
    }

    pub(crate) fn send(&self, deliveries: Vec<Delivery>) {
        for d in deliveries {
            self.log.queued.fetch_add(1, Ordering::SeqCst);
            if self.sender.send(d).is_err() {
                self.log.queued.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// One POST after the other, in the order the changes happened, each retried a few times.
async fn deliver_all(mut receiver: mpsc::UnboundedReceiver<Delivery>, log: Arc<DeliveryLog>) {
    let http = match reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, "cannot build the webhook HTTP client; deliveries are dropped");
            return;
        }
    };
    while let Some(d) = receiver.recv().await {
        let mut attempts = 0;
        let mut last_status = None;
        let mut delivered = false;
        while attempts < MAX_ATTEMPTS {
            if attempts > 0 {
                tokio::time::sleep(FIRST_RETRY * 2u32.pow(attempts - 1)).await;
            }
            attempts += 1;
            let sent = http
                .post(&d.url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(d.body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) => {
                    last_status = Some(resp.status().as_u16());
                    if resp.status().is_success() {
                        delivered = true;
                        break;
                    }
                }
                Err(error) => {
                    last_status = None;
                    tracing::debug!(%error, "webhook delivery failed");
                }
            }
        }
        tracing::debug!(
            event = d.kind.as_str(),
            attempts,
            delivered,
            "webhook delivery finished"
        );
        if delivered {
            log.delivered.fetch_add(1, Ordering::SeqCst);
        } else {
            log.failed.fetch_add(1, Ordering::SeqCst);
        }
        crate::server::lock(&log.finished).push(WebhookDelivery {
            url: d.url,
            event: d.kind.as_str().to_owned(),
            body: d.body,
            attempts,
            delivered,
            last_status,
        });
        log.queued.fetch_sub(1, Ordering::SeqCst);
    }
}
