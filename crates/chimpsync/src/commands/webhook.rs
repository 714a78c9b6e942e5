//! `chimpsync webhook register`: the Mailchimp webhook that feeds `chimpsync run`'s receiver.

use anyhow::{anyhow, bail, Context, Result};
use secrecy::ExposeSecret;

use crate::cli::RegisterArgs;
use crate::config::{Config, Timeouts};
use crate::exit::Failure;
use crate::webhook::{account_path, registration};
use crate::{db, keys};

/// Registers the webhook [`registration`] describes on the audience. Idempotent: a webhook with the same URL is
/// reported, not added again.
pub(crate) async fn register(config: &Config, args: RegisterArgs) -> Result<()> {
    let parsed = url::Url::parse(args.url.trim())
        .map_err(|e| Failure::Usage.error(format!("--url: not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!(Failure::Usage.error("--url: must be an http(s) URL"));
    }
    if let Some(account) = args.account.as_deref() {
        return register_account(config, &args, account).await;
    }
    if config.mapping()?.multi_account() {
        bail!(Failure::Usage.error("the mapping serves many accounts ([source].account): register each account's webhook with --account ACCOUNT"));
    }
    if let Some(secret) = &config.webhook_secret {
        if parsed.path_segments().and_then(|mut s| s.next_back()) != Some(secret.expose_secret()) {
            println!(
                "note: the URL does not end with CHIMPSYNC_WEBHOOK_SECRET; chimpsync run answers 401 to any other secret"
            );
        }
    }
    let mapping = config.mapping()?;
    let audience = config.audience_id(&mapping)?;
    let client = config.client(&Timeouts::default())?;
    let url = args.url.trim().to_owned();
    create(&client, &audience, url, args.include_api_changes, "").await
}

/// `--account`: the account's URL (`BASE/webhooks/mailchimp/ACCOUNT/SECRET`) on its audience,
/// with its key. The secret is not printed: it is in `chimpsync.accounts.webhook_secret`.
async fn register_account(config: &Config, args: &RegisterArgs, account: &str) -> Result<()> {
    if !config.mapping()?.multi_account() {
        bail!(Failure::Usage
            .error("--account: the mapping serves one account (it names no [source].account)"));
    }
    let queue = db::queue(config, 1).await?;
    let opened = keys::open_account(config, queue.pool(), account).await?;
    let audience = opened.audience()?.to_string();
    let hook = store::accounts::webhook(&**queue.pool().get().await?, account)
        .await?
        .ok_or_else(|| anyhow!("no account {account:?}"))?;
    let base = args.url.trim().trim_end_matches('/');
    let url = format!("{base}{}", account_path(account, &hook.secret));
    let label = format!("account {account}: ");
    create(
        &opened.client,
        &audience,
        url,
        args.include_api_changes,
        &label,
    )
    .await
}

/// Registers `url` on `audience` unless a webhook for it is there; reports with `label` first.
async fn create(
    client: &mailchimp::Client,
    audience: &str,
    url: String,
    include_api_changes: bool,
    label: &str,
) -> Result<()> {
    let same = |a: &str| a.trim_end_matches('/') == url.trim_end_matches('/');
    let existing = client
        .webhooks(audience)
        .await
        .with_context(|| format!("reading the webhooks of audience {audience}"))?;
    if let Some(hook) = existing.iter().find(|h| same(&h.url)) {
        println!(
            "{label}webhook {} is already registered on audience {audience} for this URL",
            hook.id
        );
        if hook.sources.api != include_api_changes {
            println!(
                "  note: it {} API changes; delete it in Mailchimp and register again to change that",
                if hook.sources.api { "includes" } else { "excludes" }
            );
        }
        return Ok(());
    }
    let hook = client
        .create_webhook(audience, &registration(url.clone(), include_api_changes))
        .await
        .map_err(|e| {
            anyhow!(
                "registering the webhook: {e} (Mailchimp first sends a GET to the URL and needs a 200: \
                 is `chimpsync run` reachable there{}?)",
                if label.is_empty() { ", with CHIMPSYNC_WEBHOOK_SECRET set" } else { "" }
            )
        })?;
    println!(
        "{label}registered webhook {} on audience {audience} (subscribe, unsubscribe, profile, cleaned, upemail; sources user, admin{})",
        hook.id,
        if hook.sources.api { ", api" } else { "" }
    );
    Ok(())
}
