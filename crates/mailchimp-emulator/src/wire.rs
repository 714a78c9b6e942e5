//! The records as Mailchimp shows them: every JSON answer body the endpoints build.
//!
//! Members are serialized straight from the record, without an intermediate `Value` tree: a
//! batch answer carries up to 500 of them.

use std::collections::{BTreeMap, BTreeSet};

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::{
    Audience, Interest, InterestCategory, Member, MemberTag, MergeField, Permission, Status,
    Webhook,
};
use crate::problem::ApiError;

/// What an endpoint answers: a reply, or the problem Mailchimp would report.
pub(crate) type Answer = Result<Reply, ApiError>;

/// What a successful operation answers.
#[derive(Debug)]
pub(crate) enum Reply {
    /// `200` with a JSON body.
    Json(Vec<u8>),
    /// `204` with an empty body.
    NoContent,
}

impl Reply {
    /// The HTTP status of the answer.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Reply::Json(_) => 200,
            Reply::NoContent => 204,
        }
    }
}

/// `200` with `v` as the body.
pub(crate) fn json_reply<T: Serialize + ?Sized>(v: &T) -> Reply {
    json_reply_sized(v, 128)
}

/// [`json_reply`] into a buffer of `capacity` bytes to start with, for an answer whose size is
/// known roughly, so writing it does not grow and copy the buffer again and again.
pub(crate) fn json_reply_sized<T: Serialize + ?Sized>(v: &T, capacity: usize) -> Reply {
    let mut body = Vec::with_capacity(capacity);
    if serde_json::to_writer(&mut body, v).is_err() {
        body.clear();
    }
    Reply::Json(body)
}

impl MergeField {
    /// The merge field object (`GET /lists/{id}/merge-fields/{merge_id}`).
    pub(crate) fn to_json(&self, list_id: &str) -> Value {
        json!({
            "merge_id": self.merge_id,
            "tag": self.tag,
            "name": self.name,
            "type": self.kind,
            "required": self.required,
            "default_value": self.default_value,
            "public": self.public,
            "display_order": self.display_order,
            "options": self.options,
            "help_text": self.help_text,
            "list_id": list_id,
            "_links": [],
        })
    }
}

impl Audience {
    /// The list object (`GET /lists/{id}`).
    pub(crate) fn to_json(&self, base: &str) -> Value {
        let mut subscribed = 0u64;
        let mut unsubscribed = 0u64;
        let mut cleaned = 0u64;
        for m in self.members.values() {
            match m.status {
                Status::Subscribed => subscribed += 1,
                Status::Unsubscribed => unsubscribed += 1,
                Status::Cleaned => cleaned += 1,
                _ => {}
            }
        }
        json!({
            "id": self.id,
            "web_id": self.web_id,
            "name": self.name,
            "contact": self.contact,
            "permission_reminder": self.permission_reminder,
            "use_archive_bar": self.use_archive_bar,
            "campaign_defaults": self.campaign_defaults,
            "notify_on_subscribe": self.notify_on_subscribe,
            "notify_on_unsubscribe": self.notify_on_unsubscribe,
            "date_created": self.date_created,
            "list_rating": 0,
            "email_type_option": self.email_type_option,
            "subscribe_url_short": format!("http://eepurl.com/{}", self.id),
            "subscribe_url_long": format!("https://emulator.list-manage.com/subscribe?u=0&id={}", self.id),
            "beamer_address": format!("us1-{}@inbound.mailchimp.com", self.id),
            "visibility": self.visibility,
            "double_optin": self.double_optin,
            "has_welcome": false,
            "marketing_permissions": self.marketing_permissions,
            "modules": [],
            "stats": {
                "member_count": subscribed,
                "unsubscribe_count": unsubscribed,
                "cleaned_count": cleaned,
                "member_count_since_send": subscribed,
                "unsubscribe_count_since_send": unsubscribed,
                "cleaned_count_since_send": cleaned,
                "campaign_count": 0,
                "campaign_last_sent": "",
                "merge_field_count": self.merge_fields.len(),
                "avg_sub_rate": 0,
                "avg_unsub_rate": 0,
                "target_sub_rate": 0,
                "open_rate": 0,
                "click_rate": 0,
                "last_sub_date": "",
                "last_unsub_date": ""
            },
            "_links": [
                {"rel": "self", "href": format!("{base}/lists/{}", self.id), "method": "GET"},
                {"rel": "members", "href": format!("{base}/lists/{}/members", self.id), "method": "GET"},
            ],
        })
    }
}

