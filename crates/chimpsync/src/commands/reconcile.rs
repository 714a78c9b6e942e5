//! `chimpsync reconcile`: the command line around [`worker::reconcile`] (arguments, progress,
//! the table or JSON it prints).

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use tracing::info;
use worker::reconcile::{Options, Progress, Reconciler, Report};

use crate::cli::ReconcileArgs;
use crate::config::{Config, Timeouts};
use crate::{db, keys, progress};

/// Parses `--since`.
fn parse_since(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Some(t) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(t.and_utc());
    }
    Err(anyhow!(
        "--since: {text:?} is not a time (e.g. 2024-05-01T12:00:00Z, \"2024-05-01 12:00:00\" or 2024-05-01)"
    ))
}

/// Compares, prints the report, and with `--apply` fixes the differences.
pub async fn run(config: &Config, args: ReconcileArgs) -> Result<()> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let mapping = config.mapping()?;
    let queue = db::queue(config, 4).await?;
    // With many accounts, one account's audience with its key, against its customers only.
    let (client, audience) = match (mapping.multi_account(), args.account.as_deref()) {
        (true, Some(account)) => {
            let opened = keys::open_account(config, queue.pool(), account).await?;
            let audience = opened.audience()?.to_string();
            (opened.client, audience)
        }
        (true, None) => bail!(
            "the mapping serves many accounts ([source].account): name the one to reconcile with --account ACCOUNT"
        ),
        (false, Some(_)) => bail!(
            "--account: the mapping serves one account (it names no [source].account)"
        ),
        (false, None) => (
            config.client(&Timeouts::default())?,
            config.audience_id(&mapping)?,
        ),
    };
    let reconciler = Reconciler::new(
        client,
        queue.pool().clone(),
        args.concurrency.max(1),
        mapping,
        audience,
    )
    .await?;
    let reconciler = match args.account.as_deref() {
        Some(account) => reconciler.for_account(account),
        None => reconciler,
    };
    let options = Options {
        since,
        full: args.full,
        apply: args.apply,
        remove_extra: args.remove_extra,
    };
    let bar = progress::bar(
        0,
        "{elapsed_precise} [{bar:40}] {pos}/{len} members ({per_sec}, eta {eta})",
    );
    let mut pages = 0u64;
    let mut next_log = 10u64;
    let report = reconciler
        .run(&options, |p: Progress| {
            pages += 1;
            bar.set_length(p.total.max(p.members_read));
            bar.set_position(p.members_read);
            // A log line every ten pages (10 000 members), for runs off a terminal.
            if pages >= next_log {
                next_log += 10;
                info!(
                    members_read = p.members_read,
                    total = p.total,
                    "reconcile progress"
                );
            }
        })
        .await?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(report: &Report) {
    match report.since {
        Some(t) => println!(
            "audience {}: {} members changed since {} read, {} customers compared",
            report.audience_id,
            report.members_read,
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            report.customers_compared
        ),
        None => println!(
            "audience {}: all {} members read, {} customers compared",
            report.audience_id, report.members_read, report.customers_compared
        ),
    }
    if report.skipped_queued > 0 {
        println!(
            "{} members belong to customers with a queued change and were not compared",
            report.skipped_queued
        );
    }
    if report.differences.is_empty() {
        println!("no differences");
    } else {
        println!(
            "\n{:<8} {:<12} {:<32} {:<20} DETAIL",
            "KIND", "CUSTOMER", "EMAIL", "FIX"
        );
        for d in &report.differences {
            println!(
                "{:<8} {:<12} {:<32} {:<20} {}",
                d.kind.as_str(),
                d.customer_key.as_deref().unwrap_or("-"),
                d.email,
                d.fix.label(),
                d.detail
            );
        }
        println!("\n{} differences", report.differences.len());
    }
    match &report.applied {
        Some(a) => {
            println!(
                "applied: {} customers queued, {} inbound statements applied ({} failed), {} members removed, {} left as they are",
                a.queued, a.inbound_applied, a.inbound_failed, a.removed, a.kept
            );
            for e in &a.errors {
                println!("  failed: {e}");
            }
        }
        None if !report.differences.is_empty() => {
            println!("run again with --apply to fix them (and --remove-extra for members of no customer)")
        }
        None => {}
    }
    if !report.full {
        println!(
            "(members not changed since then were not read; --full also finds customers missing from the audience)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_a_plain_utc_time_or_a_date() {
        let want = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_since("2024-05-01T14:00:00+02:00").unwrap(), want);
        assert_eq!(parse_since("2024-05-01 12:00:00").unwrap(), want);
        assert_eq!(
            parse_since("2024-05-01").unwrap(),
            want - chrono::Duration::hours(12)
        );
        assert!(parse_since("yesterday").is_err());
    }
}
