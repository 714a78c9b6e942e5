//! The commands of multi-account mode that act on one account or on each, run through the real
//! binary against the emulator's three accounts: `status` (per account, and the accounts in
//! `--json`), `audience create --account`, `setup --mailchimp` in every account's audience,
//! `reconcile --account`, and each account's own webhook route.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use chimpsync_tests::wait_until;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::many_accounts::{mapping_text, Many, ACCOUNTS};

/// The multi-account mapping plus an `[inbound]` statement scoped to the event's account.
fn inbound_mapping() -> String {
    format!(
        "{}\n[inbound]\nunsubscribe = \"update public.customers set consent_contact = false \
         where lower(email) = lower($1) and store = $4\"\n",
        mapping_text()
    )
}

fn mapping_file(m: &Many, which: &str, text: &str) -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("{}-{which}.toml", m.db.name));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The binary with a bare environment: the database, `mapping`, the key-encryption secret and
/// the emulator (no MAILCHIMP_API_KEY: every key comes from the accounts).
fn chimpsync(m: &Many, mapping: &PathBuf, args: &[&str]) -> Command {
    let mut cmd = Command::new(chimpsync_tests::chimpsync_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &m.db.url)
        .env("CHIMPSYNC_CONFIG", mapping)
        .env(
            "CHIMPSYNC_SECRET_KEY",
            m.secret.to_env_text().expose_secret(),
        )
        .env("MAILCHIMP_BASE_URL", m.emulator.base_url())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    cmd
}

