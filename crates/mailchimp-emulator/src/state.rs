//! The audience state and every Mailchimp operation on it, independent of HTTP.
//!
//! Each operation validates completely before it changes anything, so a refused request leaves
//! the state as it was. Operations answer with the serialized JSON body (serialized while the
//! caller holds the lock, straight from the records, without an intermediate `Value` tree).

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::email::{is_fake, is_valid, subscriber_hash};
use crate::model::Member;
use crate::model::{
    default_options, Audience, MemberJson, MemberTag, MergeField, Now, Status, TagDef,
};
use crate::problem::{wrong_type, ApiError, FieldError};
use crate::webhooks::{self, Before, Delivery, Event, NewWebhook, Source, Webhook};

/// At most this many members per batch subscribe call.
pub(crate) const BATCH_LIMIT: usize = 500;
/// Largest page (`count`) Mailchimp serves.
pub(crate) const MAX_PAGE: usize = 1000;
/// Longest merge value the emulator accepts (characters).
pub(crate) const MAX_MERGE_TEXT: usize = 255;

/// What a successful operation answers.
#[derive(Debug)]
pub(crate) enum Reply {
    /// `200` (or the given status) with a JSON body.
    Json(u16, Vec<u8>),
    /// `204` with an empty body.
    NoContent,
}

fn json_reply<T: Serialize + ?Sized>(v: &T) -> Reply {
    json_reply_sized(v, 128)
}

/// [`json_reply`] into a buffer of `capacity` bytes to start with, for an answer whose size is
/// known roughly, so writing it does not grow and copy the buffer again and again.
fn json_reply_sized<T: Serialize + ?Sized>(v: &T, capacity: usize) -> Reply {
    let mut body = Vec::with_capacity(capacity);
    if serde_json::to_writer(&mut body, v).is_err() {
        body.clear();
    }
    Reply::Json(200, body)
}

/// Per-request facts the operations need.
pub(crate) struct Ctx<'a> {
    pub now: &'a Now,
    /// `http://host/3.0`, for `_links`.
    pub base: &'a str,
    pub peer_ip: &'a str,
    pub query: &'a Query,
}

/// Decoded query string.
#[derive(Debug, Default)]
pub(crate) struct Query(pub Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Query(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }

    fn page(&self) -> Result<(usize, usize), ApiError> {
        let count = match self.get("count") {
            None => 10,
            Some(c) => c.parse::<usize>().map_err(|_| {
                ApiError::invalid_field("count", "Value must be a non-negative integer")
            })?,
        };
        if count > MAX_PAGE {
            return Err(ApiError::invalid_field(
                "count",
                format!("Value must be less than or equal to {MAX_PAGE}"),
            ));
        }
        let offset = match self.get("offset") {
            None => 0,
            Some(o) => o.parse::<usize>().map_err(|_| {
                ApiError::invalid_field("offset", "Value must be a non-negative integer")
            })?,
        };
        Ok((count, offset))
    }
}

/// Everything the emulator knows about its audiences.
pub(crate) struct State {
    pub audiences: HashMap<String, Audience>,
    /// Creation order of the audiences (`GET /lists`).
    audience_order: Vec<String>,
    rng: StdRng,
    /// Member-level changes applied so far (see `Stats::member_writes`).
    pub member_writes: u64,
    /// Of those, the ones that left the member as it was (see `Stats::unchanged_member_writes`).
    pub unchanged_member_writes: u64,
    /// Webhook events recorded by operations, not yet turned into deliveries.
    pub outbox: Vec<Event>,
}

/// What a member holds, without the bookkeeping a write always moves (`last_changed`, opt-in
/// stamps): a write after which the member's content equals what it was changed nothing (a
/// re-sent state, see `Stats::unchanged_member_writes`).
#[derive(PartialEq)]
struct Content {
    email: String,
    status: Status,
    unsubscribed_by_contact: bool,
    bounced: bool,
    merge: BTreeMap<String, Value>,
    interests: Map<String, Value>,
    email_type: String,
    language: String,
    vip: bool,
    location: (f64, f64),
    tags: Vec<String>,
}

impl Content {
    fn of(m: &Member) -> Content {
        Content {
            email: m.email.clone(),
            status: m.status,
            unsubscribed_by_contact: m.unsubscribed_by_contact,
            bounced: m.bounced,
            merge: m.merge.clone(),
            interests: m.interests.clone(),
            email_type: m.email_type.clone(),
            language: m.language.clone(),
            vip: m.vip,
            location: (m.latitude, m.longitude),
            tags: m.tags.iter().map(|t| t.name.to_lowercase()).collect(),
        }
    }
}

/// The member fields of a write body, type-checked.
#[derive(Default)]
struct MemberInput<'a> {
    email_address: Option<&'a str>,
    status: Option<Status>,
    status_if_new: Option<Status>,
    merge_fields: Option<&'a Map<String, Value>>,
    interests: Option<&'a Map<String, Value>>,
    email_type: Option<&'a str>,
    language: Option<&'a str>,
    vip: Option<bool>,
    location: Option<(f64, f64)>,
    ip_signup: Option<&'a str>,
    ip_opt: Option<&'a str>,
    timestamp_signup: Option<&'a str>,
    timestamp_opt: Option<&'a str>,
    tags: Option<Vec<&'a str>>,
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

