//! The state the endpoints work on: every audience, the id generator, the write counters and
//! the webhook events not yet handed to delivery. The endpoints themselves are in `endpoints`,
//! one module per resource, as methods of [`State`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::Value;

use crate::events::{self, Before, Delivery, Event, Source};
use crate::model::{AccountId, Audience, Member, Now, Status};
use crate::problem::ApiError;
use crate::query::Query;

/// Per-request facts the operations need.
pub(crate) struct Ctx<'a> {
    pub now: &'a Now,
    /// `http://host/3.0`, for `_links`.
    pub base: &'a str,
    pub peer_ip: &'a str,
    pub query: &'a Query,
    /// The account of the request's API key.
    pub account: AccountId,
}

/// Everything the emulator knows about its audiences, of every account: audience ids are unique
/// across accounts, so an id alone names an audience (`Audience::account` says whose).
pub(crate) struct State {
    pub audiences: HashMap<String, Audience>,
    /// Creation order of the audiences (`GET /lists`).
    pub audience_order: Vec<String>,
    pub rng: StdRng,
    pub writes: WriteCounts,
    /// Webhook events recorded by operations, not yet turned into deliveries.
    pub outbox: Vec<Event>,
}

/// Member-level changes applied so far (see `Stats::member_writes`).
#[derive(Debug, Default)]
pub(crate) struct WriteCounts {
    pub member_writes: u64,
    /// Of those, the ones that left the member as it was (see `Stats::unchanged_member_writes`).
    pub unchanged_member_writes: u64,
}

impl WriteCounts {
    /// Counts a member write; `unchanged` when the member holds what it held before.
    pub(crate) fn count(&mut self, unchanged: bool) {
        self.member_writes += 1;
        self.unchanged_member_writes += u64::from(unchanged);
    }
}

/// What a member holds, without the bookkeeping a write always moves (`last_changed`, opt-in
/// stamps): a write after which the member's content equals what it was changed nothing (a
/// re-sent state, see `Stats::unchanged_member_writes`).
#[derive(PartialEq)]
pub(crate) struct Content {
    email: String,
    status: Status,
    unsubscribed_by_contact: bool,
    bounced: bool,
    merge: BTreeMap<String, Value>,
    interests: BTreeSet<String>,
    permissions: BTreeSet<String>,
    email_type: String,
    language: String,
    vip: bool,
    location: (f64, f64),
    tags: Vec<String>,
}

impl Content {
    pub(crate) fn of(m: &Member) -> Content {
        Content {
            email: m.email.clone(),
            status: m.status,
            unsubscribed_by_contact: m.unsubscribed_by_contact,
            bounced: m.bounced,
            merge: m.merge.clone(),
            interests: m.interests.clone(),
            permissions: m.permissions.clone(),
            email_type: m.email_type.clone(),
            language: m.language.clone(),
            vip: m.vip,
            location: (m.latitude, m.longitude),
            tags: m.tags.iter().map(|t| t.name.to_lowercase()).collect(),
        }
    }
}

/// `bytes` random bytes (at most 16) as lowercase hex: the emulator's ids.
pub(crate) fn random_hex(rng: &mut StdRng, bytes: usize) -> String {
    let mut buf = [0u8; 16];
    let buf = &mut buf[..bytes.min(16)];
    rng.fill_bytes(buf);
    hex::encode(buf)
}

impl State {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            audiences: HashMap::new(),
            audience_order: Vec::new(),
            // Its own generator, so ids never shift the fault sequence.
            rng: StdRng::seed_from_u64(seed ^ 0x6d61_696c_6368_696d),
            writes: WriteCounts::default(),
            outbox: Vec::new(),
        }
    }

    /// Creates the audience in `account` with the default merge fields unless it exists; false
    /// if it exists in another account.
    pub(crate) fn ensure_audience(&mut self, id: &str, account: AccountId, now: &Now) -> bool {
        if let Some(owner) = self.owner(id) {
            return owner == account;
        }
        let web_id = self.rng.random_range(100_000..1_000_000);
        self.audiences.insert(
            id.to_owned(),
            Audience::new(id.to_owned(), account, web_id, now),
        );
        self.audience_order.push(id.to_owned());
        true
    }

    /// The account that owns the audience, if it exists.
    pub(crate) fn owner(&self, list_id: &str) -> Option<AccountId> {
        self.audiences.get(list_id).map(|a| a.account)
    }

    /// The account's audiences in creation order.
    pub(crate) fn audiences_of(&self, account: AccountId) -> impl Iterator<Item = &Audience> {
        self.audience_order
            .iter()
            .filter_map(|id| self.audiences.get(id))
            .filter(move |a| a.account == account)
    }

    /// Deletes the audience with everything in it; false if it does not exist.
    pub(crate) fn remove_audience(&mut self, list_id: &str) -> bool {
        if self.audiences.remove(list_id).is_none() {
            return false;
        }
        self.audience_order.retain(|id| id != list_id);
        true
    }

    /// The audience, or `404 Resource Not Found`.
    pub(crate) fn audience(&self, list_id: &str) -> Result<&Audience, ApiError> {
        self.audiences.get(list_id).ok_or_else(ApiError::not_found)
    }

    /// The audience to change, or `404 Resource Not Found`.
    pub(crate) fn audience_mut(&mut self, list_id: &str) -> Result<&mut Audience, ApiError> {
        self.audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)
    }

    /// The audience's member at `key` (a subscriber hash), or `404 Resource Not Found`.
    pub(crate) fn member(&self, list_id: &str, key: &str) -> Result<&Member, ApiError> {
        self.audience(list_id)?
            .members
            .get(key)
            .map(|m| &**m)
            .ok_or_else(ApiError::not_found)
    }

    /// The member as it is before a change, if anyone listens: `None` when the audience has no
    /// webhooks (nothing is recorded then), `Some(None)` when the member does not exist.
    pub(crate) fn before(&self, list_id: &str, hash: &str) -> Option<Option<Before>> {
        let aud = self.audiences.get(list_id)?;
        if aud.webhooks.is_empty() {
            return None;
        }
        Some(aud.members.get(hash).map(|m| Before::of(m)))
    }

    /// Records the events of a change of the member at `hash` (see [`State::before`]).
    pub(crate) fn note(
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
        let events = events::events_for(aud, before.as_ref(), m, source, now);
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
                out.extend(events::deliveries(aud, event));
            }
        }
        out
    }
}
