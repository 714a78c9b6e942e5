//! The account (`GET /`) and audiences: `/lists` and `/lists/{id}`.

use serde_json::{json, Value};

use crate::input::ListBody;
use crate::model::{Audience, Status};
use crate::problem::ApiError;
use crate::state::{random_hex, Ctx, State};
use crate::wire::{json_reply, Answer, Reply};

impl State {
    /// `GET /`: the account.
    pub(crate) fn account(&self, ctx: &Ctx<'_>) -> Reply {
        let subscribers: usize = self
            .audiences_of(ctx.account)
            .map(|a| {
                a.members
                    .values()
                    .filter(|m| m.status == Status::Subscribed)
                    .count()
            })
            .sum();
        json_reply(&json!({
            // The first account keeps the id the emulator always answered; each has its own.
            "account_id": format!("0123456789abcdef{:08x}", 0x0123_4567 + ctx.account),
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

    pub(crate) fn get_lists(&self, ctx: &Ctx<'_>) -> Answer {
        let (count, offset) = ctx.query.page()?;
        let total = self.audiences_of(ctx.account).count();
        let lists: Vec<Value> = self
            .audiences_of(ctx.account)
            .skip(offset)
            .take(count)
            .map(|a| a.to_json(ctx.base))
            .collect();
        Ok(json_reply(&json!({
            "lists": lists,
            "total_items": total,
            "constraints": {
                "may_create": true,
                "max_instances": -1,
                "current_total_instances": total,
            },
            "_links": [],
        })))
    }

    /// `GET /lists/{id}`; `include_total_contacts=true` adds `stats.total_contacts`, "an
    /// approximate count of all contacts in any state" (spec): archived ones included.
    pub(crate) fn get_list(&self, list_id: &str, ctx: &Ctx<'_>) -> Answer {
        let aud = self.audience(list_id)?;
        let mut list = aud.to_json(ctx.base);
        if ctx.query.flag("include_total_contacts") {
            list["stats"]["total_contacts"] = json!(aud.members.len());
        }
        Ok(json_reply(&list))
    }

    /// `PATCH /lists/{id}`: the spec requires the same settings as a create (and the contact's
    /// `state` and `zip`); optional settings left out stay as they are. `marketing_permissions:
    /// true` makes it a GDPR audience.
    pub(crate) fn patch_list(&mut self, list_id: &str, body: &Value, ctx: &Ctx<'_>) -> Answer {
        self.audience(list_id)?;
        let change = ListBody::parse_patch(body)?;
        let aud = self.audience_mut(list_id)?;
        apply_list(aud, &change);
        Ok(json_reply(&aud.to_json(ctx.base)))
    }

    pub(crate) fn delete_list(&mut self, list_id: &str) -> Answer {
        if !self.remove_audience(list_id) {
            return Err(ApiError::not_found());
        }
        Ok(Reply::NoContent)
    }

    /// `POST /lists`: a new audience of the caller's account, with the default merge fields. The
    /// id is unique across accounts.
    pub(crate) fn create_list(&mut self, body: &Value, ctx: &Ctx<'_>) -> Answer {
        let new = ListBody::parse(body)?;
        let id = loop {
            let id = random_hex(&mut self.rng, 5);
            if !self.audiences.contains_key(&id) {
                break id;
            }
        };
        self.ensure_audience(&id, ctx.account, ctx.now);
        let aud = self.audience_mut(&id)?;
        apply_list(aud, &new);
        Ok(json_reply(&aud.to_json(ctx.base)))
    }
}

/// Writes a create or PATCH body into the audience.
fn apply_list(aud: &mut Audience, body: &ListBody<'_>) {
    body.name.clone_into(&mut aud.name);
    body.permission_reminder
        .clone_into(&mut aud.permission_reminder);
    if let (Some(dst), Some(src)) = (aud.contact.as_object_mut(), body.contact) {
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
    }
    aud.campaign_defaults = body.campaign_defaults.clone();
    aud.email_type_option = body.email_type_option;
    if let Some(v) = body.use_archive_bar {
        aud.use_archive_bar = v;
    }
    if let Some(v) = body.double_optin {
        aud.double_optin = v;
    }
    match body.marketing_permissions {
        Some(true) => aud.enable_marketing_permissions(),
        Some(false) => aud.marketing_permissions = false,
        None => {}
    }
    if let Some(v) = body.notify_on_subscribe {
        v.clone_into(&mut aud.notify_on_subscribe);
    }
    if let Some(v) = body.notify_on_unsubscribe {
        v.clone_into(&mut aud.notify_on_unsubscribe);
    }
}
