//! `chimpsync status`: the queue at a glance.

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::Config;
use crate::db;

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Prints `chimpsync.queue_summary` as a table, or as one JSON object.
pub async fn run(config: &Config, json: bool) -> Result<()> {
    let queue = db::queue(config, 1).await?;
    let summary = queue
        .summary()
        .await
        .context("reading chimpsync.queue_summary (has `chimpsync setup` run?)")?;
    let drift = match store::drift::read(&*queue.pool().get().await?).await {
        Ok(drift) => drift,
        Err(e) => {
            eprintln!("cannot read the mapping drift: {e}");
            store::drift::Drift::default()
        }
    };
    if json {
        let value = serde_json::json!({
            "pending": summary.pending,
            "in_flight": summary.in_flight,
            "retrying": summary.retrying,
            "parked": summary.parked,
            "oldest_pending_seconds": summary.oldest_pending_seconds,
            "last_synced_at": summary.last_synced_at.map(time),
            "held": summary.held,
            "held_reason": summary.held_reason,
            "mapping_drift": drift.problem,
            "held_changes": drift.held,
        });
        println!("{value}");
        return Ok(());
    }
    println!("pending                 {}", summary.pending);
    println!("in flight               {}", summary.in_flight);
    println!("retrying                {}", summary.retrying);
    println!("parked                  {}", summary.parked);
    println!(
        "oldest pending          {:.0} s",
        summary.oldest_pending_seconds
    );
    println!(
        "last synced             {}",
        summary
            .last_synced_at
            .map(time)
            .unwrap_or_else(|| "never".into())
    );
    if summary.held > 0 {
        println!(
            "held removals           {} ({})",
            summary.held,
            summary
                .held_reason
                .as_deref()
                .unwrap_or("no reason recorded")
        );
    }
    if let Some(reason) = drift.reason() {
        println!("\nDRIFT   {reason}");
    }
    if summary.parked > 0 {
        println!("\nparked rows wait for `chimpsync retry --all` (or a new change of the customer); why:");
        println!("  select id, customer_key, last_error from chimpsync.sync_queue where parked_at is not null;");
    }
    if summary.held > 0 {
        println!("\nheld removals are not sent: if the customers were removed on purpose, `chimpsync release-removals --all`;");
        println!("if by mistake, restore them (their changes cancel the hold). The rows:");
        println!("  select id, customer_key, held_at, held_reason from chimpsync.sync_queue where held_at is not null;");
    }
    Ok(())
}
