//! A typed client for the part of the Mailchimp Marketing API v3 that chimpsync uses.
//!
//! This crate owns the wire format: the subscriber hash, the API key and its data centre,
//! the request and response bodies of the member, tag, batch-subscribe, audience, merge-field,
//! interest and marketing-permission endpoints, and the classification of Mailchimp's answers into one [`Error`]
//! type whose [`Error::is_retryable`] the worker builds its retry policy on.
//!
//! What it must not do:
//!
//! * know anything about Postgres, the queue or the mapping file (that is `store` and `worker`);
//! * retry, sleep or decide what a refusal means for a customer row (that is the worker's
//!   disposition; this crate only says *what* happened);
//! * share code with `mailchimp-emulator`, so a wire-format mistake here cannot be "confirmed"
//!   by the same code on the other side;
//! * let the API key reach `Debug`, `Display` or a log line, or put email addresses into
//!   info-level spans (the subscriber hash is logged at debug level only).
//!
//! ```no_run
//! # async fn demo() -> Result<(), mailchimp::Error> {
//! use mailchimp::{ApiKey, Client, ClientConfig, MemberUpsert, Status};
//!
//! let key: ApiKey = "0123456789abcdef0123456789abcdef-us6".parse()?;
//! let client = Client::new(ClientConfig::new(key))?;
//! client.ping().await?;
//! let body = MemberUpsert { status_if_new: Some(Status::Subscribed), ..Default::default() };
//! let member = client.upsert_member("a1b2c3d4e5", "ada@example.com", &body).await?;
//! assert_eq!(member.status, Status::Subscribed);
//! # Ok(()) }
//! ```

mod client;
mod error;
mod interests;
mod key;
mod types;
mod wire;

pub use client::{
    BatchAnswer, Client, ClientConfig, PreparedBatch, MAX_BATCH_MEMBERS, MAX_PAGE_SIZE,
};
pub use error::{Error, FieldError, Problem, ProblemKind, Result};
pub use interests::{
    Interest, InterestCategory, InterestCategoryType, MarketingPermission, NewInterestCategory,
};
pub use key::{subscriber_hash, ApiKey};
pub use types::{
    Audience, BatchError, BatchMember, BatchResult, ListMembers, MarketingPermissionChange, Member,
    MemberPermission, MemberRef, MemberUpsert, MembersPage, MergeField, NewAudience, NewMergeField,
    NewWebhook, Status, TagChange, Webhook, WebhookEvents, WebhookSources,
};
