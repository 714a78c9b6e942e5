//! Merge fields: `/lists/{id}/merge-fields` and `/lists/{id}/merge-fields/{merge_id}`.

use serde_json::{json, Value};

use crate::input::{new_merge_field, patch_merge_field};
use crate::problem::ApiError;
use crate::state::{Ctx, State};
use crate::wire::{json_reply, Answer, Reply};

impl State {
    pub(crate) fn get_merge_fields(&self, list_id: &str, ctx: &Ctx<'_>) -> Answer {
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

    pub(crate) fn get_merge_field(&self, list_id: &str, merge_id: &str) -> Answer {
        let aud = self.audience(list_id)?;
        let field = aud
            .merge_fields
            .iter()
            .find(|f| f.merge_id.to_string() == merge_id)
            .ok_or_else(ApiError::not_found)?;
        Ok(json_reply(&field.to_json(&aud.id)))
    }

    pub(crate) fn delete_merge_field(&mut self, list_id: &str, merge_id: &str) -> Answer {
        let aud = self.audience_mut(list_id)?;
        let before = aud.merge_fields.len();
        aud.merge_fields
            .retain(|f| f.merge_id.to_string() != merge_id);
        if aud.merge_fields.len() == before {
            return Err(ApiError::not_found());
        }
        Ok(Reply::NoContent)
    }

    /// `PATCH /lists/{id}/merge-fields/{merge_id}`.
    pub(crate) fn patch_merge_field(
        &mut self,
        list_id: &str,
        merge_id: &str,
        body: &Value,
    ) -> Answer {
        let aud = self.audience_mut(list_id)?;
        let at = aud
            .merge_fields
            .iter()
            .position(|f| f.merge_id.to_string() == merge_id)
            .ok_or_else(ApiError::not_found)?;
        let field = patch_merge_field(body, aud.merge_fields[at].clone(), &aud.merge_fields)?;
        let reply = json_reply(&field.to_json(&aud.id));
        aud.merge_fields[at] = field;
        Ok(reply)
    }

    /// `POST /lists/{id}/merge-fields`.
    pub(crate) fn create_merge_field(&mut self, list_id: &str, body: &Value) -> Answer {
        let aud = self.audience_mut(list_id)?;
        let field = new_merge_field(body, aud.next_merge_id, &aud.merge_fields)?;
        aud.next_merge_id += 1;
        let reply = json_reply(&field.to_json(&aud.id));
        aud.merge_fields.push(field);
        Ok(reply)
    }
}
