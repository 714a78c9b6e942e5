//! Provisioning on Mailchimp's side: the merge fields the mapping needs (`setup --mailchimp`)
//! and the webhook that feeds `chimpsync run`'s receiver (`webhook register`).

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mailchimp::{NewMergeField, NewWebhook, WebhookEvents, WebhookSources};

use crate::config::Env;
use crate::Tuning;

/// The Mailchimp merge-field type that fits a column's SQL type: numbers for numeric columns,
/// dates for `date` columns, text for everything else (booleans and timestamps are sent as text).
pub fn merge_field_type(sql_type: &str) -> &'static str {
    let lower = sql_type.to_ascii_lowercase();
    let base = lower.split('(').next().unwrap_or_default().trim();
    match base {
        "smallint" | "integer" | "bigint" | "numeric" | "decimal" | "real" | "double precision" => {
            "number"
        }
        "date" => "date",
        _ => "text",
    }
}

/// A display name for a column: `first_name` → `First Name`.
pub fn display_name(column: &str) -> String {
    column
        .split(['_', ' ', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(c) => c.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `setup --mailchimp`: creates the merge fields of `[merge_fields]` the audience lacks, typed
/// from the columns, and reports each.
pub(crate) async fn merge_fields(env: &Env) -> Result<()> {
    let mapping = env.mapping()?;
    let audience = env.audience_id(&mapping)?;
    let client = env.client(&Tuning::default().timeouts()?)?;
    let db = crate::connect(env).await?;
    let table = mapping.table().map_err(|e| anyhow!("source.table: {e}"))?;
    let columns = store::generated::table_columns(&db, &table).await?;
    let existing = client
        .merge_fields(&audience)
        .await
        .with_context(|| format!("reading the merge fields of audience {audience}"))?;
    let (mut created, mut present) = (0, 0);
    for (tag, column) in &mapping.merge_fields {
        let Some(sql_type) = columns
            .iter()
            .find(|c| &c.name == column)
            .map(|c| c.sql_type.as_str())
        else {
            bail!("merge_fields.{tag}: column {column:?} does not exist in table {table}");
        };
        let wanted = merge_field_type(sql_type);
        if let Some(field) = existing.iter().find(|f| &f.tag == tag) {
            present += 1;
            println!("merge field {tag} exists ({})", field.r#type);
            if field.r#type != wanted && wanted != "text" {
                println!(
                    "  note: column {column} is {sql_type}; Mailchimp keeps it as {}, a {wanted} field would fit",
                    field.r#type
                );
            }
            continue;
        }
        let field = client
            .create_merge_field(
                &audience,
                &NewMergeField {
                    tag: tag.clone(),
                    name: display_name(column),
                    r#type: wanted.into(),
                },
            )
            .await
            .with_context(|| format!("creating merge field {tag}"))?;
        created += 1;
        println!(
            "created merge field {} ({}) for column {column} ({sql_type})",
            field.tag, field.r#type
        );
    }
    println!("merge fields of audience {audience}: {created} created, {present} already there");
    Ok(())
}

/// `chimpsync webhook register`.
#[derive(Debug, Args)]
pub(crate) struct RegisterArgs {
    /// The public URL of `chimpsync run`'s receiver:
    /// https://<host>/webhooks/mailchimp/<CHIMPSYNC_WEBHOOK_SECRET>.
    #[arg(long)]
    url: String,
    /// Also hear about changes made through the API, chimpsync's own included (off by default:
    /// chimpsync knows what it wrote).
    #[arg(long)]
    include_api_changes: bool,
}

/// Registers the webhook on the audience with every member event (no campaign events) from
/// contacts and admins (and the API with `--include-api-changes`). Idempotent: a webhook with the
/// same URL is reported, not added again.
pub(crate) async fn register_webhook(env: &Env, args: RegisterArgs) -> Result<()> {
    let parsed = url::Url::parse(args.url.trim()).map_err(|e| anyhow!("--url: not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("--url: must be an http(s) URL");
    }
    let secret = std::env::var("CHIMPSYNC_WEBHOOK_SECRET").unwrap_or_default();
    let secret = secret.trim();
    if !secret.is_empty() && parsed.path_segments().and_then(|mut s| s.next_back()) != Some(secret)
    {
        println!(
            "note: the URL does not end with CHIMPSYNC_WEBHOOK_SECRET; chimpsync run answers 401 to any other secret"
        );
    }
    let mapping = env.mapping()?;
    let audience = env.audience_id(&mapping)?;
    let client = env.client(&Tuning::default().timeouts()?)?;
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
        .create_webhook(
            &audience,
            &NewWebhook {
                url,
                events: WebhookEvents {
                    subscribe: true,
                    unsubscribe: true,
                    profile: true,
                    cleaned: true,
                    upemail: true,
                    campaign: false,
                },
                sources: WebhookSources {
                    user: true,
                    admin: true,
                    api: args.include_api_changes,
                },
            },
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_pick_the_merge_field_type() {
        for (sql, want) in [
            ("integer", "number"),
            ("numeric(10,2)", "number"),
            ("double precision", "number"),
            ("date", "date"),
            ("timestamp with time zone", "text"),
            ("boolean", "text"),
            ("character varying(200)", "text"),
        ] {
            assert_eq!(merge_field_type(sql), want, "{sql}");
        }
        assert_eq!(display_name("first_name"), "First Name");
        assert_eq!(display_name("ltv"), "Ltv");
    }
}