fn parse_member_input<'a>(
    body: &'a Value,
    statuses: &[Status],
) -> Result<MemberInput<'a>, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(wrong_type("", "object", body));
    };
    let mut input = MemberInput::default();
    for (key, v) in obj {
        let k = key.as_str();
        match k {
            "email_address" => input.email_address = Some(want_str(k, v)?),
            "status" => input.status = Some(want_status(k, v, statuses)?),
            "status_if_new" => input.status_if_new = Some(want_status(k, v, Status::WRITABLE)?),
            "merge_fields" => {
                input.merge_fields = Some(v.as_object().ok_or_else(|| wrong_type(k, "object", v))?)
            }
            "interests" => {
                let map = v.as_object().ok_or_else(|| wrong_type(k, "object", v))?;
                for (id, flag) in map {
                    want_bool(&format!("interests.{id}"), flag)?;
                }
                input.interests = Some(map);
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
                let map = v.as_object().ok_or_else(|| wrong_type(k, "object", v))?;
                let coord = |name: &str| -> Result<f64, ApiError> {
                    match map.get(name) {
                        None => Ok(0.0),
                        Some(n) => n
                            .as_f64()
                            .ok_or_else(|| wrong_type(&format!("location.{name}"), "number", n)),
                    }
                };
                input.location = Some((coord("latitude")?, coord("longitude")?));
            }
            "ip_signup" => input.ip_signup = Some(want_str(k, v)?),
            "ip_opt" => input.ip_opt = Some(want_str(k, v)?),
            "timestamp_signup" => input.timestamp_signup = Some(want_str(k, v)?),
            "timestamp_opt" => input.timestamp_opt = Some(want_str(k, v)?),
            "tags" => {
                let arr = v.as_array().ok_or_else(|| wrong_type(k, "array", v))?;
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

/// Normalizes one merge value for its field: `Ok(None)` clears the field.
fn normalize_merge(field: &MergeField, v: &Value) -> Result<Option<Value>, String> {
    let as_text = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(format!(
                "Schema describes string, {} found instead",
                crate::problem::json_type_name(other)
            )),
        }
    };
    match v {
        Value::Null => return Ok(None),
        Value::Bool(_) => return Err("Schema describes string, boolean found instead".to_owned()),
        _ => {}
    }
    match field.kind.as_str() {
        "number" => match v {
            Value::Number(_) => Ok(Some(v.clone())),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => {
                let s = s.trim();
                if let Ok(i) = s.parse::<i64>() {
                    Ok(Some(Value::from(i)))
                } else {
                    match s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                        Some(n) => Ok(Some(Value::Number(n))),
                        None => Err("Please enter a number".to_owned()),
                    }
                }
            }
            _ => Err("Please enter a number".to_owned()),
        },
        "address" => match v {
            Value::String(s) if s.trim().is_empty() => Ok(None),
            // Mailchimp also takes an address as one string with parts separated by two spaces.
            Value::String(s) if s.chars().count() <= MAX_MERGE_TEXT => Ok(Some(v.clone())),
            Value::Object(o) => {
                let part = |name: &str| -> Result<String, String> {
                    match o.get(name) {
                        None | Some(Value::Null) => Ok(String::new()),
                        Some(p) => as_text(p),
                    }
                };
                let mut addr = Map::new();
                for name in ["addr1", "addr2", "city", "state", "zip", "country"] {
                    let value = part(name)?;
                    let needed = matches!(name, "addr1" | "city" | "state" | "zip");
                    if needed && value.trim().is_empty() {
                        return Err("Please enter a complete address".to_owned());
                    }
                    addr.insert(name.to_owned(), Value::String(value));
                }
                Ok(Some(Value::Object(addr)))
            }
            _ => Err("Please enter a complete address".to_owned()),
        },
        _ => {
            let text = as_text(v)?;
            if text.is_empty() {
                return Ok(None);
            }
            if text.chars().count() > MAX_MERGE_TEXT {
                return Err(format!(
                    "Value must be {MAX_MERGE_TEXT} characters or fewer"
                ));
            }
            if let Some(choices) = field.choices() {
                if !choices.iter().any(|c| c.as_str() == Some(text.as_str())) {
                    return Err("Please choose one of the available options".to_owned());
                }
            }
            Ok(Some(Value::String(text)))
        }
    }
}

type MergeChanges = Vec<(String, Option<Value>)>;

/// Checks the merge values of a write; on create every required field must end up set.
fn validate_merge(
    fields: &[MergeField],
    input: Option<&Map<String, Value>>,
    current: Option<&BTreeMap<String, Value>>,
    creating: bool,
    skip_validation: bool,
) -> Result<MergeChanges, ApiError> {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    if let Some(input) = input {
        for (key, v) in input {
            // Unknown tags are dropped silently, like Mailchimp does.
            let Some(field) = fields.iter().find(|f| f.tag == *key) else {
                continue;
            };
            match normalize_merge(field, v) {
                Ok(None) if field.required && !skip_validation => {
                    errors.push(FieldError::new(&field.tag, "Please enter a value"))
                }
                Ok(value) => changes.push((field.tag.clone(), value)),
                Err(message) => errors.push(FieldError::new(&field.tag, message)),
            }
        }
    }
    if creating && !skip_validation {
        for field in fields.iter().filter(|f| f.required) {
            let provided = input.is_some_and(|i| i.contains_key(&field.tag));
            let present = current.is_some_and(|c| c.contains_key(&field.tag));
            if !provided && !present {
                errors.push(FieldError::new(&field.tag, "Please enter a value"));
            }
        }
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(ApiError::merge_fields_invalid(errors))
    }
}

/// A new address must be well formed, not fake, and not permanently deleted; answers its hash.
fn check_new_address(aud: &Audience, email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    if !is_valid(email) {
        return Err(ApiError::invalid_email());
    }
    if is_fake(email) {
        return Err(ApiError::fake_email(email));
    }
    let hash = subscriber_hash(email);
    if aud.forgotten.contains(&hash) {
        return Err(ApiError::forgotten(email));
    }
    Ok(hash)
}

/// Subscribing a contact in a compliance state is refused (pending is the way back).
fn check_status_change(m: &Member, to: Status) -> Result<(), ApiError> {
    if to == Status::Subscribed && m.status != Status::Subscribed && m.in_compliance_state() {
        return Err(ApiError::compliance_state(&m.email));
    }
    Ok(())
}

fn apply_status(m: &mut Member, to: Status, ctx: &Ctx<'_>) {
    if m.status == to {
        return;
    }
    if to == Status::Subscribed {
        m.timestamp_opt.clone_from(&ctx.now.text);
        ctx.peer_ip.clone_into(&mut m.ip_opt);
    }
    m.status = to;
}

fn apply_fields(m: &mut Member, input: &MemberInput<'_>, merges: MergeChanges) {
    for (tag, value) in merges {
        match value {
            Some(v) => {
                m.merge.insert(tag, v);
            }
            None => {
                m.merge.remove(&tag);
            }
        }
    }
    if let Some(t) = input.email_type {
        t.clone_into(&mut m.email_type);
    }
    if let Some(l) = input.language {
        l.clone_into(&mut m.language);
    }
    if let Some(v) = input.vip {
        m.vip = v;
    }
    if let Some((lat, lon)) = input.location {
        m.latitude = lat;
        m.longitude = lon;
    }
    if let Some(i) = input.interests {
        for (k, v) in i {
            m.interests.insert(k.clone(), v.clone());
        }
    }
    for (src, dst) in [
        (input.ip_signup, &mut m.ip_signup),
        (input.ip_opt, &mut m.ip_opt),
        (input.timestamp_signup, &mut m.timestamp_signup),
        (input.timestamp_opt, &mut m.timestamp_opt),
    ] {
        if let Some(s) = src {
            s.clone_into(dst);
        }
    }
}

