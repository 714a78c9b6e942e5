//! `chimpsync webhook register`: the Mailchimp webhook that feeds `chimpsync run`'s receiver.

use anyhow::{anyhow, bail, Context, Result};
use secrecy::ExposeSecret;

use crate::cli::RegisterArgs;
use crate::config::{Config, Timeouts};
use crate::webhook::registration;

/// Registers the webhook [`registration`] describes on the audience. Idempotent: a webhook with the same URL is
/// reported, not added again.
pub(crate) async fn register(config: &Config, args: RegisterArgs) -> Result<()> {
    let parsed = url::Url::parse(args.url.trim()).map_err(|e| anyhow!("--url: not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("--url: must be an http(s) URL");
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
    let same = |a: &str| a.trim_end_matches('/') == url.trim_end_matches('/');
    let existing = client
        .webhooks(&audience)
        .await
        .with_context(|| format!("reading the webhooks of audience {audience}"))?;
    if let Some(hook) = existing.iter().find(|h| same(&h.url)) {
        println!(
            "webhook {} is already registered on audience {audience} for this URL",
            hook.id
        );
        if hook.sources.api != args.include_api_changes {
            println!(
                "  note: it {} API changes; delete it in Mailchimp and register again to change that",
                if hook.sources.api { "includes" } else { "excludes" }
            );
        }
        return Ok(());
    }
    let hook = client
        .create_webhook(&audience, &registration(url, args.include_api_changes))
        .await
        .map_err(|e| {
            anyhow!(
                "registering the webhook: {e} (Mailchimp first sends a GET to the URL and needs a 200: \
                 is `chimpsync run` reachable there, with CHIMPSYNC_WEBHOOK_SECRET set?)"
            )
        })?;
    println!(
        "registered webhook {} on audience {audience} (subscribe, unsubscribe, profile, cleaned, upemail; sources user, admin{})",
        hook.id,
        if hook.sources.api { ", api" } else { "" }
    );
    Ok(())
}
