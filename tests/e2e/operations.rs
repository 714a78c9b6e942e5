//! Running chimpsync in production, through the real binary where an operator would:
//! the HTTP endpoints of `chimpsync run` and the metrics they serve (parsed, not grepped), the
//! JSON logs, the worker's least-privilege role, `setup --uninstall`, and TLS to Postgres against
//! a private server with a self-signed certificate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use chimpsync_tests::private_postgres::{run, PrivatePostgres};
use chimpsync_tests::{server_url, wait_until, Fixture, API_KEY, AUDIENCE, MAPPING};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_postgres::error::SqlState;

/// The real CLI, built in the tests package.
const BIN: &str = env!("CARGO_BIN_EXE_chimpsync-under-test");
/// How long any observable condition may take to appear.
const WAIT: Duration = Duration::from_secs(60);
/// The `endpoint` labels of Mailchimp requests `run` makes (docs/operations.md, Metrics).
const REQUEST_ENDPOINTS: [&str; 11] = worker::gate::ENDPOINTS;
/// Their `status_class` labels.
const STATUS_CLASSES: [&str; 6] = ["2xx", "4xx", "5xx", "throttled", "transport", "other"];
/// A well-formed key the emulator does not accept.
const WRONG_KEY: &str = "ffffffffffffffffffffffffffffffff-us6";

// ---------------------------------------------------------------------------------------------
// The binary

/// A mapping file that lives as long as the test needs it.
struct MappingFile(PathBuf);

impl MappingFile {
    fn new(text: &str) -> Result<MappingFile> {
        let path = std::env::temp_dir().join(format!(
            "chimpsync-operations-{}.toml",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, text)?;
        Ok(MappingFile(path))
    }
}

impl Drop for MappingFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `chimpsync ARGS` with the contract's environment (and nothing inherited but PATH), JSON logs
/// at info level and quick test timings.
fn chimpsync(
    f: &Fixture,
    database_url: &str,
    api_key: &str,
    mapping: &MappingFile,
    args: &[&str],
) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("MAILCHIMP_API_KEY", api_key)
        .env("MAILCHIMP_BASE_URL", f.emulator.base_url())
        .env("CHIMPSYNC_CONFIG", &mapping.0)
        .env("CHIMPSYNC_HTTP_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("CHIMPSYNC_POLL_INTERVAL_MS", "50")
        .env("CHIMPSYNC_BACKOFF_BASE_SECONDS", "0.05")
        .env("CHIMPSYNC_BACKOFF_MAX_SECONDS", "0.2")
        .env("CHIMPSYNC_SHUTDOWN_DEADLINE_SECONDS", "5")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// What a finished command printed.
struct Output {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn output(mut cmd: Command) -> Result<Output> {
    let out = cmd.output().await.context("running chimpsync")?;
    Ok(Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout)?,
        stderr: String::from_utf8(out.stderr)?,
    })
}

/// `chimpsync run` in the background, its stderr collected line by line.
struct Running {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
    /// `http://127.0.0.1:PORT`
    base: String,
    http: reqwest::Client,
}

impl Running {
    /// Starts `chimpsync run` and waits until it serves HTTP (the port comes from its log).
    async fn start(mut cmd: Command) -> Result<Running> {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let reader = {
            let stderr = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    stderr.lock().expect("stderr lock").push(line);
                }
            })
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        let addr = loop {
            let found = stderr.lock().expect("stderr lock").iter().find_map(|line| {
                let event: serde_json::Value = serde_json::from_str(line).ok()?;
                let message = event.get("message")?.as_str()?;
                message
                    .starts_with("serving")
                    .then(|| event.get("addr")?.as_str().map(str::to_string))
                    .flatten()
            });
            if let Some(addr) = found {
                break addr;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "chimpsync run exited ({status}) before serving HTTP:\n{}",
                    stderr.lock().expect("stderr lock").join("\n")
                );
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "chimpsync run did not start serving HTTP"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let addr: SocketAddr = addr.parse()?;
        Ok(Running {
            child,
            stderr,
            reader,
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
        })
    }

    /// The string field `field` of the first log event that has one.
    fn logged(&self, field: &str) -> Option<String> {
        self.stderr
            .lock()
            .expect("stderr lock")
            .iter()
            .find_map(|line| {
                let event: serde_json::Value = serde_json::from_str(line).ok()?;
                event.get(field)?.as_str().map(str::to_string)
            })
    }

    /// GET a path: status and body.
    async fn get(&self, path: &str) -> Result<(u16, String)> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// Scrapes and parses `/metrics`.
    async fn metrics(&self) -> Result<Exposition> {
        let (status, body) = self.get("/metrics").await?;
        ensure!(status == 200, "/metrics answered {status}");
        Exposition::parse(&body)
    }

    /// Waits until `/readyz` answers `want`; returns the last body.
    async fn wait_ready(&self, want: u16) -> Result<String> {
        self.wait_for("/readyz", want).await
    }

    /// Waits until `path` answers `want`; returns the last body.
    async fn wait_for(&self, path: &str, want: u16) -> Result<String> {
        let last = Arc::new(Mutex::new(String::new()));
        wait_until(WAIT, &format!("{path} to answer {want}"), || {
            let last = last.clone();
            async move {
                let (status, body) = self.get(path).await?;
                *last.lock().expect("body lock") = body;
                Ok(status == want)
            }
        })
        .await?;
        let body = last.lock().expect("body lock").clone();
        Ok(body)
    }

