//! The schema handshake of `run` and `backfill` ([`store::handshake`]): they refuse, in one line,
//! to work against a `chimpsync` schema of another version or triggers installed from another
//! mapping. A running worker repeats the check ([`Handshake::watch`]); while it fails, the worker
//! claims nothing, the webhook receiver stores nothing, `/readyz` answers 503 with the reason and
//! `chimpsync_schema_compatible` is 0. When it passes again, all resume.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use store::{Mapping, Pool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the check is repeated while it passes: three short reads each time.
const RECHECK: Duration = Duration::from_secs(10);

/// How often it is repeated while it fails (waiting for `setup`, or for the matching binary).
const WAITING: Duration = Duration::from_secs(5);

/// Refuses unless the database's schema and installed triggers are those `mapping` needs.
pub async fn require(client: &tokio_postgres::Client, mapping: &Mapping) -> Result<()> {
    if let Some(mismatch) = store::handshake::check(client, mapping).await? {
        bail!("{mismatch}");
    }
    Ok(())
}

/// The shared result of the last check. Cheap to clone.
#[derive(Clone)]
pub struct Handshake {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    mapping: Mapping,
    reason: watch::Sender<Option<String>>,
}

impl Handshake {
    /// Checks once; the result is what [`Handshake::reason`] says until the next check.
    pub async fn new(pool: Pool, mapping: Mapping) -> Result<Handshake> {
        let handshake = Handshake {
            inner: Arc::new(Inner {
                pool,
                mapping,
                reason: watch::Sender::new(None),
            }),
        };
        let first = handshake.check().await?;
        metrics::gauge!("chimpsync_schema_compatible").set(if first.is_none() { 1.0 } else { 0.0 });
        handshake.inner.reason.send_replace(first);
        Ok(handshake)
    }

    async fn check(&self) -> Result<Option<String>> {
        let client = self.inner.pool.get().await.map_err(store::Error::from)?;
        let mismatch = store::handshake::check(&**client, &self.inner.mapping).await?;
        Ok(mismatch.map(|m| m.to_string()))
    }

    /// Why the schema does not fit (the last check), or `None` when it does.
    pub fn reason(&self) -> Option<String> {
        self.inner.reason.borrow().clone()
    }

    /// Follows the check's result: `Some(reason)` while it fails.
    pub fn hold(&self) -> worker::Hold {
        self.inner.reason.subscribe()
    }

    /// Repeats the check until `shutdown`: every [`RECHECK`] while it passes, every [`WAITING`]
    /// while it fails. Each change is logged once. A check that cannot reach the database
    /// changes nothing (`/readyz` reports the database itself).
    pub async fn watch(self, shutdown: CancellationToken) {
        loop {
            let pause = if self.reason().is_some() {
                WAITING
            } else {
                RECHECK
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            let now = match self.check().await {
                Ok(now) => now,
                Err(e) => {
                    warn!(error = %e, "cannot check the chimpsync schema");
                    continue;
                }
            };
            if now == self.reason() {
                continue;
            }
            match &now {
                Some(reason) => warn!("claiming nothing until the schema fits: {reason}"),
                None => info!("the chimpsync schema fits this worker: claiming"),
            }
            metrics::gauge!("chimpsync_schema_compatible").set(if now.is_none() {
                1.0
            } else {
                0.0
            });
            self.inner.reason.send_replace(now);
        }
    }
}
