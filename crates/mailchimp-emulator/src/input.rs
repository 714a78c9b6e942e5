//! The checks of request bodies: each parser refuses a body the way Mailchimp's schema validator
//! does and hands the endpoint typed values, so an endpoint only checks what depends on the state.

use serde_json::{Map, Value};

use crate::model::{default_options, Events, MergeField, Sources, Status, Webhook, CATEGORY_TYPES};
use crate::problem::{json_type_name, wrong_type, ApiError, FieldError};

/// At most this many members per batch subscribe call.
const BATCH_LIMIT: usize = 500;

/// The merge field types Mailchimp knows.
const MERGE_FIELD_TYPES: [&str; 11] = [
    "text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown",
    "birthday", "zip",
];

fn want_object<'a>(field: &str, v: &'a Value) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object().ok_or_else(|| wrong_type(field, "object", v))
}

fn want_array<'a>(field: &str, v: &'a Value) -> Result<&'a Vec<Value>, ApiError> {
    v.as_array().ok_or_else(|| wrong_type(field, "array", v))
}

fn want_str<'a>(field: &str, v: &'a Value) -> Result<&'a str, ApiError> {
    v.as_str().ok_or_else(|| wrong_type(field, "string", v))
}

fn want_bool(field: &str, v: &Value) -> Result<bool, ApiError> {
    v.as_bool().ok_or_else(|| wrong_type(field, "boolean", v))
}

fn want_status(field: &str, v: &Value, allowed: &[Status]) -> Result<Status, ApiError> {
    let s = want_str(field, v)?;
    match Status::parse(s) {
        Some(st) if allowed.contains(&st) => Ok(st),
        _ => {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            Err(ApiError::invalid_field(
                field,
                format!("Value must be one of: {}", names.join(", ")),
            ))
        }
    }
}

/// The body as an object.
fn body_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    want_object("", body)
}

/// The property, unless it is absent or `null`.
fn present<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

/// The property that must be present; `path` names it in the refusal.
fn required<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<&'a Value, ApiError> {
    present(obj, name).ok_or_else(|| ApiError::required(path))
}

/// A boolean property that takes `default` when absent.
fn optional_bool(obj: &Map<String, Value>, name: &str, default: bool) -> Result<bool, ApiError> {
    present(obj, name).map_or(Ok(default), |v| want_bool(name, v))
}

/// The member fields of a write body, type-checked.
#[derive(Default)]
pub(crate) struct MemberInput<'a> {
    pub email_address: Option<&'a str>,
    pub status: Option<Status>,
    pub status_if_new: Option<Status>,
    pub merge_fields: Option<&'a Map<String, Value>>,
    pub interests: Option<&'a Map<String, Value>>,
    /// `(marketing_permission_id, enabled)` pairs, in the order given.
    pub marketing_permissions: Option<Vec<(&'a str, bool)>>,
    pub email_type: Option<&'a str>,
    pub language: Option<&'a str>,
    pub vip: Option<bool>,
    pub location: Option<(f64, f64)>,
    pub ip_signup: Option<&'a str>,
    pub ip_opt: Option<&'a str>,
    pub timestamp_signup: Option<&'a str>,
    pub timestamp_opt: Option<&'a str>,
    pub tags: Option<Vec<&'a str>>,
}

