//! `chimpsync retry`: parked rows back in line.

use anyhow::{bail, Result};
use tracing::warn;

use crate::config::Config;
use crate::db;

/// Un-parks every parked row (`all`) or the rows `ids`, and says which of those were not parked.
pub async fn run(config: &Config, all: bool, ids: &[i64]) -> Result<()> {
    if !all && ids.is_empty() {
        bail!("name the rows to retry (chimpsync retry ID ...) or use --all");
    }
    let queue = db::queue(config, 1).await?;
    let retried = queue.retry_parked(all, ids).await?;
    if !all {
        let missing: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !retried.contains(id))
            .collect();
        if !missing.is_empty() {
            warn!(
                ?missing,
                "not parked (already retried, synced, or no such row)"
            );
            println!("not parked: {missing:?}");
        }
    }
    println!("{} parked row(s) put back in line", retried.len());
    Ok(())
}