fn add_tag(
    tags: &mut HashMap<String, TagDef>,
    next_tag_id: &mut u64,
    m: &mut Member,
    name: &str,
    now: &Now,
) -> bool {
    let name = name.trim();
    if name.is_empty() || m.has_tag(name) {
        return false;
    }
    let def = tags.entry(name.to_lowercase()).or_insert_with(|| {
        let id = *next_tag_id;
        *next_tag_id += 1;
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

fn remove_tag(m: &mut Member, name: &str) -> bool {
    let before = m.tags.len();
    let name = name.trim();
    m.tags.retain(|t| !t.name.eq_ignore_ascii_case(name));
    m.tags.len() != before
}

fn random_hex(rng: &mut StdRng, bytes: usize) -> String {
    let mut buf = [0u8; 16];
    let buf = &mut buf[..bytes.min(16)];
    rng.fill_bytes(buf);
    hex::encode(buf)
}

/// A failed item of a batch subscribe.
#[derive(Debug, Serialize)]
struct BatchError {
    email_address: String,
    error: String,
    error_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field_message: Option<String>,
}

impl BatchError {
    fn generic(email: &str, e: ApiError) -> Self {
        let first = e.errors.into_iter().next();
        Self {
            email_address: email.to_owned(),
            error: e.detail,
            error_code: "ERROR_GENERIC",
            field: first.as_ref().map(|f| f.field.clone()),
            field_message: first.map(|f| f.message),
        }
    }
}

#[derive(Serialize)]
struct BatchResponse<'a> {
    new_members: Vec<MemberJson<'a>>,
    updated_members: Vec<MemberJson<'a>>,
    errors: &'a [BatchError],
    total_created: usize,
    total_updated: usize,
    error_count: usize,
    _links: [(); 0],
}

/// A batch subscribe, applied: what its answer shows, owned, so that the answer (the largest
/// part of the work: every member written in full) is written after the state lock is released
/// and concurrent batches are not serialised behind it.
pub(crate) struct BatchApplied {
    list_id: String,
    merge_fields: Vec<MergeField>,
    total_created: usize,
    total_updated: usize,
    new_members: Vec<Member>,
    updated_members: Vec<Member>,
    errors: Vec<BatchError>,
}

impl BatchApplied {
    /// The `200` answer.
    pub(crate) fn reply(&self, base: &str) -> Reply {
        fn view<'a>(
            applied: &'a BatchApplied,
            base: &'a str,
            member: &'a Member,
        ) -> MemberJson<'a> {
            MemberJson {
                member,
                list_id: &applied.list_id,
                merge_fields: &applied.merge_fields,
                base,
                compact: true,
            }
        }
        let answer = BatchResponse {
            total_created: self.total_created,
            total_updated: self.total_updated,
            error_count: self.errors.len(),
            new_members: self
                .new_members
                .iter()
                .map(|m| view(self, base, m))
                .collect(),
            updated_members: self
                .updated_members
                .iter()
                .map(|m| view(self, base, m))
                .collect(),
            errors: &self.errors,
            _links: [],
        };
        // A member is about 1 KiB of JSON.
        let members = self.new_members.len() + self.updated_members.len();
        json_reply_sized(&answer, 1024 * (members + 1))
    }
}

/// Which way a write that may create a member went.
enum Written {
    Created(String),
    Updated(String),
}

