//! `chimpsync retry`: parked rows back in line.

use anyhow::{bail, Result};
use tracing::warn;

use crate::config::Config;
use crate::db;
use crate::exit::Failure;

/// Un-parks every parked row (`all`) or the rows `ids`. Named rows that could not be put back
/// (no such row, or not parked) are listed, and make the command fail (partly done).
pub async fn run(config: &Config, all: bool, ids: &[i64]) -> Result<()> {
    if !all && ids.is_empty() {
        bail!(Failure::Usage.error("name the rows to retry (chimpsync retry ID ...) or use --all"));
    }
    let queue = db::queue(config, 1).await?;
    let retried = queue.retry_parked(all, ids).await?;
    println!("{} parked row(s) put back in line", retried.len());
    if all {
        return Ok(());
    }
    let left: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !retried.contains(id))
        .collect();
    if left.is_empty() {
        return Ok(());
    }
    let existing = queue.existing(&left).await?;
    let (not_parked, missing): (Vec<i64>, Vec<i64>) =
        left.iter().partition(|id| existing.contains(id));
    warn!(?missing, ?not_parked, "rows not put back in line");
    let mut reasons = Vec::new();
    if !missing.is_empty() {
        reasons.push(format!(
            "no queue row {} (synced meanwhile, or never queued: see `chimpsync status`)",
            list(&missing)
        ));
    }
    if !not_parked.is_empty() {
        reasons.push(format!(
            "row {} not parked (pending or in flight)",
            list(&not_parked)
        ));
    }
    bail!(Failure::Partial.error(reasons.join("; ")))
}

/// `17, 23`
fn list(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
