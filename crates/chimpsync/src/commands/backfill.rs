//! `chimpsync backfill`: every row that should be in the audience enqueued, in short chunks.

use std::time::Instant;

use anyhow::{bail, Result};
use tracing::info;

use crate::config::Config;
use crate::{db, handshake, progress};

/// Largest chunk accepted.
const MAX_CHUNK: i64 = 100_000;

/// Chunks between two progress log lines.
const LOG_EVERY: u64 = 20;

/// Walks the table in key order, `chunk_size` rows per transaction.
pub async fn run(config: &Config, chunk_size: i64) -> Result<()> {
    if !(1..=MAX_CHUNK).contains(&chunk_size) {
        bail!("--chunk-size must be between 1 and {MAX_CHUNK}");
    }
    let mapping = config.mapping()?;
    let client = db::connect(config).await?;
    // Rows enqueued for triggers of another mapping would carry other fields.
    handshake::require(&client, &mapping).await?;
    let backfill = store::backfill::Backfill::new(&client, &mapping).await?;
    let total = backfill.total(&client).await?;
    let bar = progress::bar(
        total,
        "{elapsed_precise} [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta}) {msg}",
    );
    let started = Instant::now();
    let (mut scanned, mut enqueued, mut chunks) = (0u64, 0u64, 0u64);
    let mut after: Option<String> = None;
    loop {
        let chunk = backfill
            .chunk(&client, after.as_deref(), chunk_size)
            .await?;
        if chunk.scanned == 0 {
            break;
        }
        scanned += chunk.scanned;
        enqueued += chunk.enqueued;
        chunks += 1;
        bar.set_position(scanned);
        bar.set_message(format!("{enqueued} enqueued"));
        if chunks % LOG_EVERY == 0 {
            info!(scanned, enqueued, total, "backfill progress");
        }
        after = chunk.last_key;
        if after.is_none() {
            break;
        }
    }
    bar.finish_and_clear();
    let took = started.elapsed();
    info!(
        scanned,
        enqueued,
        seconds = took.as_secs_f64(),
        "backfill done"
    );
    println!(
        "backfill: read {scanned} rows, enqueued {enqueued} (already pending or outside the filter: {}) in {:.1} s",
        scanned - enqueued,
        took.as_secs_f64()
    );
    Ok(())
}
