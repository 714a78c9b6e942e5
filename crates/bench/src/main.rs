//! `chimpsync-bench`: measures chimpsync against its performance goals (initial sync, the
//! Mailchimp ceiling, trigger cost, latency, queue machinery) and compares the trigger shapes
//! (statement-level against row-level) and multi-account mode (many accounts' initial sync,
//! fairness, idle accounts), and prints one table.
//!
//! `cargo run --release -p chimpsync-bench -- all` runs every scenario at full size (and writes
//! the table into `BENCHMARKS.md`); `-- all --small` runs them at CI size in about a minute.
//! Each scenario creates its own database `chimpsync_bench_*` on the `DATABASE_URL` server and
//! runs the `chimpsync` and `mailchimp-emulator` binaries (built in the bench's own profile) as
//! separate processes, so their CPU time and peak memory are their own.
//!
//! This is benchmark code: its SQL lives in this crate's `sql/` (the rule that runtime SQL goes
//! through the store crate is for the runtime crates). It reports; it never asserts a goal,
//! but it fails when a scenario could not run or its result is wrong (e.g. not every customer
//! reached the emulator).

mod env;
mod report;
mod scenario;
mod sys;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use env::Bench;
use report::Report;
use scenario::Sizes;

/// Benchmarks of chimpsync against its goals.
#[derive(Debug, Parser)]
#[command(name = "chimpsync-bench")]
struct Cli {
    /// What to run.
    #[arg(value_enum)]
    what: What,
    /// CI size: every scenario in seconds instead of the full sizes.
    #[arg(long)]
    small: bool,
    /// Use the binaries next to this one as they are (no `cargo build` first).
    #[arg(long)]
    no_build: bool,
    /// Keep the `chimpsync_bench_*` databases afterwards.
    #[arg(long)]
    keep_db: bool,
    /// Write the table into this Markdown file (between its result markers, those of the
    /// many-accounts section for `accounts`). A full-size `all` or `accounts` run writes into
    /// the workspace's `BENCHMARKS.md` unless `--no-markdown`.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Multiply every row count by this factor (experiments; the table says so).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Do not write any Markdown file.
    #[arg(long, conflicts_with = "markdown")]
    no_markdown: bool,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    /// Every scenario.
    All,
    /// 1: backfill + drain of the initial sync.
    InitialSync,
    /// 2: drain against 250 ms latency and 10 connections.
    MailchimpBound,
    /// 3 and 4: trigger cost (8 clients; one bulk UPDATE), none / statement / row.
    Triggers,
    /// 5: commit-to-acknowledgement latency at 500 changes/s.
    Latency,
    /// 6: queue machinery against the naive outbox loop.
    Queue,
    /// M1-M3: many accounts: initial sync of 1,000 accounts, fairness, idle accounts' claim cost.
    Accounts,
    /// M1 alone.
    AccountsScale,
    /// M2 alone.
    AccountsFairness,
    /// M3 alone.
    AccountsIdle,
}

impl What {
    /// Whether choosing `self` runs `scenario`.
    fn runs(self, scenario: What) -> bool {
        let many = matches!(
            scenario,
            What::AccountsScale | What::AccountsFairness | What::AccountsIdle
        );
        self == What::All || self == scenario || (self == What::Accounts && many)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chimpsync-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chimpsync-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let bench = Bench::prepare(cli.no_build, cli.keep_db).await?;
    let sizes = if cli.small { Sizes::SMALL } else { Sizes::FULL }.scaled(cli.scale);
    let mut report = Report::default();
    let started = std::time::Instant::now();
    let load = sys::load_average();
    report.header.push(format!(
        "chimpsync-bench `{}`{}, {} build, {}",
        cli.what
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default(),
        match (cli.small, cli.scale == 1.0) {
            (true, true) => " --small (CI size)".to_owned(),
            (false, true) => " (full size)".to_owned(),
            (true, false) => format!(" --small --scale {}", cli.scale),
            (false, false) => format!(" --scale {} (not the full size)", cli.scale),
        },
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
    ));
    report.header.push(String::new());
    report.header.push(format!(
        "Machine: {} cores ({}), load average {} at start; PostgreSQL {} on the same machine{}; \
         worker, emulator and Postgres share these cores.",
        sys::cores(),
        cpu_model(),
        load.map(|l| format!("{l:.2}"))
            .unwrap_or_else(|| "unknown".into()),
        bench.pg_version,
        if bench.postmaster.is_some() {
            ""
        } else {
            " (remote: its CPU is not measured)"
        },
    ));

    let all = cli.what == What::All;
    let mut failed = Vec::new();
    type Scenario = for<'a> fn(
        &'a Bench,
        &'a Sizes,
        &'a mut Report,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>,
    >;
    let scenarios: [(What, &str, Scenario); 8] = [
        (What::InitialSync, "1", |b, s, r| {
            Box::pin(scenario::initial_sync::run(b, s, r))
        }),
        (What::MailchimpBound, "2", |b, s, r| {
            Box::pin(scenario::mailchimp_bound::run(b, s, r))
        }),
        (What::Triggers, "3, 4", |b, s, r| {
            Box::pin(scenario::triggers::run(b, s, r))
        }),
        (What::Latency, "5", |b, s, r| {
            Box::pin(scenario::latency::run(b, s, r))
        }),
        (What::Queue, "6", |b, s, r| {
            Box::pin(scenario::queue::run(b, s, r))
        }),
        (What::AccountsScale, "M1", |b, s, r| {
            Box::pin(scenario::accounts::scale::run(b, s, r))
        }),
        (What::AccountsFairness, "M2", |b, s, r| {
            Box::pin(scenario::accounts::fairness::run(b, s, r))
        }),
        (What::AccountsIdle, "M3", |b, s, r| {
            Box::pin(scenario::accounts::idle::run(b, s, r))
        }),
    ];
    for (what, id, scenario) in scenarios {
        if !cli.what.runs(what) {
            continue;
        }
        let t = std::time::Instant::now();
        if let Err(e) = scenario(&bench, &sizes, &mut report).await {
            eprintln!("scenario {id} failed: {e:#}");
            report
                .rows
                .push(report::Row::info(id, "FAILED", format!("{e:#}"), "", None));
            failed.push(id);
        }
        eprintln!("   ({:.0} s)", t.elapsed().as_secs_f64());
    }
    report.note(format!(
        "whole run {:.0} s; logs in {}",
        started.elapsed().as_secs_f64(),
        bench.work.display()
    ));

    let table = report.render();
    println!("\n{table}");
    let markdown = match (&cli.markdown, cli.no_markdown) {
        (Some(path), _) => Some(path.clone()),
        (None, false) if (all || cli.what == What::Accounts) && !cli.small && cli.scale == 1.0 => {
            Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../BENCHMARKS.md"))
        }
        _ => None,
    };
    if let Some(path) = markdown {
        let markers = if cli.what == What::Accounts {
            (report::ACCOUNTS_BEGIN, report::ACCOUNTS_END)
        } else {
            (report::BEGIN, report::END)
        };
        match report.write_into(&path, markers) {
            Ok(()) => eprintln!("wrote the table into {}", path.display()),
            Err(e) => eprintln!("could not write the table into {}: {e:#}", path.display()),
        }
    }
    Ok(failed.is_empty())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
