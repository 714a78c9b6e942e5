//! `chimpsync backfill`: every row that should be in the audience enqueued, in short chunks.

use std::time::Instant;

use anyhow::{bail, Result};
use tracing::info;

use crate::config::Config;
use crate::exit::Failure;
use crate::{db, handshake, progress};

/// Largest chunk accepted.
const MAX_CHUNK: i64 = 100_000;

/// Chunks between two progress log lines.
const LOG_EVERY: u64 = 20;

/// What one backfill did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Filled {
    pub scanned: u64,
    pub enqueued: u64,
}

/// Walks the table (or `account`'s customers) in key order, `chunk_size` rows per transaction,
/// calling `progress` after each chunk.
pub async fn fill(
    client: &impl tokio_postgres::GenericClient,
    backfill: &store::backfill::Backfill,
    account: Option<&str>,
    chunk_size: i64,
    mut progress: impl FnMut(Filled, u64),
) -> Result<Filled> {
    let mut done = Filled::default();
    let mut chunks = 0u64;
    let mut after: Option<String> = None;
    loop {
        let chunk = backfill
            .chunk_of(client, account, after.as_deref(), chunk_size)
            .await?;
        if chunk.scanned == 0 {
            break;
        }
        done.scanned += chunk.scanned;
        done.enqueued += chunk.enqueued;
        chunks += 1;
        progress(done, chunks);
        after = chunk.last_key;
        if after.is_none() {
            break;
        }
    }
    Ok(done)
}

/// Walks the table in key order, `chunk_size` rows per transaction; with `account`, only that
/// account's customers (Sync Contacts).
pub async fn run(config: &Config, chunk_size: i64, account: Option<&str>) -> Result<()> {
    if !(1..=MAX_CHUNK).contains(&chunk_size) {
        bail!(Failure::Usage.error(format!("--chunk-size must be between 1 and {MAX_CHUNK}")));
    }
    let mapping = config.mapping()?;
    if account.is_some() && !mapping.multi_account() {
        bail!(
            Failure::Usage.error("--account needs a mapping with [source].account (many accounts)")
        );
    }
    let client = db::connect(config).await?;
    // Rows enqueued for triggers of another mapping would carry other fields.
    handshake::require(&client, &mapping).await?;
    let backfill = store::backfill::Backfill::new(&client, &mapping).await?;
    let total = backfill.total_of(&client, account).await?;
    let bar = progress::bar(
        total,
        "{elapsed_precise} [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta}) {msg}",
    );
    let started = Instant::now();
    let Filled { scanned, enqueued } =
        fill(&client, &backfill, account, chunk_size, |done, chunks| {
            bar.set_position(done.scanned);
            bar.set_message(format!("{} enqueued", done.enqueued));
            if chunks % LOG_EVERY == 0 {
                info!(
                    scanned = done.scanned,
                    enqueued = done.enqueued,
                    total,
                    "backfill progress"
                );
            }
        })
        .await?;
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
