//! Webhook registrations: `/lists/{id}/webhooks` and `/lists/{id}/webhooks/{webhook_id}`.
//! Creating one also needs the validator's GET, which the server sends between
//! [`State::check_webhook_url`] and [`State::add_webhook`], outside the state lock.

use serde_json::{json, Value};

use crate::input::NewWebhook;
use crate::model::Webhook;
use crate::problem::ApiError;
use crate::state::{random_hex, Ctx, State};
use crate::wire::{json_reply, Answer, Reply};

impl State {
    /// Checks that a webhook with `url` may be added to the audience.
    pub(crate) fn check_webhook_url(&self, list_id: &str, url: &str) -> Result<(), ApiError> {
        let aud = self.audience(list_id)?;
        if aud.webhooks.iter().any(|h| h.url == url) {
            return Err(ApiError::webhook_url_taken());
        }
        Ok(())
    }

    /// Adds a webhook whose URL passed the validator.
    pub(crate) fn add_webhook(&mut self, list_id: &str, new: NewWebhook, ctx: &Ctx<'_>) -> Answer {
        self.check_webhook_url(list_id, &new.url)?;
        let id = random_hex(&mut self.rng, 5);
        let aud = self.audience_mut(list_id)?;
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

    /// The registered webhook `id`.
    pub(crate) fn webhook(&self, list_id: &str, id: &str) -> Result<&Webhook, ApiError> {
        self.audience(list_id)?
            .webhooks
            .iter()
            .find(|h| h.id == id)
            .ok_or_else(ApiError::not_found)
    }

    /// Checks that the webhook `id` may take `url` (no other webhook of the audience has it).
    pub(crate) fn check_webhook_url_for(
        &self,
        list_id: &str,
        id: &str,
        url: &str,
    ) -> Result<(), ApiError> {
        let aud = self.audience(list_id)?;
        if aud.webhooks.iter().any(|h| h.id != id && h.url == url) {
            return Err(ApiError::webhook_url_taken());
        }
        Ok(())
    }

    /// Writes a checked PATCH into the webhook `id`.
    pub(crate) fn update_webhook(
        &mut self,
        list_id: &str,
        id: &str,
        change: NewWebhook,
        ctx: &Ctx<'_>,
    ) -> Answer {
        self.check_webhook_url_for(list_id, id, &change.url)?;
        let aud = self.audience_mut(list_id)?;
        let hook = aud
            .webhooks
            .iter_mut()
            .find(|h| h.id == id)
            .ok_or_else(ApiError::not_found)?;
        hook.url = change.url;
        hook.events = change.events;
        hook.sources = change.sources;
        Ok(json_reply(&hook.to_json(list_id, ctx.base)))
    }

    pub(crate) fn get_webhooks(&self, list_id: &str, ctx: &Ctx<'_>) -> Answer {
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

    pub(crate) fn get_webhook(&self, list_id: &str, id: &str, ctx: &Ctx<'_>) -> Answer {
        let aud = self.audience(list_id)?;
        let hook = aud
            .webhooks
            .iter()
            .find(|h| h.id == id)
            .ok_or_else(ApiError::not_found)?;
        Ok(json_reply(&hook.to_json(list_id, ctx.base)))
    }

    pub(crate) fn delete_webhook(&mut self, list_id: &str, id: &str) -> Answer {
        let aud = self.audience_mut(list_id)?;
        let before = aud.webhooks.len();
        aud.webhooks.retain(|h| h.id != id);
        if aud.webhooks.len() == before {
            return Err(ApiError::not_found());
        }
        Ok(Reply::NoContent)
    }
}