impl<'a> MemberInput<'a> {
    /// A member body (POST, PUT, PATCH, or a batch item); `status` must be one of `statuses`.
    pub(crate) fn parse(body: &'a Value, statuses: &[Status]) -> Result<Self, ApiError> {
        let obj = body_object(body)?;
        let mut input = MemberInput::default();
        for (key, v) in obj {
            let k = key.as_str();
            match k {
                "email_address" => input.email_address = Some(want_str(k, v)?),
                "status" => input.status = Some(want_status(k, v, statuses)?),
                "status_if_new" => input.status_if_new = Some(want_status(k, v, Status::WRITABLE)?),
                "merge_fields" => input.merge_fields = Some(want_object(k, v)?),
                "interests" => {
                    let map = want_object(k, v)?;
                    for (id, flag) in map {
                        want_bool(&format!("interests.{id}"), flag)?;
                    }
                    input.interests = Some(map);
                }
                "marketing_permissions" => {
                    let arr = want_array(k, v)?;
                    let mut changes = Vec::with_capacity(arr.len());
                    for (i, item) in arr.iter().enumerate() {
                        let item = want_object(&format!("{k}.{i}"), item)?;
                        let id_path = format!("{k}.{i}.marketing_permission_id");
                        let id = want_str(
                            &id_path,
                            required(item, "marketing_permission_id", &id_path)?,
                        )?;
                        let enabled = optional_bool(item, "enabled", false).map_err(|_| {
                            wrong_type(&format!("{k}.{i}.enabled"), "boolean", &item["enabled"])
                        })?;
                        changes.push((id, enabled));
                    }
                    input.marketing_permissions = Some(changes);
                }
                "email_type" => {
                    let t = want_str(k, v)?;
                    if t != "html" && t != "text" {
                        return Err(ApiError::invalid_field(
                            k,
                            "Value must be one of: html, text",
                        ));
                    }
                    input.email_type = Some(t);
                }
                "language" => input.language = Some(want_str(k, v)?),
                "vip" => input.vip = Some(want_bool(k, v)?),
                "location" => {
                    let map = want_object(k, v)?;
                    let coord = |name: &str| -> Result<f64, ApiError> {
                        match map.get(name) {
                            None => Ok(0.0),
                            Some(n) => n.as_f64().ok_or_else(|| {
                                wrong_type(&format!("location.{name}"), "number", n)
                            }),
                        }
                    };
                    input.location = Some((coord("latitude")?, coord("longitude")?));
                }
                "ip_signup" => input.ip_signup = Some(want_str(k, v)?),
                "ip_opt" => input.ip_opt = Some(want_str(k, v)?),
                "timestamp_signup" => input.timestamp_signup = Some(want_str(k, v)?),
                "timestamp_opt" => input.timestamp_opt = Some(want_str(k, v)?),
                "tags" => {
                    let arr = want_array(k, v)?;
                    let mut tags = Vec::with_capacity(arr.len());
                    for (i, t) in arr.iter().enumerate() {
                        tags.push(want_str(&format!("tags.{i}"), t)?);
                    }
                    input.tags = Some(tags);
                }
                // Mailchimp ignores properties it does not use here.
                _ => {}
            }
        }
        Ok(input)
    }
}

/// The body of `POST /lists` or `PATCH /lists/{id}`, checked; every problem is listed at once.
/// The optional settings are `None` when absent: a create applies the defaults, a PATCH keeps
/// what the audience has.
pub(crate) struct ListBody<'a> {
    pub name: &'a str,
    pub permission_reminder: &'a str,
    pub contact: Option<&'a Map<String, Value>>,
    pub campaign_defaults: Value,
    pub email_type_option: bool,
    pub use_archive_bar: Option<bool>,
    pub double_optin: Option<bool>,
    pub marketing_permissions: Option<bool>,
    pub notify_on_subscribe: Option<&'a str>,
    pub notify_on_unsubscribe: Option<&'a str>,
}

impl<'a> ListBody<'a> {
    /// A `POST /lists` body.
    pub(crate) fn parse(body: &'a Value) -> Result<Self, ApiError> {
        Self::parse_with(body, &[])
    }

    /// A `PATCH /lists/{id}` body: the spec requires the same fields as a create, and its
    /// contact also needs `state` and `zip`.
    pub(crate) fn parse_patch(body: &'a Value) -> Result<Self, ApiError> {
        Self::parse_with(body, &["state", "zip"])
    }

