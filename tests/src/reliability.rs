//! Records of the reliability suites and the renderer of `RELIABILITY.md`.
//!
//! Every scenario of `tests/e2e/reliability` writes one JSON record, once its assertions have
//! passed, to `<target dir>/reliability/<suite>--<scenario>.json` (or `CHIMPSYNC_RELIABILITY_DIR`).
//! `cargo run -p chimpsync-tests --bin reliability-report` renders the records of the last run
//! into `RELIABILITY.md`, so the figures in that file always come from a run, never from a
//! keyboard.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};

/// The suites, in the order `RELIABILITY.md` shows them, with their headings.
pub const SUITES: &[(&str, &str)] = &[
    ("crash", "Crash suite: the real binary SIGKILLed"),
    ("mailchimp", "Mailchimp fault suite"),
    ("database", "Database fault suite"),
    ("input", "Bad input"),
    ("load", "Load"),
    ("host", "Living inside the customer's database"),
    ("accounts", "Many accounts"),
];

/// Where the records go: `CHIMPSYNC_RELIABILITY_DIR`, else `<target dir>/reliability` (found
/// from the running executable: `<target>/<profile>/deps/e2e-…` or `<target>/<profile>/…`).
pub fn results_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHIMPSYNC_RELIABILITY_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("the executable's path");
    let mut dir = exe.parent().expect("the executable's folder").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.pop(); // the profile folder
    dir.join("reliability")
}

/// One scenario's record, filled in as the scenario runs and saved when it passed.
#[derive(Debug)]
pub struct Scenario {
    suite: &'static str,
    name: String,
    test: String,
    tried: String,
    asserted: String,
    figures: Vec<(String, Value)>,
    started: Instant,
}

impl Scenario {
    /// A record for `suite` (one of [`SUITES`]); `test` is the test function's path.
    pub fn new(suite: &'static str, test: &str, name: &str) -> Scenario {
        assert!(
            SUITES.iter().any(|(s, _)| *s == suite),
            "unknown suite {suite}"
        );
        Scenario {
            suite,
            name: name.to_string(),
            test: test.to_string(),
            tried: String::new(),
            asserted: String::new(),
            figures: Vec::new(),
            started: Instant::now(),
        }
    }

    /// What the scenario does.
    pub fn tried(mut self, text: &str) -> Scenario {
        self.tried = text.to_string();
        self
    }

    /// The outcome its assertions check.
    pub fn asserted(mut self, text: &str) -> Scenario {
        self.asserted = text.to_string();
        self
    }

