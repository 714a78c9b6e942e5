//! Interest categories and interests ("groups" in the web app):
//! `/lists/{id}/interest-categories[/{id}[/interests[/{id}]]]`. Removing a category or an
//! interest takes it off every member.

use serde_json::{json, Value};

use crate::input::{CategoryBody, InterestBody};
use crate::model::{Audience, Interest, InterestCategory, Status};
use crate::problem::ApiError;
use crate::state::{random_hex, Ctx, State};
use crate::wire::{json_reply, Answer, Reply};

impl Audience {
    fn category(&self, id: &str) -> Result<&InterestCategory, ApiError> {
        self.categories
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(ApiError::not_found)
    }

    /// The interest `id` of category `category_id`.
    fn interest(&self, category_id: &str, id: &str) -> Result<&Interest, ApiError> {
        self.category(category_id)?;
        self.interests
            .iter()
            .find(|i| i.id == id && i.category_id == category_id)
            .ok_or_else(ApiError::not_found)
    }

    /// Live members (archived ones left out) with the interest on.
    fn subscribers(&self, interest_id: &str) -> usize {
        self.members
            .values()
            .filter(|m| m.status != Status::Archived && m.interests.contains(interest_id))
            .count()
    }

    fn interest_json(&self, i: &Interest, base: &str) -> Value {
        i.to_json(&self.id, self.subscribers(&i.id), base)
    }

    /// Takes the interests out of the audience and off every member.
    fn drop_interests(&mut self, gone: impl Fn(&Interest) -> bool) {
        let ids: Vec<String> = self
            .interests
            .iter()
            .filter(|i| gone(i))
            .map(|i| i.id.clone())
            .collect();
        self.interests.retain(|i| !gone(i));
        for m in self.members.values_mut() {
            for id in &ids {
                m.interests.remove(id);
            }
        }
    }
}

/// A fresh 10-character id, unused among `taken`.
fn fresh_id(state: &mut State, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let id = random_hex(&mut state.rng, 5);
        if !taken(&id) {
            return id;
        }
    }
}

impl State {
    /// `GET /lists/{id}/interest-categories` (`count`, `offset`, `type`).
    pub(crate) fn get_categories(&self, list_id: &str, ctx: &Ctx<'_>) -> Answer {
        let aud = self.audience(list_id)?;
        let (count, offset) = ctx.query.page()?;
        let kind = ctx.query.get("type").filter(|t| !t.is_empty());
        let matching: Vec<&InterestCategory> = aud
            .categories
            .iter()
            .filter(|c| kind.is_none_or(|k| c.kind == k))
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(count)
            .map(|c| c.to_json(list_id, ctx.base))
            .collect();
        Ok(json_reply(&json!({
            "list_id": list_id,
            "categories": page,
            "total_items": matching.len(),
            "_links": [],
        })))
    }

    /// `POST /lists/{id}/interest-categories`: a title already used in the audience is refused.
    pub(crate) fn create_category(&mut self, list_id: &str, body: &Value, ctx: &Ctx<'_>) -> Answer {
        let new = CategoryBody::parse(body)?;
        let aud = self.audience(list_id)?;
        if aud.categories.iter().any(|c| c.title == new.title) {
            return Err(ApiError::already_on_list(new.title));
        }
        let display_order = new.display_order.unwrap_or(aud.categories.len() as i64);
        let taken: Vec<String> = aud.categories.iter().map(|c| c.id.clone()).collect();
        let id = fresh_id(self, |id| taken.iter().any(|t| t == id));
        let category = InterestCategory {
            id,
            title: new.title.to_owned(),
            kind: new.kind.to_owned(),
            display_order,
        };
        let reply = json_reply(&category.to_json(list_id, ctx.base));
        self.audience_mut(list_id)?.categories.push(category);
        Ok(reply)
    }

    pub(crate) fn get_category(&self, list_id: &str, id: &str, ctx: &Ctx<'_>) -> Answer {
        let aud = self.audience(list_id)?;
        Ok(json_reply(&aud.category(id)?.to_json(list_id, ctx.base)))
    }

