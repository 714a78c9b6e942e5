//! `chimpsync release-removals`: removals held by the mass-removal guard are sent, after a person
//! has looked at why they were held (`status`, `sync_queue.held_reason`).

use anyhow::{bail, Result};
use tracing::info;

use crate::config::Config;
use crate::db;
use crate::exit::Failure;

/// Releases every held removal (`all`) or the rows `ids`, and says how many it released and which
/// of `ids` were not held.
pub async fn run(config: &Config, all: bool, ids: &[i64]) -> Result<()> {
    if !all && ids.is_empty() {
        bail!(Failure::Usage.error(
            "name the held removals to send (chimpsync release-removals ID ...) or use --all"
        ));
    }
    let queue = db::queue(config, 1).await?;
    let released = queue.release_held_removals(all, ids).await?;
    if !all {
        let not_held: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !released.contains(id))
            .collect();
        if !not_held.is_empty() {
            println!("not held (already released, sent, or no such row): {not_held:?}");
        }
    }
    info!(released = released.len(), "held removals released");
    println!(
        "{} held removal(s) released: the worker sends them now",
        released.len()
    );
    Ok(())
}
