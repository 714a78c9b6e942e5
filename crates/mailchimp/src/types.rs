//! Request and response bodies, narrowed to the fields chimpsync reads or writes.
//!
//! Responses are deserialized leniently: unknown fields are ignored, `null` counts as absent,
//! and `""` counts as "not set" for optional texts (Mailchimp sends `""`, not `null`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{contains_ci, is_invalid_email_text};
use crate::ProblemKind;

/// A member's subscription status.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Receives campaigns.
    Subscribed,
    /// Opted out (by themselves, or set by the API/admin).
    Unsubscribed,
    /// Hard-bounced or removed by Mailchimp.
    Cleaned,
    /// Double opt-in mail sent, not confirmed yet.
    Pending,
    /// Receives transactional mail only.
    Transactional,
    /// Archived (the result of `DELETE`); appears in responses and filters, cannot be written.
    Archived,
}

impl Status {
    /// The wire spelling (`"subscribed"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Subscribed => "subscribed",
            Status::Unsubscribed => "unsubscribed",
            Status::Cleaned => "cleaned",
            Status::Pending => "pending",
            Status::Transactional => "transactional",
            Status::Archived => "archived",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of a batch subscribe (`POST /lists/{list_id}`).
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct BatchMember {
    /// The address.
    pub email_address: String,
    /// Status used only if the address is new to the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_if_new: Option<Status>,
    /// Status forced on an existing member too (with `update_existing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Merge tag → value (string, number, or address object). Omitted when empty.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub merge_fields: Map<String, Value>,
    /// Tag names; Mailchimp applies them when the contact is created (with `sync_tags: false`
    /// they never remove a tag). Omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Interest id → on/off; only the interests named change, the member's others stay.
    /// Omitted when empty. (Batch members cannot carry marketing permissions: Mailchimp's batch
    /// schema has none; use [`crate::Client::set_member_permissions`].)
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub interests: BTreeMap<String, bool>,
}

/// The body of a single-member upsert (`PUT …/members/{hash}`).
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct MemberUpsert {
    /// The address to store; `None` means the address the call is made for. A different
    /// address renames the member (see [`crate::Client::rename_member`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    /// Status used only if the member is created by this call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_if_new: Option<Status>,
    /// Status applied to an existing member as well (may be refused with
    /// `Member In Compliance State` for a contact who unsubscribed or bounced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Merge tag → value. Omitted when empty; `""` clears a field.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub merge_fields: Map<String, Value>,
    /// Interest id → on/off; only the interests named change, the member's others stay.
    /// Omitted when empty. An id the audience does not have refuses the whole write.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub interests: BTreeMap<String, bool>,
    /// Marketing permission changes (GDPR audiences only); the permissions not named stay.
    /// Omitted when empty. An id the audience does not have refuses the whole write.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub marketing_permissions: Vec<MarketingPermissionChange>,
}

/// Turns one marketing permission of a member on or off.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct MarketingPermissionChange {
    /// The permission's id (see [`crate::Client::marketing_permissions`]).
    pub marketing_permission_id: String,
    /// Whether the member gives this permission.
    pub enabled: bool,
}

/// A member's state for one marketing permission of a GDPR audience.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MemberPermission {
    /// The permission's id (`marketing_permission_id` on the wire).
    #[serde(rename = "marketing_permission_id")]
    pub id: String,
    /// What the contact consents to, e.g. `Email`.
    #[serde(default)]
    pub text: String,
    /// Whether the member gave it.
    #[serde(default)]
    pub enabled: bool,
}

/// The outcome of a batch subscribe: always HTTP 200, failures are per member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct BatchResult {
    /// Members created by the call (`new_members`).
    #[serde(rename = "new_members", default, deserialize_with = "null_as_default")]
    pub created: Vec<MemberRef>,
    /// Existing members updated by the call (`updated_members`).
    #[serde(
        rename = "updated_members",
        default,
        deserialize_with = "null_as_default"
    )]
    pub updated: Vec<MemberRef>,
    /// Members that were refused.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<BatchError>,
}

