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
//! It can serve several Mailchimp accounts at once ([`Config::accounts`]): each API key has its
//! own audiences and its own cap on requests in flight, and another account's audience is
//! `404` to it.
//!
//! The modules are listed in dependency order: each uses only the modules below it.

// The command line.
mod cli;

// The in-process handle: `Emulator`, `Config`, `MemberView`.
mod emulator;

// Connections, admission, latency, authentication and faults around each request.
mod server;

// Which operation answers a request.
mod router;

// The API key of a request.
mod auth;

// The HTTP answers and their headers.
mod responses;

// The paths served.
mod routes;

// What the handle and the connections share, and the counters.
mod shared;

// The accounts: which keys are accepted, revoked keys, each account's requests in flight.
mod accounts;

// The HTTP the emulator sends: the validator's GET and webhook deliveries.
mod outbound;

// The operations, one module per resource, as methods of `State`.
mod endpoints;

// The audiences, the id generator, the write counters, the events not yet delivered.
mod state;

// Which webhook events a change produces, and their form bodies.
mod events;

// `fields` and `exclude_fields`: the parts of a GET answer asked for.
mod fields;

// The JSON answers.
mod wire;

// The checks of request bodies.
mod input;

// How each merge field type takes a value.
mod merge_values;

// The query string.
mod query;

// The records.
mod model;

// Fault injection.
mod faults;

// Mailchimp's error documents.
mod problem;

// Addresses and the subscriber hash.
mod email;

// The mutex helper.
mod lock;

pub use accounts::AccountStats;
pub use cli::{main_cli, Args};
pub use email::subscriber_hash;
pub use emulator::{Config, Emulator, MemberView};
pub use faults::Fault;
pub use outbound::WebhookDelivery;
pub use shared::Stats;
