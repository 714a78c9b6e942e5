//! The `chimpsync` command line: reads the settings once (`config`), parses the command line
//! (`cli`) and hands both to the command's module (`commands`). Business rules live in the
//! `worker` and `store` crates; the modules here wire them together and serve the operator-facing
//! pieces (the HTTP endpoints and the webhook receiver of `run`).
//!
//! Modules depend only on those listed before them: `defaults`, `exit`, `cli`, `config`, `telemetry`, `series`,
//! `db`, `handshake`, `progress`, `webhook`, `http`, `commands`.

mod cli;
mod config;
mod defaults;
mod exit;
mod telemetry;

mod series;

mod db;
mod handshake;
mod progress;

mod keys;

pub mod webhook;

mod http;

mod commands;

use std::process::ExitCode;

use clap::Parser;

use cli::Cli;
use config::Config;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = Config::from_settings(cli.settings);
    telemetry::init(&config.log, default_level(&cli.command));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chimpsync: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::execute(cli.command, &config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chimpsync: {}", one_line(&e));
            exit::status(&e).into()
        }
    }
}

/// The log level when `RUST_LOG` is unset: `info`, but `warn` for the demo, whose narrative on
/// stdout would drown in the worker's progress lines on the same terminal.
fn default_level(command: &cli::Command) -> &'static str {
    match command {
        #[cfg(feature = "demo")]
        cli::Command::Demo { .. } => "warn",
        _ => "info",
    }
}

/// The error and its causes on one line, each cause once.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}
