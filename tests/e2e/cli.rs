//! The command line's contract: every setting in `--help` with its environment variable (secret
//! values never shown), the exit status of each kind of failure, `setup --uninstall` asking for
//! `--yes`, `check --json`, and a refused login told apart from an unreachable server.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use chimpsync_tests::Fixture;

/// What a finished command printed, and its exit status.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Result<Out> {
    let out = cmd.output().context("running chimpsync")?;
    Ok(Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `chimpsync ARGS` with nothing in the environment but PATH and `env`.
fn bare(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(chimpsync_tests::chimpsync_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The settings every command reads (`config.rs`), and whether each is a secret.
const EVERY_COMMAND: &[(&str, bool)] = &[
    ("DATABASE_URL", true),
    ("MAILCHIMP_API_KEY", true),
    ("MAILCHIMP_AUDIENCE_ID", false),
    ("MAILCHIMP_BASE_URL", false),
    ("CHIMPSYNC_CONFIG", false),
    ("CHIMPSYNC_HTTP_ADDR", false),
    ("CHIMPSYNC_WEBHOOK_ADDR", false),
    ("CHIMPSYNC_WEBHOOK_SECRET", true),
    ("CHIMPSYNC_SECRET_KEY", true),
    ("CHIMPSYNC_PREVIOUS_SECRET_KEY", true),
    ("CHIMPSYNC_NEW_SECRET_KEY", true),
    ("HOSTNAME", false),
    ("LOG_FORMAT", false),
    ("RUST_LOG", false),
];

/// Every command, and the variables it reads beyond [`EVERY_COMMAND`].
const COMMANDS: &[(&[&str], &[&str])] = &[
    (&["setup"], &[]),
    (&["check"], &[]),
    (&["backfill"], &["CHIMPSYNC_BACKFILL_CHUNK"]),
    (
        &["run"],
        &[
            "CHIMPSYNC_WAIT_FOR_SCHEMA",
            "CHIMPSYNC_INBOUND_RETENTION_DAYS",
            "CHIMPSYNC_BATCH_SIZE",
            "CHIMPSYNC_CONCURRENCY",
            "CHIMPSYNC_LEASE_SECONDS",
            "CHIMPSYNC_REQUEST_TIMEOUT_SECONDS",
            "CHIMPSYNC_CONNECT_TIMEOUT_SECONDS",
            "CHIMPSYNC_MAX_ATTEMPTS",
            "CHIMPSYNC_BACKOFF_BASE_SECONDS",
            "CHIMPSYNC_BACKOFF_MAX_SECONDS",
            "CHIMPSYNC_POLL_INTERVAL_MS",
            "CHIMPSYNC_SHUTDOWN_DEADLINE_SECONDS",
            "CHIMPSYNC_HOLD_REMOVALS_PERCENT",
            "CHIMPSYNC_HOLD_REMOVALS_MIN_ROWS",
            "CHIMPSYNC_HOLD_REMOVALS_WINDOW_SECONDS",
            "CHIMPSYNC_DB_POOL_SIZE",
            "CHIMPSYNC_LIVENESS_TIMEOUT_SECONDS",
        ],
    ),
    (&["status"], &[]),
    (&["retry"], &[]),
    (&["release-removals"], &[]),
    (&["audience", "create"], &[]),
    (&["webhook", "register"], &[]),
    (&["account", "add"], &[]),
    (&["account", "set"], &[]),
    (&["account", "enable"], &[]),
    (&["account", "disable"], &[]),
    (&["account", "remove"], &[]),
    (&["account", "list"], &[]),
    (&["secret", "generate"], &[]),
    (&["secret", "rotate"], &[]),
    (&["reconcile"], &["CHIMPSYNC_CONCURRENCY"]),
    (&["demo"], &[]),
];

/// The shipped crates read the environment only through the command line's arguments, so
/// `--help` can list every variable: no `env::var` anywhere else.
#[test]
fn the_shipped_crates_read_no_environment_variable_behind_the_command_lines_back() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut found = Vec::new();
    for krate in ["chimpsync", "worker", "store", "mailchimp", "secrets"] {
        let mut dirs = vec![root.join(krate).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path)?;
                    for needle in ["env::var(", "env::var_os(", "env::vars("] {
                        if text.contains(needle) {
                            found.push(format!("{}: {needle}", path.display()));
                        }
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
    Ok(())
}

#[test]
fn every_commands_help_shows_every_environment_variable_it_reads_and_no_secret() -> Result<()> {
    const PLANTED: &str = "PLANTED-secret-value-0123456789";
    let env: Vec<(&str, &str)> = EVERY_COMMAND
        .iter()
        .filter(|(_, secret)| *secret)
        .map(|(name, _)| (*name, PLANTED))
        .collect();
    for (command, extra) in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run(&mut bare(&args, &env))?;
        assert_eq!(out.code, 0, "{command:?}: {}", out.stderr);
        let names = EVERY_COMMAND
            .iter()
            .map(|(name, _)| name)
            .chain(extra.iter());
        for name in names {
            assert!(
                out.stdout.contains(&format!("[env: {name}"))
                    || out.stdout.contains(&format!("env: {name}=")),
                "{command:?} --help does not show {name}:\n{}",
                out.stdout
            );
        }
        assert!(!out.stdout.contains(PLANTED), "{command:?} shows a secret");
    }
    Ok(())
}

/// Arguments, environment over the fixture's, exit status, what the last line says.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_failure_has_its_own_exit_status() -> Result<()> {
    let f = Fixture::new().await?;
    let cases: &[Case] = &[
        (&["status", "--no-such-flag"], &[], 2, "--no-such-flag"),
        (&["retry"], &[], 2, "--all"),
        (&["backfill", "--chunk-size", "0"], &[], 2, "--chunk-size"),
        (
            &["webhook", "register", "--url", "ftp://example.test"],
            &[],
            2,
            "http(s) URL",
        ),
        (
            &["setup"],
            &[("CHIMPSYNC_CONFIG", "/nonexistent/chimpsync.toml")],
            3,
            "cannot read the mapping file",
        ),
        (
            &["status"],
            &[("DATABASE_URL", "")],
            3,
            "DATABASE_URL is not set",
        ),
        (&["run", "--batch-size", "0"], &[], 3, "batch size 0"),
        (
            &["run"],
            &[("CHIMPSYNC_WEBHOOK_ADDR", "webhooks:9188")],
            3,
            "CHIMPSYNC_WEBHOOK_ADDR is not an address",
        ),
        (
            &["status"],
            &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")],
            4,
            "cannot reach the database",
        ),
        (
            &[
                "audience",
                "create",
                "--company",
                "C",
                "--address1",
                "A",
                "--city",
                "X",
                "--from-email",
                "a@b.test",
            ],
            &[("MAILCHIMP_API_KEY", "ffffffffffffffffffffffffffffffff-us6")],
            5,
            "API Key Invalid",
        ),
        (&["retry", "999"], &[], 6, "no queue row 999"),
    ];
    for (args, env, code, says) in cases {
        let mut cmd = f.command(args)?;
        for (k, v) in *env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd)?;
        assert_eq!(out.code, *code, "{args:?} {env:?}: {}", out.stderr);
        // Ours end with one line `chimpsync: <reason>`; clap's usage errors end with a hint.
        let said = match out.stderr.lines().last() {
            Some(last) if last.starts_with("chimpsync: ") => last,
            _ => out.stderr.as_str(),
        };
        assert!(said.contains(says), "{args:?} {env:?}: {}", out.stderr);
    }
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_told_apart_from_an_unreachable_server() -> Result<()> {
    let f = Fixture::new().await?;
    let mut url = url::Url::parse(&f.db.url)?;
    url.set_username("chimpsync_no_such_role")
        .map_err(|_| anyhow::anyhow!("cannot set the user"))?;
    let out = run(f.command(&["status"])?.env("DATABASE_URL", url.as_str()))?;
    let last = out.stderr.lines().last().unwrap_or_default();
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        last.starts_with("chimpsync: the database at DATABASE_URL refused the login")
            && last.contains("chimpsync_no_such_role")
            && !last.contains("cannot reach"),
        "{last}"
    );
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_uninstall_without_yes_explains_and_touches_nothing() -> Result<()> {
    let f = Fixture::new().await?;
    let out = run(&mut f.command(&["setup", "--uninstall"])?)?;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("--yes") && last.contains("nothing was changed"),
        "{last}"
    );
    let schema: bool = f
        .sql
        .query_one(
            "select exists (select 1 from pg_namespace where nspname = 'chimpsync')",
            &[],
        )
        .await?
        .get(0);
    assert!(schema, "the schema is still there");
    let out = run(&mut f.command(&["setup", "--uninstall", "--yes"])?)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("dropped schema chimpsync"),
        "{}",
        out.stdout
    );
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_json_is_one_object_with_each_check_and_its_result() -> Result<()> {
    let f = Fixture::new().await?;
    let out = run(&mut f.command(&["check", "--json"])?)?;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let result: serde_json::Value = serde_json::from_str(out.stdout.trim())?;
    assert_eq!(result["ok"], true, "{result}");
    let checks = result["checks"].as_array().context("checks")?;
    for name in [
        "mapping",
        "database",
        "columns",
        "schema",
        "mailchimp",
        "audience",
        "merge_fields",
    ] {
        assert!(
            checks.iter().any(|c| c["check"] == name && c["ok"] == true),
            "{name} missing or failed: {result}"
        );
    }
    let out = run(f
        .command(&["check", "--json"])?
        .env("MAILCHIMP_API_KEY", "ffffffffffffffffffffffffffffffff-us6"))?;
    assert_eq!(out.code, 5, "the first problem is Mailchimp's");
    let result: serde_json::Value = serde_json::from_str(out.stdout.trim())?;
    assert_eq!(result["ok"], false);
    let failed: Vec<&serde_json::Value> = result["checks"]
        .as_array()
        .context("checks")?
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{result}");
    assert_eq!(failed[0]["check"], "mailchimp");
    assert!(
        failed[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("API Key Invalid") && !m.contains("ffffffff")),
        "{result}"
    );
    f.finish().await
}
