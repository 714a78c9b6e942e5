//! Connections to the database at `DATABASE_URL`, failing early with a message that names it.

use std::time::Duration;

use anyhow::{Context, Result};
use store::Queue;

use crate::config::Config;

/// How long a pooled connection may take to open.
const POOL_TIMEOUT: Duration = Duration::from_secs(60);

/// One connection.
pub async fn connect(config: &Config) -> Result<tokio_postgres::Client> {
    store::connect(config.database_url()?)
        .await
        .context("cannot reach the database at DATABASE_URL")
}

/// The queue over a pool of `size` connections, one of them opened now.
pub async fn queue(config: &Config, size: usize) -> Result<Queue> {
    let pool = store::pool(config.database_url()?, size, POOL_TIMEOUT)?;
    // Fail now, with a clear message, rather than on the first query.
    let _probe = pool
        .get()
        .await
        .map_err(store::Error::from)
        .context("cannot reach the database at DATABASE_URL")?;
    Ok(Queue::new(pool))
}