/// The identity and status of a member in a batch result (the rest of the member object is
/// skipped for speed).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MemberRef {
    /// The subscriber hash of the stored address.
    pub id: String,
    /// The stored address.
    pub email_address: String,
    /// The status after the call.
    pub status: Status,
    /// The member's tag names after the call (at most 50, as Mailchimp sends them).
    #[serde(default, deserialize_with = "tag_names")]
    pub tags: Vec<String>,
    /// The member's marketing permissions after the call (GDPR audiences; empty otherwise): the
    /// batch cannot set them, so what still differs is set member by member.
    #[serde(default, deserialize_with = "null_as_default")]
    pub marketing_permissions: Vec<MemberPermission>,
}

/// One refused member of a batch subscribe.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BatchError {
    /// The address as sent.
    #[serde(default)]
    pub email_address: String,
    /// Mailchimp's text (the single-member `detail`, or the batch "already a list member" text).
    #[serde(default)]
    pub error: String,
    /// `ERROR_CONTACT_EXISTS` or `ERROR_GENERIC`.
    #[serde(default)]
    pub error_code: String,
    /// The merge tag at fault, if any.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub field: Option<String>,
    /// What is wrong with `field`.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub field_message: Option<String>,
}

impl BatchError {
    /// Classifies the refusal like the single-member problem it stands for.
    ///
    /// `ERROR_CONTACT_EXISTS` → `MemberExists`; otherwise by text: "compliance state" →
    /// `ComplianceState`, "permanently deleted" → `ForgottenEmail`, "looks fake or invalid" /
    /// "valid email address" → `InvalidEmail`, "merge fields were invalid" or a `field` →
    /// `MergeFieldsInvalid`, else `Other`.
    pub fn kind(&self) -> ProblemKind {
        if self.error_code.eq_ignore_ascii_case("ERROR_CONTACT_EXISTS") {
            ProblemKind::MemberExists
        } else if contains_ci(&self.error, "compliance state") {
            ProblemKind::ComplianceState
        } else if contains_ci(&self.error, "permanently deleted") {
            ProblemKind::ForgottenEmail
        } else if is_invalid_email_text(&self.error) {
            ProblemKind::InvalidEmail
        } else if contains_ci(&self.error, "merge fields were invalid") || self.field.is_some() {
            ProblemKind::MergeFieldsInvalid
        } else {
            ProblemKind::Other
        }
    }
}

/// A list member, narrowed to what chimpsync reads.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Member {
    /// The subscriber hash (MD5 of the lower-cased address).
    pub id: String,
    /// The stored address.
    pub email_address: String,
    /// The current status.
    pub status: Status,
    /// Every merge field of the list (unset ones are `""`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub merge_fields: Map<String, Value>,
    /// Tag names (the member object carries at most 50; use
    /// [`crate::Client::member_tags`] for all).
    #[serde(default, deserialize_with = "tag_names")]
    pub tags: Vec<String>,
    /// When the member last changed (ISO 8601), if Mailchimp says.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub last_changed: Option<String>,
    /// Why the member unsubscribed, if they did (e.g. `N/A (Unsubscribed by admin)`).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub unsubscribe_reason: Option<String>,
    /// Every interest of the audience → whether the member has it (empty when the audience
    /// has no interests: Mailchimp then sends no `interests`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub interests: BTreeMap<String, bool>,
    /// Every marketing permission of a GDPR audience with the member's choice (empty for
    /// other audiences).
    #[serde(default, deserialize_with = "null_as_default")]
    pub marketing_permissions: Vec<MemberPermission>,
}

/// A tag change for `POST …/members/{hash}/tags`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TagChange {
    /// The tag name (Mailchimp treats names case-insensitively).
    pub name: String,
    /// `true` adds the tag (creating it if needed), `false` removes it.
    pub active: bool,
}

impl TagChange {
    /// Adds `name`.
    pub fn add(name: impl Into<String>) -> Self {
        TagChange {
            name: name.into(),
            active: true,
        }
    }

    /// Removes `name`.
    pub fn remove(name: impl Into<String>) -> Self {
        TagChange {
            name: name.into(),
            active: false,
        }
    }
}

