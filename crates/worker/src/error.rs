//! What can stop the worker.

/// What can stop the worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed in a way retrying did not fix.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A setting is out of range.
    #[error("settings: {0}")]
    Settings(String),
}
