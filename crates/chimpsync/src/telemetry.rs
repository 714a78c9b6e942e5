//! Logs: JSON lines off a terminal (or with `LOG_FORMAT=json`), pretty on a terminal; `RUST_LOG`
//! filters (default `info`, `warn` for the demo). Email addresses and keys are never logged at info level; the
//! OpenPGP library, which would print key material at debug level, never logs.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the subscriber once; later calls do nothing. `default_level` applies when `RUST_LOG`
/// is unset or invalid.
pub fn init(log: &LogConfig, default_level: &str) {
    let filter = log
        .filter
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level))
        // The OpenPGP library's own debug output prints key material; whatever RUST_LOG says,
        // it stays off (the key-encryption code reports its errors itself).
        .add_directive("pgp=off".parse().expect("a valid directive"));
    let json = match log.format.as_deref() {
        Some("json") => true,
        Some("pretty") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
