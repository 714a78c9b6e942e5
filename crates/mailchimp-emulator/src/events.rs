//! Webhook events: which events a member change produces, and the form bodies Mailchimp sends
//! for them (docs/mailchimp.md). Pure: sending them is `outbound`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{Audience, Member, Now, Status, Webhook};

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

/// One POST to make: an event's form body for one webhook.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub url: String,
    pub kind: EventKind,
    pub body: String,
}

/// Whether the webhook hears about the event. The emulator has no web app, so no change comes
/// from an admin and `sources.admin` never matches.
fn wants(hook: &Webhook, event: &Event) -> bool {
    let by_type = match event.kind {
        EventKind::Subscribe => hook.events.subscribe,
        EventKind::Unsubscribe => hook.events.unsubscribe,
        EventKind::Profile => hook.events.profile,
        EventKind::Cleaned => hook.events.cleaned,
        EventKind::Upemail => hook.events.upemail,
    };
    let by_source = match event.source {
        Source::User => hook.sources.user,
        Source::Api => hook.sources.api,
        // Bounces are Mailchimp's own doing: no source flag filters them.
        Source::System => true,
    };
    by_type && by_source
}

/// The deliveries the event makes for the audience's webhooks.
pub(crate) fn deliveries(aud: &Audience, event: &Event) -> Vec<Delivery> {
    let mut out = Vec::new();
    for hook in aud.webhooks.iter().filter(|h| wants(h, event)) {
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
    out
}
