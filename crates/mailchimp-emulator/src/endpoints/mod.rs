//! The Marketing API endpoints, one module per resource, each as methods of
//! [`State`](crate::state::State) that validate completely before they change anything. The
//! server locks the state and calls them; they know nothing of HTTP.
//!
//! Listed in dependency order: each module uses only the ones below it.

mod batch;
mod interests;
mod lists;
mod members;
mod merge_fields;
mod simulate;
mod tags;
mod webhooks;
mod write;