    /// A measured figure (shown as `key value`, in the order given; a key given again replaces
    /// its value).
    pub fn figure(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.figures.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.figures.push((key.to_string(), value)),
        }
    }

    /// Writes the record (call after the assertions passed).
    pub fn save(mut self) -> Result<()> {
        let seconds = (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        self.figure("test seconds", seconds);
        let record = json!({
            "suite": self.suite,
            "scenario": self.name,
            "test": self.test,
            "tried": self.tried,
            "asserted": self.asserted,
            "figures": self.figures.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "finished_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let dir = results_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let slug: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = dir.join(format!("{}--{slug}.json", self.suite));
        std::fs::write(&path, serde_json::to_string_pretty(&record)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// Reads every record in `dir`.
pub fn read_records(dir: &std::path::Path) -> Result<Vec<Value>> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            records.push(
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            );
        }
    }
    Ok(records)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The figures of a record, in order: `(name, value)`.
fn figure_list(record: &Value) -> Vec<(String, Value)> {
    record["figures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|pair| Some((pair.get(0)?.as_str()?.to_string(), pair.get(1)?.clone())))
                .collect()
        })
        .unwrap_or_default()
}

fn figures(record: &Value) -> String {
    figure_list(record)
        .iter()
        .map(|(k, v)| format!("{k}: {}", text(v)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where the run happened and on what code, for the header.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// `git describe`-like commit text.
    pub commit: String,
    /// Machine description (cores, memory).
    pub machine: String,
}

/// Renders `RELIABILITY.md` from the records.
pub fn render(records: &[Value], info: &RunInfo) -> String {
    let mut out = String::new();
    let times: Vec<&str> = records
        .iter()
        .filter_map(|r| r["finished_at"].as_str())
        .collect();
    let first = times.iter().min().copied().unwrap_or("-");
    let last = times.iter().max().copied().unwrap_or("-");
    out.push_str("# Reliability: what was tried, and what happened\n\n");
    out.push_str(
        "<!-- Generated by `cargo run -p chimpsync-tests --bin reliability-report` from the records \
         the suites in tests/e2e/reliability wrote. Do not edit by hand: run the suites and render again. -->\n\n",
    );
    out.push_str(&format!(
        "These tables are written by the test suites themselves (`tests/e2e/reliability/`): every \
         scenario below is a test that asserts its outcome and, once it passed, records what it \
         measured. This file was rendered from {} records written between {first} and {last}, on \
         {}, code at {}.\n\n",
        records.len(),
        info.machine,
        info.commit
    ));
    out.push_str(
        "Regenerate (Postgres on `DATABASE_URL`; the database-restart scenario also needs root to \
         start a private Postgres with `runuser -u postgres`):\n\n\
         ```sh\n\
         cargo test -p chimpsync-tests --test e2e reliability            # the CI size, a couple of minutes\n\
         CHIMPSYNC_SOAK=1 cargo test -p chimpsync-tests --test e2e reliability::load   # 200k changes, a few minutes\n\
         cargo run -p chimpsync-tests --bin reliability-report            # writes RELIABILITY.md\n\
         ```\n\n",
    );
    out.push_str(
        "Definitions used throughout: **lost** = a customer whose final state in the table is not \
         what the audience holds once the queue is empty (address, status from consent, every \
         merge field, every tag; parked customers excepted), counted by the harness's \
         `Fixture::differences`; **unacknowledged delete** = a queue row whose deletion is the \
         customer's last acknowledged change but whose state is not the table's final state (every \
         delete of `chimpsync.sync_queue` is journalled by a test trigger); **doubled contact** = \
         a live member no customer owns, or a customer with more than one live member; \
         **duplicated write** = a member write after which the Mailchimp member held exactly what \
         it held before, i.e. a state sent again (the emulator's `unchanged_member_writes`).\n\n",
    );
    for (suite, heading) in SUITES {
        let mut rows: Vec<&Value> = records.iter().filter(|r| r["suite"] == *suite).collect();
        if rows.is_empty() {
            continue;
        }
        rows.sort_by_key(|r| text(&r["scenario"]));
        out.push_str(&format!("## {heading}\n\n"));
        if *suite == "load" {
            render_load(&mut out, &rows);
            continue;
        }
        out.push_str(
            "| scenario | what was tried | asserted outcome | figures of the last run |\n",
        );
        out.push_str("| --- | --- | --- | --- |\n");
        for r in rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(&text(&r["scenario"])),
                cell(&text(&r["tried"])),
                cell(&text(&r["asserted"])),
                cell(&figures(r)),
            ));
        }
        out.push('\n');
        out.push_str("Tests: ");
        let tests: Vec<String> = records
            .iter()
            .filter(|r| r["suite"] == *suite)
            .map(|r| format!("`{}`", text(&r["test"])))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        out.push_str(&tests.join(", "));
        out.push_str(".\n\n");
    }
    out.push_str(COVERED_ELSEWHERE);
    out
}

fn render_load(out: &mut String, rows: &[&Value]) {
    let mut keys: Vec<String> = Vec::new();
    for r in rows {
        for (k, _) in figure_list(r) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    out.push_str("| | ");
    out.push_str(
        &rows
            .iter()
            .map(|r| cell(&text(&r["scenario"])))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" |\n| --- |");
    out.push_str(&" --- |".repeat(rows.len()));
    out.push('\n');
    for (label, field) in [("what was tried", "tried"), ("asserted", "asserted")] {
        out.push_str(&format!("| {label} | "));
        out.push_str(
            &rows
                .iter()
                .map(|r| cell(&text(&r[field])))
                .collect::<Vec<_>>()
                .join(" | "),
        );
        out.push_str(" |\n");
    }
    for k in keys {
        out.push_str(&format!("| {} | ", cell(&k)));
        out.push_str(
            &rows
                .iter()
                .map(|r| {
                    let value = figure_list(r).into_iter().find(|(name, _)| *name == k);
                    cell(&value.map(|(_, v)| text(&v)).unwrap_or_else(|| "-".into()))
                })
                .collect::<Vec<_>>()
                .join(" | "),
        );
        out.push_str(" |\n");
    }
    out.push_str("| run finished | ");
    out.push_str(
        &rows
            .iter()
            .map(|r| text(&r["finished_at"]))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" |\n\n");
    let tests: std::collections::BTreeSet<String> = rows
        .iter()
        .map(|r| format!("`{}`", text(&r["test"])))
        .collect();
    out.push_str(&format!(
        "Tests: {}.\n\n",
        tests.into_iter().collect::<Vec<_>>().join(", ")
    ));
}

/// The tests outside `tests/e2e/reliability` that prove other parts of "nothing lost or
/// doubled"; the reliability suites do not repeat them. (They run in the same `cargo test`; they record no
/// figures.)
const COVERED_ELSEWHERE: &str = "## Covered by other tests (not repeated here)\n\n\
| what is proven | test |\n\
| --- | --- |\n\
| 503 on every write: rows stay queued with the error, nothing deleted, sent once Mailchimp accepts | `worker::rows_stay_queued_while_mailchimp_refuses_and_go_once_it_accepts` |\n\
| a row failing transiently `max_attempts` times is parked, not deleted | `worker::a_row_that_keeps_failing_is_parked_after_max_attempts_not_deleted` |\n\
| a bare 403 pauses the whole worker | `worker::a_throttled_answer_pauses_the_whole_worker` |\n\
| a lost answer to a batch (applied, connection closed) is resent without a duplicate | `worker::a_lost_acknowledgement_is_retried_safely` |\n\
| 20 % 503s and 10 % dropped answers, run loop, 1,500 customers and live changes | `worker::the_run_loop_converges_with_failures_and_dropped_answers` |\n\
| random concurrent changes from 4 writers, 3 workers, faults on | `worker::random_concurrent_changes_converge_with_faults_on` |\n\
| the connection cap holds across 5 workers (no 429 storm) | `worker::five_workers_share_a_cap_of_two_connections` |\n\
| a partial batch: fake, invalid and too-long values parked with Mailchimp's reason, the rest acknowledged | `worker::a_partial_batch_parks_the_refused_members_and_acknowledges_the_rest` |\n\
| two customers with one address: the first owns it, the second parked with the reason | `worker::two_customers_with_one_address_do_not_fight` |\n\
| an acknowledgement after the lease lapsed deletes nothing | `worker::an_acknowledgement_after_the_lease_expired_does_not_delete_a_reclaimed_row` |\n\
| a change committed while the older one is in flight is not lost | `worker::a_change_committed_while_the_older_one_is_in_flight_is_not_lost` |\n\
| SIGKILL of the binary 3 times while batches are in flight; a fresh run converges | `binary::a_sigkilled_worker_loses_nothing_and_a_fresh_run_converges` |\n\
| SIGTERM finishes or releases in-flight batches and exits 0 | `binary::sigterm_finishes_in_flight_batches_releases_the_rest_and_exits_zero` |\n\
| bad, truncated, unknown-key and missing mapping files; unreachable and malformed `DATABASE_URL` (setup, status) | `binary::bad_input_exits_non_zero_with_a_one_line_reason_and_changes_nothing` |\n\
| `check` with a wrong key and an unknown audience | `binary::check_reports_a_wrong_key_and_a_missing_merge_field` |\n\
| the database going away and coming back (readiness, and the worker syncs again) | `operations::readyz_turns_unready_while_the_database_is_away_and_ready_when_it_returns` |\n\
| a delete and re-insert of one key in one transaction enqueues an upsert | `triggers::a_delete_and_reinsert_of_one_key_in_a_transaction_is_an_upsert` |\n\
| rows without an address or outside the filter enqueue nothing | `triggers::rows_outside_the_filter_or_without_an_address_enqueue_nothing` |\n";
