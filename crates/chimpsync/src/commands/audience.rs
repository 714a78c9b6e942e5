//! `chimpsync audience create`.

use anyhow::{anyhow, Result};

use crate::cli::AudienceArgs;
use crate::config::{Config, Timeouts};

/// Creates the audience and prints its id.
pub async fn create(config: &Config, args: AudienceArgs) -> Result<()> {
    let client = config.client(&Timeouts::default())?;
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
        .map_err(|e| anyhow!("creating the audience: {e}"))?;
    println!("{}", audience.id);
    Ok(())
}
