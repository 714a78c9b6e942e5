//! The emulator's records (audiences, merge fields, members, tags) and their wire shapes.
//!
//! These are the emulator's own types; nothing here is shared with the client crate.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

/// A contact's status as Mailchimp names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Status {
    Subscribed,
    Unsubscribed,
    Cleaned,
    Pending,
    Transactional,
    Archived,
}

impl Status {
    /// The statuses a write may ask for (POST/PUT/batch).
    pub(crate) const WRITABLE: &'static [Status] = &[
        Status::Subscribed,
        Status::Unsubscribed,
        Status::Cleaned,
        Status::Pending,
        Status::Transactional,
    ];
    /// PATCH's enum has no `transactional` (spec 3.0.55).
    pub(crate) const PATCHABLE: &'static [Status] = &[
        Status::Subscribed,
        Status::Unsubscribed,
        Status::Cleaned,
        Status::Pending,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Subscribed => "subscribed",
            Status::Unsubscribed => "unsubscribed",
            Status::Cleaned => "cleaned",
            Status::Pending => "pending",
            Status::Transactional => "transactional",
            Status::Archived => "archived",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "subscribed" => Status::Subscribed,
            "unsubscribed" => Status::Unsubscribed,
            "cleaned" => Status::Cleaned,
            "pending" => Status::Pending,
            "transactional" => Status::Transactional,
            "archived" => Status::Archived,
            _ => return None,
        })
    }

    /// How the Mailchimp UI labels the status (used in the "already in this list" message).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Status::Subscribed => "Subscribed",
            Status::Unsubscribed => "Unsubscribed",
            Status::Cleaned => "Cleaned",
            Status::Pending => "Pending",
            Status::Transactional => "Non-Subscribed",
            Status::Archived => "Archived",
        }
    }
}

/// The current time, once per request, in Mailchimp's format.
#[derive(Debug, Clone)]
pub(crate) struct Now {
    pub secs: i64,
    pub text: String,
}

impl Now {
    pub(crate) fn current() -> Self {
        let t = chrono::Utc::now();
        Self {
            secs: t.timestamp(),
            text: t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
        }
    }
}

/// A merge field of an audience.
#[derive(Debug, Clone)]
pub(crate) struct MergeField {
    pub merge_id: u32,
    pub tag: String,
    pub name: String,
    pub kind: String,
    pub required: bool,
    pub default_value: String,
    pub public: bool,
    pub display_order: u32,
    pub options: Value,
    pub help_text: String,
}

impl MergeField {
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

    /// The choices of a radio or dropdown field, if any.
    pub(crate) fn choices(&self) -> Option<&Vec<Value>> {
        match self.kind.as_str() {
            "radio" | "dropdown" => self
                .options
                .get("choices")
                .and_then(Value::as_array)
                .filter(|c| !c.is_empty()),
            _ => None,
        }
    }
}

/// The merge fields every new audience gets (Mailchimp's defaults).
pub(crate) fn default_merge_fields() -> Vec<MergeField> {
    let field = |merge_id: u32, tag: &str, name: &str, kind: &str, options: Value| MergeField {
        merge_id,
        tag: tag.to_owned(),
        name: name.to_owned(),
        kind: kind.to_owned(),
        required: false,
        default_value: String::new(),
        public: true,
        display_order: merge_id + 1,
        options,
        help_text: String::new(),
    };
    vec![
        field(1, "FNAME", "First Name", "text", json!({"size": 25})),
        field(2, "LNAME", "Last Name", "text", json!({"size": 25})),
        field(
            3,
            "ADDRESS",
            "Address",
            "address",
            json!({"default_country": 164}),
        ),
        field(
            4,
            "PHONE",
            "Phone Number",
            "phone",
            json!({"phone_format": "none"}),
        ),
    ]
}

/// The default `options` of a new merge field of this type.
pub(crate) fn default_options(kind: &str) -> Value {
    match kind {
        "text" => json!({"size": 25}),
        "address" => json!({"default_country": 164}),
        "phone" => json!({"phone_format": "none"}),
        "date" => json!({"date_format": "MM/DD/YYYY"}),
        "birthday" => json!({"date_format": "MM/DD"}),
        _ => json!({}),
    }
}

/// A tag as attached to a member.
#[derive(Debug, Clone)]
pub(crate) struct MemberTag {
    pub id: u64,
    pub name: String,
    pub date_added: String,
}

/// A tag known to an audience (tags are audience-wide; names compare case-insensitively).
#[derive(Debug, Clone)]
pub(crate) struct TagDef {
    pub id: u64,
    pub name: String,
}