impl Webhook {
    /// The webhook object (`GET /lists/{id}/webhooks/{webhook_id}`).
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
}

/// A member in Mailchimp's JSON shape, serialized straight from the record.
pub(crate) struct MemberJson<'a> {
    pub member: &'a Member,
    /// The audience's id and merge fields (all the answer shows of the audience).
    pub list_id: &'a str,
    pub merge_fields: &'a [MergeField],
    /// Every interest of the audience: the member shows each, on or off.
    pub interests: &'a [Interest],
    /// The audience's marketing permissions, `None` unless it is a GDPR audience.
    pub permissions: Option<&'a [Permission]>,
    pub base: &'a str,
    /// The batch-subscribe shape: the spec's `new_members`/`updated_members` items lack
    /// `contact_id`, `full_name`, `web_id`, `unsubscribe_reason`, `source` and
    /// `consents_to_one_to_one_messaging`.
    pub compact: bool,
}

impl<'a> MemberJson<'a> {
    /// The full member object of one of the audience's members.
    pub(crate) fn full(aud: &'a Audience, member: &'a Member, base: &'a str) -> Self {
        MemberJson {
            member,
            list_id: &aud.id,
            merge_fields: &aud.merge_fields,
            interests: &aud.interests,
            permissions: aud.shown_permissions(),
            base,
            compact: false,
        }
    }
}

#[derive(Serialize)]
struct MemberStats {
    avg_open_rate: u8,
    avg_click_rate: u8,
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
    gmtoff: i32,
    dstoff: i32,
    country_code: &'static str,
    timezone: &'static str,
    region: &'static str,
}

#[derive(Serialize)]
struct Link<'a> {
    rel: &'a str,
    href: &'a str,
    method: &'a str,
}

struct MergeJson<'a> {
    fields: &'a [MergeField],
    values: &'a BTreeMap<String, Value>,
}

impl Serialize for MergeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for f in self.fields {
            match self.values.get(&f.tag) {
                Some(v) => map.serialize_entry(&f.tag, v)?,
                None => map.serialize_entry(&f.tag, "")?,
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
struct TagRef<'a> {
    id: u64,
    name: &'a str,
}

struct TagsJson<'a>(&'a [MemberTag]);

impl Serialize for TagsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The member object carries at most 50 tags (spec).
        let shown = &self.0[..self.0.len().min(50)];
        let mut seq = s.serialize_seq(Some(shown.len()))?;
        for t in shown {
            seq.serialize_element(&TagRef {
                id: t.id,
                name: &t.name,
            })?;
        }
        seq.end()
    }
}

/// `{interest_id: bool}` for every interest of the audience.
struct InterestsJson<'a> {
    all: &'a [Interest],
    on: &'a BTreeSet<String>,
}

impl Serialize for InterestsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.all.len()))?;
        for i in self.all {
            map.serialize_entry(&i.id, &self.on.contains(&i.id))?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct PermissionJson<'a> {
    marketing_permission_id: &'a str,
    text: &'a str,
    enabled: bool,
}

/// `[{marketing_permission_id, text, enabled}]` for every permission of the audience.
struct PermissionsJson<'a> {
    all: &'a [Permission],
    enabled: &'a BTreeSet<String>,
}

impl Serialize for PermissionsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.all.len()))?;
        for p in self.all {
            seq.serialize_element(&PermissionJson {
                marketing_permission_id: &p.id,
                text: &p.text,
                enabled: self.enabled.contains(&p.id),
            })?;
        }
        seq.end()
    }
}

impl InterestCategory {
    /// The interest category object.
    pub(crate) fn to_json(&self, list_id: &str, base: &str) -> Value {
        let href = format!("{base}/lists/{list_id}/interest-categories/{}", self.id);
        json!({
            "list_id": list_id,
            "id": self.id,
            "title": self.title,
            "display_order": self.display_order,
            "type": self.kind,
            "_links": [
                {"rel": "self", "href": href, "method": "GET"},
                {"rel": "interests", "href": format!("{href}/interests"), "method": "GET"},
            ],
        })
    }
}

