//! End-to-end tests of the emulator over real HTTP (one test binary).

mod accounts;
mod auth;
mod batch;
mod extras;
mod faults;
mod gdpr;
mod harness;
mod interests;
mod lists;
mod members;
mod perf;
mod tags;
mod webhooks;