/// A contact in an audience.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub seq: u64,
    pub id: String,
    pub email: String,
    pub unique_email_id: String,
    pub contact_id: String,
    pub web_id: u64,
    pub email_type: String,
    pub status: Status,
    /// The contact unsubscribed themselves (not the API/admin); cleared when they confirm again.
    pub unsubscribed_by_contact: bool,
    /// The address bounced; cleared when the contact confirms again.
    pub bounced: bool,
    /// Set values only; an unset field is answered as `""`.
    pub merge: BTreeMap<String, Value>,
    pub interests: serde_json::Map<String, Value>,
    pub ip_signup: String,
    pub timestamp_signup: String,
    pub ip_opt: String,
    pub timestamp_opt: String,
    pub last_changed: String,
    pub last_changed_secs: i64,
    pub language: String,
    pub vip: bool,
    pub latitude: f64,
    pub longitude: f64,
    pub tags: Vec<MemberTag>,
}

impl Member {
    /// Subscribing this contact needs their own confirmation.
    pub(crate) fn in_compliance_state(&self) -> bool {
        self.unsubscribed_by_contact || self.bounced || self.status == Status::Cleaned
    }

    pub(crate) fn touch(&mut self, now: &Now) {
        self.last_changed.clone_from(&now.text);
        self.last_changed_secs = now.secs;
    }

    pub(crate) fn has_tag(&self, name: &str) -> bool {
        self.tags.iter().any(|t| t.name.eq_ignore_ascii_case(name))
    }
}

/// An audience (Mailchimp "list").
#[derive(Debug, Clone)]
pub(crate) struct Audience {
    pub id: String,
    pub web_id: u64,
    pub name: String,
    pub contact: Value,
    pub permission_reminder: String,
    pub campaign_defaults: Value,
    pub email_type_option: bool,
    pub use_archive_bar: bool,
    pub notify_on_subscribe: String,
    pub notify_on_unsubscribe: String,
    pub double_optin: bool,
    pub marketing_permissions: bool,
    pub visibility: String,
    pub date_created: String,
    pub merge_fields: Vec<MergeField>,
    pub next_merge_id: u32,
    pub members: HashMap<String, Member>,
    /// Creation order → subscriber hash; listing order.
    pub order: BTreeMap<u64, String>,
    pub next_seq: u64,
    /// Subscriber hashes of permanently deleted contacts.
    pub forgotten: HashSet<String>,
    /// Lower-cased tag name → tag.
    pub tags: HashMap<String, TagDef>,
    pub next_tag_id: u64,
    /// Registered webhooks, in creation order.
    pub webhooks: Vec<crate::webhooks::Webhook>,
}

impl Audience {
    pub(crate) fn new(id: String, web_id: u64, now: &Now) -> Self {
        Self {
            name: format!("Audience {id}"),
            id,
            web_id,
            contact: json!({
                "company": "Emulated Company", "address1": "675 Ponce De Leon Ave NE",
                "address2": "", "city": "Atlanta", "state": "GA", "zip": "30308",
                "country": "US", "phone": ""
            }),
            permission_reminder: "You are receiving this email because you opted in.".to_owned(),
            campaign_defaults: json!({
                "from_name": "Emulator", "from_email": "emulator@chimpsync.invalid",
                "subject": "", "language": "en"
            }),
            email_type_option: false,
            use_archive_bar: true,
            notify_on_subscribe: String::new(),
            notify_on_unsubscribe: String::new(),
            double_optin: false,
            marketing_permissions: false,
            visibility: "prv".to_owned(),
            date_created: now.text.clone(),
            merge_fields: default_merge_fields(),
            next_merge_id: 5,
            members: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 1,
            forgotten: HashSet::new(),
            tags: HashMap::new(),
            next_tag_id: 1,
            webhooks: Vec::new(),
        }
    }

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

/// A member in Mailchimp's JSON shape (§2.3), serialized straight from the record.
pub(crate) struct MemberJson<'a> {
    pub member: &'a Member,
    /// The audience's id and merge fields (all the answer shows of the audience).
    pub list_id: &'a str,
    pub merge_fields: &'a [MergeField],
    pub base: &'a str,
    /// The batch-subscribe shape: the spec's `new_members`/`updated_members` items lack
    /// `contact_id`, `full_name`, `web_id`, `unsubscribe_reason`, `source` and
    /// `consents_to_one_to_one_messaging`.
    pub compact: bool,
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
        if !m.interests.is_empty() {
            map.serialize_entry("interests", &m.interests)?;
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