/// Exit code, stdout, stderr.
async fn output(cmd: Command) -> Result<(i32, String, String)> {
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .context("running chimpsync")?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// No output of a command shows an account's API key.
fn no_key(text: &str) -> Result<()> {
    for (_, key, _) in ACCOUNTS {
        ensure!(!text.contains(&key[..32]), "a key shows in: {text}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_account_and_the_accounts_no_one_serves() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    m.insert_customers(30, 1).await?;
    m.drain(1).await?;
    // Two changes queued for S0, a customer of an account that is not connected, and S1 in
    // needs_attention.
    m.sql
        .batch_execute(
            "update customers set first_name = 'Again' where id in (3, 6);
             insert into customers (id, email, first_name, store, consent_contact)
                 values (900, 'lost@pets.test', 'Lost', 'S9', true);
             update chimpsync.accounts set state = 'needs_attention', state_reason = 'API key revoked'
                 where account = 'S1';",
        )
        .await?;
    let mapping = mapping_file(&m, "multi", &mapping_text())?;

    let (code, out, err) = output(chimpsync(&m, &mapping, &["status", "--json"])).await?;
    ensure!(code == 0, "{err}");
    no_key(&out)?;
    let status: Value = serde_json::from_str(out.trim())?;
    let accounts = status["accounts"].as_array().context("accounts array")?;
    let names: Vec<&str> = accounts
        .iter()
        .filter_map(|a| a["account"].as_str())
        .collect();
    ensure!(names == ["S0", "S1", "S2", "S9"], "{names:?}");
    for a in accounts {
        for field in [
            "account",
            "state",
            "reason",
            "audience_id",
            "pending",
            "retrying",
            "parked",
            "last_synced_at",
        ] {
            ensure!(a.get(field).is_some(), "{field} missing in {a}");
        }
    }
    let s0 = &accounts[0];
    ensure!(s0["state"] == "active" && s0["pending"] == 2, "{s0}");
    ensure!(s0["last_synced_at"].is_string(), "{s0}");
    ensure!(s0["audience_id"] == ACCOUNTS[0].2, "{s0}");
    let s1 = &accounts[1];
    ensure!(
        s1["state"] == "needs_attention" && s1["reason"] == "API key revoked",
        "{s1}"
    );
    let s9 = &accounts[3];
    ensure!(s9["state"] == "unknown" && s9["pending"] == 1, "{s9}");

    let (code, out, err) = output(chimpsync(&m, &mapping, &["status"])).await?;
    ensure!(code == 0, "{err}");
    no_key(&out)?;
    ensure!(
        out.contains("accounts                2 active, 1 needs_attention"),
        "{out}"
    );
    ensure!(out.contains("not served              1 (S9)"), "{out}");

    let (code, out, err) = output(chimpsync(&m, &mapping, &["status", "--account", "S1"])).await?;
    ensure!(code == 0, "{err}");
    no_key(&out)?;
    for needle in [
        "account                 S1",
        "state                   needs_attention (API key revoked)",
        &format!("audience                {}", ACCOUNTS[1].2),
        "key                     …-us2",
        "pending                 0",
        "recent state changes",
        "connected: active",
    ] {
        ensure!(out.contains(needle), "{needle:?} missing in:\n{out}");
    }
    let (code, out, err) = output(chimpsync(
        &m,
        &mapping,
        &["status", "--account", "S1", "--json"],
    ))
    .await?;
    ensure!(code == 0, "{err}");
    let s1: Value = serde_json::from_str(out.trim())?;
    let events = s1["events"].as_array().context("events")?;
    ensure!(
        events[0]["state"] == "needs_attention" && events[0]["reason"] == "API key revoked",
        "newest first: {events:?}"
    );
    let (code, _, err) = output(chimpsync(&m, &mapping, &["status", "--account", "S7"])).await?;
    ensure!(code != 0 && err.contains("no account \"S7\""), "{err}");
    m.db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_create_with_an_account_uses_its_key_and_becomes_its_audience() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    let mapping = mapping_file(&m, "multi", &mapping_text())?;
    let (_, key1, _) = ACCOUNTS[1];
    let before = m.emulator.audiences_of(key1);
    let (code, out, err) = output(chimpsync(
        &m,
        &mapping,
        &[
            "audience",
            "create",
            "--account",
            "S1",
            "--company",
            "Pets S1",
            "--address1",
            "1 Main St",
            "--city",
            "Springfield",
            "--from-email",
            "hello@s1.test",
        ],
    ))
    .await?;
    ensure!(code == 0, "{err}");
    no_key(&format!("{out}{err}"))?;
    let id = out.trim();
    let after = m.emulator.audiences_of(key1);
    ensure!(
        after.len() == before.len() + 1 && after.iter().any(|a| a == id),
        "{id} not in S1's Mailchimp account: {after:?}"
    );
    for (_, key, _) in [ACCOUNTS[0], ACCOUNTS[2]] {
        ensure!(!m.emulator.audiences_of(key).iter().any(|a| a == id));
    }
    let audience: Option<String> = m
        .sql
        .query_one(
            "select audience_id from chimpsync.accounts where account = 'S1'",
            &[],
        )
        .await?
        .get(0);
    ensure!(audience.as_deref() == Some(id), "{audience:?}");
    m.db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_mailchimp_creates_the_fields_in_every_account_and_reports_a_refused_key(
) -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    let text = mapping_text().replace("STORE = \"store\"", "STORE = \"store\"\nNOTES = \"notes\"");
    let mapping = mapping_file(&m, "notes", &text)?;
    let (_, key2, _) = ACCOUNTS[2];
    m.emulator.revoke_key(key2);
    let has_notes = |i: usize| {
        let (_, key, audience) = ACCOUNTS[i];
        let base = m.emulator.base_url();
        async move {
            let mut c = mailchimp::ClientConfig::new(mailchimp::ApiKey::parse(key)?);
            c.base_url = Some(base);
            let fields = mailchimp::Client::new(c)?.merge_fields(audience).await?;
            anyhow::Ok(fields.iter().any(|f| f.tag == "NOTES"))
        }
    };

    let (code, out, err) = output(chimpsync(&m, &mapping, &["setup", "--mailchimp"])).await?;
    no_key(&format!("{out}{err}"))?;
    ensure!(
        code != 0,
        "a refused key fails the command at the end:\n{out}"
    );
    ensure!(
        out.contains("account S0: created merge field NOTES (text)"),
        "{out}"
    );
    ensure!(
        out.contains("account S1: created merge field NOTES (text)"),
        "{out}"
    );
    ensure!(out.contains("account S2: failed"), "{out}");
    ensure!(out.contains("2 accounts done, 1 failed"), "{out}");
    ensure!(err.contains("S2"), "{err}");
    ensure!(has_notes(0).await? && has_notes(1).await?);

    m.emulator.restore_key(key2);
    let (code, out, err) = output(chimpsync(&m, &mapping, &["setup", "--mailchimp"])).await?;
    ensure!(code == 0, "{out}{err}");
    ensure!(
        out.contains("account S0: merge field NOTES exists"),
        "{out}"
    );
    ensure!(
        out.contains("account S2: created merge field NOTES (text)"),
        "{out}"
    );
    ensure!(out.contains("3 accounts done, 0 failed"), "{out}");
    ensure!(has_notes(2).await?);
    m.db.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_account_finds_a_difference_only_in_its_account() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    m.insert_customers(30, 1).await?;
    // One address in two accounts.
    m.sql
        .batch_execute(
            "insert into customers (id, email, first_name, store, consent_contact) values
             (1001, 'shared@pets.test', 'Ann', 'S0', true),
             (1002, 'shared@pets.test', 'Bob', 'S1', true)",
        )
        .await?;
    m.drain(1).await?;
    let (_, _, aud0) = ACCOUNTS[0];
    let (_, _, aud1) = ACCOUNTS[1];
    // Planted in Mailchimp: customer 1's member (S1) and the shared address in S0 only.
    ensure!(m.emulator.simulate_profile_update(
        aud1,
        "c1@pets.test",
        &[("FNAME", "Changed".into())]
    ));
    ensure!(m.emulator.simulate_profile_update(
        aud0,
        "shared@pets.test",
        &[("FNAME", "Changed".into())]
    ));
    let mapping = mapping_file(&m, "multi", &mapping_text())?;

    let (code, _, err) = output(chimpsync(&m, &mapping, &["reconcile", "--json"])).await?;
    ensure!(code != 0 && err.contains("--account"), "{err}");

    let (code, out, err) = output(chimpsync(
        &m,
        &mapping,
        &["reconcile", "--account", "S1", "--full", "--json"],
    ))
    .await?;
    ensure!(code == 0, "{err}");
    let report: Value = serde_json::from_str(out.trim())?;
    ensure!(report["audience_id"] == aud1, "{report}");
    let found: Vec<(String, String)> = report["differences"]
        .as_array()
        .context("differences")?
        .iter()
        .map(|d| {
            (
                d["customer_key"].as_str().unwrap_or("-").to_string(),
                d["email"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    ensure!(
        found == [("1".to_string(), "c1@pets.test".to_string())],
        "S1's differences: {found:?}"
    );
    // S1's customers only: 10 of the 30, and Bob.
    ensure!(report["customers_compared"] == 11, "{report}");

    let (code, out, err) = output(chimpsync(
        &m,
        &mapping,
        &[
            "reconcile",
            "--account",
            "S1",
            "--full",
            "--apply",
            "--json",
        ],
    ))
    .await?;
    ensure!(code == 0, "{err}");
    let report: Value = serde_json::from_str(out.trim())?;
    ensure!(report["applied"]["queued"] == 1, "{report}");
    let queued: Vec<(String, String)> = m
        .sql
        .query(
            "select account, customer_key from chimpsync.sync_queue",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    ensure!(
        queued == [("S1".to_string(), "1".to_string())],
        "{queued:?}"
    );

    // S0's own run finds the shared address's difference, and Ann's, not Bob's.
    let (code, out, err) = output(chimpsync(
        &m,
        &mapping,
        &["reconcile", "--account", "S0", "--full", "--json"],
    ))
    .await?;
    ensure!(code == 0, "{err}");
    let report: Value = serde_json::from_str(out.trim())?;
    let keys: Vec<&str> = report["differences"]
        .as_array()
        .context("differences")?
        .iter()
        .filter_map(|d| d["customer_key"].as_str())
        .collect();
    ensure!(keys == ["1001"], "S0's differences: {report}");
    m.db.finish().await
}

/// Spawns `chimpsync run` and returns it with the address its HTTP server bound.
fn spawn_run(m: &Many, mapping: &PathBuf) -> Result<(std::process::Child, String)> {
    let mut cmd = chimpsync(m, mapping, &["run"]);
    cmd.env("CHIMPSYNC_HTTP_ADDR", "127.0.0.1:0")
        .env("CHIMPSYNC_POLL_INTERVAL_MS", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("spawning chimpsync run")?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(|l| l.ok())
        {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if let Some(addr) = v["addr"].as_str() {
                    let _ = tx.send(Ok(addr.to_owned()));
                }
            }
            seen.push(line);
        }
        // It exited before listening: what it said, for the failure message.
        let _ = tx.send(Err(seen.join("\n")));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(addr)) => Ok((child, addr)),
        said => {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("chimpsync run did not say where it listens: {said:?}")
        }
    }
}

async fn consent(m: &Many, id: i64) -> Result<Option<bool>> {
    Ok(m.sql
        .query_one(
            "select consent_contact from customers where id = $1",
            &[&id],
        )
        .await?
        .get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_webhook_changes_only_its_customers() -> Result<()> {
    let m = Many::new(mailchimp_emulator::Config::default()).await?;
    // The same address in S0 and S1.
    m.sql
        .batch_execute(
            "insert into customers (id, email, first_name, store, consent_contact) values
             (1001, 'shared@pets.test', 'Ann', 'S0', true),
             (1002, 'shared@pets.test', 'Bob', 'S1', true)",
        )
        .await?;
    m.drain(1).await?;
    let mapping = mapping_file(&m, "inbound", &inbound_mapping())?;
    let (mut child, addr) = spawn_run(&m, &mapping)?;
    let outcome = async {
        let secret = |account: &str| {
            let sql = &m.sql;
            let account = account.to_string();
            async move {
                let row = sql
                    .query_one(
                        "select webhook_secret from chimpsync.accounts where account = $1",
                        &[&account],
                    )
                    .await?;
                anyhow::Ok(row.get::<_, String>(0))
            }
        };
        let (s0, s1) = (secret("S0").await?, secret("S1").await?);
        let http = reqwest::Client::new();
        let base = format!("http://{addr}/webhooks/mailchimp");
        let unsubscribe = format!(
            "type=unsubscribe&data[list_id]={}&data[email]=shared%40pets.test",
            ACCOUNTS[1].2
        );
        // A wrong secret, another account's secret, an unknown account: 404, nothing stored.
        for url in [
            format!("{base}/S1/not-the-secret-0123456789"),
            format!("{base}/S1/{s0}"),
            format!("{base}/S8/{s1}"),
        ] {
            let got = http.post(&url).body(unsubscribe.clone()).send().await?;
            ensure!(got.status() == 404, "{url}: {}", got.status());
            ensure!(http.get(&url).send().await?.status() == 404, "GET {url}");
        }
        let stored: i64 = m
            .sql
            .query_one("select count(*) from chimpsync.inbound_events", &[])
            .await?
            .get(0);
        ensure!(stored == 0, "{stored} events stored");

        // Registered with S1's key on S1's audience (the emulator validates with a GET).
        let (code, out, err) = output(chimpsync(
            &m,
            &mapping,
            &[
                "webhook",
                "register",
                "--account",
                "S1",
                "--url",
                &format!("http://{addr}/"),
            ],
        ))
        .await?;
        ensure!(code == 0, "{out}{err}");
        ensure!(out.contains("account S1: registered webhook"), "{out}");
        ensure!(!out.contains(&s1), "the secret shows: {out}");
        let (_, key1, aud1) = ACCOUNTS[1];
        let mut c = mailchimp::ClientConfig::new(mailchimp::ApiKey::parse(key1)?);
        c.base_url = Some(m.emulator.base_url());
        let hooks = mailchimp::Client::new(c)?.webhooks(aud1).await?;
        ensure!(
            hooks.len() == 1 && hooks[0].url == format!("{base}/S1/{s1}"),
            "{:?}",
            hooks.iter().map(|h| &h.url).collect::<Vec<_>>()
        );

        // Bob unsubscribes in S1's audience: only Bob loses consent, Ann (S0) keeps it.
        ensure!(m.emulator.simulate_unsubscribe(aud1, "shared@pets.test"));
        wait_until(Duration::from_secs(30), "Bob's consent to turn false", || async {
            Ok(consent(&m, 1002).await? == Some(false))
        })
        .await?;
        ensure!(consent(&m, 1001).await? == Some(true), "Ann lost consent");
        let events: Vec<(String, String)> = m
            .sql
            .query(
                "select account, status from chimpsync.inbound_events order by id",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        ensure!(
            events == [("S1".to_string(), "applied".to_string())],
            "{events:?}"
        );

        // S1's event posted to S0's URL: stored as S0's and ignored (another audience).
        let got = http
            .post(format!("{base}/S0/{s0}"))
            .body(unsubscribe.replace("unsubscribe", "cleaned"))
            .send()
            .await?;
        ensure!(got.status() == 200, "{}", got.status());
        let ignored: (String, String) = {
            let r = m
                .sql
                .query_one(
                    "select account, status from chimpsync.inbound_events where event_type = 'cleaned'",
                    &[],
                )
                .await?;
            (r.get(0), r.get(1))
        };
        ensure!(
            ignored == ("S0".to_string(), "ignored".to_string()),
            "{ignored:?}"
        );
        ensure!(consent(&m, 1001).await? == Some(true), "Ann lost consent");
        anyhow::Ok(())
    }
    .await;
    child.kill()?;
    child.wait()?;
    outcome?;
    m.db.finish().await
}
