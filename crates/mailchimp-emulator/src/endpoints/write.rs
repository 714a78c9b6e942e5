//! The two member writes every member endpoint is made of (create or restore, and update), and
//! the rules they share. Each validates completely before it changes anything, so a refused
//! write leaves the state as it was.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::RngExt;

use crate::email::{is_fake, is_valid, subscriber_hash};
use crate::events::Source;
use crate::input::MemberInput;
use crate::merge_values::{validate_merge, MergeChanges};
use crate::model::{Audience, Member, Status};
use crate::problem::ApiError;
use crate::state::{random_hex, Content, Ctx, State};

/// A new address must be well formed, not fake, and not permanently deleted; answers its hash.
pub(crate) fn check_new_address(aud: &Audience, email: &str) -> Result<String, ApiError> {
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

/// [`check_new_address`], and the address is not a live member of the list (an archived one
/// may come back).
pub(crate) fn check_free_address(aud: &Audience, email: &str) -> Result<String, ApiError> {
    let hash = check_new_address(aud, email)?;
    if aud
        .members
        .get(&hash)
        .is_some_and(|m| m.status != Status::Archived)
    {
        return Err(ApiError::member_exists(email.trim()));
    }
    Ok(hash)
}

/// Whether the member at `key` may be renamed to `new_email` (trimmed): `None` when it is the
/// same address (no rename), else its hash. Checked in this order: the new address is valid and
/// not fake, the member is subscribed, the address was not permanently deleted and is not in
/// the list (archived included).
pub(crate) fn check_rename(
    aud: &Audience,
    m: &Member,
    key: &str,
    new_email: &str,
) -> Result<Option<String>, ApiError> {
    let new_hash = subscriber_hash(new_email);
    if new_hash == key {
        return Ok(None);
    }
    if !is_valid(new_email) {
        return Err(ApiError::invalid_email());
    }
    if is_fake(new_email) {
        return Err(ApiError::fake_email(new_email));
    }
    if m.status != Status::Subscribed {
        return Err(ApiError::rename_not_subscribed(m.status.as_str()));
    }
    if aud.forgotten.contains(&new_hash) {
        return Err(ApiError::forgotten(new_email));
    }
    if let Some(taken) = aud.members.get(&new_hash) {
        return Err(ApiError::address_taken(new_email, taken.status.label()));
    }
    Ok(Some(new_hash))
}

/// Moves the member at `key` to `new_hash` with `new_email`, keeping its identity and its place
/// in the listing order.
pub(crate) fn rename(aud: &mut Audience, key: &str, new_hash: &str, new_email: &str) -> bool {
    let Some(mut moved) = aud.members.remove(key) else {
        return false;
    };
    new_hash.clone_into(&mut moved.id);
    new_email.clone_into(&mut moved.email);
    aud.order.insert(moved.seq, new_hash.to_owned());
    aud.members.insert(new_hash.to_owned(), moved);
    true
}

/// Every interest and marketing permission the input names must be the audience's: Mailchimp
/// refuses the whole write otherwise (`Invalid interest ID: '…'.`, observed; the permission's
/// wording is ours, on the same pattern). An audience that is not a GDPR one has no permission
/// to name, so any id is refused there too (no evidence either way; refusing shows a mapping
/// mistake at once instead of dropping consent silently).
pub(crate) fn check_interests_and_permissions(
    aud: &Audience,
    input: &MemberInput<'_>,
) -> Result<(), ApiError> {
    for id in input.interests.iter().flat_map(|i| i.keys()) {
        if !aud.interests.iter().any(|i| &i.id == id) {
            return Err(ApiError::unknown_interest(id));
        }
    }
    let permissions = aud.shown_permissions().unwrap_or_default();
    for (id, _) in input.marketing_permissions.iter().flatten() {
        if !permissions.iter().any(|p| p.id == *id) {
            return Err(ApiError::unknown_permission(id));
        }
    }
    Ok(())
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

/// Applies the merge changes and the other fields the input sets.
pub(crate) fn apply_fields(m: &mut Member, input: &MemberInput<'_>, merges: MergeChanges) {
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
    // Only the ids given change; the checks before made sure each is the audience's.
    for (id, on) in input.interests.iter().flat_map(|i| i.iter()) {
        if on.as_bool() == Some(true) {
            m.interests.insert(id.clone());
        } else {
            m.interests.remove(id);
        }
    }
    for (id, enabled) in input.marketing_permissions.iter().flatten() {
        if *enabled {
            m.permissions.insert((*id).to_owned());
        } else {
            m.permissions.remove(*id);
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

/// A member as the API creates it: fresh ids, nothing set but the address and the status.
fn new_member(
    rng: &mut StdRng,
    seq: u64,
    hash: &str,
    email: &str,
    status: Status,
    ctx: &Ctx<'_>,
) -> Member {
    let opted_in = |value: String| {
        if status == Status::Subscribed {
            value
        } else {
            String::new()
        }
    };
    Member {
        seq,
        id: hash.to_owned(),
        email: email.trim().to_owned(),
        unique_email_id: random_hex(rng, 5),
        contact_id: random_hex(rng, 16),
        web_id: rng.random_range(100_000_000..1_000_000_000),
        email_type: "html".to_owned(),
        status,
        unsubscribed_by_contact: false,
        bounced: false,
        merge: BTreeMap::new(),
        interests: BTreeSet::new(),
        permissions: BTreeSet::new(),
        ip_signup: String::new(),
        timestamp_signup: String::new(),
        ip_opt: opted_in(ctx.peer_ip.to_owned()),
        timestamp_opt: opted_in(ctx.now.text.clone()),
        last_changed: ctx.now.text.clone(),
        last_changed_secs: ctx.now.secs,
        language: String::new(),
        vip: false,
        latitude: 0.0,
        longitude: 0.0,
        tags: Vec::new(),
    }
}

impl State {
    /// Creates the member, or brings an archived one back, with `status`; answers its hash.
    pub(crate) fn create_or_restore(
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
            writes,
            ..
        } = self;
        let aud = audiences.get_mut(list_id).ok_or_else(ApiError::not_found)?;
        let existing = aud.members.get(&hash).map(|m| &**m);
        let was = existing.map(Content::of);
        let merges = validate_merge(
            &aud.merge_fields,
            input.merge_fields,
            existing.map(|m| &m.merge),
            true,
            skip,
        )?;
        check_interests_and_permissions(aud, input)?;
        if let Some(m) = existing {
            check_status_change(m, status)?;
        }
        if !aud.members.contains_key(&hash) {
            let seq = aud.next_seq;
            aud.next_seq += 1;
            let m = new_member(rng, seq, &hash, email, status, ctx);
            aud.order.insert(seq, hash.clone());
            aud.members.insert(hash.clone(), Box::new(m));
        }
        let member = aud.members.get_mut(&hash).ok_or_else(ApiError::not_found)?;
        apply_status(member, status, ctx);
        apply_fields(member, input, merges);
        // Tags in a member body count only when the contact is created (or comes back).
        for name in input.tags.iter().flatten() {
            aud.tags.attach(member, name, ctx.now);
        }
        member.touch(ctx.now);
        writes.count(was.as_ref() == Some(&Content::of(member)));
        self.note(list_id, before, &hash, Source::Api, ctx.now);
        Ok(hash)
    }

    /// Updates an existing member (PUT/PATCH); a different `email_address` renames it. Answers
    /// the member's hash after the write.
    pub(crate) fn update_member(
        &mut self,
        list_id: &str,
        key: &str,
        input: &MemberInput<'_>,
        ctx: &Ctx<'_>,
    ) -> Result<String, ApiError> {
        let skip = ctx.query.flag("skip_merge_validation");
        let before = self.before(list_id, key);
        let aud = self.audience_mut(list_id)?;
        let m = aud.members.get(key).ok_or_else(ApiError::not_found)?;
        let was = Content::of(m);
        let new_email = input.email_address.map(str::trim);
        let renamed = match new_email {
            Some(new_email) => check_rename(aud, m, key, new_email)?,
            None => None,
        };
        let merges = validate_merge(
            &aud.merge_fields,
            input.merge_fields,
            Some(&m.merge),
            false,
            skip,
        )?;
        check_interests_and_permissions(aud, input)?;
        if let Some(s) = input.status {
            check_status_change(m, s)?;
        }
        let hash = match (renamed, new_email) {
            (Some(new_hash), Some(new_email)) => {
                rename(aud, key, &new_hash, new_email);
                new_hash
            }
            _ => key.to_owned(),
        };
        let m = aud.members.get_mut(&hash).ok_or_else(ApiError::not_found)?;
        if let Some(s) = input.status {
            apply_status(m, s, ctx);
        }
        apply_fields(m, input, merges);
        m.touch(ctx.now);
        let unchanged = was == Content::of(m);
        self.writes.count(unchanged);
        self.note(list_id, before, &hash, Source::Api, ctx.now);
        Ok(hash)
    }
}
