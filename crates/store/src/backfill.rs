//! `chimpsync backfill`: enqueues every row that should be in the audience, chunk by chunk, so
//! that a table that existed before the triggers reaches Mailchimp too.

use chrono::{DateTime, Utc};

use crate::generated::Generated;
use crate::mapping::Mapping;
use crate::sql::queries;
use crate::{Pool, Result};

/// One chunk's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Source rows read.
    pub scanned: u64,
    /// Rows enqueued (customers already pending keep their queued change).
    pub enqueued: u64,
    /// The last key read, where the next chunk starts; `None` when the table is exhausted.
    pub last_key: Option<String>,
}

/// A prepared backfill over the mapped table.
pub struct Backfill {
    sql: String,
    count_sql: String,
}

impl Backfill {
    /// Builds the statements for `mapping`, checking it against the table.
    pub async fn new(
        client: &impl tokio_postgres::GenericClient,
        mapping: &Mapping,
    ) -> Result<Backfill> {
        let generated = Generated::for_mapping(client, mapping).await?;
        Ok(Backfill {
            sql: generated.backfill_chunk(),
            count_sql: generated.count_rows(),
        })
    }

    /// How many rows the table has (for progress).
    pub async fn total(&self, client: &impl tokio_postgres::GenericClient) -> Result<u64> {
        self.total_of(client, None).await
    }

    /// How many rows of `account` the table has (`None`: all).
    pub async fn total_of(
        &self,
        client: &impl tokio_postgres::GenericClient,
        account: Option<&str>,
    ) -> Result<u64> {
        Ok(client
            .query_one(&self.count_sql, &[&account])
            .await?
            .get::<_, i64>(0) as u64)
    }

    /// Enqueues the next `size` rows after `after`. Each chunk is its own short transaction,
    /// so the source table is never locked for long.
    pub async fn chunk(
        &self,
        client: &impl tokio_postgres::GenericClient,
        after: Option<&str>,
        size: i64,
    ) -> Result<Chunk> {
        self.chunk_of(client, None, after, size).await
    }

    /// [`Backfill::chunk`] over the customers of `account` only (`None`: every customer).
    pub async fn chunk_of(
        &self,
        client: &impl tokio_postgres::GenericClient,
        account: Option<&str>,
        after: Option<&str>,
        size: i64,
    ) -> Result<Chunk> {
        let row = client
            .query_one(&self.sql, &[&after, &size, &account])
            .await?;
        let scanned = row.get::<_, i64>("scanned") as u64;
        Ok(Chunk {
            scanned,
            enqueued: row.get::<_, i64>("enqueued") as u64,
            last_key: if scanned == 0 {
                None
            } else {
                row.get("last_key")
            },
        })
    }
}

/// The accounts whose Sync Contacts was requested, with when (oldest first).
pub async fn requested(pool: &Pool) -> Result<Vec<(String, DateTime<Utc>)>> {
    let client = pool.get().await?;
    Ok(client
        .query(queries::SYNC_REQUESTS, &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// The request of `account` made at `at` is served (a newer one stays).
pub async fn request_served(pool: &Pool, account: &str, at: DateTime<Utc>) -> Result<()> {
    let client = pool.get().await?;
    client
        .execute(queries::SYNC_REQUEST_DONE, &[&account, &at])
        .await?;
    Ok(())
}