    /// SIGTERM, then the exit status must be success (a clean stop). Returns the stderr lines.
    async fn stop(mut self) -> Result<Vec<String>> {
        let pid = self.child.id().context("chimpsync run already exited")?;
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        ensure!(kill.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(WAIT, self.child.wait()).await??;
        let _ = self.reader.await;
        let lines = self.stderr.lock().expect("stderr lock").clone();
        ensure!(
            status.success(),
            "chimpsync run stopped with {status} after SIGTERM:\n{}",
            lines.join("\n")
        );
        Ok(lines)
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape: every sample and every `# TYPE`. A line that is not valid exposition format
/// fails the parse.
#[derive(Debug, Default)]
struct Exposition {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
    help: BTreeMap<String, String>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Exposition {
    fn parse(text: &str) -> Result<Exposition> {
        let mut out = Exposition::default();
        for (n, line) in text.lines().enumerate() {
            let at = || format!("line {}: {line:?}", n + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut parts = comment.trim_start().splitn(3, ' ');
                match parts.next() {
                    Some("TYPE") => {
                        let name = parts.next().ok_or_else(|| anyhow!("{}", at()))?;
                        let kind = parts.next().ok_or_else(|| anyhow!("{}", at()))?;
                        ensure!(
                            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                            "unknown type at {}",
                            at()
                        );
                        out.types.insert(name.to_string(), kind.to_string());
                    }
                    Some("HELP") => {
                        let name = parts.next().ok_or_else(|| anyhow!("{}", at()))?;
                        out.help
                            .insert(name.to_string(), parts.next().unwrap_or("").to_string());
                    }
                    _ => {}
                }
                continue;
            }
            let name_end = line
                .find(|c: char| c == '{' || c.is_whitespace())
                .ok_or_else(|| anyhow!("no value at {}", at()))?;
            let name = &line[..name_end];
            ensure!(is_metric_name(name), "bad metric name at {}", at());
            let mut rest = &line[name_end..];
            let mut labels = BTreeMap::new();
            if let Some(inner) = rest.strip_prefix('{') {
                let mut chars = inner.char_indices().peekable();
                let end = loop {
                    while chars.next_if(|(_, c)| *c == ',' || *c == ' ').is_some() {}
                    match chars.peek() {
                        Some((i, '}')) => break *i,
                        None => bail!("unterminated labels at {}", at()),
                        _ => {}
                    }
                    let mut key = String::new();
                    while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
                        key.push(c);
                    }
                    ensure!(
                        chars.next().map(|(_, c)| c) == Some('=')
                            && chars.next().map(|(_, c)| c) == Some('"'),
                        "bad label at {}",
                        at()
                    );
                    let mut value = String::new();
                    loop {
                        match chars.next().map(|(_, c)| c) {
                            Some('\\') => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(c) => value.push(c),
                                None => bail!("bad escape at {}", at()),
                            },
                            Some('"') => break,
                            Some(c) => value.push(c),
                            None => bail!("unterminated label value at {}", at()),
                        }
                    }
                    ensure!(is_metric_name(&key), "bad label name at {}", at());
                    labels.insert(key, value);
                };
                rest = &inner[end + 1..];
            }
            let mut fields = rest.split_whitespace();
            let value = fields
                .next()
                .ok_or_else(|| anyhow!("no value at {}", at()))?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("bad value at {}", at()))?;
            if let Some(timestamp) = fields.next() {
                timestamp
                    .parse::<i64>()
                    .with_context(|| format!("bad timestamp at {}", at()))?;
            }
            ensure!(fields.next().is_none(), "trailing text at {}", at());
            out.samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Ok(out)
    }

    /// The sum of the samples named `name` whose labels include `labels`; `None` if there is none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    fn synced(&self, operation: &str, result: &str) -> f64 {
        self.value(
            "chimpsync_rows_synced_total",
            &[("operation", operation), ("result", result)],
        )
        .unwrap_or(0.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// `n` customers with consent, ids from `first`, addresses `{prefix}-{id}@pets.test`.
async fn customers(f: &Fixture, prefix: &str, first: i64, n: i64) -> Result<()> {
    f.exec(&format!(
        "insert into customers (id, email, first_name, last_name, store, customer_type, consent_contact)
         select i, '{prefix}-' || i || '@pets.test', 'First' || i, 'Last' || i, 'Berlin', 'groomer', true
         from generate_series({first}, {}) as i",
        first + n - 1
    ))
    .await
}

fn email_of(prefix: &str, id: i64) -> String {
    format!("{prefix}-{id}@pets.test")
}

/// A unique role name for one test (roles are cluster-wide; the test drops it when it passes).
fn role_name() -> String {
    format!(
        "chimpsync_worker_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn url_as(url: &str, user: &str, password: &str) -> Result<String> {
    let mut parsed = url::Url::parse(url)?;
    parsed
        .set_username(user)
        .map_err(|_| anyhow!("cannot set the user"))?;
    parsed
        .set_password(Some(password))
        .map_err(|_| anyhow!("cannot set the password"))?;
    Ok(parsed.to_string())
}

async fn admin() -> Result<tokio_postgres::Client> {
    let (client, connection) =
        tokio_postgres::connect(&server_url(), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn drop_role(role: &str) -> Result<()> {
    admin()
        .await?
        .batch_execute(&format!("drop role if exists \"{role}\""))
        .await?;
    Ok(())
}

/// Whether the line holds something shaped like an email address (`local@domain.tld`).
fn looks_like_email(line: &str) -> bool {
    let bytes = line.as_bytes();
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    bytes.iter().enumerate().any(|(at, &c)| {
        if c != b'@' || at == 0 || !local(bytes[at - 1]) {
            return false;
        }
        let host: String = bytes[at + 1..]
            .iter()
            .take_while(|&&c| domain(c))
            .map(|&c| c as char)
            .collect();
        host.rsplit_once('.').is_some_and(|(name, tld)| {
            !name.is_empty() && tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())
        })
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP and metrics

#[tokio::test]
async fn run_serves_health_readiness_and_metrics_that_count_each_operation() -> Result<()> {
    let f = Fixture::new().await?;
    let mapping = MappingFile::new(MAPPING)?;
    let run = Running::start(chimpsync(&f, &f.db.url, API_KEY, &mapping, &["run"])).await?;

    let (status, body) = run.get("/healthz").await?;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    run.wait_ready(200).await?;

    // Before any row: the names follow Prometheus conventions, and every series an alert or a
    // dashboard needs from the start is there.
    let m = run.metrics().await?;
    for (name, kind) in &m.types {
        assert!(
            name.starts_with("chimpsync_"),
            "{name}: no chimpsync_ prefix"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} ({kind}): counters and only counters end in _total"
        );
        assert!(m.help.contains_key(name), "{name} has no HELP text");
    }
    for name in [
        "chimpsync_retries_total",
        "chimpsync_parked_total",
        "chimpsync_throttled_total",
        "chimpsync_slots_held",
        "chimpsync_slots_in_use",
        "chimpsync_slots_cap",
        "chimpsync_queue_oldest_pending_seconds",
        "chimpsync_ready",
    ] {
        assert!(
            m.value(name, &[]).is_some(),
            "{name} missing before any sync"
        );
    }
    for state in ["pending", "in_flight", "retrying", "parked"] {
        assert!(
            m.value("chimpsync_queue_rows", &[("state", state)])
                .is_some(),
            "chimpsync_queue_rows{{state={state:?}}} missing"
        );
    }
    // Histograms too: HELP, TYPE, every bucket, _sum and _count, at 0 where nothing was
    // measured yet (the idle worker's claims are, from its first poll on).
    for (name, labels) in [
        ("chimpsync_claim_duration_seconds", vec![]),
        ("chimpsync_ack_duration_seconds", vec![]),
        ("chimpsync_batch_size", vec![]),
    ]
    .into_iter()
    .chain(REQUEST_ENDPOINTS.iter().flat_map(|endpoint| {
        STATUS_CLASSES.iter().map(move |class| {
            (
                "chimpsync_mailchimp_request_duration_seconds",
                vec![("endpoint", *endpoint), ("status_class", *class)],
            )
        })
    })) {
        assert_eq!(
            m.types.get(name).map(String::as_str),
            Some("histogram"),
            "{name}"
        );
        assert!(m.help.contains_key(name), "{name} has no HELP text");
        let series = |suffix: &str| m.value(&format!("{name}_{suffix}"), &labels);
        let buckets: Vec<&Sample> = m
            .samples
            .iter()
            .filter(|s| {
                s.name == format!("{name}_bucket")
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(
            buckets.len() > 1 && buckets.iter().any(|b| b.labels["le"] == "+Inf"),
            "{name}{labels:?}: buckets {buckets:?}"
        );
        let (count, sum) = (series("count"), series("sum"));
        if name == "chimpsync_claim_duration_seconds" {
            assert!(count.is_some() && sum.is_some(), "{name}: _count and _sum");
        } else {
            assert_eq!((count, sum), (Some(0.0), Some(0.0)), "{name}{labels:?}");
            assert!(
                buckets.iter().all(|b| b.value == 0.0),
                "{name}{labels:?}: {buckets:?}"
            );
        }
    }
    assert_eq!(m.value("chimpsync_slots_cap", &[]), Some(10.0));
    assert_eq!(m.value("chimpsync_ready", &[]), Some(1.0));
    assert_eq!(
        m.value(
            "chimpsync_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    for outcome in ["applied", "failed"] {
        let labels = [("outcome", outcome)];
        assert_eq!(
            m.value("chimpsync_inbound_events_total", &labels),
            Some(0.0)
        );
    }
    for result in [
        "stored",
        "duplicate",
        "ignored",
        "held",
        "not_found",
        "error",
    ] {
        let labels = [("result", result)];
        assert_eq!(m.value("chimpsync_webhook_calls_total", &labels), Some(0.0));
    }
    assert_eq!(m.value("chimpsync_db_pool_size", &[]), Some(16.0));
    let open = m.value("chimpsync_db_pool_connections", &[]).unwrap_or(0.0);
    let idle = m.value("chimpsync_db_pool_available", &[]).unwrap_or(-1.0);
    assert!(open >= 1.0 && (0.0..=open).contains(&idle), "{open} {idle}");
    assert_eq!(m.value("chimpsync_db_pool_waiting", &[]), Some(0.0));
    assert!(
        m.value("chimpsync_process_resident_memory_bytes", &[])
            .unwrap_or(0.0)
            > 1e6
    );
    assert!(m.value("chimpsync_process_open_fds", &[]).unwrap_or(0.0) >= 3.0);
    assert!(m
        .value("chimpsync_process_cpu_seconds_total", &[])
        .is_some());
    assert_eq!(
        m.types
            .get("chimpsync_process_cpu_seconds_total")
            .map(String::as_str),
        Some("counter")
    );
    wait_until(
        WAIT,
        "the first /ping to set chimpsync_mailchimp_up",
        || async { Ok(run.metrics().await?.value("chimpsync_mailchimp_up", &[]) == Some(1.0)) },
    )
    .await?;

    // 20 customers to upsert, one that Mailchimp refuses for good (parked).
    customers(&f, "metrics", 1, 20).await?;
    f.exec(
        "insert into customers (id, email, consent_contact) values (21, 'not-an-address', true)",
    )
    .await?;
    let synced = wait_until(WAIT, "20 upserts acknowledged and 1 parked", || async {
        let m = run.metrics().await?;
        Ok(m.synced("upsert", "acked") == 20.0 && m.synced("upsert", "parked") == 1.0)
    })
    .await;
    if synced.is_err() {
        let m = run.metrics().await?;
        let rows: Vec<_> = m
            .samples
            .iter()
            .filter(|s| s.name.starts_with("chimpsync_rows") || s.name == "chimpsync_queue_rows")
            .collect();
        let queue = f.queue_rows().await?;
        synced.with_context(|| format!("{rows:#?}\n{queue:?}"))?;
    }
    let m = run.metrics().await?;
    assert_eq!(f.emulator.members(AUDIENCE).len(), 20);
    assert_eq!(
        m.value("chimpsync_queue_rows", &[("state", "parked")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("chimpsync_queue_rows", &[("state", "pending")]),
        Some(0.0)
    );
    assert_eq!(m.value("chimpsync_parked_total", &[]), Some(1.0));
    assert_eq!(m.synced("rename", "acked"), 0.0);
    assert_eq!(m.synced("remove", "acked"), 0.0);
    for result in ["acked", "retried", "parked"] {
        for operation in ["upsert", "rename", "remove"] {
            assert!(
                m.value(
                    "chimpsync_rows_synced_total",
                    &[("operation", operation), ("result", result)]
                )
                .is_some(),
                "rows_synced_total{{operation={operation},result={result}}} missing"
            );
        }
    }
    let batches = m
        .value(
            "chimpsync_mailchimp_request_duration_seconds_count",
            &[("endpoint", "batch_upsert"), ("status_class", "2xx")],
        )
        .unwrap_or(0.0);
    assert!(batches >= 1.0, "batch requests timed: {batches}");
    assert_eq!(
        m.value(
            "chimpsync_mailchimp_request_duration_seconds_bucket",
            &[
                ("endpoint", "batch_upsert"),
                ("status_class", "2xx"),
                ("le", "+Inf")
            ],
        ),
        Some(batches),
        "the +Inf bucket holds every request"
    );
    assert_eq!(
        m.types
            .get("chimpsync_mailchimp_request_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        m.value("chimpsync_batch_size_sum", &[]),
        Some(21.0),
        "members sent in batches (the refused one too)"
    );
    for name in [
        "chimpsync_claim_duration_seconds",
        "chimpsync_ack_duration_seconds",
    ] {
        assert_eq!(m.types.get(name).map(String::as_str), Some("histogram"));
        let count = m.value(&format!("{name}_count"), &[]).unwrap_or(0.0);
        assert!(count >= 1.0, "{name}_count = {count}");
    }
    let now = chrono::Utc::now().timestamp() as f64;
    for name in [
        "chimpsync_last_synced_timestamp_seconds",
        "chimpsync_last_success_timestamp_seconds",
    ] {
        let t = m.value(name, &[]).unwrap_or(0.0);
        assert!((now - t).abs() < 300.0, "{name} = {t}, now {now}");
    }

    // An email change is a rename, a deleted customer a removal.
    f.exec("update customers set email = 'metrics-renamed@pets.test' where id = 1")
        .await?;
    f.exec("delete from customers where id = 2").await?;
    wait_until(WAIT, "the rename and the removal acknowledged", || async {
        let m = run.metrics().await?;
        Ok(m.synced("rename", "acked") == 1.0 && m.synced("remove", "acked") == 1.0)
    })
    .await?;
    let m = run.metrics().await?;
    assert_eq!(
        m.synced("upsert", "acked"),
        20.0,
        "no extra upserts counted"
    );
    assert_eq!(
        f.member("metrics-renamed@pets.test").map(|m| m.status),
        Some("subscribed".to_string())
    );
    assert!(f.member(&email_of("metrics", 1)).is_none());
    assert_eq!(
        f.member(&email_of("metrics", 2)).map(|m| m.status),
        Some("archived".to_string())
    );

    run.stop().await?;
    f.finish().await
}

#[tokio::test]
async fn a_refused_mailchimp_key_shows_in_mailchimp_up_not_in_readiness() -> Result<()> {
    let f = Fixture::new().await?;
    let mapping = MappingFile::new(MAPPING)?;
    let run = Running::start(chimpsync(&f, &f.db.url, WRONG_KEY, &mapping, &["run"])).await?;
    assert_eq!(run.get("/healthz").await?.0, 200, "alive all the same");
    // Ready: the database and the schema are fine, and taking the replica out of service would
    // not bring Mailchimp back.
    let body = run.wait_ready(200).await?;
    assert_eq!(body, "ready\n");
    wait_until(WAIT, "chimpsync_mailchimp_up to say 0", || async {
        Ok(run.metrics().await?.value("chimpsync_mailchimp_up", &[]) == Some(0.0))
    })
    .await?;
    assert_eq!(
        run.metrics().await?.value("chimpsync_ready", &[]),
        Some(1.0)
    );
    let lines = run.stop().await?;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Mailchimp does not answer /ping")),
        "the refused key is logged, once: {lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains(&WRONG_KEY[..32])),
        "the key was logged"
    );
    f.finish().await
}

const WEBHOOK_SECRET: &str = "hook-0123456789abcdef";

#[tokio::test]
async fn with_a_webhook_address_the_webhook_route_is_served_there_and_nowhere_else() -> Result<()> {
    let f = Fixture::new().await?;
    let mapping = MappingFile::new(&format!(
        "{MAPPING}\n[inbound]\nunsubscribe = \"update public.customers set consent_contact = false where lower(email) = lower($1)\"\n"
    ))?;
    customers(&f, "hook", 1, 1).await?;
    let mut cmd = chimpsync(&f, &f.db.url, API_KEY, &mapping, &["run"]);
    cmd.env("CHIMPSYNC_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("CHIMPSYNC_WEBHOOK_ADDR", "127.0.0.1:0");
    let run = Running::start(cmd).await?;
    let hooks = run
        .logged("webhook_addr")
        .context("the webhook listener's address is logged before the main one")?;
    let path = format!("/webhooks/mailchimp/{WEBHOOK_SECRET}");
    let event = format!(
        "type=unsubscribe&fired_at=2024-05-01+10%3A00%3A00&data%5Bemail%5D={}&data%5Blist_id%5D={AUDIENCE}",
        email_of("hook", 1)
    );
    let post = |base: String| {
        let (http, body) = (run.http.clone(), event.clone());
        let url = format!("{base}{path}");
        async move {
            let response = http.post(url).body(body).send().await?;
            Ok::<_, anyhow::Error>(response.status().as_u16())
        }
    };

    // The main address serves no webhook route: nothing is stored.
    assert_eq!(post(run.base.clone()).await?, 404);
    let stored = || async {
        let row = f
            .sql
            .query_one("select count(*) from chimpsync.inbound_events", &[])
            .await?;
        Ok::<i64, anyhow::Error>(row.get(0))
    };
    assert_eq!(stored().await?, 0);

    // The webhook address takes Mailchimp's validation and the event, which is applied.
    let webhook = format!("http://{hooks}");
    let validation = run.http.get(format!("{webhook}{path}")).send().await?;
    assert_eq!(validation.status().as_u16(), 200);
    assert_eq!(post(webhook.clone()).await?, 200);
    assert_eq!(stored().await?, 1);
    wait_until(WAIT, "the unsubscribe to reach the customer", || async {
        let row = f
            .sql
            .query_one("select consent_contact from customers where id = 1", &[])
            .await?;
        Ok(row.get::<_, Option<bool>>(0) == Some(false))
    })
    .await?;

    // ... and nothing else: no metrics, no probes.
    for other in ["/metrics", "/healthz", "/readyz"] {
        let response = run.http.get(format!("{webhook}{other}")).send().await?;
        assert_eq!(
            response.status().as_u16(),
            404,
            "{other} on the webhook address"
        );
        assert_eq!(run.get(other).await?.0, 200, "{other} on the main address");
    }
    let m = run.metrics().await?;
    assert_eq!(
        m.value("chimpsync_webhook_calls_total", &[("result", "stored")]),
        Some(1.0)
    );
    run.stop().await?;
    f.finish().await
}

/// A TCP proxy in front of the shared Postgres that the test can take down (every connection
/// cut, new ones closed at once) and bring back, to make the database "go away" without
/// touching the server other tests use.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// While false, connections stay open but nothing passes (a database that hangs).
    flowing: tokio::sync::watch::Sender<bool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

/// Copies `from` to `to` while `flowing` says so; what arrives meanwhile waits.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut flowing: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if flowing.wait_for(|f| *f).await.is_err() {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
    }
}

impl Proxy {
    async fn start(target: String) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let (flowing, _) = tokio::sync::watch::channel(true);
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let (up, connections, flowing) = (up.clone(), connections.clone(), flowing.clone());
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the connection closed
                    }
                    let target = target.clone();
                    let flowing = flowing.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(outbound) = TcpStream::connect(&target).await {
                            let (in_read, in_write) = inbound.into_split();
                            let (out_read, out_write) = outbound.into_split();
                            let _ = tokio::join!(
                                pump(in_read, out_write, flowing.subscribe()),
                                pump(out_read, in_write, flowing.subscribe()),
                            );
                        }
                    });
                    connections
                        .lock()
                        .expect("proxy lock")
                        .push(task.abort_handle());
                }
            })
        };
        Ok(Proxy {
            addr,
            up,
            flowing,
            connections,
            accept,
        })
    }

    /// Holds every byte in both directions: queries hang, no error anywhere.
    fn freeze(&self) {
        self.flowing.send_replace(false);
    }

    fn thaw(&self) {
        self.flowing.send_replace(true);
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().expect("proxy lock").drain(..) {
            task.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
        self.accept.abort();
    }
}

/// A proxy in front of the fixture's database, and the database's URL through it.
async fn proxied(f: &Fixture) -> Result<(Proxy, url::Url)> {
    let server = url::Url::parse(&f.db.url)?;
    let target = format!(
        "{}:{}",
        server.host_str().unwrap_or("127.0.0.1"),
        server.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(target).await?;
    let mut proxied = server.clone();
    proxied
        .set_port(Some(proxy.addr.port()))
        .map_err(|_| anyhow!("cannot set the port"))?;
    Ok((proxy, proxied))
}

#[tokio::test]
async fn readyz_turns_unready_while_the_database_is_away_and_ready_when_it_returns() -> Result<()> {
    let f = Fixture::new().await?;
    let (proxy, proxied) = proxied(&f).await?;
    let mapping = MappingFile::new(MAPPING)?;
    let run = Running::start(chimpsync(&f, proxied.as_str(), API_KEY, &mapping, &["run"])).await?;
    run.wait_ready(200).await?;

    proxy.down();
    let body = run.wait_ready(503).await?;
    assert!(body.starts_with("database:"), "{body}");
    assert_eq!(run.get("/healthz").await?.0, 200, "alive while unready");
    // The gauges read from the database say they are unknown, not their last value.
    let m = run.metrics().await?;
    for state in ["pending", "in_flight", "retrying", "parked"] {
        let value = m.value("chimpsync_queue_rows", &[("state", state)]);
        assert!(value.is_some_and(f64::is_nan), "{state}: {value:?}");
    }
    for name in [
        "chimpsync_queue_oldest_pending_seconds",
        "chimpsync_queue_held",
        "chimpsync_mapping_drift",
        "chimpsync_slots_in_use",
    ] {
        let value = m.value(name, &[]);
        assert!(value.is_some_and(f64::is_nan), "{name}: {value:?}");
    }

    proxy.up();
    run.wait_ready(200).await?;
    let pending = run
        .metrics()
        .await?
        .value("chimpsync_queue_rows", &[("state", "pending")]);
    assert_eq!(pending, Some(0.0), "read again once the database is back");
    // And it works again, not just answers: a change made now reaches Mailchimp.
    customers(&f, "back", 1, 1).await?;
    wait_until(
        WAIT,
        "the customer synced after the database returned",
        || async { Ok(f.member(&email_of("back", 1)).is_some()) },
    )
    .await?;

    run.stop().await?;
    drop(proxy);
    f.finish().await
}

#[tokio::test]
async fn healthz_fails_while_the_worker_loop_is_stuck_and_recovers_when_it_moves() -> Result<()> {
    let f = Fixture::new().await?;
    let (proxy, proxied) = proxied(&f).await?;
    let mapping = MappingFile::new(MAPPING)?;
    let mut cmd = chimpsync(&f, proxied.as_str(), API_KEY, &mapping, &["run"]);
    // The shortest liveness timeout the settings allow: above the lease, which is above the
    // request timeout plus a second.
    cmd.env("CHIMPSYNC_REQUEST_TIMEOUT_SECONDS", "1")
        .env("CHIMPSYNC_LEASE_SECONDS", "2.5")
        .env("CHIMPSYNC_LIVENESS_TIMEOUT_SECONDS", "3");
    let run = Running::start(cmd).await?;
    run.wait_ready(200).await?;
    assert_eq!(run.get("/healthz").await?, (200, "ok\n".to_string()));

    // The database hangs without an error: the next claim's statement never returns, and the
    // loop attempts no claim after it.
    proxy.freeze();
    let body = run.wait_for("/healthz", 503).await?;
    assert!(
        body.starts_with("worker loop: no claim attempted for ") && body.lines().count() == 1,
        "{body}"
    );

    // The claim's answer arrives, the loop goes on, and so does the probe.
    proxy.thaw();
    run.wait_for("/healthz", 200).await?;
    customers(&f, "alive", 1, 1).await?;
    wait_until(WAIT, "a customer synced after the stall", || async {
        Ok(f.member(&email_of("alive", 1)).is_some())
    })
    .await?;

    run.stop().await?;
    drop(proxy);
    f.finish().await
}

// ---------------------------------------------------------------------------------------------
// Logs

#[tokio::test]
async fn json_logs_of_a_sync_are_lines_of_json_without_addresses_or_the_key() -> Result<()> {
    let f = Fixture::new().await?;
    let mapping = MappingFile::new(MAPPING)?;
    customers(&f, "logged", 1, 12).await?;
    f.exec(
        "insert into customers (id, email, consent_contact) values
            (13, null, true),
            (14, 'not-an-address', true),
            (15, 'withdrawn@pets.test', false)",
    )
    .await?;
    let mut stderr = String::new();
    let run = |args: &'static [&'static str]| {
        let cmd = chimpsync(&f, &f.db.url, API_KEY, &mapping, args);
        async move {
            let out = output(cmd).await?;
            ensure!(out.success, "chimpsync {args:?} failed:\n{}", out.stderr);
            Ok::<_, anyhow::Error>(out)
        }
    };
    stderr.push_str(&run(&["setup"]).await?.stderr);
    // The fake address is parked: partly done.
    let first = output(chimpsync(
        &f,
        &f.db.url,
        API_KEY,
        &mapping,
        &["run", "--once"],
    ))
    .await?;
    let (logs, reason) = first
        .stderr
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or_default();
    ensure!(
        first.code == Some(6) && reason.starts_with("chimpsync: run --once left 1 "),
        "run --once:\n{}",
        first.stderr
    );
    // The last line is the one-line reason, not a log event.
    stderr.push_str(logs);
    stderr.push('\n');
    // A rename and a removal take the single-member paths, which log per customer.
    f.exec("update customers set email = 'logged-renamed@pets.test' where id = 1")
        .await?;
    f.exec("delete from customers where id = 2").await?;
    stderr.push_str(&run(&["run", "--once"]).await?.stderr);
    stderr.push_str(&run(&["status"]).await?.stderr);
    assert!(f.member("logged-renamed@pets.test").is_some());

    let mut addresses: Vec<String> = (1..=12).map(|i| email_of("logged", i)).collect();
    addresses.extend([
        "logged-renamed@pets.test".into(),
        "withdrawn@pets.test".into(),
    ]);
    let mut batches = 0;
    let mut lines = 0;
    for line in stderr.lines() {
        lines += 1;
        let event: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not a JSON line: {line:?}"))?;
        ensure!(event.is_object(), "not a JSON object: {line}");
        for field in ["timestamp", "level", "message"] {
            ensure!(event.get(field).is_some(), "no {field} in {line}");
        }
        let lower = line.to_lowercase();
        for address in &addresses {
            ensure!(
                !lower.contains(address),
                "an email address was logged: {line}"
            );
        }
        ensure!(
            !looks_like_email(line),
            "an email address was logged: {line}"
        );
        ensure!(
            !line.contains(&API_KEY[..32]),
            "the API key was logged: {line}"
        );
        if event["message"] == "batch done" {
            batches += 1;
            ensure!(event.get("batch.acked").is_some(), "batch counts: {line}");
            ensure!(event.get("duration_ms").is_some(), "batch duration: {line}");
        }
    }
    assert!(
        batches >= 2,
        "one event per batch: {batches} in {lines} lines"
    );
    assert!(
        stderr.contains("customer.key"),
        "customer keys, not addresses, identify customers"
    );
    f.finish().await
}

#[test]
fn the_email_detector_finds_addresses_and_ignores_database_urls() {
    assert!(looks_like_email(
        r#"{"message":"x","email":"Ana.Lima+1@pets.test"}"#
    ));
    assert!(!looks_like_email("postgres://postgres@127.0.0.1:5432/db"));
    assert!(!looks_like_email(r#"{"customer.key":"42"}"#));
}

// ---------------------------------------------------------------------------------------------
// Least privilege and uninstall

#[tokio::test]
async fn worker_role_syncs_but_cannot_touch_the_customer_table_or_enqueue() -> Result<()> {
    let f = Fixture::new().await?;
    let mapping = MappingFile::new(MAPPING)?;
    let role = role_name();
    let out = output(chimpsync(
        &f,
        &f.db.url,
        API_KEY,
        &mapping,
        &["setup", "--worker-role", &role],
    ))
    .await?;
    ensure!(out.success, "setup --worker-role failed:\n{}", out.stderr);
    assert!(out.stdout.contains(&role), "{}", out.stdout);
    // The DBA sets the password (local trust auth would let the role in without one).
    f.exec(&format!(
        "alter role \"{role}\" password 'test-only-password'"
    ))
    .await?;
    let url = url_as(&f.db.url, &role, "test-only-password")?;

    // The worker runs as that role through a whole sync: upserts, a rename, a removal.
    let pool = store::pool(&url, 4, Duration::from_secs(30))?;
    let worker = worker::Worker::new(
        store::Queue::new(pool),
        Fixture::client_for(&f.emulator)?,
        f.settings(),
    )?;
    customers(&f, "least", 1, 30).await?;
    let o = f.drain(&worker).await?;
    assert_eq!((o.acked, o.parked), (30, 0));
    f.exec("update customers set email = 'least-renamed@pets.test' where id = 1")
        .await?;
    f.exec("delete from customers where id = 2").await?;
    let o = f.drain(&worker).await?;
    assert_eq!((o.acked, o.parked), (2, 0));
    f.assert_converged().await?;
    assert_eq!(worker.queue().summary().await?.pending, 0);

    // ...and can do nothing else.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let user: String = client
        .query_one("select current_user::text", &[])
        .await?
        .get(0);
    assert_eq!(user, role);
    for sql in [
        "select * from public.customers",
        "select count(*) from public.customers",
        "update public.customers set first_name = 'x'",
        "delete from public.customers",
        "insert into public.customers (id, email) values (999, 'intruder@pets.test')",
        "insert into chimpsync.sync_queue (customer_key, operation) values ('999', 'upsert')",
        "select * from chimpsync.installation",
        "delete from chimpsync.schema_migrations",
        "create table chimpsync.intruder (id int)",
    ] {
        let err = client
            .batch_execute(sql)
            .await
            .err()
            .ok_or_else(|| anyhow!("the worker role may run: {sql}"))?;
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }
    // The binary runs under the role too: `run --once` and `status`.
    customers(&f, "least-binary", 100, 3).await?;
    for args in [&["run", "--once"][..], &["status", "--json"][..]] {
        let out = output(chimpsync(&f, &url, API_KEY, &mapping, args)).await?;
        ensure!(
            out.success,
            "chimpsync {args:?} as {role} failed:\n{}",
            out.stderr
        );
    }
    assert!(f.member(&email_of("least-binary", 102)).is_some());
    drop(client);
    drop(worker);
    f.finish().await?;
    drop_role(&role).await
}

#[tokio::test]
async fn setup_uninstall_leaves_no_chimpsync_object_behind() -> Result<()> {
    let f = Fixture::new().await?;
    let mapping = MappingFile::new(MAPPING)?;
    let role = role_name();
    let setup = |args: &'static [&'static str], extra: Option<String>| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(extra);
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        let cmd = chimpsync(&f, &f.db.url, API_KEY, &mapping, &args);
        async move {
            let out = output(cmd).await?;
            ensure!(out.success, "chimpsync {all:?} failed:\n{}", out.stderr);
            Ok::<_, anyhow::Error>(out.stdout)
        }
    };
    setup(&["setup", "--worker-role"], Some(role.clone())).await?;
    customers(&f, "gone", 1, 3).await?;
    let printed = setup(
        &["setup", "--uninstall", "--print-sql", "--worker-role"],
        Some(role.clone()),
    )
    .await?;
    assert!(
        printed.contains("drop schema if exists chimpsync cascade"),
        "{printed}"
    );
    assert_eq!(
        f.sql
            .query_one("select count(*) from chimpsync.sync_queue", &[])
            .await?
            .get::<_, i64>(0),
        3,
        "--print-sql changes nothing"
    );

    let said = setup(
        &["setup", "--uninstall", "--yes", "--worker-role"],
        Some(role.clone()),
    )
    .await?;
    assert!(said.contains("dropped schema chimpsync"), "{said}");
    let db = &f.sql;
    let count = |sql: &'static str| async move {
        Ok::<i64, anyhow::Error>(db.query_one(sql, &[]).await?.get(0))
    };
    assert_eq!(
        count("select count(*) from pg_namespace where nspname = 'chimpsync'").await?,
        0
    );
    assert_eq!(
        count("select count(*) from pg_trigger where tgrelid = 'public.customers'::regclass and not tgisinternal").await?,
        0,
        "no trigger left on the customer table"
    );
    assert_eq!(
        count("select count(*) from pg_proc where proname like 'enqueue%'").await?,
        0
    );
    assert_eq!(
        f.sql
            .query_one("select count(*) from pg_roles where rolname = $1", &[&role])
            .await?
            .get::<_, i64>(0),
        0,
        "the worker role is gone"
    );
    assert_eq!(
        count("select count(*) from customers").await?,
        3,
        "customers untouched"
    );
    f.exec("insert into customers (id, email) values (4, 'after@pets.test'); update customers set first_name = 'x'")
        .await?;

    let again = setup(&["setup", "--uninstall", "--yes"], None).await?;
    assert!(again.contains("was not installed"), "{again}");
    // And it can be installed again.
    setup(&["setup"], None).await?;
    f.exec("update customers set first_name = 'y' where id = 4")
        .await?;
    assert_eq!(count("select count(*) from chimpsync.sync_queue").await?, 1);
    f.finish().await?;
    drop_role(&role).await
}

// ---------------------------------------------------------------------------------------------
// TLS to Postgres

/// A private Postgres (the harness's) with `ssl=on` and a certificate signed by a CA made for
/// the test. `Ok(None)` with the reason printed when this machine cannot run one.
fn tls_postgres() -> Result<Option<PrivatePostgres>> {
    const WHAT: &str = "the private-Postgres TLS test";
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        println!("SKIPPED {WHAT}: no openssl to make the certificates");
        return Ok(None);
    }
    let Some(pg) = PrivatePostgres::prepare(WHAT)? else {
        return Ok(None);
    };
    let p = |name| pg.path(name);
    // A CA, and a server certificate it signs for localhost and 127.0.0.1.
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=chimpsync test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ],
    )?;
    run(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ],
    )?;
    std::fs::write(
        pg.path("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("server.ext"),
            "-out",
            &p("server.pem"),
        ],
    )?;
    pg.initdb()?;
    run("chmod", &["600", &p("server.key")])?;
    let options = format!(
        "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        p("server.pem"),
        p("server.key")
    );
    let pg = pg.with_options(&options);
    pg.start_server()?;
    Ok(Some(pg))
}

