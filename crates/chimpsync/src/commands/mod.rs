//! One module per command; [`execute`] dispatches the parsed command line to them.

mod groups;

mod account;
mod audience;
mod backfill;
mod check;
mod reconcile;
mod release_removals;
mod retry;
mod run;
mod secret;
mod setup;
mod status;
mod webhook;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{AudienceCommand, Command, SecretCommand, WebhookCommand};
use crate::config::Config;

/// Runs `command` with the settings of `config`.
pub async fn execute(command: Command, config: &Config) -> Result<ExitCode> {
    match command {
        Command::Setup(args) => setup::run(config, args).await?,
        Command::Check { json } => return check::run(config, json).await,
        Command::Backfill {
            chunk_size,
            account,
        } => backfill::run(config, chunk_size, account.as_deref()).await?,
        Command::Run {
            once,
            wait_for_schema,
            inbound_retention_days,
            tuning,
        } => {
            let options = run::Options {
                once,
                wait_for_schema,
                inbound_retention_days,
            };
            run::run(config, options, tuning).await?
        }
        Command::Status { json, account } => match account {
            Some(account) => status::account(config, &account, json).await?,
            None => status::run(config, json).await?,
        },
        Command::Retry { all, ids } => retry::run(config, all, &ids).await?,
        Command::ReleaseRemovals { all, ids } => release_removals::run(config, all, &ids).await?,
        Command::Audience {
            command: AudienceCommand::Create(args),
        } => audience::create(config, args).await?,
        Command::Webhook {
            command: WebhookCommand::Register(args),
        } => webhook::register(config, args).await?,
        Command::Account { command } => account::run(config, command).await?,
        Command::Secret {
            command: SecretCommand::Generate,
        } => secret::generate().await?,
        Command::Secret {
            command: SecretCommand::Rotate,
        } => secret::rotate(config).await?,
        Command::Reconcile(args) => reconcile::run(config, args).await?,
        #[cfg(feature = "demo")]
        Command::Demo { customers } => {
            chimpsync_demo::run(config.database_url().ok(), customers).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}
