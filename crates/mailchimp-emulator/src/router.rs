//! Which operation answers a request: the Marketing API routes, and the test-only routes under
//! `/_emulator`.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::accounts::DEFAULT_ACCOUNT;
use crate::fields;
use crate::input::NewWebhook;
use crate::lock::lock;
use crate::model::Now;
use crate::outbound::validate_url;
use crate::problem::ApiError;
use crate::query::Query;
use crate::responses::{response, Resp, JSON};
use crate::routes::{segments, Route};
use crate::shared::Shared;
use crate::state::Ctx;
use crate::wire::{Answer, Reply};

/// Answers a Marketing API request (`route` is `None` for a path the emulator does not serve).
pub(crate) async fn api(
    shared: &Shared,
    route: Option<Route>,
    method: &Method,
    body: &Bytes,
    ctx: &Ctx<'_>,
) -> Answer {
    let answer = match route {
        // Creating a webhook, or moving it to another URL, waits for the validator's GET,
        // outside the state lock.
        Some(Route::Webhooks(id)) if method == Method::POST => {
            create_webhook(shared, &id, body, ctx).await
        }
        Some(Route::Webhook(id, hook)) if method == Method::PATCH => {
            patch_webhook(shared, &id, &hook, body, ctx).await
        }
        route => dispatch(
            shared,
            route.ok_or_else(ApiError::not_found)?,
            method,
            body,
            ctx,
        ),
    };
    match answer {
        Ok(Reply::Json(json)) if method == Method::GET => Ok(Reply::Json(fields::select(
            json,
            ctx.query.get("fields"),
            ctx.query.get("exclude_fields"),
        ))),
        other => other,
    }
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::json_parse())
}

/// The synchronous routes: each takes the state lock for the operation only (and, for an
/// audience's resources, the check that the audience is the caller's).
fn dispatch(shared: &Shared, route: Route, method: &Method, body: &Bytes, ctx: &Ctx<'_>) -> Answer {
    let json = || parse_json(body);
    let m = method.clone();
    let not_allowed = || Err(ApiError::method_not_allowed(route.allow()));
    // Another account's audience is answered exactly like one that does not exist.
    let st = |id: &str| shared.state_for(ctx.account, id);
    // Parse before locking: the lock only covers the state change and the answer.
    match (&route, m) {
        (Route::Root, Method::GET) => Ok(lock(&shared.state).account(ctx)),
        (Route::Ping, Method::GET) => Ok(Reply::Json(
            br#"{"health_status":"Everything's Chimpy!"}"#.to_vec(),
        )),
        (Route::Lists, Method::GET) => lock(&shared.state).get_lists(ctx),
        (Route::Lists, Method::POST) => {
            let body = json()?;
            lock(&shared.state).create_list(&body, ctx)
        }
        (Route::List(id), Method::GET) => st(id)?.get_list(id, ctx),
        (Route::List(id), Method::POST) => {
            let body = json()?;
            // The guard is a temporary: the lock is released before the answer is written.
            let applied = st(id)?.batch_subscribe(id, &body, ctx)?;
            Ok(applied.reply(ctx.base))
        }
        (Route::List(id), Method::PATCH) => {
            let body = json()?;
            st(id)?.patch_list(id, &body, ctx)
        }
        (Route::List(id), Method::DELETE) => st(id)?.delete_list(id),
        (Route::TagSearch(id), Method::GET) => st(id)?.tag_search(id, ctx),
        (Route::SearchMembers, Method::GET) => lock(&shared.state).search_members(ctx),
        (Route::InterestCategories(id), Method::GET) => st(id)?.get_categories(id, ctx),
        (Route::InterestCategories(id), Method::POST) => {
            let body = json()?;
            st(id)?.create_category(id, &body, ctx)
        }
        (Route::InterestCategory(id, cat), Method::GET) => st(id)?.get_category(id, cat, ctx),
        (Route::InterestCategory(id, cat), Method::PATCH) => {
            let body = json()?;
            st(id)?.patch_category(id, cat, &body, ctx)
        }
        (Route::InterestCategory(id, cat), Method::DELETE) => st(id)?.delete_category(id, cat),
        (Route::Interests(id, cat), Method::GET) => st(id)?.get_interests(id, cat, ctx),
        (Route::Interests(id, cat), Method::POST) => {
            let body = json()?;
            st(id)?.create_interest(id, cat, &body, ctx)
        }
        (Route::Interest(id, cat, interest), Method::GET) => {
            st(id)?.get_interest(id, cat, interest, ctx)
        }
        (Route::Interest(id, cat, interest), Method::PATCH) => {
            let body = json()?;
            st(id)?.patch_interest(id, cat, interest, &body, ctx)
        }
        (Route::Interest(id, cat, interest), Method::DELETE) => {
            st(id)?.delete_interest(id, cat, interest)
        }
        (Route::Members(id), Method::GET) => st(id)?.get_members(id, ctx),
        (Route::Members(id), Method::POST) => {
            let body = json()?;
            st(id)?.post_member(id, &body, ctx)
        }
        (Route::Member(id, key), Method::GET) => st(id)?.get_member(id, key, ctx),
        (Route::Member(id, key), Method::PUT) => {
            let body = json()?;
            st(id)?.put_member(id, key, &body, ctx)
        }
        (Route::Member(id, key), Method::PATCH) => {
            let body = json()?;
            st(id)?.patch_member(id, key, &body, ctx)
        }
        (Route::Member(id, key), Method::DELETE) => st(id)?.archive_member(id, key, ctx),
        (Route::MemberTags(id, key), Method::GET) => st(id)?.get_tags(id, key, ctx),
        (Route::MemberTags(id, key), Method::POST) => {
            let body = json()?;
            st(id)?.post_tags(id, key, &body, ctx)
        }
        (Route::DeletePermanent(id, key), Method::POST) => st(id)?.delete_permanent(id, key, ctx),
        (Route::MergeFields(id), Method::GET) => st(id)?.get_merge_fields(id, ctx),
        (Route::MergeFields(id), Method::POST) => {
            let body = json()?;
            st(id)?.create_merge_field(id, &body)
        }
        (Route::MergeField(id, merge_id), Method::GET) => st(id)?.get_merge_field(id, merge_id),
        (Route::MergeField(id, merge_id), Method::PATCH) => {
            let body = json()?;
            st(id)?.patch_merge_field(id, merge_id, &body)
        }
        (Route::MergeField(id, merge_id), Method::DELETE) => {
            st(id)?.delete_merge_field(id, merge_id)
        }
        (Route::Webhooks(id), Method::GET) => st(id)?.get_webhooks(id, ctx),
        (Route::Webhook(id, hook), Method::GET) => st(id)?.get_webhook(id, hook, ctx),
        (Route::Webhook(id, hook), Method::DELETE) => st(id)?.delete_webhook(id, hook),
        _ => not_allowed(),
    }
}