/// Query of `GET /lists/{list_id}/members`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListMembers {
    /// Page size, at most 1000 (default 1000).
    pub count: u32,
    /// How many members to skip.
    pub offset: u32,
    /// Only members with this status.
    pub status: Option<Status>,
    /// Only members changed after this ISO 8601 time.
    pub since_last_changed: Option<String>,
}

impl Default for ListMembers {
    fn default() -> Self {
        ListMembers {
            count: crate::MAX_PAGE_SIZE,
            offset: 0,
            status: None,
            since_last_changed: None,
        }
    }
}

/// One page of members.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct MembersPage {
    /// The members of this page.
    #[serde(default, deserialize_with = "null_as_default")]
    pub members: Vec<Member>,
    /// How many members match the query in total.
    #[serde(default)]
    pub total_items: u64,
}

/// An audience (list), narrowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience {
    /// The list id, e.g. `a1b2c3d4e5`.
    pub id: String,
    /// The audience name.
    pub name: String,
    /// `stats.member_count` (subscribed members; Mailchimp caches it for minutes).
    pub member_count: u64,
    /// Whether it is a GDPR audience: its members then carry marketing permissions.
    pub marketing_permissions: bool,
}

/// The wire shape of a list; only `id`, `name`, `stats.member_count` and
/// `marketing_permissions` are read.
#[derive(Deserialize)]
pub(crate) struct WireAudience {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    stats: WireAudienceStats,
    #[serde(default, deserialize_with = "null_as_default")]
    marketing_permissions: bool,
}

#[derive(Deserialize, Default)]
struct WireAudienceStats {
    #[serde(default)]
    member_count: u64,
}

impl From<WireAudience> for Audience {
    fn from(w: WireAudience) -> Self {
        Audience {
            id: w.id,
            name: w.name,
            member_count: w.stats.member_count,
            marketing_permissions: w.marketing_permissions,
        }
    }
}

/// What `POST /lists` needs to create an audience.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewAudience {
    /// The audience name.
    pub name: String,
    /// Company or organisation (the CAN-SPAM footer).
    pub company: String,
    /// Street address.
    pub address1: String,
    /// City.
    pub city: String,
    /// State or region.
    pub state: String,
    /// Postal code.
    pub zip: String,
    /// ISO 3166 two-letter country code.
    pub country: String,
    /// Why people are receiving mail ("You are receiving this because …").
    pub permission_reminder: String,
    /// Default sender name for campaigns.
    pub from_name: String,
    /// Default sender address for campaigns.
    pub from_email: String,
    /// Default language, e.g. `en`.
    pub language: String,
}

#[derive(Serialize)]
pub(crate) struct WireNewAudience<'a> {
    name: &'a str,
    contact: WireContact<'a>,
    permission_reminder: &'a str,
    campaign_defaults: WireCampaignDefaults<'a>,
    email_type_option: bool,
}

#[derive(Serialize)]
struct WireContact<'a> {
    company: &'a str,
    address1: &'a str,
    city: &'a str,
    state: &'a str,
    zip: &'a str,
    country: &'a str,
}

#[derive(Serialize)]
struct WireCampaignDefaults<'a> {
    from_name: &'a str,
    from_email: &'a str,
    subject: &'a str,
    language: &'a str,
}

impl<'a> From<&'a NewAudience> for WireNewAudience<'a> {
    fn from(a: &'a NewAudience) -> Self {
        WireNewAudience {
            name: &a.name,
            contact: WireContact {
                company: &a.company,
                address1: &a.address1,
                city: &a.city,
                state: &a.state,
                zip: &a.zip,
                country: &a.country,
            },
            permission_reminder: &a.permission_reminder,
            campaign_defaults: WireCampaignDefaults {
                from_name: &a.from_name,
                from_email: &a.from_email,
                // Required by the API; chimpsync sends no campaigns, so no default subject.
                subject: "",
                language: &a.language,
            },
            email_type_option: false,
        }
    }
}

/// A merge field of an audience.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MergeField {
    /// Mailchimp's numeric id.
    pub merge_id: u64,
    /// The merge tag, e.g. `FNAME`.
    #[serde(default)]
    pub tag: String,
    /// The display name.
    #[serde(default)]
    pub name: String,
    /// `text`, `number`, `address`, `phone`, `date`, …
    #[serde(default)]
    pub r#type: String,
    /// Whether a value is required for every member.
    #[serde(default)]
    pub required: bool,
}

