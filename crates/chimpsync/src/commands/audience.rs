//! `chimpsync audience create`.

use anyhow::{Context, Result};

use crate::cli::AudienceArgs;
use crate::config::{Config, Timeouts};
use crate::{db, keys};

/// Creates the audience and prints its id. With `--account`, the audience is created with the
/// account's key and becomes the account's.
pub async fn create(config: &Config, args: AudienceArgs) -> Result<()> {
    let account = match args.account.as_deref() {
        Some(account) => {
            let queue = db::queue(config, 1).await?;
            Some((
                keys::open_account(config, queue.pool(), account).await?,
                queue,
            ))
        }
        None => None,
    };
    let client = match &account {
        Some((account, _)) => account.client.clone(),
        None => config.client(&Timeouts::default())?,
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{} Customers", args.company));
    let request = mailchimp::NewAudience {
        name,
        company: args.company.clone(),
        address1: args.address1,
        city: args.city,
        state: args.state,
        zip: args.zip,
        country: args.country,
        permission_reminder: args.permission_reminder.unwrap_or_else(|| {
            format!(
                "You are receiving this because you are a customer of {}.",
                args.company
            )
        }),
        from_name: args.from_name.unwrap_or_else(|| args.company.clone()),
        from_email: args.from_email,
        language: args.language,
    };
    let audience = client
        .create_audience(&request)
        .await
        .context("creating the audience")?;
    if let Some((account, queue)) = &account {
        let db = queue.pool().get().await?;
        store::accounts::update(&**db, &account.account, Some(&audience.id), None)
            .await
            .with_context(|| {
                format!(
                    "audience {} was created, but setting it on account {} failed",
                    audience.id, account.account
                )
            })?;
    }
    println!("{}", audience.id);
    Ok(())
}
