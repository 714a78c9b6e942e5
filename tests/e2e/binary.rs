//! The real `chimpsync` binary: its commands, exit codes and messages, SIGKILL and SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use chimpsync_tests::{wait_until, Fixture, TestDb, AUDIENCE, CUSTOMERS, MAPPING};
use mailchimp_emulator::Config;

fn output(cmd: &mut Command) -> Result<(i32, String, String)> {
    let out = cmd.output().context("running chimpsync")?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_print_sql_prints_and_changes_nothing_then_setup_applies_idempotently() -> Result<()>
{
    let db = TestDb::new().await?;
    let c = db.client().await?;
    c.batch_execute(CUSTOMERS).await?;
    let mapping = std::env::temp_dir().join(format!("{}.toml", db.name));
    std::fs::write(&mapping, MAPPING)?;
    let cmd = |args: &[&str]| {
        let mut cmd = Command::new(chimpsync_tests::chimpsync_bin());
        cmd.args(args)
            .env("DATABASE_URL", &db.url)
            .env("CHIMPSYNC_CONFIG", &mapping)
            .env("LOG_FORMAT", "json");
        cmd
    };
    let (code, sql, _) = output(&mut cmd(&["setup", "--print-sql"]))?;
    assert_eq!(code, 0);
    for needle in [
        "create table chimpsync.sync_queue",
        "create view chimpsync.queue_summary",
        "create trigger chimpsync_enqueue_update",
        "referencing new table",
    ] {
        assert!(sql.contains(needle), "--print-sql lacks {needle}");
    }
    let exists: bool = c
        .query_one(
            "select exists (select 1 from pg_namespace where nspname = 'chimpsync')",
            &[],
        )
        .await?
        .get(0);
    assert!(!exists, "--print-sql changed nothing");
    let (code, out, err) = output(&mut cmd(&["setup"]))?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied migrations"), "{out}");
    // Postgres's notices ("... does not exist, skipping") are not info.
    assert!(!err.to_lowercase().contains("notice"), "{err}");
    let (code, out, err) = output(cmd(&["setup"]).env("RUST_LOG", "debug"))?;
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
    let notices: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("database notice"))
        .collect();
    assert!(
        !notices.is_empty(),
        "a second setup meets existing objects: {err}"
    );
    for line in notices {
        assert!(line.contains(r#""level":"DEBUG""#), "{line}");
    }
    let (code, out, _) = output(&mut cmd(&["status", "--json"]))?;
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(out.trim())?;
    for key in [
        "pending",
        "in_flight",
        "retrying",
        "parked",
        "oldest_pending_seconds",
        "last_synced_at",
    ] {
        assert!(
            status.get(key).is_some(),
            "status --json lacks {key}: {out}"
        );
    }
    assert!(status["last_synced_at"].is_null());
    db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_non_zero_with_a_one_line_reason_and_changes_nothing() -> Result<()> {
    let db = TestDb::new().await?;
    let c = db.client().await?;
    c.batch_execute(CUSTOMERS).await?;
    let dir = std::env::temp_dir();
    let write = |name: &str, text: &str| -> Result<std::path::PathBuf> {
        let p = dir.join(format!("{}-{name}.toml", db.name));
        std::fs::write(&p, text)?;
        Ok(p)
    };
    // (environment overrides, arguments, what the one-line reason must name)
    type Case<'a> = (Vec<(&'a str, String)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![(
                "CHIMPSYNC_CONFIG",
                write(
                    "missing-col",
                    &MAPPING.replace("\"last_name\"", "\"surname\""),
                )?
                .display()
                .to_string(),
            )],
            vec!["setup"],
            "merge_fields.LNAME",
        ),
        (
            vec![(
                "CHIMPSYNC_CONFIG",
                write(
                    "unknown-key",
                    &MAPPING.replace("[tags]", "[tags]\ncolour = 1"),
                )?
                .display()
                .to_string(),
            )],
            vec!["setup"],
            "colour",
        ),
        (
            vec![(
                "CHIMPSYNC_CONFIG",
                write("truncated", &MAPPING[..40])?.display().to_string(),
            )],
            vec!["setup"],
            "mapping file",
        ),
        (
            vec![("CHIMPSYNC_CONFIG", "/nonexistent/chimpsync.toml".into())],
            vec!["setup"],
            "cannot read the mapping file",
        ),
        (
            vec![(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/none".into(),
            )],
            vec!["setup"],
            "cannot reach the database",
        ),
        (
            vec![("DATABASE_URL", "not a url".into())],
            vec!["status"],
            "DATABASE_URL",
        ),
        (vec![], vec!["retry"], "--all"),
    ];
    let good = write("good", MAPPING)?;
    for (env, args, expect) in cases {
        let mut cmd = Command::new(chimpsync_tests::chimpsync_bin());
        cmd.args(&args)
            .env("DATABASE_URL", &db.url)
            .env("CHIMPSYNC_CONFIG", &good)
            .env("LOG_FORMAT", "json");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let (code, _, err) = output(&mut cmd)?;
        assert_ne!(code, 0, "{args:?} {env:?} should fail");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("chimpsync: ") && last.contains(expect),
            "{args:?} {env:?}: {err}"
        );
    }
    let schema: bool = c
        .query_one(
            "select exists (select 1 from pg_namespace where nspname = 'chimpsync')",
            &[],
        )
        .await?
        .get(0);
    assert!(!schema, "failed setups changed nothing");
    db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_wrong_key_and_a_missing_merge_field() -> Result<()> {
    let f = Fixture::new().await?;
    let (code, out, err) = output(&mut f.command(&["check"])?)?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok      audience a1b2c3d4e5"), "{out}");
    let (code, out, _) = output(
        f.command(&["check"])?
            .env("MAILCHIMP_API_KEY", "ffffffffffffffffffffffffffffffff-us6"),
    )?;
    assert_ne!(code, 0);
    assert!(out.contains("API Key Invalid"), "{out}");
    assert!(
        !out.contains("ffffffffffffffffffffffffffffffff"),
        "the key is never printed"
    );
    let extra = f.mapping_file(
        &MAPPING.replace("STORE = \"store\"", "STORE = \"store\"\nNOTES = \"notes\""),
    )?;
    let (code, out, _) = output(f.command(&["check"])?.env("CHIMPSYNC_CONFIG", extra))?;
    assert_ne!(code, 0);
    assert!(out.contains("merge_fields.NOTES"), "{out}");
    let (code, _, err) = output(
        f.command(&["check"])?
            .env("MAILCHIMP_AUDIENCE_ID", "0000000000"),
    )?;
    assert_ne!(code, 0, "{err}");
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_then_run_once_syncs_everything_and_status_shows_it() -> Result<()> {
    let f = Fixture::new().await?;
    f.insert_customers(1200, 1).await?;
    f.exec("delete from chimpsync.sync_queue").await?;
    let (code, out, err) = output(&mut f.command(&["backfill", "--chunk-size", "500"])?)?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("enqueued 1200"), "{out}");
    let (code, out, err) = output(&mut f.command(&["run", "--once"])?)?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1200 acknowledged"), "{out}");
    f.assert_converged().await?;
    let (_, out, _) = output(&mut f.command(&["status", "--json"])?)?;
    let status: serde_json::Value = serde_json::from_str(out.trim())?;
    assert_eq!(status["pending"], 0);
    assert!(status["last_synced_at"].is_string());
    // Logs: JSON lines, no addresses, no key.
    for line in err.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .with_context(|| format!("not JSON: {line}"))?;
        assert!(
            !line.contains("@pets.test") && !line.contains(chimpsync_tests::API_KEY),
            "{line}"
        );
    }
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_exits_partly_done_while_a_row_it_claimed_is_left_parked() -> Result<()> {
    let f = Fixture::new().await?;
    f.insert_customers(4, 1).await?;
    // An address Mailchimp refuses for good (a fake-looking one): parked on its first attempt.
    f.exec(
        "insert into customers (id, email, first_name, last_name, consent_contact) \
         values (900, 'nobody@example.com', 'No', 'Body', true)",
    )
    .await?;
    let (code, out, err) = output(&mut f.command(&["run", "--once"])?)?;
    assert_eq!(code, 6, "{out}{err}");
    assert!(
        out.contains("4 acknowledged") && out.contains("1 parked"),
        "{out}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("chimpsync: run --once left 1 of the rows it claimed queued")
            && last.contains("1 parked"),
        "{last}"
    );
    let parked = f.queue_rows().await?;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].2, "parked: {parked:?}");

    // A row parked before the run is not this run's: a run that finishes what it claims
    // exits 0, the parked row still queued.
    f.insert_customers(1, 5).await?;
    let (code, out, err) = output(&mut f.command(&["run", "--once"])?)?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 acknowledged"), "{out}");
    assert_eq!(f.queue_rows().await?.len(), 1);

    // Put back in line, it is claimed and parked again: partly done again.
    let (code, _, err) = output(&mut f.command(&["retry", "--all"])?)?;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = output(&mut f.command(&["run", "--once"])?)?;
    assert_eq!((code, out.contains("1 parked")), (6, true), "{out}{err}");
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_worker_loses_nothing_and_a_fresh_run_converges() -> Result<()> {
    let f = Fixture::with(
        MAPPING,
        Config {
            latency: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await?;
    f.insert_customers(3000, 1).await?;
    for round in 0..3 {
        let mut child = f
            .command(&["run"])?
            .env("CHIMPSYNC_BATCH_SIZE", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // Kill it while batches are in flight (claimed, maybe sent, not yet acknowledged).
        wait_until(Duration::from_secs(30), "batches in flight", || async {
            Ok(f.queue.summary().await?.in_flight > 0)
        })
        .await?;
        f.exec(&format!(
            "update customers set store = 'round {round}' where id % 10 = {round}"
        ))
        .await?;
        child.kill()?;
        child.wait()?;
        let total: i64 = f
            .sql
            .query_one("select count(*) from chimpsync.sync_queue", &[])
            .await?
            .get(0);
        assert!(total > 0, "the queue still holds what was not acknowledged");
    }
    // A fresh worker picks up everything, the killed workers' rows once their lease ran out.
    let mut child = f
        .command(&["run"])?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_until(Duration::from_secs(90), "the queue to drain", || async {
        let s = f.queue.summary().await?;
        Ok(s.pending + s.in_flight + s.retrying == 0)
    })
    .await?;
    signal(child.id(), "TERM")?;
    assert!(child.wait()?.success());
    f.assert_converged().await?;
    assert_eq!(f.emulator.members(AUDIENCE).len(), 3000);
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_batches_releases_the_rest_and_exits_zero() -> Result<()> {
    let f = Fixture::with(
        MAPPING,
        Config {
            latency: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await?;
    f.insert_customers(2000, 1).await?;
    let child = f
        .command(&["run"])?
        .env("CHIMPSYNC_BATCH_SIZE", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    wait_until(Duration::from_secs(30), "batches in flight", || async {
        Ok(f.queue.summary().await?.in_flight > 0)
    })
    .await?;
    let before = f.emulator.stats().requests;
    signal(child.id(), "TERM")?;
    let out = child.wait_with_output()?;
    assert!(out.status.success(), "exit 0 after SIGTERM");
    let s = f.queue.summary().await?;
    assert_eq!(s.in_flight, 0, "nothing left claimed: finished or released");
    let queued: i64 = f
        .sql
        .query_one("select count(*) from chimpsync.sync_queue", &[])
        .await?
        .get(0);
    let synced = f.emulator.members(AUDIENCE).len() as i64;
    assert!(
        f.emulator.stats().requests >= before,
        "in-flight calls completed"
    );
    assert_eq!(
        queued + synced,
        2000,
        "every customer is either in the audience or still queued"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("worker stopped"), "{log}");
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_end_to_end() -> Result<()> {
    let out = Command::new(chimpsync_tests::chimpsync_bin())
        .args(["demo", "--customers", "500"])
        .env("DATABASE_URL", chimpsync_tests::server_url())
        .env("LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The narrative on stdout is what a person reads: without RUST_LOG nothing below a warning
    // is logged beside it.
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let event: serde_json::Value = serde_json::from_str(line).context("a JSON log line")?;
        let level = event["level"].as_str().unwrap_or_default();
        assert!(["WARN", "ERROR"].contains(&level), "{line}");
    }
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("The audience matches the table."),
        "{stdout}"
    );
    assert!(
        stdout.contains("gone (renamed, not duplicated)"),
        "{stdout}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_create_prints_the_new_id_and_names_it_after_the_company() -> Result<()> {
    let f = Fixture::new().await?;
    let (code, out, err) = output(&mut f.command(&[
        "audience",
        "create",
        "--company",
        "Happy Paws",
        "--address1",
        "Rua Augusta 1",
        "--city",
        "Lisboa",
        "--country",
        "PT",
        "--from-email",
        "news@happypaws.test",
    ])?)?;
    assert_eq!(code, 0, "{err}");
    let id = out.trim();
    assert_eq!(id.len(), 10, "{out}");
    let audience = f.mailchimp.get_audience(id).await?;
    assert_eq!(audience.name, "Happy Paws Customers");
    let (code, _, err) = output(&mut f.command(&["audience", "create", "--company", "X"])?)?;
    assert_ne!(code, 0);
    assert!(err.contains("--address1"), "{err}");
    f.finish().await
}