    fn parse_with(body: &'a Value, more_contact: &[&str]) -> Result<Self, ApiError> {
        let obj = body_object(body)?;
        let mut errors = Vec::new();
        let mut need = |parent: Option<&str>, name: &str, kind: &str| {
            let container = match parent {
                None => Some(body),
                Some(p) => obj.get(p),
            };
            let field = match parent {
                None => name.to_owned(),
                Some(p) => format!("{p}.{name}"),
            };
            match container.and_then(|c| c.get(name)) {
                Some(Value::String(_)) if kind == "string" => {}
                Some(Value::Bool(_)) if kind == "boolean" => {}
                None | Some(Value::Null) => errors.push(FieldError::new(
                    field,
                    format!("Required fields were not provided: {name}"),
                )),
                Some(other) => errors.push(FieldError::new(
                    field,
                    format!(
                        "Schema describes {kind}, {} found instead",
                        json_type_name(other)
                    ),
                )),
            }
        };
        need(None, "name", "string");
        need(None, "permission_reminder", "string");
        for f in ["company", "address1", "city", "country"]
            .iter()
            .chain(more_contact)
        {
            need(Some("contact"), f, "string");
        }
        for f in ["from_name", "from_email", "subject", "language"] {
            need(Some("campaign_defaults"), f, "string");
        }
        need(None, "email_type_option", "boolean");
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
        let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
        let flag = |k: &str| present(obj, k).map(|v| want_bool(k, v)).transpose();
        let opt_text = |k: &str| present(obj, k).map(|v| want_str(k, v)).transpose();
        Ok(ListBody {
            name: text("name"),
            permission_reminder: text("permission_reminder"),
            contact: obj.get("contact").and_then(Value::as_object),
            campaign_defaults: obj.get("campaign_defaults").cloned().unwrap_or_default(),
            email_type_option: obj
                .get("email_type_option")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            use_archive_bar: flag("use_archive_bar")?,
            double_optin: flag("double_optin")?,
            marketing_permissions: flag("marketing_permissions")?,
            notify_on_subscribe: opt_text("notify_on_subscribe")?,
            notify_on_unsubscribe: opt_text("notify_on_unsubscribe")?,
        })
    }
}

