//! Member tags: `/lists/{id}/members/{hash}/tags`. Tag changes produce no webhook event and do
//! not move `last_changed`.

use serde_json::{json, Value};

use crate::input::tag_changes;
use crate::model::Audience;
use crate::problem::ApiError;
use crate::state::{Content, Ctx, State};
use crate::wire::{json_reply, Answer, Reply};

impl State {
    /// `GET …/tags`: the member's tags, in the order they were added.
    pub(crate) fn get_tags(&self, list_id: &str, key: &str, ctx: &Ctx<'_>) -> Answer {
        let m = self.member(list_id, key)?;
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

    /// `GET /lists/{id}/tag-search?name=…`: the audience's tags whose name starts with `name`
    /// (spec: "compared to each tag as a prefix"; case-insensitively here, as tag names are),
    /// every tag without it.
    pub(crate) fn tag_search(&self, list_id: &str, ctx: &Ctx<'_>) -> Answer {
        let aud = self.audience(list_id)?;
        let prefix = ctx.query.get("name").unwrap_or("").trim().to_lowercase();
        let tags: Vec<Value> = aud
            .tags
            .starting_with(&prefix)
            .into_iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect();
        Ok(json_reply(&json!({
            "tags": tags,
            "total_items": tags.len(),
        })))
    }

    /// `POST …/tags`: activates and deactivates tags, in the order given.
    pub(crate) fn post_tags(
        &mut self,
        list_id: &str,
        key: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Answer {
        self.member(list_id, key)?;
        let changes = tag_changes(body)?;
        let Audience { members, tags, .. } = self.audience_mut(list_id)?;
        let m = members.get_mut(key).ok_or_else(ApiError::not_found)?;
        let was = Content::of(m);
        for (name, active) in changes {
            if active {
                tags.attach(m, name, ctx.now);
            } else {
                m.detach_tag(name);
            }
        }
        let unchanged = was == Content::of(m);
        self.writes.count(unchanged);
        Ok(Reply::NoContent)
    }
}
