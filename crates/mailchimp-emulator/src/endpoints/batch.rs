//! Batch subscribe: `POST /lists/{id}`. Items are applied in order, each like a single-member
//! write; the answer is written after the state lock is released.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;

use crate::email::subscriber_hash;
use crate::endpoints::write::check_new_address;
use crate::input::{BatchBody, MemberInput};
use crate::model::{Audience, Interest, Member, MergeField, Permission, Status};
use crate::problem::ApiError;
use crate::state::{Ctx, State};
use crate::wire::{json_reply_sized, MemberJson, Reply};

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

    /// The address is a live member and the batch does not update existing ones.
    fn exists(email: &str) -> Self {
        Self {
            email_address: email.to_owned(),
            error: format!(
                "{email} is already a list member, do you want to update? please provide update_existing:true in the request body"
            ),
            error_code: "ERROR_CONTACT_EXISTS",
            field: None,
            field_message: None,
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
    interests: Vec<Interest>,
    permissions: Option<Vec<Permission>>,
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
                interests: &applied.interests,
                permissions: applied.permissions.as_deref(),
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
    /// Applies a batch subscribe; [`BatchApplied::reply`] writes its answer.
    pub(crate) fn batch_subscribe(
        &mut self,
        list_id: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Result<BatchApplied, ApiError> {
        self.audience(list_id)?;
        let batch = BatchBody::parse(body)?;
        let skip_duplicates = ctx.query.flag("skip_duplicate_check");

        let mut created = Vec::new();
        let mut updated = Vec::new();
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for item in batch.members {
            if skip_duplicates && !seen.insert(subscriber_hash(item_email(item))) {
                continue;
            }
            match self.batch_item(list_id, item, &batch, ctx) {
                Ok(Written::Created(h)) => created.push(h),
                Ok(Written::Updated(h)) => updated.push(h),
                Err(e) => errors.push(e),
            }
        }
        let aud = self.audience(list_id)?;
        let owned = |h: &String| aud.members.get(h).map(|m| Member::clone(m));
        Ok(BatchApplied {
            list_id: aud.id.clone(),
            merge_fields: aud.merge_fields.clone(),
            interests: aud.interests.clone(),
            permissions: aud.shown_permissions().map(<[Permission]>::to_vec),
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
        batch: &BatchBody<'_>,
        ctx: &Ctx<'_>,
    ) -> Result<Written, BatchError> {
        let raw_email = item_email(item);
        let fail = |e: ApiError| BatchError::generic(raw_email, e);
        let input = MemberInput::parse(item, Status::WRITABLE).map_err(fail)?;
        // The batch member schema has no `marketing_permissions`: like any property it does not
        // declare, it is ignored.
        let input = MemberInput {
            marketing_permissions: None,
            ..input
        };
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
        if !batch.update_existing {
            return Err(BatchError::exists(raw_email));
        }
        let wanted = input.tags.clone();
        // The batch is keyed by address: no renames here.
        let update = MemberInput {
            email_address: None,
            tags: None,
            ..input
        };
        let hash = self
            .update_member(list_id, &hash, &update, ctx)
            .map_err(fail)?;
        if let (true, Some(wanted)) = (batch.sync_tags, wanted) {
            let Audience { members, tags, .. } = self.audience_mut(list_id).map_err(fail)?;
            if let Some(m) = members.get_mut(&hash) {
                m.tags.retain(|t| {
                    wanted
                        .iter()
                        .any(|w| w.trim().eq_ignore_ascii_case(&t.name))
                });
                for name in wanted {
                    tags.attach(m, name, ctx.now);
                }
            }
        }
        Ok(Written::Updated(hash))
    }
}

/// An item's address as given (trimmed), for its error and the duplicate check.
fn item_email(item: &Value) -> &str {
    item.get("email_address")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
}