/// The body of `POST /lists/{id}/merge-fields`, checked against the audience's `existing`
/// fields, as the field it creates with id `merge_id`.
pub(crate) fn new_merge_field(
    body: &Value,
    merge_id: u32,
    existing: &[MergeField],
) -> Result<MergeField, ApiError> {
    let obj = body_object(body)?;
    let name = want_str("name", required(obj, "name", "name")?)?;
    let kind = want_str("type", required(obj, "type", "type")?)?;
    if !MERGE_FIELD_TYPES.contains(&kind) {
        return Err(ApiError::invalid_field(
            "type",
            format!("Value must be one of: {}", MERGE_FIELD_TYPES.join(", ")),
        ));
    }
    let tag = match present(obj, "tag") {
        None => format!("MMERGE{merge_id}"),
        Some(v) => want_str("tag", v)?.trim().to_ascii_uppercase(),
    };
    check_tag(&tag)?;
    if existing.iter().any(|f| f.tag == tag) {
        return Err(tag_taken(&tag));
    }
    let text = |k: &str| -> Result<String, ApiError> {
        present(obj, k).map_or(Ok(String::new()), |v| want_str(k, v).map(str::to_owned))
    };
    let mut options = default_options(kind);
    if let Some(given) = obj.get("options") {
        let given = want_object("options", given)?;
        if let Some(dst) = options.as_object_mut() {
            for (k, v) in given {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
    let display_order = match present(obj, "display_order") {
        None => merge_id + 1,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| wrong_type("display_order", "integer", v))?,
    };
    Ok(MergeField {
        merge_id,
        tag,
        name: name.to_owned(),
        kind: kind.to_owned(),
        required: optional_bool(obj, "required", false)?,
        default_value: text("default_value")?,
        public: optional_bool(obj, "public", false)?,
        display_order,
        options,
        help_text: text("help_text")?,
    })
}

/// The body of `PATCH /lists/{id}/merge-fields/{merge_id}` applied to `field` (a copy), checked
/// against the audience's `others`: `name` is required (the spec's schema); the type cannot
/// change (the schema has no `type`).
pub(crate) fn patch_merge_field(
    body: &Value,
    mut field: MergeField,
    others: &[MergeField],
) -> Result<MergeField, ApiError> {
    let obj = body_object(body)?;
    field.name = want_str("name", required(obj, "name", "name")?)?.to_owned();
    if let Some(v) = present(obj, "tag") {
        let tag = want_str("tag", v)?.trim().to_ascii_uppercase();
        check_tag(&tag)?;
        if others
            .iter()
            .any(|f| f.merge_id != field.merge_id && f.tag == tag)
        {
            return Err(tag_taken(&tag));
        }
        field.tag = tag;
    }
    field.required = optional_bool(obj, "required", field.required)?;
    field.public = optional_bool(obj, "public", field.public)?;
    for (name, dst) in [
        ("default_value", &mut field.default_value),
        ("help_text", &mut field.help_text),
    ] {
        if let Some(v) = present(obj, name) {
            *dst = want_str(name, v)?.to_owned();
        }
    }
    if let Some(order) = optional_int(obj, "display_order")? {
        field.display_order = u32::try_from(order)
            .map_err(|_| wrong_type("display_order", "integer", &obj["display_order"]))?;
    }
    if let Some(given) = present(obj, "options") {
        let given = want_object("options", given)?;
        if let Some(dst) = field.options.as_object_mut() {
            for (k, v) in given {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(field)
}

fn check_tag(tag: &str) -> Result<(), ApiError> {
    if tag.is_empty()
        || tag.len() > 10
        || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError::invalid_field(
            "tag",
            "A merge tag may only contain A-Z, 0-9 and _ and be at most 10 characters long",
        ));
    }
    Ok(())
}

fn tag_taken(tag: &str) -> ApiError {
    ApiError::invalid_detail(format!(
        "A Merge Field with the tag \"{tag}\" already exists for this list."
    ))
}

/// The body of `POST /lists/{id}/members/{hash}/tags`: each tag's name and whether it becomes
/// active (`true`) or inactive.
pub(crate) fn tag_changes(body: &Value) -> Result<Vec<(&str, bool)>, ApiError> {
    let obj = body_object(body)?;
    let tags = want_array("tags", required(obj, "tags", "tags")?)?;
    if let Some(v) = obj.get("is_syncing") {
        want_bool("is_syncing", v)?;
    }
    let mut changes = Vec::with_capacity(tags.len());
    for (i, t) in tags.iter().enumerate() {
        let item = want_object(&format!("tags.{i}"), t)?;
        let name_path = format!("tags.{i}.name");
        let name = want_str(&name_path, required(item, "name", &name_path)?)?;
        let status_path = format!("tags.{i}.status");
        let active = match want_str(&status_path, required(item, "status", &status_path)?)? {
            "active" => true,
            "inactive" => false,
            _ => {
                return Err(ApiError::invalid_field(
                    status_path,
                    "Value must be one of: active, inactive",
                ))
            }
        };
        changes.push((name, active));
    }
    Ok(changes)
}

/// The body of a batch subscribe (`POST /lists/{id}`); the items are checked one by one later.
pub(crate) struct BatchBody<'a> {
    pub members: &'a [Value],
    pub update_existing: bool,
    pub sync_tags: bool,
}

impl<'a> BatchBody<'a> {
    pub(crate) fn parse(body: &'a Value) -> Result<Self, ApiError> {
        let obj = body_object(body)?;
        let members = want_array("members", required(obj, "members", "members")?)?;
        if members.len() > BATCH_LIMIT {
            return Err(ApiError::invalid_detail(format!(
                "You can only add or update at most {BATCH_LIMIT} members in a single batch request; this request has {}.",
                members.len()
            )));
        }
        Ok(BatchBody {
            members,
            update_existing: optional_bool(obj, "update_existing", false)?,
            sync_tags: optional_bool(obj, "sync_tags", false)?,
        })
    }
}

/// The body of `POST /lists/{id}/webhooks`, checked. Absent flags take the documented
/// defaults: every event on, sources user and admin on, api off.
pub(crate) struct NewWebhook {
    pub url: String,
    pub events: Events,
    pub sources: Sources,
}

/// A webhook URL: http(s) with a host.
fn check_webhook_url(url: &str) -> Result<(), ApiError> {
    let parsed = reqwest::Url::parse(url).ok();
    if !parsed
        .as_ref()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
    {
        return Err(ApiError::invalid_field(
            "url",
            "This value should be a valid URL.",
        ));
    }
    Ok(())
}

impl NewWebhook {
    /// A `POST` body; absent flags take the defaults.
    pub(crate) fn parse(body: &Value) -> Result<NewWebhook, ApiError> {
        let url = want_str("url", required(body_object(body)?, "url", "url")?)?;
        let defaults = NewWebhook {
            url: url.trim().to_owned(),
            events: Events {
                subscribe: true,
                unsubscribe: true,
                profile: true,
                cleaned: true,
                upemail: true,
                campaign: true,
            },
            sources: Sources {
                user: true,
                admin: true,
                api: false,
            },
        };
        Self::parse_over(body, defaults)
    }

    /// A `PATCH` body over the webhook as it is: only what the body gives changes.
    pub(crate) fn parse_patch(body: &Value, current: &Webhook) -> Result<NewWebhook, ApiError> {
        let url = match present(body_object(body)?, "url") {
            Some(v) => want_str("url", v)?.trim().to_owned(),
            None => current.url.clone(),
        };
        let current = NewWebhook {
            url,
            events: current.events,
            sources: current.sources,
        };
        Self::parse_over(body, current)
    }

    fn parse_over(body: &Value, base: NewWebhook) -> Result<NewWebhook, ApiError> {
        let obj = body_object(body)?;
        let url = base.url;
        check_webhook_url(&url)?;
        let flags = |name: &str| present(obj, name).map(|v| want_object(name, v)).transpose();
        let flag = |map: Option<&Map<String, Value>>,
                    group: &str,
                    name: &str,
                    default: bool|
         -> Result<bool, ApiError> {
            match map.and_then(|m| present(m, name)) {
                None => Ok(default),
                Some(v) => want_bool(&format!("{group}.{name}"), v),
            }
        };
        let ev = flags("events")?;
        let src = flags("sources")?;
        let (e, s) = (base.events, base.sources);
        Ok(NewWebhook {
            url,
            events: Events {
                subscribe: flag(ev, "events", "subscribe", e.subscribe)?,
                unsubscribe: flag(ev, "events", "unsubscribe", e.unsubscribe)?,
                profile: flag(ev, "events", "profile", e.profile)?,
                cleaned: flag(ev, "events", "cleaned", e.cleaned)?,
                upemail: flag(ev, "events", "upemail", e.upemail)?,
                campaign: flag(ev, "events", "campaign", e.campaign)?,
            },
            sources: Sources {
                user: flag(src, "sources", "user", s.user)?,
                admin: flag(src, "sources", "admin", s.admin)?,
                api: flag(src, "sources", "api", s.api)?,
            },
        })
    }
}

/// An integer property such as `display_order`, if given.
fn optional_int(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    present(obj, name)
        .map(|v| v.as_i64().ok_or_else(|| wrong_type(name, "integer", v)))
        .transpose()
}

/// The body of `POST` or `PATCH /lists/{id}/interest-categories[/{id}]`: `title` and `type` are
/// required for both (the spec's schemas).
pub(crate) struct CategoryBody<'a> {
    pub title: &'a str,
    pub kind: &'a str,
    pub display_order: Option<i64>,
}

impl<'a> CategoryBody<'a> {
    pub(crate) fn parse(body: &'a Value) -> Result<Self, ApiError> {
        let obj = body_object(body)?;
        let title = want_str("title", required(obj, "title", "title")?)?.trim();
        let kind = want_str("type", required(obj, "type", "type")?)?;
        if !CATEGORY_TYPES.contains(&kind) {
            return Err(ApiError::invalid_field(
                "type",
                format!("Value must be one of: {}", CATEGORY_TYPES.join(", ")),
            ));
        }
        if title.is_empty() {
            return Err(ApiError::invalid_field(
                "title",
                "This value should not be blank.",
            ));
        }
        Ok(CategoryBody {
            title,
            kind,
            display_order: optional_int(obj, "display_order")?,
        })
    }
}

/// The body of `POST` or `PATCH …/interests[/{id}]`: `name` is required for both.
pub(crate) struct InterestBody<'a> {
    pub name: &'a str,
    pub display_order: Option<i64>,
}

impl<'a> InterestBody<'a> {
    pub(crate) fn parse(body: &'a Value) -> Result<Self, ApiError> {
        let obj = body_object(body)?;
        let name = want_str("name", required(obj, "name", "name")?)?.trim();
        if name.is_empty() {
            return Err(ApiError::invalid_field(
                "name",
                "This value should not be blank.",
            ));
        }
        Ok(InterestBody {
            name,
            display_order: optional_int(obj, "display_order")?,
        })
    }
}
