//! Members: `/lists/{id}/members` and `/lists/{id}/members/{hash}`, and permanent deletion.

use serde::Serialize;
use serde_json::Value;

use crate::endpoints::write::check_free_address;
use crate::events::{self, Source};
use crate::input::MemberInput;
use crate::model::{Audience, Member, Status};
use crate::problem::ApiError;
use crate::state::{Ctx, State};
use crate::wire::{json_reply, Answer, MemberJson, Reply};

/// A page of `GET /lists/{id}/members`.
#[derive(Serialize)]
struct Page<'a> {
    members: Vec<MemberJson<'a>>,
    list_id: &'a str,
    total_items: usize,
    _links: [(); 0],
}

/// One half of a `GET /search-members` answer.
#[derive(Serialize)]
struct Matches<'a> {
    members: Vec<MemberJson<'a>>,
    total_items: usize,
}

#[derive(Serialize)]
struct Search<'a> {
    exact_matches: Matches<'a>,
    full_search: Matches<'a>,
    _links: [(); 0],
}

impl State {
    /// `GET /search-members?query=…[&list_id=…]`: the caller's live members (another account's
    /// list is 404), in each audience's creation order. `exact_matches`: the address equals the
    /// query (any case); `full_search`: the others whose address or first, last or full name
    /// contains it (any case).
    pub(crate) fn search_members(&self, ctx: &Ctx<'_>) -> Answer {
        let query = ctx
            .query
            .get("query")
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| ApiError::invalid_field("query", "This value should not be blank."))?
            .to_lowercase();
        let audiences: Vec<&Audience> = match ctx.query.get("list_id").filter(|l| !l.is_empty()) {
            Some(id) => {
                let aud = self.audience(id)?;
                if aud.account != ctx.account {
                    return Err(ApiError::not_found());
                }
                vec![aud]
            }
            None => self.audiences_of(ctx.account).collect(),
        };
        let mut exact = Vec::new();
        let mut full = Vec::new();
        for aud in audiences {
            for m in aud.order.values().filter_map(|h| aud.members.get(h)) {
                if m.status == Status::Archived {
                    continue;
                }
                let email = m.email.to_lowercase();
                if email == query {
                    exact.push(MemberJson::full(aud, m, ctx.base));
                } else if email.contains(&query) || name_matches(m, &query) {
                    full.push(MemberJson::full(aud, m, ctx.base));
                }
            }
        }
        Ok(json_reply(&Search {
            exact_matches: Matches {
                total_items: exact.len(),
                members: exact,
            },
            full_search: Matches {
                total_items: full.len(),
                members: full,
            },
            _links: [],
        }))
    }

    /// `GET /lists/{id}/members`: creation order; archived contacts only when asked for.
    pub(crate) fn get_members(&self, list_id: &str, ctx: &Ctx<'_>) -> Answer {
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
        let since = ctx.query.time("since_last_changed")?;
        let before = ctx.query.time("before_last_changed")?;
        let matches = |m: &Member| {
            let status_ok = match status {
                Some(s) => m.status == s,
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
                page.push(MemberJson::full(aud, m, ctx.base));
            }
            total += 1;
        }
        Ok(json_reply(&Page {
            members: page,
            list_id: &aud.id,
            total_items: total,
            _links: [],
        }))
    }

    /// `GET /lists/{id}/members/{hash}`.
    pub(crate) fn get_member(&self, list_id: &str, hash: &str, ctx: &Ctx<'_>) -> Answer {
        let aud = self.audience(list_id)?;
        let member = self.member(list_id, hash)?;
        Ok(json_reply(&MemberJson::full(aud, member, ctx.base)))
    }

    /// `POST /lists/{id}/members`: creates the member (or brings an archived one back).
    pub(crate) fn post_member(&mut self, list_id: &str, body: &Value, ctx: &Ctx<'_>) -> Answer {
        let aud = self.audience(list_id)?;
        let input = MemberInput::parse(body, Status::WRITABLE)?;
        let email = input
            .email_address
            .ok_or_else(|| ApiError::required("email_address"))?;
        let status = input.status.ok_or_else(|| ApiError::required("status"))?;
        let hash = check_free_address(aud, email)?;
        let hash = self.create_or_restore(list_id, email, hash, status, &input, ctx)?;
        self.get_member(list_id, &hash, ctx)
    }

    /// `PUT /lists/{id}/members/{hash}`: updates a live member, else creates one.
    pub(crate) fn put_member(
        &mut self,
        list_id: &str,
        key: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Answer {
        let aud = self.audience(list_id)?;
        let input = MemberInput::parse(body, Status::WRITABLE)?;
        let at_key = aud.members.get(key);
        if at_key.is_some_and(|m| m.status != Status::Archived) {
            let hash = self.update_member(list_id, key, &input, ctx)?;
            return self.get_member(list_id, &hash, ctx);
        }
        // Create path: the member is the body's address, whatever hash the path named.
        let archived_email = at_key.map(|m| m.email.clone());
        let email = match (input.email_address, archived_email.as_deref()) {
            (Some(e), _) => e,
            (None, Some(e)) => e,
            (None, None) => return Err(ApiError::required("email_address")),
        };
        let hash = check_free_address(aud, email)?;
        let status = input
            .status
            .or(input.status_if_new)
            .ok_or_else(|| ApiError::required("status_if_new"))?;
        let email = email.to_owned();
        let hash = self.create_or_restore(list_id, &email, hash, status, &input, ctx)?;
        self.get_member(list_id, &hash, ctx)
    }

    /// `PATCH /lists/{id}/members/{hash}`: updates the member, archived ones included.
    pub(crate) fn patch_member(
        &mut self,
        list_id: &str,
        key: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Answer {
        self.member(list_id, key)?;
        let input = MemberInput::parse(body, Status::PATCHABLE)?;
        let hash = self.update_member(list_id, key, &input, ctx)?;
        self.get_member(list_id, &hash, ctx)
    }

    /// `DELETE /lists/{id}/members/{hash}` archives the member.
    pub(crate) fn archive_member(&mut self, list_id: &str, key: &str, ctx: &Ctx<'_>) -> Answer {
        let before = self.before(list_id, key);
        let aud = self.audience_mut(list_id)?;
        let m = aud.members.get_mut(key).ok_or_else(ApiError::not_found)?;
        match m.status {
            Status::Subscribed | Status::Unsubscribed | Status::Transactional => {
                m.status = Status::Archived;
                m.touch(ctx.now);
                self.writes.count(false);
                self.note(list_id, before, key, Source::Api, ctx.now);
                Ok(Reply::NoContent)
            }
            Status::Pending | Status::Cleaned | Status::Archived => Err(ApiError::cannot_archive()),
        }
    }

    /// `POST /lists/{id}/members/{hash}/actions/delete-permanent`: the member is gone and its
    /// address can never be added again.
    pub(crate) fn delete_permanent(&mut self, list_id: &str, key: &str, ctx: &Ctx<'_>) -> Answer {
        // Field by field: the audience stays borrowed while the event is recorded.
        let aud = self
            .audiences
            .get_mut(list_id)
            .ok_or_else(ApiError::not_found)?;
        let m = aud.members.remove(key).ok_or_else(ApiError::not_found)?;
        aud.order.remove(&m.seq);
        if !aud.webhooks.is_empty() && m.status != Status::Archived {
            let event = events::unsubscribe(aud, &m, "delete", Source::Api, ctx.now);
            self.outbox.push(event);
        }
        aud.forgotten.insert(m.id);
        self.writes.count(false);
        Ok(Reply::NoContent)
    }
}

/// Whether the member's first, last or full name contains `query` (lower case).
fn name_matches(m: &Member, query: &str) -> bool {
    let part = |tag: &str| {
        m.merge
            .get(tag)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase()
    };
    let (first, last) = (part("FNAME"), part("LNAME"));
    first.contains(query) || last.contains(query) || format!("{first} {last}").contains(query)
}
