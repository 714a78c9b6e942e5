//! Mailchimp connection slots shared by every replica: session advisory locks on one dedicated
//! connection per replica. Postgres releases a dead replica's locks with its connection.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::Mutex;
use tracing::warn;

use crate::sql::queries;
use crate::{Pool, Result};

/// The advisory-lock key (first half) under which the slots live: "chmp".
const SLOT_LOCK_KEY: i32 = 0x6368_6d70;

struct Held {
    connection: Option<deadpool_postgres::Object>,
    /// (key, slot) pairs: the key is [`SLOT_LOCK_KEY`], or an API key's group with many accounts.
    slots: BTreeSet<(i32, i32)>,
}

/// Drops the slot session for good: detached from the pool and closed, so Postgres releases
/// every lock it held (returning it to the pool would keep them).
fn forget_session(held: &mut Held) {
    if let Some(connection) = held.connection.take() {
        drop(deadpool_postgres::Object::take(connection));
    }
    held.slots.clear();
}

/// This replica's handle on the shared slots.
pub struct SlotTable {
    pool: Pool,
    cap: i32,
    held: Mutex<Held>,
}

impl std::fmt::Debug for SlotTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotTable")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl SlotTable {
    /// Slots `0..cap` over connections from `pool`.
    pub fn new(pool: Pool, cap: usize) -> SlotTable {
        SlotTable {
            pool,
            cap: cap.clamp(1, i32::MAX as usize) as i32,
            held: Mutex::new(Held {
                connection: None,
                slots: BTreeSet::new(),
            }),
        }
    }

    /// The cap shared by all replicas.
    pub fn cap(&self) -> usize {
        self.cap as usize
    }

    /// Tries to take a free slot; `None` when all `cap` slots are held (by anyone).
    ///
    /// The lock and its bookkeeping run in a task of their own, so a caller that gives up
    /// (a timeout, a shutdown) cannot leave a lock taken in Postgres but unrecorded here; a slot
    /// taken for a caller that is gone is given back at once.
    pub async fn try_acquire(self: &Arc<Self>) -> Result<Option<i32>> {
        self.try_acquire_in(SLOT_LOCK_KEY).await
    }

    /// [`SlotTable::try_acquire`] among the slots of `key`: each API key has `cap` slots of its
    /// own (with many accounts, `key` is the key's group; see `chimpsync.accounts.key_group`).
    pub async fn try_acquire_in(self: &Arc<Self>, key: i32) -> Result<Option<i32>> {
        let this = Arc::clone(self);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = this.try_acquire_inner(key).await;
            if let Err(Ok(Some(slot))) = tx.send(result) {
                this.release_inner(key, slot).await;
            }
        });
        rx.await.unwrap_or(Ok(None))
    }

    async fn try_acquire_inner(&self, key: i32) -> Result<Option<i32>> {
        let mut held = self.held.lock().await;
        if held.connection.is_none() {
            held.connection = Some(self.pool.get().await?);
            // A new session holds nothing: whatever the old one held died with it.
            held.slots.clear();
        }
        let mine: Vec<i32> = held
            .slots
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, slot)| *slot)
            .collect();
        let result = {
            let connection = held.connection.as_ref().expect("connection was just set");
            connection
                .query_opt(queries::ACQUIRE_SLOT, &[&self.cap, &mine, &key])
                .await
        };
        match result {
            Ok(Some(row)) => {
                let slot: i32 = row.get(0);
                held.slots.insert((key, slot));
                Ok(Some(slot))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                forget_session(&mut held);
                Err(e.into())
            }
        }
    }

    /// Gives a slot back. A slot whose session died is already free. Runs to completion even
    /// if the caller is dropped.
    pub async fn release(self: &Arc<Self>, slot: i32) {
        self.release_in(SLOT_LOCK_KEY, slot).await
    }

    /// [`SlotTable::release`] of a slot of `key`.
    pub async fn release_in(self: &Arc<Self>, key: i32, slot: i32) {
        let this = Arc::clone(self);
        let _ = tokio::spawn(async move { this.release_inner(key, slot).await }).await;
    }

    async fn release_inner(&self, key: i32, slot: i32) {
        let mut held = self.held.lock().await;
        if !held.slots.remove(&(key, slot)) {
            return;
        }
        let result = match held.connection.as_ref() {
            Some(connection) => {
                connection
                    .query_one(queries::RELEASE_SLOT, &[&key, &slot])
                    .await
            }
            None => return,
        };
        match result {
            Ok(row) if row.get::<_, bool>(0) => {}
            Ok(_) => warn!(slot, "slot was not held by this connection"),
            Err(e) => {
                warn!(error = %e, "lost the slot connection; its slots are free again");
                forget_session(&mut held);
            }
        }
    }

    /// How many slots this replica holds now.
    pub async fn held(&self) -> usize {
        self.held.lock().await.slots.len()
    }

    /// How many slots all replicas hold together.
    pub async fn in_use(&self) -> Result<i64> {
        self.in_use_in(SLOT_LOCK_KEY).await
    }

    /// How many slots of `key` all replicas hold together.
    pub async fn in_use_in(&self, key: i32) -> Result<i64> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one(queries::SLOTS_IN_USE, &[&key])
            .await?
            .get(0))
    }
}
