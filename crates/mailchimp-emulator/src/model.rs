//! The emulator's records: audiences, merge fields, members, tags and webhook registrations.
//!
//! Plain data with the few rules that belong to a single record; how records look on the wire is
//! `wire`, how they change is the endpoints'. Nothing here is shared with the client crate.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{json, Value};

/// An account (one API key, or every key when any is accepted): its index in the accounts the
/// emulator was started with.
pub(crate) type AccountId = usize;

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
    /// PATCH's enum has no `transactional` (Mailchimp's API spec).
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

/// A tag known to an audience.
#[derive(Debug, Clone)]
struct TagDef {
    id: u64,
    name: String,
}

/// The tags an audience knows: tags are audience-wide, names compare case-insensitively and the
/// first spelling wins.
#[derive(Debug, Clone)]
pub(crate) struct Tags {
    /// Lower-cased tag name → tag.
    by_name: HashMap<String, TagDef>,
    next_id: u64,
}

impl Tags {
    fn new() -> Self {
        Self {
            by_name: HashMap::new(),
            next_id: 1,
        }
    }

    /// The tags whose lower-cased name starts with `prefix` (lower case), by id.
    pub(crate) fn starting_with(&self, prefix: &str) -> Vec<(u64, &str)> {
        let mut found: Vec<(u64, &str)> = self
            .by_name
            .iter()
            .filter(|(lower, _)| lower.starts_with(prefix))
            .map(|(_, t)| (t.id, t.name.as_str()))
            .collect();
        found.sort_unstable();
        found
    }

    /// Attaches the tag `name` to the member (creating it in the audience if needed); false if
    /// the name is blank or the member has it.
    pub(crate) fn attach(&mut self, m: &mut Member, name: &str, now: &Now) -> bool {
        let name = name.trim();
        if name.is_empty() || m.has_tag(name) {
            return false;
        }
        let next_id = &mut self.next_id;
        let def = self.by_name.entry(name.to_lowercase()).or_insert_with(|| {
            let id = *next_id;
            *next_id += 1;
            TagDef {
                id,
                name: name.to_owned(),
            }
        });
        m.tags.push(MemberTag {
            id: def.id,
            name: def.name.clone(),
            date_added: now.text.clone(),
        });
        true
    }
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
    /// The ids of the audience's interests this member has on (the others are off).
    pub interests: BTreeSet<String>,
    /// The ids of the audience's marketing permissions this member has enabled.
    pub permissions: BTreeSet<String>,
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

    /// Removes the tag `name` from the member; false if it did not have it.
    pub(crate) fn detach_tag(&mut self, name: &str) -> bool {
        let before = self.tags.len();
        let name = name.trim();
        self.tags.retain(|t| !t.name.eq_ignore_ascii_case(name));
        self.tags.len() != before
    }
}

/// An audience (Mailchimp "list").
#[derive(Debug, Clone)]
pub(crate) struct Audience {
    pub id: String,
    /// The account that owns it; other accounts' keys get 404 on it.
    pub account: AccountId,
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
    /// A GDPR audience: its members carry `permissions`.
    pub marketing_permissions: bool,
    /// The marketing permissions, once the audience has been a GDPR one (they stay when the flag
    /// is turned off again, as the web app keeps them).
    pub permissions: Vec<Permission>,
    pub visibility: String,
    pub date_created: String,
    pub merge_fields: Vec<MergeField>,
    pub next_merge_id: u32,
    /// Boxed: when a large audience's map grows, only pointers move, so the rehash of half a
    /// million members does not stall every account's requests for a second.
    pub members: HashMap<String, Box<Member>>,
    /// Creation order → subscriber hash; listing order.
    pub order: BTreeMap<u64, String>,
    pub next_seq: u64,
    /// Subscriber hashes of permanently deleted contacts.
    pub forgotten: HashSet<String>,
    pub tags: Tags,
    /// Registered webhooks, in creation order.
    pub webhooks: Vec<Webhook>,
    /// Interest categories ("groups" in the web app), in creation order.
    pub categories: Vec<InterestCategory>,
    /// The interests of every category, in creation order.
    pub interests: Vec<Interest>,
}

impl Audience {
    pub(crate) fn new(id: String, account: AccountId, web_id: u64, now: &Now) -> Self {
        Self {
            name: format!("Audience {id}"),
            id,
            account,
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
            permissions: Vec::new(),
            visibility: "prv".to_owned(),
            date_created: now.text.clone(),
            merge_fields: default_merge_fields(),
            next_merge_id: 5,
            members: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 1,
            forgotten: HashSet::new(),
            tags: Tags::new(),
            webhooks: Vec::new(),
            categories: Vec::new(),
            interests: Vec::new(),
        }
    }

    /// Makes it a GDPR audience: Mailchimp's three default permissions, if it has none yet.
    pub(crate) fn enable_marketing_permissions(&mut self) {
        self.marketing_permissions = true;
        if self.permissions.is_empty() {
            self.permissions = DEFAULT_PERMISSIONS
                .iter()
                .map(|text| Permission {
                    id: permission_id(&self.id, text),
                    text: (*text).to_owned(),
                })
                .collect();
        }
    }

    /// The permissions its members carry: none unless it is a GDPR audience.
    pub(crate) fn shown_permissions(&self) -> Option<&[Permission]> {
        self.marketing_permissions.then_some(&self.permissions[..])
    }
}

/// The permissions a GDPR audience starts with, as Mailchimp's signup forms show them.
const DEFAULT_PERMISSIONS: [&str; 3] = ["Email", "Direct Mail", "Customized Online Advertising"];

/// A permission's id: 10 hex characters like Mailchimp's, derived from the audience and the
/// text so that an audience's ids are the same in every run (tests can name them).
fn permission_id(list_id: &str, text: &str) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(format!("{list_id}:{text}").as_bytes());
    hex::encode(&digest[..5])
}

/// A GDPR marketing permission of an audience.
#[derive(Debug, Clone)]
pub(crate) struct Permission {
    pub id: String,
    pub text: String,
}

/// The kinds of interest category Mailchimp knows.
pub(crate) const CATEGORY_TYPES: [&str; 4] = ["checkboxes", "dropdown", "radio", "hidden"];

/// An interest category of an audience.
#[derive(Debug, Clone)]
pub(crate) struct InterestCategory {
    pub id: String,
    pub title: String,
    /// One of [`CATEGORY_TYPES`].
    pub kind: String,
    pub display_order: i64,
}

/// An interest ("group name" in the web app) of a category.
#[derive(Debug, Clone)]
pub(crate) struct Interest {
    pub id: String,
    pub category_id: String,
    pub name: String,
    pub display_order: i64,
}

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