fn tls_url(pg: &PrivatePostgres, host: &str, query: &str) -> String {
    format!("postgres://postgres@{host}:{}/postgres?{query}", pg.port)
}

/// Whether this connection is encrypted (and the server says so).
async fn encrypted(client: &tokio_postgres::Client) -> Result<bool> {
    Ok(client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await?
        .get(0))
}

#[tokio::test]
async fn tls_require_and_verify_full_work_against_a_self_signed_certificate() -> Result<()> {
    let Some(pg) = tls_postgres()? else {
        return Ok(());
    };
    let ca = pg.path("ca.pem");

    // require: encrypted, certificate not checked (as libpq).
    let client = store::connect(&tls_url(&pg, "127.0.0.1", "sslmode=require")).await?;
    assert!(encrypted(&client).await?, "sslmode=require is encrypted");
    // disable (and the default, prefer) stay plain.
    for query in ["sslmode=disable", "application_name=plain"] {
        let client = store::connect(&tls_url(&pg, "127.0.0.1", query)).await?;
        assert!(!encrypted(&client).await?, "{query} is plain");
    }
    // verify-full against the test CA, by name and by IP address.
    for host in ["localhost", "127.0.0.1"] {
        let url = tls_url(&pg, host, &format!("sslmode=verify-full&sslrootcert={ca}"));
        let client = store::connect(&url).await.with_context(|| url.clone())?;
        assert!(encrypted(&client).await?, "verify-full via {host}");
        // The pool the worker uses honours it too.
        let pool = store::pool(&url, 2, Duration::from_secs(10))?;
        let pooled = pool.get().await.map_err(store::Error::from)?;
        assert!(encrypted(&pooled).await?, "pooled verify-full via {host}");
    }
    // verify-full refuses a certificate it cannot trust, and a name the certificate lacks.
    let untrusted = store::connect(&tls_url(&pg, "localhost", "sslmode=verify-full")).await;
    assert!(untrusted.is_err(), "verify-full without the CA must fail");
    let wrong_name = format!("sslmode=verify-full&sslrootcert={ca}&hostaddr=127.0.0.1");
    let err = store::connect(&tls_url(&pg, "db.example", &wrong_name))
        .await
        .err()
        .context("verify-full must check the host name")?;
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
    // verify-ca checks the chain only: the same wrong name passes, an unknown CA does not.
    let chain_only = format!("sslmode=verify-ca&sslrootcert={ca}&hostaddr=127.0.0.1");
    let client = store::connect(&tls_url(&pg, "db.example", &chain_only)).await?;
    assert!(encrypted(&client).await?);
    assert!(
        store::connect(&tls_url(&pg, "localhost", "sslmode=verify-ca"))
            .await
            .is_err()
    );
    // A root file that is not there is named in the error, before any connection.
    let missing = store::connect(&tls_url(
        &pg,
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ))
    .await
    .err()
    .context("a missing sslrootcert must fail")?;
    assert!(
        missing.to_string().contains("/nonexistent/ca.pem"),
        "{missing}"
    );
    drop(pg);
    Ok(())
}
