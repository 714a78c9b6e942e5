//! The chimpsync engine: drains `chimpsync.sync_queue` into Mailchimp.
//!
//! One unit of work is [`Worker::drain_once`]: claim a batch under a lease, plan each row
//! (`plan`), send one batch upsert plus the single-member calls that cannot be batched (renames,
//! removals, tag changes; `members`), then acknowledge exactly the rows Mailchimp confirmed
//! (fenced by the claim's token), reschedule the transient failures and park the permanent ones
//! (`policy`, `results`). [`Worker::run`] keeps up to the concurrency cap of such units in
//! flight. Every Mailchimp request passes the [`gate::Gate`]: one cap for all replicas, and a
//! worker-wide pause after throttling. Every retry schedule is named in [`retry`].
//!
//! Modules, each using only those listed before it: `error`, [`retry`], [`settings`], [`liveness`], `policy`,
//! `plan`, [`gate`], `accounts`, `results`, `members`, [`groups`], `batch`, `run`, [`reconcile`].
//!
//! This crate owns no SQL and no HTTP details: those live in `store` and `mailchimp`.

mod error;
pub mod retry;
pub mod settings;

pub mod liveness;

mod policy;

mod plan;

pub mod gate;

mod accounts;

mod results;

mod members;

pub mod groups;

mod batch;

mod run;

pub mod reconcile;

pub use accounts::{KeyRingOpener, OpenKey};
pub use error::Error;
pub use results::{DrainOutcome, Fate};
pub use run::{Hold, Worker};
pub use settings::Settings;