impl Interest {
    /// The interest object; `subscriber_count` is a string in Mailchimp's schema.
    pub(crate) fn to_json(&self, list_id: &str, subscribers: usize, base: &str) -> Value {
        json!({
            "category_id": self.category_id,
            "list_id": list_id,
            "id": self.id,
            "name": self.name,
            "subscriber_count": subscribers.to_string(),
            "display_order": self.display_order,
            "_links": [{
                "rel": "self",
                "href": format!("{base}/lists/{list_id}/interest-categories/{}/interests/{}", self.category_id, self.id),
                "method": "GET",
            }],
        })
    }
}

fn text_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or("")
}

impl Serialize for MemberJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.member;
        let full = !self.compact;
        let first = text_of(m.merge.get("FNAME"));
        let last = text_of(m.merge.get("LNAME"));
        let full_name = match (first.is_empty() || !full, last.is_empty() || !full) {
            (false, false) => format!("{first} {last}"),
            (false, true) => first.to_owned(),
            (true, false) => last.to_owned(),
            (true, true) => String::new(),
        };
        let self_href = format!("{}/lists/{}/members/{}", self.base, self.list_id, m.id);
        let parent_href = if full {
            format!("{}/lists/{}/members", self.base, self.list_id)
        } else {
            String::new()
        };

        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &m.id)?;
        map.serialize_entry("email_address", &m.email)?;
        map.serialize_entry("unique_email_id", &m.unique_email_id)?;
        if full {
            map.serialize_entry("contact_id", &m.contact_id)?;
            map.serialize_entry("full_name", &full_name)?;
            map.serialize_entry("web_id", &m.web_id)?;
        }
        map.serialize_entry("email_type", &m.email_type)?;
        map.serialize_entry("status", m.status.as_str())?;
        if full && m.status == Status::Unsubscribed {
            map.serialize_entry(
                "unsubscribe_reason",
                if m.unsubscribed_by_contact {
                    "I no longer want to receive these emails"
                } else {
                    "N/A (Unsubscribed by admin)"
                },
            )?;
        }
        if full {
            map.serialize_entry("consents_to_one_to_one_messaging", &true)?;
        }
        map.serialize_entry(
            "merge_fields",
            &MergeJson {
                fields: self.merge_fields,
                values: &m.merge,
            },
        )?;
        // Like Mailchimp, an audience without interests shows no `interests` at all.
        if !self.interests.is_empty() {
            map.serialize_entry(
                "interests",
                &InterestsJson {
                    all: self.interests,
                    on: &m.interests,
                },
            )?;
        }
        map.serialize_entry(
            "stats",
            &MemberStats {
                avg_open_rate: 0,
                avg_click_rate: 0,
            },
        )?;
        map.serialize_entry("ip_signup", &m.ip_signup)?;
        map.serialize_entry("timestamp_signup", &m.timestamp_signup)?;
        map.serialize_entry("ip_opt", &m.ip_opt)?;
        map.serialize_entry("timestamp_opt", &m.timestamp_opt)?;
        map.serialize_entry("member_rating", &2)?;
        map.serialize_entry("last_changed", &m.last_changed)?;
        map.serialize_entry("language", &m.language)?;
        map.serialize_entry("vip", &m.vip)?;
        map.serialize_entry("email_client", "")?;
        map.serialize_entry(
            "location",
            &Location {
                latitude: m.latitude,
                longitude: m.longitude,
                gmtoff: 0,
                dstoff: 0,
                country_code: "",
                timezone: "",
                region: "",
            },
        )?;
        if let Some(all) = self.permissions {
            map.serialize_entry(
                "marketing_permissions",
                &PermissionsJson {
                    all,
                    enabled: &m.permissions,
                },
            )?;
        }
        if full {
            map.serialize_entry("source", "API - Generic")?;
        }
        map.serialize_entry("tags_count", &m.tags.len())?;
        map.serialize_entry("tags", &TagsJson(&m.tags))?;
        map.serialize_entry("list_id", self.list_id)?;
        let links = [
            Link {
                rel: "self",
                href: &self_href,
                method: "GET",
            },
            Link {
                rel: "parent",
                href: &parent_href,
                method: "GET",
            },
            Link {
                rel: "upsert",
                href: &self_href,
                method: "PUT",
            },
        ];
        map.serialize_entry("_links", if full { &links[..] } else { &links[..1] })?;
        map.end()
    }
}