    /// `PATCH …/interest-categories/{id}`: `title` and `type` are required, as on create.
    pub(crate) fn patch_category(
        &mut self,
        list_id: &str,
        id: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Answer {
        let aud = self.audience_mut(list_id)?;
        aud.category(id)?;
        let change = CategoryBody::parse(body)?;
        if aud
            .categories
            .iter()
            .any(|c| c.id != id && c.title == change.title)
        {
            return Err(ApiError::already_on_list(change.title));
        }
        let category = aud
            .categories
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(ApiError::not_found)?;
        change.title.clone_into(&mut category.title);
        change.kind.clone_into(&mut category.kind);
        if let Some(order) = change.display_order {
            category.display_order = order;
        }
        Ok(json_reply(&category.to_json(list_id, ctx.base)))
    }

    /// `DELETE …/interest-categories/{id}`: the category, its interests, and those interests on
    /// every member are gone.
    pub(crate) fn delete_category(&mut self, list_id: &str, id: &str) -> Answer {
        let aud = self.audience_mut(list_id)?;
        aud.category(id)?;
        aud.categories.retain(|c| c.id != id);
        aud.drop_interests(|i| i.category_id == id);
        Ok(Reply::NoContent)
    }

    /// `GET …/interest-categories/{id}/interests` (`count`, `offset`).
    pub(crate) fn get_interests(&self, list_id: &str, category_id: &str, ctx: &Ctx<'_>) -> Answer {
        let aud = self.audience(list_id)?;
        aud.category(category_id)?;
        let (count, offset) = ctx.query.page()?;
        let of_category: Vec<&Interest> = aud
            .interests
            .iter()
            .filter(|i| i.category_id == category_id)
            .collect();
        let page: Vec<Value> = of_category
            .iter()
            .skip(offset)
            .take(count)
            .map(|i| aud.interest_json(i, ctx.base))
            .collect();
        Ok(json_reply(&json!({
            "interests": page,
            "list_id": list_id,
            "category_id": category_id,
            "total_items": of_category.len(),
            "_links": [],
        })))
    }

    /// `POST …/interest-categories/{id}/interests`: a name already used in the category is
    /// refused.
    pub(crate) fn create_interest(
        &mut self,
        list_id: &str,
        category_id: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Answer {
        let aud = self.audience(list_id)?;
        aud.category(category_id)?;
        let new = InterestBody::parse(body)?;
        let siblings = aud
            .interests
            .iter()
            .filter(|i| i.category_id == category_id);
        if siblings.clone().any(|i| i.name == new.name) {
            return Err(ApiError::already_on_list(new.name));
        }
        let display_order = new.display_order.unwrap_or(siblings.count() as i64);
        // Interest ids are unique in the audience: a member's `interests` is keyed by them alone.
        let taken: Vec<String> = aud.interests.iter().map(|i| i.id.clone()).collect();
        let id = fresh_id(self, |id| taken.iter().any(|t| t == id));
        let interest = Interest {
            id,
            category_id: category_id.to_owned(),
            name: new.name.to_owned(),
            display_order,
        };
        let reply = json_reply(&interest.to_json(list_id, 0, ctx.base));
        self.audience_mut(list_id)?.interests.push(interest);
        Ok(reply)
    }

    pub(crate) fn get_interest(
        &self,
        list_id: &str,
        category_id: &str,
        id: &str,
        ctx: &Ctx<'_>,
    ) -> Answer {
        let aud = self.audience(list_id)?;
        let interest = aud.interest(category_id, id)?;
        Ok(json_reply(&aud.interest_json(interest, ctx.base)))
    }

    /// `PATCH …/interests/{id}`: `name` is required, as on create.
    pub(crate) fn patch_interest(
        &mut self,
        list_id: &str,
        category_id: &str,
        id: &str,
        body: &Value,
        ctx: &Ctx<'_>,
    ) -> Answer {
        let aud = self.audience_mut(list_id)?;
        aud.interest(category_id, id)?;
        let change = InterestBody::parse(body)?;
        if aud
            .interests
            .iter()
            .any(|i| i.category_id == category_id && i.id != id && i.name == change.name)
        {
            return Err(ApiError::already_on_list(change.name));
        }
        let interest = aud
            .interests
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or_else(ApiError::not_found)?;
        change.name.clone_into(&mut interest.name);
        if let Some(order) = change.display_order {
            interest.display_order = order;
        }
        let interest = interest.clone();
        Ok(json_reply(&aud.interest_json(&interest, ctx.base)))
    }

    /// `DELETE …/interests/{id}`: the interest is gone, from every member too.
    pub(crate) fn delete_interest(&mut self, list_id: &str, category_id: &str, id: &str) -> Answer {
        let aud = self.audience_mut(list_id)?;
        aud.interest(category_id, id)?;
        aud.drop_interests(|i| i.id == id);
        Ok(Reply::NoContent)
    }
}
