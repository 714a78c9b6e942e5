//! chimpsync's end-to-end tests: real Postgres (a fresh database per test), the real emulator
//! over HTTP, the real binary where a test says so.

mod triggers;
mod worker;