impl State {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            audiences: HashMap::new(),
            audience_order: Vec::new(),
            // Its own generator, so ids never shift the fault sequence.
            rng: StdRng::seed_from_u64(seed ^ 0x6d61_696c_6368_696d),
            member_writes: 0,
            unchanged_member_writes: 0,
            outbox: Vec::new(),
        }
    }

    // ---- webhooks ------------------------------------------------------------------------------

    /// The member as it is before a change, if anyone listens: `None` when the audience has no
    /// webhooks (nothing is recorded then), `Some(None)` when the member does not exist.
    fn before(&self, list_id: &str, hash: &str) -> Option<Option<Before>> {
        let aud = self.audiences.get(list_id)?;
        if aud.webhooks.is_empty() {
            return None;
        }
        Some(aud.members.get(hash).map(Before::of))
    }

    /// Records the events of a change of the member at `hash` (see [`State::before`]).
    fn note(
        &mut self,
        list_id: &str,
        before: Option<Option<Before>>,
        hash: &str,
        source: Source,
        now: &Now,
    ) {
        let Some(before) = before else {
            return;
        };
        let Some(aud) = self.audiences.get(list_id) else {
            return;
        };
        let Some(m) = aud.members.get(hash) else {
            return;
        };
        let events = webhooks::events_for(aud, before.as_ref(), m, source, now);
        self.outbox.extend(events);
    }

    /// Turns the recorded events into deliveries to the registered webhooks.
    pub(crate) fn take_deliveries(&mut self) -> Vec<Delivery> {
        if self.outbox.is_empty() {
            return Vec::new();
        }
        let events = std::mem::take(&mut self.outbox);
        let mut out = Vec::new();
        for event in &events {
            if let Some(aud) = self.audiences.get(&event.list_id) {
                out.extend(webhooks::deliveries(aud, std::slice::from_ref(event)));
            }
        }
        out
    }

    /// Checks that a webhook with `url` may be added to the audience.
    pub(crate) fn check_webhook_url(&self, list_id: &str, url: &str) -> Result<(), ApiError> {
        let aud = self.audience(list_id)?;
        if aud.webhooks.iter().any(|h| h.url == url) {
            return Err(webhooks::duplicate_url());
        }
        Ok(())
    }

    /// Adds a webhook whose URL passed the validator.
    pub(crate) fn add_webhook(
        &mut self,
        list_id: &str,
        new: NewWebhook,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, ApiError> {
        self.check_webhook_url(list_id, &new.url)?;
        let id = random_hex(&mut self.rng, 5);
        let aud = self
            .audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)?;
        let hook = Webhook {
            id,
            url: new.url,
            events: new.events,
            sources: new.sources,
        };
        let reply = json_reply(&hook.to_json(list_id, ctx.base));
        aud.webhooks.push(hook);
        Ok(reply)
    }

    pub(crate) fn get_webhooks(&self, list_id: &str, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        let hooks: Vec<Value> = aud
            .webhooks
            .iter()
            .map(|h| h.to_json(list_id, ctx.base))
            .collect();
        Ok(json_reply(&json!({
            "webhooks": hooks,
            "list_id": list_id,
            "total_items": aud.webhooks.len(),
            "_links": [],
        })))
    }

    pub(crate) fn get_webhook(
        &self,
        list_id: &str,
        id: &str,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        let hook = aud
            .webhooks
            .iter()
            .find(|h| h.id == id)
            .ok_or_else(ApiError::not_found)?;
        Ok(json_reply(&hook.to_json(list_id, ctx.base)))
    }

    pub(crate) fn delete_webhook(&mut self, list_id: &str, id: &str) -> Result<Reply, ApiError> {
        let aud = self
            .audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)?;
        let before = aud.webhooks.len();
        aud.webhooks.retain(|h| h.id != id);
        if aud.webhooks.len() == before {
            return Err(ApiError::not_found());
        }
        Ok(Reply::NoContent)
    }

    /// Creates the audience with the default merge fields unless it exists.
    pub(crate) fn ensure_audience(&mut self, id: &str, now: &Now) {
        if !self.audiences.contains_key(id) {
            let web_id = self.rng.gen_range(100_000..1_000_000);
            self.audiences
                .insert(id.to_owned(), Audience::new(id.to_owned(), web_id, now));
            self.audience_order.push(id.to_owned());
        }
    }

    fn audience(&self, list_id: &str) -> Result<&Audience, ApiError> {
        self.audiences.get(list_id).ok_or_else(ApiError::not_found)
    }

    // ---- account, lists, merge fields ------------------------------------------------------

    pub(crate) fn account(&self, ctx: &Ctx<'_>) -> Reply {
        let subscribers: usize = self
            .audiences
            .values()
            .map(|a| {
                a.members
                    .values()
                    .filter(|m| m.status == Status::Subscribed)
                    .count()
            })
            .sum();
        json_reply(&json!({
            "account_id": "0123456789abcdef01234567",
            "login_id": "10000001",
            "account_name": "Mailchimp Emulator",
            "email": "emulator@chimpsync.invalid",
            "first_name": "Mailchimp",
            "last_name": "Emulator",
            "username": "emulator",
            "avatar_url": "",
            "role": "owner",
            "member_since": "2020-01-01T00:00:00+00:00",
            "pricing_plan_type": "monthly",
            "first_payment": "",
            "account_timezone": "UTC",
            "account_industry": "",
            "contact": {"company": "Emulated Company", "addr1": "675 Ponce De Leon Ave NE",
                        "addr2": "", "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US"},
            "pro_enabled": false,
            "last_login": ctx.now.text,
            "total_subscribers": subscribers,
            "industry_stats": {"open_rate": 0, "bounce_rate": 0, "click_rate": 0},
            "_links": [{"rel": "self", "href": format!("{}/", ctx.base), "method": "GET"}],
        }))
    }

    pub(crate) fn get_lists(&self, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let (count, offset) = ctx.query.page()?;
        let lists: Vec<Value> = self
            .audience_order
            .iter()
            .skip(offset)
            .take(count)
            .filter_map(|id| self.audiences.get(id))
            .map(|a| a.to_json(ctx.base))
            .collect();
        Ok(json_reply(&json!({
            "lists": lists,
            "total_items": self.audience_order.len(),
            "constraints": {
                "may_create": true,
                "max_instances": -1,
                "current_total_instances": self.audience_order.len(),
            },
            "_links": [],
        })))
    }

    pub(crate) fn get_list(&self, list_id: &str, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        Ok(json_reply(&self.audience(list_id)?.to_json(ctx.base)))
    }

    pub(crate) fn delete_list(&mut self, list_id: &str) -> Result<Reply, ApiError> {
        self.audiences
            .remove(list_id)
            .ok_or_else(ApiError::not_found)?;
        self.audience_order.retain(|id| id != list_id);
        Ok(Reply::NoContent)
    }

    pub(crate) fn create_list(&mut self, body: &Value, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(wrong_type("", "object", body));
        };
        let mut errors = Vec::new();
        let mut need_str = |parent: Option<&str>, name: &str| {
            let container = match parent {
                None => Some(body),
                Some(p) => obj.get(p),
            };
            let field = match parent {
                None => name.to_owned(),
                Some(p) => format!("{p}.{name}"),
            };
            match container.and_then(|c| c.get(name)) {
                Some(Value::String(_)) => {}
                None | Some(Value::Null) => errors.push(FieldError::new(
                    field,
                    format!("Required fields were not provided: {name}"),
                )),
                Some(other) => errors.push(FieldError::new(
                    field,
                    format!(
                        "Schema describes string, {} found instead",
                        crate::problem::json_type_name(other)
                    ),
                )),
            }
        };
        need_str(None, "name");
        need_str(None, "permission_reminder");
        for f in ["company", "address1", "city", "country"] {
            need_str(Some("contact"), f);
        }
        for f in ["from_name", "from_email", "subject", "language"] {
            need_str(Some("campaign_defaults"), f);
        }
        match obj.get("email_type_option") {
            Some(Value::Bool(_)) => {}
            None | Some(Value::Null) => errors.push(FieldError::new(
                "email_type_option",
                "Required fields were not provided: email_type_option",
            )),
            Some(other) => errors.push(FieldError::new(
                "email_type_option",
                format!(
                    "Schema describes boolean, {} found instead",
                    crate::problem::json_type_name(other)
                ),
            )),
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
        let id = loop {
            let id = random_hex(&mut self.rng, 5);
            if !self.audiences.contains_key(&id) {
                break id;
            }
        };
        self.ensure_audience(&id, ctx.now);
        let aud = self
            .audiences
            .get_mut(&id)
            .ok_or_else(ApiError::not_found)?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        aud.name = text("name");
        aud.permission_reminder = text("permission_reminder");
        let mut contact = aud.contact.clone();
        if let (Some(dst), Some(src)) = (
            contact.as_object_mut(),
            obj.get("contact").and_then(Value::as_object),
        ) {
            for (k, v) in src {
                dst.insert(k.clone(), v.clone());
            }
        }
        aud.contact = contact;
        aud.campaign_defaults = obj.get("campaign_defaults").cloned().unwrap_or_default();
        aud.email_type_option = obj
            .get("email_type_option")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let flag = |k: &str, d: bool| obj.get(k).and_then(Value::as_bool).unwrap_or(d);
        aud.use_archive_bar = flag("use_archive_bar", true);
        aud.double_optin = flag("double_optin", false);
        aud.marketing_permissions = flag("marketing_permissions", false);
        aud.notify_on_subscribe = text("notify_on_subscribe");
        aud.notify_on_unsubscribe = text("notify_on_unsubscribe");
        Ok(json_reply(&aud.to_json(ctx.base)))
    }

    pub(crate) fn get_merge_fields(&self, list_id: &str, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        let (count, offset) = ctx.query.page()?;
        let fields: Vec<Value> = aud
            .merge_fields
            .iter()
            .skip(offset)
            .take(count)
            .map(|f| f.to_json(&aud.id))
            .collect();
        Ok(json_reply(&json!({
            "merge_fields": fields,
            "list_id": aud.id,
            "total_items": aud.merge_fields.len(),
            "_links": [],
        })))
    }

    pub(crate) fn get_merge_field(&self, list_id: &str, merge_id: &str) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        let field = aud
            .merge_fields
            .iter()
            .find(|f| f.merge_id.to_string() == merge_id)
            .ok_or_else(ApiError::not_found)?;
        Ok(json_reply(&field.to_json(&aud.id)))
    }

    pub(crate) fn delete_merge_field(
        &mut self,
        list_id: &str,
        merge_id: &str,
    ) -> Result<Reply, ApiError> {
        let aud = self
            .audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)?;
        let before = aud.merge_fields.len();
        aud.merge_fields
            .retain(|f| f.merge_id.to_string() != merge_id);
        if aud.merge_fields.len() == before {
            return Err(ApiError::not_found());
        }
        Ok(Reply::NoContent)
    }

    pub(crate) fn create_merge_field(
        &mut self,
        list_id: &str,
        body: &Value,
    ) -> Result<Reply, ApiError> {
        let aud = self
            .audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)?;
        let Some(obj) = body.as_object() else {
            return Err(wrong_type("", "object", body));
        };
        let name = match obj.get("name") {
            None | Some(Value::Null) => return Err(ApiError::required("name")),
            Some(v) => want_str("name", v)?,
        };
        const TYPES: [&str; 11] = [
            "text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown",
            "birthday", "zip",
        ];
        let kind = match obj.get("type") {
            None | Some(Value::Null) => return Err(ApiError::required("type")),
            Some(v) => want_str("type", v)?,
        };
        if !TYPES.contains(&kind) {
            return Err(ApiError::invalid_field(
                "type",
                format!("Value must be one of: {}", TYPES.join(", ")),
            ));
        }
        let merge_id = aud.next_merge_id;
        let tag = match obj.get("tag") {
            None | Some(Value::Null) => format!("MMERGE{merge_id}"),
            Some(v) => want_str("tag", v)?.trim().to_ascii_uppercase(),
        };
        if tag.is_empty()
            || tag.len() > 10
            || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ApiError::invalid_field(
                "tag",
                "A merge tag may only contain A-Z, 0-9 and _ and be at most 10 characters long",
            ));
        }
        if aud.merge_fields.iter().any(|f| f.tag == tag) {
            return Err(ApiError::invalid_detail(format!(
                "A Merge Field with the tag \"{tag}\" already exists for this list."
            )));
        }
        let flag = |k: &str, d: bool| -> Result<bool, ApiError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(d),
                Some(v) => want_bool(k, v),
            }
        };
        let text = |k: &str| -> Result<String, ApiError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(v) => want_str(k, v).map(str::to_owned),
            }
        };
        let mut options = default_options(kind);
        if let Some(given) = obj.get("options") {
            let given = given
                .as_object()
                .ok_or_else(|| wrong_type("options", "object", given))?;
            if let Some(dst) = options.as_object_mut() {
                for (k, v) in given {
                    dst.insert(k.clone(), v.clone());
                }
            }
        }
        let display_order = match obj.get("display_order") {
            None | Some(Value::Null) => merge_id + 1,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| wrong_type("display_order", "integer", v))?,
        };
        let field = MergeField {
            merge_id,
            tag,
            name: name.to_owned(),
            kind: kind.to_owned(),
            required: flag("required", false)?,
            default_value: text("default_value")?,
            public: flag("public", false)?,
            display_order,
            options,
            help_text: text("help_text")?,
        };
        aud.next_merge_id += 1;
        let reply = json_reply(&field.to_json(&aud.id));
        aud.merge_fields.push(field);
        Ok(reply)
    }

    // ---- members -----------------------------------------------------------------------------

    pub(crate) fn get_members(&self, list_id: &str, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        let (count, offset) = ctx.query.page()?;
        let status = match ctx.query.get("status") {
            None | Some("") => None,
            Some(s) => Some(Status::parse(s).ok_or_else(|| {
                ApiError::invalid_field(
                    "status",
                    "Value must be one of: subscribed, unsubscribed, cleaned, pending, transactional, archived",
                )
            })?),
        };
        let since = parse_time_param(ctx.query, "since_last_changed")?;
        let before = parse_time_param(ctx.query, "before_last_changed")?;
        let matches = |m: &Member| {
            let status_ok = match status {
                Some(s) => m.status == s,
                // Archived contacts are only listed when asked for.
                None => m.status != Status::Archived,
            };
            status_ok
                && since.is_none_or(|t| m.last_changed_secs >= t)
                && before.is_none_or(|t| m.last_changed_secs < t)
        };
        let mut total = 0usize;
        let mut page = Vec::with_capacity(count.min(aud.members.len()));
        for hash in aud.order.values() {
            let Some(m) = aud.members.get(hash) else {
                continue;
            };
            if !matches(m) {
                continue;
            }
            if total >= offset && page.len() < count {
                page.push(MemberJson {
                    member: m,
                    list_id: &aud.id,
                    merge_fields: &aud.merge_fields,
                    base: ctx.base,
                    compact: false,
                });
            }
            total += 1;
        }
        #[derive(Serialize)]
        struct Page<'a> {
            members: Vec<MemberJson<'a>>,
            list_id: &'a str,
            total_items: usize,
            _links: [(); 0],
        }
        Ok(json_reply(&Page {
            members: page,
            list_id: &aud.id,
            total_items: total,
            _links: [],
        }))
    }

    fn member_reply(&self, list_id: &str, hash: &str, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        let member = aud.members.get(hash).ok_or_else(ApiError::not_found)?;
        Ok(json_reply(&MemberJson {
            member,
            list_id: &aud.id,
            merge_fields: &aud.merge_fields,
            base: ctx.base,
            compact: false,
        }))
    }

    pub(crate) fn get_member(
        &self,
        list_id: &str,
        key: &str,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, ApiError> {
        self.member_reply(list_id, key, ctx)
    }

    /// Creates the member, or brings an archived one back, with `status`.
    fn create_or_restore(
        &mut self,
        list_id: &str,
        email: &str,
        hash: String,
        status: Status,
        input: &MemberInput<'_>,
        ctx: &Ctx<'_>,
    ) -> Result<String, ApiError> {
        let skip = ctx.query.flag("skip_merge_validation");
        let before = self.before(list_id, &hash);
        let State {
            audiences,
            rng,
            member_writes,
            unchanged_member_writes,
            ..
        } = self;
        let aud = audiences.get_mut(list_id).ok_or_else(ApiError::not_found)?;
        let fields = &aud.merge_fields;
        let existing = aud.members.get(&hash);
        let was = existing.map(Content::of);
        let merges = validate_merge(
            fields,
            input.merge_fields,
            existing.map(|m| &m.merge),
            true,
            skip,
        )?;
        if let Some(m) = existing {
            check_status_change(m, status)?;
        }
        if !aud.members.contains_key(&hash) {
            let seq = aud.next_seq;
            aud.next_seq += 1;
            let subscribed = status == Status::Subscribed;
            let m = Member {
                seq,
                id: hash.clone(),
                email: email.trim().to_owned(),
                unique_email_id: random_hex(rng, 5),
                contact_id: random_hex(rng, 16),
                web_id: rng.gen_range(100_000_000..1_000_000_000),
                email_type: "html".to_owned(),
                status,
                unsubscribed_by_contact: false,
                bounced: false,
                merge: BTreeMap::new(),
                interests: Map::new(),
                ip_signup: String::new(),
                timestamp_signup: String::new(),
                ip_opt: if subscribed {
                    ctx.peer_ip.to_owned()
                } else {
                    String::new()
                },
                timestamp_opt: if subscribed {
                    ctx.now.text.clone()
                } else {
                    String::new()
                },
                last_changed: ctx.now.text.clone(),
                last_changed_secs: ctx.now.secs,
                language: String::new(),
                vip: false,
                latitude: 0.0,
                longitude: 0.0,
                tags: Vec::new(),
            };
            aud.order.insert(seq, hash.clone());
            aud.members.insert(hash.clone(), m);
        }
        let member = aud.members.get_mut(&hash).ok_or_else(ApiError::not_found)?;
        apply_status(member, status, ctx);
        apply_fields(member, input, merges);
        // Tags in a member body count only when the contact is created (or comes back).
        for name in input.tags.iter().flatten() {
            add_tag(&mut aud.tags, &mut aud.next_tag_id, member, name, ctx.now);
        }
        member.touch(ctx.now);
        *member_writes += 1;
        if was.as_ref() == Some(&Content::of(member)) {
            *unchanged_member_writes += 1;
        }
        self.note(list_id, before, &hash, Source::Api, ctx.now);
        Ok(hash)
    }

    /// Updates an existing member (PUT/PATCH); a different `email_address` renames it.
    fn update_member(
        &mut self,
        list_id: &str,
        key: &str,
        input: &MemberInput<'_>,
        ctx: &Ctx<'_>,
    ) -> Result<String, ApiError> {
        let skip = ctx.query.flag("skip_merge_validation");
        let before = self.before(list_id, key);
        let aud = self
            .audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)?;
        let m = aud.members.get(key).ok_or_else(ApiError::not_found)?;
        let was = Content::of(m);
        let mut rename = None;
        if let Some(new_email) = input.email_address {
            let new_email = new_email.trim();
            let new_hash = subscriber_hash(new_email);
            if new_hash != key {
                if !is_valid(new_email) {
                    return Err(ApiError::invalid_email());
                }
                if is_fake(new_email) {
                    return Err(ApiError::fake_email(new_email));
                }
                if m.status != Status::Subscribed {
                    return Err(ApiError::invalid_field(
                        "email address",
                        format!(
                            "This member's status is \"{}.\" You can only update email addresses for members with a status of \"subscribed.\"",
                            m.status.as_str()
                        ),
                    ));
                }
                if aud.forgotten.contains(&new_hash) {
                    return Err(ApiError::forgotten(new_email));
                }
                if let Some(taken) = aud.members.get(&new_hash) {
                    return Err(ApiError::invalid_field(
                        "email address",
                        format!(
                            "\"{new_email}\" is already in this list with a status of \"{}\".",
                            taken.status.label()
                        ),
                    ));
                }
                rename = Some((new_hash, new_email.to_owned()));
            }
        }
        let merges = validate_merge(
            &aud.merge_fields,
            input.merge_fields,
            Some(&m.merge),
            false,
            skip,
        )?;
        if let Some(s) = input.status {
            check_status_change(m, s)?;
        }
        let hash = match rename {
            Some((new_hash, new_email)) => {
                let mut moved = aud.members.remove(key).ok_or_else(ApiError::not_found)?;
                moved.id.clone_from(&new_hash);
                moved.email = new_email;
                aud.order.insert(moved.seq, new_hash.clone());
                aud.members.insert(new_hash.clone(), moved);
                new_hash
            }
            None => key.to_owned(),
        };
        let m = aud.members.get_mut(&hash).ok_or_else(ApiError::not_found)?;
        if let Some(s) = input.status {
            apply_status(m, s, ctx);
        }
        apply_fields(m, input, merges);
        m.touch(ctx.now);
        let unchanged = was == Content::of(m);
        self.member_writes += 1;
        self.unchanged_member_writes += u64::from(unchanged);
        self.note(list_id, before, &hash, Source::Api, ctx.now);
        Ok(hash)
    }

    pub(crate) fn post_member(
        &mut self,
        list_id: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        let input = parse_member_input(body, Status::WRITABLE)?;
        let email = input
            .email_address
            .ok_or_else(|| ApiError::required("email_address"))?;
        let status = input.status.ok_or_else(|| ApiError::required("status"))?;
        let hash = check_new_address(aud, email)?;
        if aud
            .members
            .get(&hash)
            .is_some_and(|m| m.status != Status::Archived)
        {
            return Err(ApiError::member_exists(email.trim()));
        }
        let hash = self.create_or_restore(list_id, email, hash, status, &input, ctx)?;
        self.member_reply(list_id, &hash, ctx)
    }

    pub(crate) fn put_member(
        &mut self,
        list_id: &str,
        key: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        let input = parse_member_input(body, Status::WRITABLE)?;
        let at_key = aud.members.get(key);
        if at_key.is_some_and(|m| m.status != Status::Archived) {
            let hash = self.update_member(list_id, key, &input, ctx)?;
            return self.member_reply(list_id, &hash, ctx);
        }
        // Create path: the member is the body's address, whatever hash the path named.
        let archived_email = at_key.map(|m| m.email.clone());
        let email = match (input.email_address, archived_email.as_deref()) {
            (Some(e), _) => e,
            (None, Some(e)) => e,
            (None, None) => return Err(ApiError::required("email_address")),
        };
        let hash = check_new_address(aud, email)?;
        if aud
            .members
            .get(&hash)
            .is_some_and(|m| m.status != Status::Archived)
        {
            return Err(ApiError::member_exists(email.trim()));
        }
        let status = input
            .status
            .or(input.status_if_new)
            .ok_or_else(|| ApiError::required("status_if_new"))?;
        let email = email.to_owned();
        let hash = self.create_or_restore(list_id, &email, hash, status, &input, ctx)?;
        self.member_reply(list_id, &hash, ctx)
    }

    pub(crate) fn patch_member(
        &mut self,
        list_id: &str,
        key: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        if !aud.members.contains_key(key) {
            return Err(ApiError::not_found());
        }
        let input = parse_member_input(body, Status::PATCHABLE)?;
        let hash = self.update_member(list_id, key, &input, ctx)?;
        self.member_reply(list_id, &hash, ctx)
    }

    /// `DELETE` = archive.
    pub(crate) fn archive_member(
        &mut self,
        list_id: &str,
        key: &str,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, ApiError> {
        let before = self.before(list_id, key);
        let aud = self
            .audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)?;
        let m = aud.members.get_mut(key).ok_or_else(ApiError::not_found)?;
        match m.status {
            Status::Subscribed | Status::Unsubscribed | Status::Transactional => {
                m.status = Status::Archived;
                m.touch(ctx.now);
                self.member_writes += 1;
                self.note(list_id, before, key, Source::Api, ctx.now);
                Ok(Reply::NoContent)
            }
            Status::Pending | Status::Cleaned | Status::Archived => Err(ApiError::cannot_archive()),
        }
    }

    pub(crate) fn delete_permanent(&mut self, list_id: &str, key: &str) -> Result<Reply, ApiError> {
        let aud = self
            .audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)?;
        let m = aud.members.remove(key).ok_or_else(ApiError::not_found)?;
        aud.order.remove(&m.seq);
        if !aud.webhooks.is_empty() && m.status != Status::Archived {
            let event = webhooks::unsubscribe(aud, &m, "delete", Source::Api, &Now::current());
            self.outbox.push(event);
        }
        aud.forgotten.insert(m.id);
        self.member_writes += 1;
        Ok(Reply::NoContent)
    }

    pub(crate) fn get_tags(
        &self,
        list_id: &str,
        key: &str,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, ApiError> {
        let aud = self.audience(list_id)?;
        let m = aud.members.get(key).ok_or_else(ApiError::not_found)?;
        let (count, offset) = ctx.query.page()?;
        let tags: Vec<Value> = m
            .tags
            .iter()
            .skip(offset)
            .take(count)
            .map(|t| json!({"id": t.id, "name": t.name, "date_added": t.date_added}))
            .collect();
        Ok(json_reply(&json!({
            "tags": tags,
            "total_items": m.tags.len(),
            "_links": [],
        })))
    }

    pub(crate) fn post_tags(
        &mut self,
        list_id: &str,
        key: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Result<Reply, ApiError> {
        let aud = self
            .audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)?;
        if !aud.members.contains_key(key) {
            return Err(ApiError::not_found());
        }
        let Some(obj) = body.as_object() else {
            return Err(wrong_type("", "object", body));
        };
        let tags = match obj.get("tags") {
            None | Some(Value::Null) => return Err(ApiError::required("tags")),
            Some(v) => v.as_array().ok_or_else(|| wrong_type("tags", "array", v))?,
        };
        if let Some(v) = obj.get("is_syncing") {
            want_bool("is_syncing", v)?;
        }
        let mut changes = Vec::with_capacity(tags.len());
        for (i, t) in tags.iter().enumerate() {
            let item = t
                .as_object()
                .ok_or_else(|| wrong_type(&format!("tags.{i}"), "object", t))?;
            let name = match item.get("name") {
                None | Some(Value::Null) => {
                    return Err(ApiError::required(&format!("tags.{i}.name")))
                }
                Some(v) => want_str(&format!("tags.{i}.name"), v)?,
            };
            let active = match item.get("status") {
                None | Some(Value::Null) => {
                    return Err(ApiError::required(&format!("tags.{i}.status")))
                }
                Some(v) => match want_str(&format!("tags.{i}.status"), v)? {
                    "active" => true,
                    "inactive" => false,
                    _ => {
                        return Err(ApiError::invalid_field(
                            format!("tags.{i}.status"),
                            "Value must be one of: active, inactive",
                        ))
                    }
                },
            };
            changes.push((name, active));
        }
        let Audience {
            members,
            tags: defs,
            next_tag_id,
            ..
        } = aud;
        let m = members.get_mut(key).ok_or_else(ApiError::not_found)?;
        let was = Content::of(m);
        for (name, active) in changes {
            if active {
                add_tag(defs, next_tag_id, m, name, ctx.now);
            } else {
                remove_tag(m, name);
            }
        }
        let unchanged = was == Content::of(m);
        self.member_writes += 1;
        self.unchanged_member_writes += u64::from(unchanged);
        Ok(Reply::NoContent)
    }

    // ---- batch subscribe ---------------------------------------------------------------------

    pub(crate) fn batch_subscribe(
        &mut self,
        list_id: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Result<BatchApplied, ApiError> {
        self.audience(list_id)?;
        let Some(obj) = body.as_object() else {
            return Err(wrong_type("", "object", body));
        };
        let members = match obj.get("members") {
            None | Some(Value::Null) => return Err(ApiError::required("members")),
            Some(v) => v
                .as_array()
                .ok_or_else(|| wrong_type("members", "array", v))?,
        };
        if members.len() > BATCH_LIMIT {
            return Err(ApiError::invalid_detail(format!(
                "You can only add or update at most {BATCH_LIMIT} members in a single batch request; this request has {}.",
                members.len()
            )));
        }
        let flag = |k: &str| -> Result<bool, ApiError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(false),
                Some(v) => want_bool(k, v),
            }
        };
        let update_existing = flag("update_existing")?;
        let sync_tags = flag("sync_tags")?;
        let skip_duplicates = ctx.query.flag("skip_duplicate_check");

        let mut created = Vec::new();
        let mut updated = Vec::new();
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for item in members {
            let email_of = || {
                item.get("email_address")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            };
            if skip_duplicates && !seen.insert(subscriber_hash(&email_of())) {
                continue;
            }
            match self.batch_item(list_id, item, update_existing, sync_tags, ctx) {
                Ok(Written::Created(h)) => created.push(h),
                Ok(Written::Updated(h)) => updated.push(h),
                Err(e) => errors.push(e),
            }
        }
        let aud = self.audience(list_id)?;
        let owned = |h: &String| aud.members.get(h).cloned();
        Ok(BatchApplied {
            list_id: aud.id.clone(),
            merge_fields: aud.merge_fields.clone(),
            total_created: created.len(),
            total_updated: updated.len(),
            new_members: created.iter().filter_map(owned).collect(),
            updated_members: updated.iter().filter_map(owned).collect(),
            errors,
        })
    }

    fn batch_item(
        &mut self,
        list_id: &str,
        item: &Value,
        update_existing: bool,
        sync_tags: bool,
        ctx: &Ctx<'_>,
    ) -> Result<Written, BatchError> {
        let raw_email = item
            .get("email_address")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        let fail = |e: ApiError| BatchError::generic(raw_email, e);
        let input = parse_member_input(item, Status::WRITABLE).map_err(fail)?;
        let email = input
            .email_address
            .ok_or_else(|| fail(ApiError::invalid_email()))?;
        let aud = self.audience(list_id).map_err(fail)?;
        let hash = check_new_address(aud, email).map_err(fail)?;
        let existing = aud
            .members
            .get(&hash)
            .filter(|m| m.status != Status::Archived);
        if existing.is_none() {
            let status = input
                .status
                .or(input.status_if_new)
                .ok_or_else(|| fail(ApiError::required("status")))?;
            return self
                .create_or_restore(list_id, email, hash, status, &input, ctx)
                .map(Written::Created)
                .map_err(fail);
        }
        if !update_existing {
            return Err(BatchError {
                email_address: raw_email.to_owned(),
                error: format!(
                    "{raw_email} is already a list member, do you want to update? please provide update_existing:true in the request body"
                ),
                error_code: "ERROR_CONTACT_EXISTS",
                field: None,
                field_message: None,
            });
        }
        // The batch is keyed by address: no renames here.
        let update = MemberInput {
            email_address: None,
            tags: None,
            ..input
        };
        let hash = self
            .update_member(list_id, &hash, &update, ctx)
            .map_err(fail)?;
        if sync_tags {
            if let Some(wanted) = &input_tags(item) {
                let aud = self
                    .audiences
                    .get_mut(list_id)
                    .ok_or_else(|| fail(ApiError::not_found()))?;
                let Audience {
                    members,
                    tags: defs,
                    next_tag_id,
                    ..
                } = aud;
                if let Some(m) = members.get_mut(&hash) {
                    m.tags.retain(|t| {
                        wanted
                            .iter()
                            .any(|w| w.trim().eq_ignore_ascii_case(&t.name))
                    });
                    for name in wanted {
                        add_tag(defs, next_tag_id, m, name, ctx.now);
                    }
                }
            }
        }
        Ok(Written::Updated(hash))
    }

    // ---- simulation of the contact's own actions ----------------------------------------------

    fn member_by_email_mut(&mut self, list_id: &str, email: &str) -> Option<&mut Member> {
        self.audiences
            .get_mut(list_id)?
            .members
            .get_mut(&crate::email::path_key(email))
    }

    /// The contact unsubscribed themselves (from a campaign's footer).
    pub(crate) fn simulate_unsubscribe(&mut self, list_id: &str, email: &str, now: &Now) -> bool {
        let hash = crate::email::path_key(email);
        let before = self.before(list_id, &hash);
        let Some(m) = self.member_by_email_mut(list_id, email) else {
            return false;
        };
        if matches!(m.status, Status::Archived | Status::Cleaned) {
            return false;
        }
        m.status = Status::Unsubscribed;
        m.unsubscribed_by_contact = true;
        m.touch(now);
        self.note(list_id, before, &hash, Source::User, now);
        true
    }

    /// The address hard-bounced: the contact is cleaned.
    pub(crate) fn simulate_bounce(&mut self, list_id: &str, email: &str, now: &Now) -> bool {
        let hash = crate::email::path_key(email);
        let before = self.before(list_id, &hash);
        let Some(m) = self.member_by_email_mut(list_id, email) else {
            return false;
        };
        if m.status == Status::Archived {
            return false;
        }
        m.status = Status::Cleaned;
        m.bounced = true;
        m.touch(now);
        self.note(list_id, before, &hash, Source::System, now);
        true
    }

    /// A pending contact clicked the confirmation link: subscribed, compliance state lifted.
    pub(crate) fn simulate_confirm(&mut self, list_id: &str, email: &str, ctx_now: &Now) -> bool {
        let hash = crate::email::path_key(email);
        let before = self.before(list_id, &hash);
        let Some(m) = self.member_by_email_mut(list_id, email) else {
            return false;
        };
        if m.status != Status::Pending {
            return false;
        }
        m.status = Status::Subscribed;
        m.unsubscribed_by_contact = false;
        m.bounced = false;
        m.timestamp_opt.clone_from(&ctx_now.text);
        m.touch(ctx_now);
        self.note(list_id, before, &hash, Source::User, ctx_now);
        true
    }

    /// The contact changed their address on their profile page. Like an API rename, only a
    /// subscribed contact can, and only to a valid address that is not in the list.
    pub(crate) fn simulate_email_change(
        &mut self,
        list_id: &str,
        email: &str,
        new_email: &str,
        now: &Now,
    ) -> bool {
        let key = crate::email::path_key(email);
        let new_email = new_email.trim();
        let new_hash = subscriber_hash(new_email);
        let before = self.before(list_id, &key);
        let Some(aud) = self.audiences.get_mut(list_id) else {
            return false;
        };
        let ok = aud
            .members
            .get(&key)
            .is_some_and(|m| m.status == Status::Subscribed)
            && new_hash != key
            && is_valid(new_email)
            && !is_fake(new_email)
            && !aud.forgotten.contains(&new_hash)
            && !aud.members.contains_key(&new_hash);
        if !ok {
            return false;
        }
        let Some(mut moved) = aud.members.remove(&key) else {
            return false;
        };
        moved.id.clone_from(&new_hash);
        new_email.clone_into(&mut moved.email);
        moved.touch(now);
        aud.order.insert(moved.seq, new_hash.clone());
        aud.members.insert(new_hash.clone(), moved);
        self.note(list_id, before, &new_hash, Source::User, now);
        true
    }

    /// The contact edited merge values on their profile page (unknown tags are ignored, `""`
    /// clears). False if there is no such live member or a value is refused.
    pub(crate) fn simulate_profile_update(
        &mut self,
        list_id: &str,
        email: &str,
        merges: &Map<String, Value>,
        now: &Now,
    ) -> bool {
        let key = crate::email::path_key(email);
        let before = self.before(list_id, &key);
        let Some(aud) = self.audiences.get_mut(list_id) else {
            return false;
        };
        let Some(m) = aud.members.get(&key) else {
            return false;
        };
        if m.status == Status::Archived {
            return false;
        }
        let Ok(changes) =
            validate_merge(&aud.merge_fields, Some(merges), Some(&m.merge), false, true)
        else {
            return false;
        };
        let Some(m) = aud.members.get_mut(&key) else {
            return false;
        };
        apply_fields(m, &MemberInput::default(), changes);
        m.touch(now);
        self.note(list_id, before, &key, Source::User, now);
        true
    }
}

