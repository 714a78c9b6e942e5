//! End-to-end tests of the emulator over real HTTP (one test binary).

mod accounts;
mod auth;
mod batch;
mod faults;
mod harness;
mod lists;
mod members;
mod perf;
mod tags;
mod webhooks;
