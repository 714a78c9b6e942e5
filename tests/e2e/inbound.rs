//! Mailchimp → database: webhooks from the emulator into the receiver and through the
//! mapping's `[inbound]` statements, `webhook register`, `reconcile` and `setup --mailchimp`.

use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use chimpsync::webhook::registration as webhook;
use chimpsync_tests::{wait_until, Fixture, AUDIENCE, MAPPING};
use mailchimp::{MemberUpsert, Status, TagChange};
use mailchimp_emulator::Config;
use serde_json::Value;
use store::inbound::{Inbound, Outcome};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "s3cret-0123456789abcdef";
const ANA: &str = "insert into customers values (1, 'ana@pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', true, null, null)";

/// The test mapping plus `[inbound]` statements.
fn inbound_mapping() -> String {
    format!(
        r#"{MAPPING}
[inbound]
unsubscribe = "update public.customers set consent_contact = false where lower(email) = lower($1)"
cleaned     = "update public.customers set consent_contact = false, notes = 'bounced' where lower(email) = lower($1)"
upemail     = "update public.customers set email = $2 where lower(email) = lower($1)"
profile     = "update public.customers set notes = coalesce(notes, '') || 'p', first_name = $3::jsonb -> 'data' -> 'merges' ->> 'FNAME' where lower(email) = lower($1)"
"#
    )
}

/// The webhook receiver served in-process on a free port (the router `chimpsync run` merges).
struct Hook {
    base: String,
    inbound: Inbound,
    stop: CancellationToken,
}

impl Hook {
    async fn start(f: &Fixture) -> Result<Hook> {
        let inbound = Inbound::new(f.queue.pool().clone(), &f.mapping).await?;
        let receiver =
            chimpsync::webhook::Receiver::new(inbound.clone(), AUDIENCE.into(), SECRET.into())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let app = receiver.router();
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        Ok(Hook {
            base,
            inbound,
            stop,
        })
    }

    fn url(&self) -> String {
        format!("{}/webhooks/mailchimp/{SECRET}", self.base)
    }

