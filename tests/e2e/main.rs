//! chimpsync's end-to-end tests: real Postgres (a fresh database per test), the real emulator
//! over HTTP, the real binary where a test says so.

mod account_claims;
mod account_commands;
mod accounts;
mod binary;
mod cli;
mod groups;
mod inbound;
mod many_accounts;
mod operations;
mod reliability;
mod setup_locks;
mod triggers;
mod worker;