/// `POST /lists/{id}/webhooks`: checks the body, sends the validator's GET to the URL (which must
/// answer 200), then registers the webhook. "A url may only exist on a list once."
async fn create_webhook(shared: &Shared, list_id: &str, body: &Bytes, ctx: &Ctx<'_>) -> Answer {
    let new = NewWebhook::parse(&parse_json(body)?)?;
    shared
        .state_for(ctx.account, list_id)?
        .check_webhook_url(list_id, &new.url)?;
    validate_url(&new.url).await?;
    shared
        .state_for(ctx.account, list_id)?
        .add_webhook(list_id, new, ctx)
}

/// `PATCH /lists/{id}/webhooks/{webhook_id}`: only what the body gives changes; a new URL must
/// be free on the audience and pass the validator's GET, as on create.
async fn patch_webhook(
    shared: &Shared,
    list_id: &str,
    id: &str,
    body: &Bytes,
    ctx: &Ctx<'_>,
) -> Answer {
    let body = parse_json(body)?;
    let (change, moved) = {
        let state = shared.state_for(ctx.account, list_id)?;
        let current = state.webhook(list_id, id)?;
        let change = NewWebhook::parse_patch(&body, current)?;
        let moved = change.url != current.url;
        if moved {
            state.check_webhook_url_for(list_id, id, &change.url)?;
        }
        (change, moved)
    };
    if moved {
        validate_url(&change.url).await?;
    }
    shared
        .state_for(ctx.account, list_id)?
        .update_webhook(list_id, id, change, ctx)
}

/// Test-only routes under `/_emulator` (no authentication, no faults, not counted).
pub(crate) fn simulation(shared: &Shared, method: &Method, path: &str, query: &Query) -> Resp {
    let segs = segments(path);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let now = Now::current();
    let answer = |status: StatusCode, body: Value| {
        response(
            status,
            Some(JSON),
            "emulator",
            Bytes::from(body.to_string()),
        )
    };
    let done = |ok: bool| {
        if ok {
            answer(StatusCode::OK, json!({"ok": true}))
        } else {
            answer(StatusCode::NOT_FOUND, json!({"ok": false}))
        }
    };
    match (method, segs.as_slice()) {
        (&Method::GET, ["stats"]) => answer(
            StatusCode::OK,
            serde_json::to_value(shared.stats()).unwrap_or_default(),
        ),
        (&Method::PUT | &Method::POST, ["lists", id]) => {
            // `?account=KEY` names the account; the default one otherwise.
            let account = match query.get("account") {
                Some(key) => shared.accounts.account_of(key),
                None => Some(DEFAULT_ACCOUNT),
            };
            done(account.is_some_and(|a| lock(&shared.state).ensure_audience(id, a, &now)))
        }
        (&Method::POST, ["lists", id, "members", who, action]) => {
            let mut state = lock(&shared.state);
            match *action {
                "unsubscribe" => done(state.simulate_unsubscribe(id, who, &now)),
                "bounce" => done(state.simulate_bounce(id, who, &now)),
                "confirm" => done(state.simulate_confirm(id, who, &now)),
                "email-change" => match query.get("new_email") {
                    Some(new_email) => done(state.simulate_email_change(id, who, new_email, &now)),
                    None => done(false),
                },
                "profile" => {
                    let merges: serde_json::Map<String, Value> = query
                        .0
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    done(state.simulate_profile_update(id, who, &merges, &now))
                }
                _ => done(false),
            }
        }
        _ => done(false),
    }
}
