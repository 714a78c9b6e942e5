//! A stateful, in-memory stand-in for the Mailchimp Marketing API v3, with fault injection.
//!
//! This crate owns the *emulated* side of chimpsync's Mailchimp traffic: audiences, merge
//! fields, members, tags, batch subscribe, webhooks, and the refusals real Mailchimp answers with
//! (docs/mailchimp.md). Tests and benchmarks start it in-process with [`Emulator::start`]; the
//! `mailchimp-emulator` binary serves the same thing on a port.
//!
//! It must not share code with the client crate (`crates/mailchimp`): its wire types are its
//! own, so a wire-format bug in the client cannot be "confirmed" by the same code. It is not a
//! general Mailchimp mock either: only the endpoints chimpsync uses are served, everything else
//! answers `404 Resource Not Found`.
//!
//! Faults (latency, a cap on requests in flight, random `503`s and dropped connections, scripted
//! faults) are set through [`Config`] at start and changed at runtime through [`Emulator`].
//!
//! The modules are listed in dependency order: each uses only the modules below it.

// The command line and the in-process handle.
mod cli;
mod emulator;

// HTTP: connections, routing, answers.
mod auth;
mod responses;
mod router;
mod routes;
mod server;

// What the handle and the connections share; the HTTP the emulator sends.
mod outbound;
mod shared;

// The operations, one module per resource, on the state.
mod endpoints;
mod state;

// Pure parts: webhook events, the wire shapes, the checks of input.
mod events;
mod input;
mod merge_values;
mod query;
mod wire;

// The records, and the leaves.
mod email;
mod faults;
mod lock;
mod model;
mod problem;

pub use cli::{main_cli, Args};
pub use email::subscriber_hash;
pub use emulator::{Config, Emulator, MemberView};
pub use faults::Fault;
pub use outbound::WebhookDelivery;
pub use shared::Stats;