    /// Registers the receiver on the audience (the emulator validates it with a GET first).
    async fn register(&self, f: &Fixture) -> Result<()> {
        f.mailchimp
            .create_webhook(AUDIENCE, &webhook(self.url(), false))
            .await?;
        Ok(())
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// (status, rows_affected) of every stored event, oldest first.
async fn events(f: &Fixture) -> Result<Vec<(String, String, Option<i64>)>> {
    Ok(f.sql
        .query(
            "select event_type, status, rows_affected from chimpsync.inbound_events order by id",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

async fn customer_text(f: &Fixture, id: i64, column: &str) -> Result<Option<String>> {
    Ok(f.sql
        .query_one(
            &format!("select {column}::text from customers where id = $1"),
            &[&id],
        )
        .await?
        .get(0))
}

/// Runs `sql` as an inbound change would (the triggers stay silent): drift planted for reconcile.
async fn behind_chimpsyncs_back(f: &Fixture, sql: &str) -> Result<()> {
    f.exec(&format!(
        "begin; set local chimpsync.origin = 'mailchimp'; {sql}; commit;"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_who_unsubscribes_in_mailchimp_loses_consent_and_nothing_echoes() -> Result<()> {
    let f = Fixture::with(&inbound_mapping(), Config::default()).await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    let hook = Hook::start(&f).await?;
    hook.register(&f).await?;
    let writes = f.emulator.stats().member_writes;

    assert!(f.emulator.simulate_unsubscribe(AUDIENCE, "ana@pets.test"));
    wait_until(Duration::from_secs(20), "consent to turn false", || async {
        Ok(customer_text(&f, 1, "consent_contact").await?.as_deref() == Some("false"))
    })
    .await?;
    wait_until(
        Duration::from_secs(20),
        "the event to be applied",
        || async {
            Ok(events(&f).await? == vec![("unsubscribe".into(), "applied".into(), Some(1))])
        },
    )
    .await?;
    assert!(
        f.queue_rows().await?.is_empty(),
        "the change was not queued"
    );
    assert_eq!(f.drain(&w).await?.claimed, 0);
    assert_eq!(
        f.emulator.stats().member_writes,
        writes,
        "Mailchimp saw no write"
    );
    let synced: bool = f
        .sql
        .query_one(
            "select consent from chimpsync.synced_contacts where customer_key = '1'",
            &[],
        )
        .await?
        .get(0);
    assert!(!synced, "the consent Mailchimp holds counts as sent");

    // The next outbound change neither fights the unsubscribe nor asks to re-confirm.
    f.exec("update customers set first_name = 'Anita' where id = 1")
        .await?;
    f.drain(&w).await?;
    let m = f.member("ana@pets.test").unwrap();
    assert_eq!(
        (m.status.as_str(), &m.merge_fields["FNAME"]),
        ("unsubscribed", &Value::from("Anita"))
    );
    drop(hook);
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_updates_the_configured_columns() -> Result<()> {
    let f = Fixture::with(&inbound_mapping(), Config::default()).await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    let hook = Hook::start(&f).await?;
    hook.register(&f).await?;
    assert!(f.emulator.simulate_bounce(AUDIENCE, "ana@pets.test"));
    wait_until(Duration::from_secs(20), "notes to say bounced", || async {
        Ok(customer_text(&f, 1, "notes").await?.as_deref() == Some("bounced"))
    })
    .await?;
    assert_eq!(
        customer_text(&f, 1, "consent_contact").await?.as_deref(),
        Some("false")
    );
    assert_eq!(events(&f).await?[0].0, "cleaned");
    assert!(f.queue_rows().await?.is_empty());
    assert_eq!(f.member("ana@pets.test").unwrap().status, "cleaned");
    drop(hook);
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_changed_in_mailchimp_moves_the_customer_without_a_duplicate() -> Result<()> {
    let f = Fixture::with(&inbound_mapping(), Config::default()).await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    let hook = Hook::start(&f).await?;
    hook.register(&f).await?;
    assert!(f
        .emulator
        .simulate_email_change(AUDIENCE, "ana@pets.test", "ana.new@pets.test"));
    wait_until(
        Duration::from_secs(20),
        "the table's address to change",
        || async {
            Ok(customer_text(&f, 1, "email").await?.as_deref() == Some("ana.new@pets.test"))
        },
    )
    .await?;
    assert!(f.queue_rows().await?.is_empty());
    let synced: String = f
        .sql
        .query_one(
            "select email from chimpsync.synced_contacts where customer_key = '1'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(
        synced, "ana.new@pets.test",
        "the member lives under the new address"
    );

    f.exec("update customers set first_name = 'Anita' where id = 1")
        .await?;
    let o = f.drain(&w).await?;
    assert_eq!((o.acked, o.parked), (1, 0));
    let live: Vec<String> = f
        .emulator
        .members(AUDIENCE)
        .into_iter()
        .filter(|m| m.status != "archived")
        .map(|m| m.email_address)
        .collect();
    assert_eq!(live, vec!["ana.new@pets.test"], "no duplicate");
    assert_eq!(
        f.member("ana.new@pets.test").unwrap().merge_fields["FNAME"],
        "Anita"
    );
    f.assert_converged().await?;
    drop(hook);
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_webhook_changes_nothing_twice() -> Result<()> {
    let f = Fixture::with(&inbound_mapping(), Config::default()).await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    let hook = Hook::start(&f).await?;
    hook.register(&f).await?;
    assert!(f.emulator.simulate_profile_update(
        AUDIENCE,
        "ana@pets.test",
        &[("FNAME", Value::from("Annie"))]
    ));
    wait_until(
        Duration::from_secs(20),
        "the profile event to apply",
        || async { Ok(customer_text(&f, 1, "notes").await?.as_deref() == Some("p")) },
    )
    .await?;
    assert_eq!(
        customer_text(&f, 1, "first_name").await?.as_deref(),
        Some("Annie"),
        "$3 carries the merges"
    );
    let delivered = f.emulator.webhook_deliveries();
    assert_eq!(delivered.len(), 1);
    // Mailchimp retries a call it thinks failed: the very same body again.
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let answer = http
            .post(hook.url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(delivered[0].body.clone())
            .send()
            .await?;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await?, "duplicate\n");
    }
    assert_eq!(
        events(&f).await?,
        vec![("profile".into(), "applied".into(), Some(1))]
    );
    assert_eq!(
        customer_text(&f, 1, "notes").await?.as_deref(),
        Some("p"),
        "applied once"
    );
    drop(hook);
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_gets_401_and_nothing_is_stored() -> Result<()> {
    let f = Fixture::with(&inbound_mapping(), Config::default()).await?;
    let hook = Hook::start(&f).await?;
    let http = reqwest::Client::new();
    let body = format!("type=unsubscribe&fired_at=2024-01-01+10%3A00%3A00&data[list_id]={AUDIENCE}&data[email]=ana%40pets.test");
    for secret in ["wrong-secret-0123456789", "s3cret-0123456789abcdeX", ""] {
        let url = format!("{}/webhooks/mailchimp/{secret}", hook.base);
        let answer = http.post(&url).body(body.clone()).send().await?;
        assert!(
            [401, 404].contains(&answer.status().as_u16()),
            "{secret:?}: {}",
            answer.status()
        );
        if !secret.is_empty() {
            assert_eq!(answer.status(), 401);
            assert_eq!(http.get(&url).send().await?.status(), 401);
        }
    }
    assert!(events(&f).await?.is_empty(), "nothing stored");
    // The emulator's validator is refused too, so such a URL cannot be registered.
    let refused = f
        .mailchimp
        .create_webhook(
            AUDIENCE,
            &webhook(
                format!("{}/webhooks/mailchimp/wrong-secret-0123456789", hook.base),
                false,
            ),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(http.get(hook.url()).send().await?.status(), 200);
    drop(hook);
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_apply_is_kept_and_retried() -> Result<()> {
    let f = Fixture::with(&inbound_mapping(), Config::default()).await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    let hook = Hook::start(&f).await?;
    hook.register(&f).await?;
    // A customer transaction holds the row: the inbound statement times out on its lock.
    let mut locker = f.db.client().await?;
    let tx = locker.transaction().await?;
    tx.execute("select 1 from customers where id = 1 for update", &[])
        .await?;
    assert!(f.emulator.simulate_unsubscribe(AUDIENCE, "ana@pets.test"));
    wait_until(Duration::from_secs(20), "the apply to fail", || async {
        Ok(events(&f).await?.first().map(|e| e.1.clone()) == Some("failed".into()))
    })
    .await?;
    let error: String = f
        .sql
        .query_one("select last_error from chimpsync.inbound_events", &[])
        .await?
        .get(0);
    assert!(error.contains("lock"), "{error}");
    tx.rollback().await?;
    // Not due yet; due once its backoff passed (the clock is injected).
    assert!(hook
        .inbound
        .apply_due(10, None, worker::retry::inbound_event)
        .await?
        .is_empty());
    let later = chrono::Utc::now() + chrono::Duration::minutes(5);
    let done = hook
        .inbound
        .apply_due(10, Some(later), worker::retry::inbound_event)
        .await?;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1, Outcome::Applied { rows: Some(1) });
    assert_eq!(
        customer_text(&f, 1, "consent_contact").await?.as_deref(),
        Some("false")
    );
    assert!(f.queue_rows().await?.is_empty());
    drop(hook);
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_change_is_refreshed_by_an_inbound_event() -> Result<()> {
    let f = Fixture::with(&inbound_mapping(), Config::default()).await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    let hook = Hook::start(&f).await?;
    hook.register(&f).await?;
    // A change is queued (consent still true in its snapshot) when the contact unsubscribes.
    f.exec("update customers set store = 'Hamburg' where id = 1")
        .await?;
    assert!(f.emulator.simulate_unsubscribe(AUDIENCE, "ana@pets.test"));
    wait_until(
        Duration::from_secs(20),
        "the event to be applied",
        || async { Ok(events(&f).await?.first().map(|e| e.1.clone()) == Some("applied".into())) },
    )
    .await?;
    let consent: Option<bool> = f
        .sql
        .query_one(
            "select (payload ->> 'consent')::boolean from chimpsync.sync_queue where customer_key = '1'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(
        consent,
        Some(false),
        "the queued snapshot follows the table"
    );
    f.drain(&w).await?;
    let m = f.member("ana@pets.test").unwrap();
    assert_eq!(
        (m.status.as_str(), &m.merge_fields["STORE"]),
        ("unsubscribed", &Value::from("Hamburg"))
    );
    drop(hook);
    f.finish().await
}

/// Spawns `chimpsync run` and returns it with the address its HTTP server bound.
fn spawn_run(f: &Fixture, mapping: &str) -> Result<(std::process::Child, String)> {
    let mut cmd = f.command(&["run"])?;
    cmd.env("CHIMPSYNC_CONFIG", f.mapping_file(mapping)?)
        .env("CHIMPSYNC_WEBHOOK_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("spawning chimpsync run")?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(|l| l.ok())
        {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if let Some(addr) = v["addr"].as_str() {
                    let _ = tx.send(addr.to_owned());
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .context("chimpsync run did not say where it listens")?;
    Ok((child, addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_webhook_and_registers_it_once() -> Result<()> {
    let f = Fixture::with(&inbound_mapping(), Config::default()).await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    let (mut child, addr) = spawn_run(&f, &inbound_mapping())?;
    let url = format!("http://{addr}/webhooks/mailchimp/{SECRET}");
    let mapping = f.mapping_file(&inbound_mapping())?;
    let register = || -> Result<tokio::process::Command> {
        let mut cmd = f.command(&["webhook", "register", "--url", &url])?;
        cmd.env("CHIMPSYNC_CONFIG", &mapping)
            .env("CHIMPSYNC_WEBHOOK_SECRET", SECRET);
        Ok(cmd.into())
    };
    let first = register()?.output().await?;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("registered webhook"));
    let second = register()?.output().await?;
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("already registered"),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    let hooks = f.mailchimp.webhooks(AUDIENCE).await?;
    assert_eq!(hooks.len(), 1, "not duplicated");
    assert_eq!(
        (
            hooks[0].sources.user,
            hooks[0].sources.admin,
            hooks[0].sources.api
        ),
        (true, true, false)
    );
    assert!(!hooks[0].events.campaign && hooks[0].events.upemail);

    let http = reqwest::Client::new();
    let wrong = format!("http://{addr}/webhooks/mailchimp/not-the-secret-at-all");
    assert_eq!(
        http.post(&wrong)
            .body("type=unsubscribe")
            .send()
            .await?
            .status(),
        401
    );

    assert!(f.emulator.simulate_unsubscribe(AUDIENCE, "ana@pets.test"));
    wait_until(Duration::from_secs(30), "consent to turn false", || async {
        Ok(customer_text(&f, 1, "consent_contact").await?.as_deref() == Some("false"))
    })
    .await?;
    assert!(f.queue_rows().await?.is_empty());
    child.kill()?;
    child.wait()?;
    f.finish().await
}

/// Runs the binary and parses its JSON output.
async fn reconcile_json(f: &Fixture, mapping: &str, args: &[&str]) -> Result<Value> {
    let mut all = vec!["reconcile", "--json"];
    all.extend_from_slice(args);
    let mut cmd = f.command(&all)?;
    cmd.env("CHIMPSYNC_CONFIG", f.mapping_file(mapping)?);
    let out = tokio::process::Command::from(cmd).output().await?;
    anyhow::ensure!(
        out.status.success(),
        "reconcile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn found(report: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = report["differences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or("").to_owned(),
                d["customer_key"]
                    .as_str()
                    .unwrap_or(d["email"].as_str().unwrap_or(""))
                    .to_owned(),
                d["fix"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_every_planted_difference_and_apply_removes_them() -> Result<()> {
    let mapping = format!(
        "{MAPPING}\n[inbound]\nunsubscribe = \"update public.customers set consent_contact = false where lower(email) = lower($1)\"\n"
    );
    let f = Fixture::with(&mapping, Config::default()).await?;
    let w = f.worker(|_| {})?;
    f.exec(
        "insert into customers (id, email, first_name, last_name, store, customer_type, consent_contact) values
         (1, 'ana@pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', true),
         (2, 'bo@pets.test',  'Bo',  'Ng',   'Berlin', 'dog owner', true),
         (3, 'cy@pets.test',  'Cy',  'Roe',  'Paris', null, true),
         (4, 'dee@pets.test', 'Dee', 'Fox',  'Paris', 'cat owner', true),
         (5, 'eve@pets.test', 'Eve', 'Kim',  'Rome', 'vet', true),
         (6, 'fay@pets.test', 'Fay', 'Ode',  'Rome', null, true),
         (8, 'hal@pets.test', 'Hal', 'Poe',  'Rome', null, true)",
    )
    .await?;
    f.drain(&w).await?;
    f.assert_converged().await?;

    // Differences no webhook or trigger reported.
    behind_chimpsyncs_back(&f, "insert into customers (id, email, first_name, last_name, store, consent_contact) values (7, 'gil@pets.test', 'Gil', 'Wu', 'Oslo', true)").await?;
    f.mailchimp
        .upsert_member(
            AUDIENCE,
            "stranger@pets.test",
            &MemberUpsert {
                status_if_new: Some(Status::Subscribed),
                ..Default::default()
            },
        )
        .await?;
    behind_chimpsyncs_back(&f, "update customers set deleted_at = now() where id = 6").await?;
    assert!(f.emulator.simulate_unsubscribe(AUDIENCE, "bo@pets.test"));
    behind_chimpsyncs_back(
        &f,
        "update customers set consent_contact = false where id = 3",
    )
    .await?;
    behind_chimpsyncs_back(&f, "update customers set last_name = 'Fuchs' where id = 4").await?;
    behind_chimpsyncs_back(
        &f,
        "update customers set customer_type = 'vet' where id = 1",
    )
    .await?;
    f.mailchimp
        .update_tags(AUDIENCE, "eve@pets.test", &[TagChange::remove("vet")])
        .await?;
    behind_chimpsyncs_back(
        &f,
        "update customers set email = 'hal.new@pets.test' where id = 8",
    )
    .await?;
    assert!(f.queue_rows().await?.is_empty());

    let want: Vec<(String, String, String)> = vec![
        ("address", "8", "queue"),
        ("extra", "6", "queue"),
        ("extra", "stranger@pets.test", "keep"),
        ("merge", "4", "queue"),
        ("missing", "7", "queue"),
        ("status", "2", "inbound:unsubscribe"),
        ("status", "3", "queue"),
        ("tags", "1", "queue"),
        ("tags", "5", "queue"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect();
    let report = reconcile_json(&f, &mapping, &[]).await?;
    assert_eq!(found(&report), want, "{report:#}");
    assert_eq!(report["full"], true, "the first run reads everything");
    assert_eq!(report["applied"], Value::Null);
    let tags = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "tags" && d["customer_key"] == "1")
        .unwrap();
    assert_eq!(tags["mailchimp"]["missing"], serde_json::json!(["vet"]));
    assert_eq!(tags["mailchimp"]["stale"], serde_json::json!(["groomer"]));
    assert!(f.queue_rows().await?.is_empty(), "a report changes nothing");
    assert_eq!(
        customer_text(&f, 2, "consent_contact").await?.as_deref(),
        Some("true")
    );

    let report = reconcile_json(&f, &mapping, &["--apply", "--remove-extra"]).await?;
    let with_removal: Vec<_> = want
        .iter()
        .map(|(k, c, fix)| {
            let fix = if fix == "keep" { "remove" } else { fix };
            (k.clone(), c.clone(), fix.to_owned())
        })
        .collect();
    assert_eq!(found(&report), with_removal);
    let applied = &report["applied"];
    assert_eq!(
        (
            &applied["queued"],
            &applied["inbound_applied"],
            &applied["removed"]
        ),
        (&Value::from(7), &Value::from(1), &Value::from(1)),
        "{applied:#}"
    );
    assert_eq!(
        customer_text(&f, 2, "consent_contact").await?.as_deref(),
        Some("false"),
        "the unsubscribe went into the table"
    );
    f.drain(&w).await?;
    f.assert_converged().await?;
    assert_eq!(f.member("stranger@pets.test").unwrap().status, "archived");
    assert_eq!(f.member("fay@pets.test").unwrap().status, "archived");
    assert!(f.member("hal@pets.test").is_none(), "renamed");

    let again = reconcile_json(&f, &mapping, &[]).await?;
    assert_eq!(again["full"], false, "since the last --apply");
    assert_eq!(found(&again), vec![]);
    let full = reconcile_json(&f, &mapping, &["--full"]).await?;
    assert_eq!(found(&full), vec![], "{full:#}");
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_mailchimp_creates_the_missing_merge_fields_with_fitting_types() -> Result<()> {
    let f = Fixture::new().await?;
    f.exec("alter table customers add column lifetime_value numeric(10,2), add column customer_since date")
        .await?;
    let mapping = MAPPING.replace(
        "STORE = \"store\"",
        "STORE = \"store\"\nLTV = \"lifetime_value\"\nSINCE = \"customer_since\"\nNOTES = \"notes\"",
    );
    let run = || -> Result<tokio::process::Command> {
        let mut cmd = f.command(&["setup", "--mailchimp"])?;
        cmd.env("CHIMPSYNC_CONFIG", f.mapping_file(&mapping)?);
        Ok(cmd.into())
    };
    let out = run()?.output().await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("created merge field LTV (number)"), "{text}");
    assert!(text.contains("created merge field SINCE (date)"), "{text}");
    assert!(text.contains("created merge field NOTES (text)"), "{text}");
    assert!(text.contains("merge field FNAME exists"), "{text}");
    let fields = f.mailchimp.merge_fields(AUDIENCE).await?;
    let kind = |tag: &str| {
        fields
            .iter()
            .find(|m| m.tag == tag)
            .map(|m| m.r#type.clone())
    };
    assert_eq!(kind("LTV").as_deref(), Some("number"));
    assert_eq!(kind("SINCE").as_deref(), Some("date"));
    assert_eq!(
        fields.iter().find(|m| m.tag == "LTV").unwrap().name,
        "Lifetime Value"
    );
    let again = run()?.output().await?;
    assert!(again.status.success());
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains("0 created, 6 already there"), "{text}");
    assert_eq!(
        f.mailchimp.merge_fields(AUDIENCE).await?.len(),
        fields.len()
    );
    f.finish().await
}