fn input_tags(item: &Value) -> Option<Vec<&str>> {
    item.get("tags")?
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
}

/// `since_last_changed` and friends: ISO 8601 with offset, without offset (UTC), or a date.
fn parse_time_param(query: &Query, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(raw) = query.get(name).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(t.timestamp()));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(raw, fmt) {
            return Ok(Some(t.timestamp()));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(raw, fmt) {
            return Ok(Some(t.and_utc().timestamp()));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(Some(t.and_utc().timestamp()));
        }
    }
    Err(ApiError::invalid_field(
        name,
        "Please provide a date in ISO 8601 format, e.g. 2015-10-21T15:41:36+00:00",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: &str) -> MergeField {
        MergeField {
            merge_id: 9,
            tag: "F".into(),
            name: "F".into(),
            kind: kind.into(),
            required: false,
            default_value: String::new(),
            public: false,
            display_order: 1,
            options: default_options(kind),
            help_text: String::new(),
        }
    }

    #[test]
    fn number_fields_take_numbers_and_numeric_strings_only() {
        let f = field("number");
        assert_eq!(normalize_merge(&f, &json!(15.5)), Ok(Some(json!(15.5))));
        assert_eq!(normalize_merge(&f, &json!("42")), Ok(Some(json!(42))));
        assert_eq!(normalize_merge(&f, &json!("")), Ok(None));
        assert_eq!(
            normalize_merge(&f, &json!("abc")),
            Err("Please enter a number".into())
        );
    }

    #[test]
    fn text_longer_than_the_limit_and_booleans_are_refused() {
        let f = field("text");
        assert!(normalize_merge(&f, &json!("x".repeat(255))).is_ok());
        assert_eq!(
            normalize_merge(&f, &json!("x".repeat(256))),
            Err("Value must be 255 characters or fewer".into())
        );
        assert!(normalize_merge(&f, &json!(true)).is_err());
        assert_eq!(normalize_merge(&f, &json!(7)), Ok(Some(json!("7"))));
    }

    #[test]
    fn an_address_needs_its_four_parts() {
        let f = field("address");
        assert!(normalize_merge(
            &f,
            &json!({"addr1": "1 Main", "city": "A", "state": "GA", "zip": "1"})
        )
        .is_ok());
        assert_eq!(
            normalize_merge(&f, &json!({"addr1": "1 Main"})),
            Err("Please enter a complete address".into())
        );
    }

    #[test]
    fn time_parameters_accept_the_usual_iso_forms() {
        let q = |v: &str| Query(vec![("t".into(), v.into())]);
        let want = Some(1_445_442_096);
        assert_eq!(
            parse_time_param(&q("2015-10-21T15:41:36+00:00"), "t").ok(),
            Some(want)
        );
        assert_eq!(
            parse_time_param(&q("2015-10-21T15:41:36Z"), "t").ok(),
            Some(want)
        );
        assert_eq!(
            parse_time_param(&q("2015-10-21T15:41:36"), "t").ok(),
            Some(want)
        );
        assert!(parse_time_param(&q("yesterday"), "t").is_err());
    }
}