/// What `POST …/merge-fields` needs.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NewMergeField {
    /// The merge tag (`A-Z0-9_`, at most 10 characters).
    pub tag: String,
    /// The display name.
    pub name: String,
    /// `text`, `number`, `address`, `phone`, `date`, …
    pub r#type: String,
}

/// Which list events a webhook receives.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookEvents {
    /// A contact subscribed.
    #[serde(default)]
    pub subscribe: bool,
    /// A contact unsubscribed (or was archived/deleted).
    #[serde(default)]
    pub unsubscribe: bool,
    /// A contact's profile (merge values) changed.
    #[serde(default)]
    pub profile: bool,
    /// An address was cleaned (bounced).
    #[serde(default)]
    pub cleaned: bool,
    /// A contact's address changed.
    #[serde(default)]
    pub upemail: bool,
    /// A campaign was sent or cancelled.
    #[serde(default)]
    pub campaign: bool,
}

/// Whose changes a webhook hears about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookSources {
    /// The contact themselves (forms, unsubscribe links).
    #[serde(default)]
    pub user: bool,
    /// Someone in the Mailchimp web app.
    #[serde(default)]
    pub admin: bool,
    /// API calls, chimpsync's own included.
    #[serde(default)]
    pub api: bool,
}

/// A webhook registered on an audience.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Mailchimp's id of the webhook.
    pub id: String,
    /// Where Mailchimp sends the events.
    pub url: String,
    /// The events sent.
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: WebhookEvents,
    /// The sources heard.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sources: WebhookSources,
}

/// What `POST /lists/{id}/webhooks` needs. Every flag is sent explicitly.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct NewWebhook {
    /// The URL (Mailchimp checks it answers a GET with 200 before it accepts it).
    pub url: String,
    /// The events to send.
    pub events: WebhookEvents,
    /// The sources to hear.
    pub sources: WebhookSources,
}

#[derive(Deserialize)]
pub(crate) struct WireWebhooks {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) webhooks: Vec<Webhook>,
}

#[derive(Deserialize)]
pub(crate) struct WireMergeFields {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) merge_fields: Vec<MergeField>,
}

#[derive(Deserialize)]
pub(crate) struct WireTags {
    #[serde(default, deserialize_with = "tag_names")]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) total_items: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct WireTagChanges<'a> {
    pub(crate) tags: Vec<WireTagChange<'a>>,
    pub(crate) is_syncing: bool,
}

#[derive(Serialize)]
pub(crate) struct WireTagChange<'a> {
    pub(crate) name: &'a str,
    pub(crate) status: &'static str,
}

#[derive(Serialize)]
pub(crate) struct WireBatch<'a> {
    pub(crate) members: &'a [BatchMember],
    pub(crate) update_existing: bool,
    pub(crate) sync_tags: bool,
}

#[derive(Serialize)]
pub(crate) struct WireStatus {
    pub(crate) status: Status,
}

#[derive(Deserialize)]
pub(crate) struct WirePing {
    #[allow(dead_code)] // read only to prove the body is the documented object
    #[serde(default)]
    pub(crate) health_status: Option<String>,
}

pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn empty_as_none<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// `tags: [{id, name}, …]` → names.
fn tag_names<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Tag {
        name: String,
    }
    let tags: Option<Vec<Tag>> = Option::deserialize(d)?;
    Ok(tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batch_members_omit_unset_fields() {
        let m = BatchMember {
            email_address: "a@example.com".into(),
            status_if_new: Some(Status::Pending),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"email_address": "a@example.com", "status_if_new": "pending"})
        );
    }

    #[test]
    fn interests_and_permissions_are_sent_only_when_given() {
        let plain = MemberUpsert {
            status_if_new: Some(Status::Subscribed),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!({"status_if_new": "subscribed"})
        );
        let with = MemberUpsert {
            interests: [("9143cf3bd1".to_owned(), true)].into(),
            marketing_permissions: vec![MarketingPermissionChange {
                marketing_permission_id: "caa8dcb11e".into(),
                enabled: false,
            }],
            ..plain
        };
        assert_eq!(
            serde_json::to_value(&with).unwrap(),
            json!({
                "status_if_new": "subscribed", "interests": {"9143cf3bd1": true},
                "marketing_permissions": [{"marketing_permission_id": "caa8dcb11e", "enabled": false}]
            })
        );
    }

    #[test]
    fn members_read_interests_and_permissions_and_default_them_to_empty() {
        let m: Member = serde_json::from_value(json!({
            "id": "x", "email_address": "a@example.com", "status": "subscribed",
            "interests": {"9143cf3bd1": true, "1111111111": false},
            "marketing_permissions": [{"marketing_permission_id": "caa8dcb11e", "text": "Email", "enabled": true}]
        }))
        .unwrap();
        assert!(m.interests["9143cf3bd1"]);
        assert_eq!(m.interests.len(), 2);
        assert_eq!(
            m.marketing_permissions,
            [MemberPermission {
                id: "caa8dcb11e".into(),
                text: "Email".into(),
                enabled: true
            }]
        );
        let bare: Member = serde_json::from_value(json!({
            "id": "x", "email_address": "a@example.com", "status": "subscribed", "interests": null
        }))
        .unwrap();
        assert!(bare.interests.is_empty() && bare.marketing_permissions.is_empty());
    }

    #[test]
    fn members_read_tag_names_and_treat_empty_texts_as_unset() {
        let m: Member = serde_json::from_value(json!({
            "id": "x", "email_address": "a@example.com", "status": "unsubscribed",
            "merge_fields": {"FNAME": "A", "LNAME": ""},
            "tags": [{"id": 1, "name": "vip"}, {"id": 2, "name": "b2b"}],
            "last_changed": "", "unsubscribe_reason": "N/A (Unsubscribed by admin)",
            "unknown": {"nested": true}
        }))
        .unwrap();
        assert_eq!(m.tags, ["vip", "b2b"]);
        assert_eq!(m.last_changed, None);
        assert_eq!(
            m.unsubscribe_reason.as_deref(),
            Some("N/A (Unsubscribed by admin)")
        );
        assert_eq!(m.merge_fields["LNAME"], "");
    }

    #[test]
    fn batch_errors_are_classified_by_code_and_text() {
        let e = |code: &str, text: &str, field: Option<&str>| BatchError {
            email_address: "a@example.com".into(),
            error: text.into(),
            error_code: code.into(),
            field: field.map(Into::into),
            field_message: None,
        };
        let cases = [
            (e("ERROR_CONTACT_EXISTS", "a@example.com is already a list member, do you want to update? please provide update_existing:true in the request body", None), ProblemKind::MemberExists),
            (e("ERROR_GENERIC", "a@example.com is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.", None), ProblemKind::ComplianceState),
            (e("ERROR_GENERIC", "a@example.com was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.", None), ProblemKind::ForgottenEmail),
            (e("ERROR_GENERIC", "a@example.com looks fake or invalid, please enter a real email address.", None), ProblemKind::InvalidEmail),
            (e("ERROR_GENERIC", "Please provide a valid email address.", None), ProblemKind::InvalidEmail),
            (e("ERROR_GENERIC", "Your merge fields were invalid.", Some("LTV")), ProblemKind::MergeFieldsInvalid),
            (e("ERROR_GENERIC", "Something odd", Some("FNAME")), ProblemKind::MergeFieldsInvalid),
            (e("ERROR_GENERIC", "Something odd", None), ProblemKind::Other),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind(), kind, "{}", err.error);
        }
    }

    #[test]
    fn batch_errors_treat_empty_field_as_absent() {
        let e: BatchError = serde_json::from_value(json!({
            "email_address": "a@example.com", "error": "x", "error_code": "ERROR_GENERIC",
            "field": "", "field_message": ""
        }))
        .unwrap();
        assert_eq!(e.field, None);
        assert_eq!(e.kind(), ProblemKind::Other);
    }

    #[test]
    fn status_spellings_round_trip() {
        for s in [
            Status::Subscribed,
            Status::Unsubscribed,
            Status::Cleaned,
            Status::Pending,
            Status::Transactional,
            Status::Archived,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(s.to_string(), s.as_str());
        }
    }
}
