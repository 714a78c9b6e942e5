//! `chimpsync check`: the mapping file, the database, the Mailchimp key, the audience and its
//! merge fields, each reported as it passes; the problems are listed at the end and make the exit
//! status 1.

use std::process::ExitCode;

use anyhow::Result;
use store::Mapping;

use crate::config::{Config, Timeouts};
use crate::db;
use crate::exit::{self, Failure};

use super::groups;

/// The checks' findings, in order: each check's name, whether it passed, and its line.
#[derive(Default)]
struct Findings {
    json: bool,
    checks: Vec<(&'static str, bool, String)>,
    /// The kind of the first problem, which the exit status says.
    first: Option<Failure>,
}

impl Findings {
    fn ok(&mut self, check: &'static str, line: &str) {
        if !self.json {
            println!("ok      {line}");
        }
        self.checks.push((check, true, line.to_string()));
    }

    fn problem(&mut self, check: &'static str, failure: Failure, problem: String) {
        self.first.get_or_insert(failure);
        self.checks.push((check, false, problem));
    }

    /// Reports a check's outcome: its line when it passed, its problem (of kind `failure`) when
    /// not.
    fn report(&mut self, check: &'static str, failure: Failure, outcome: Result<String, String>) {
        match outcome {
            Ok(line) => self.ok(check, &line),
            Err(problem) => self.problem(check, failure, problem),
        }
    }

    fn passed(&self) -> bool {
        self.checks.iter().all(|(_, ok, _)| *ok)
    }

    /// The problems after the passed checks' lines; or, with `--json`, one object:
    /// `{"ok": bool, "checks": [{"check", "ok", "message"}...]}`.
    fn print(&self) {
        if !self.json {
            for (_, _, problem) in self.checks.iter().filter(|(_, ok, _)| !ok) {
                println!("PROBLEM {problem}");
            }
            return;
        }
        let checks: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|(check, ok, message)| {
                serde_json::json!({"check": check, "ok": ok, "message": message})
            })
            .collect();
        let result = serde_json::json!({"ok": self.passed(), "checks": checks});
        println!("{result}");
    }
}

/// Runs every check that the earlier ones allow; when any fails, the exit status is the first
/// problem's (a setting or the mapping: 3, the database: 4, Mailchimp: 5, the schema or drift: 1).
pub async fn run(config: &Config, json: bool) -> Result<ExitCode> {
    let mut findings = Findings {
        json,
        ..Findings::default()
    };
    let mapping = match config.mapping() {
        Ok(m) => {
            findings.ok(
                "mapping",
                &format!("mapping file {}", config.mapping_path.display()),
            );
            Some(m)
        }
        Err(e) => {
            findings.problem("mapping", Failure::Config, format!("{e:#}"));
            None
        }
    };
    database(config, mapping.as_ref(), &mut findings).await;
    mailchimp(config, mapping.as_ref(), &mut findings).await;
    findings.print();
    Ok(match findings.first {
        None => ExitCode::SUCCESS,
        Some(failure) => failure.into(),
    })
}

async fn database(config: &Config, mapping: Option<&Mapping>, findings: &mut Findings) {
    let client = match db::connect(config).await {
        Ok(client) => client,
        Err(e) => return findings.problem("database", exit::status(&e), format!("{e:#}")),
    };
    findings.ok("database", "database reachable");
    let Some(mapping) = mapping else { return };
    findings.report(
        "columns",
        Failure::Config,
        mapped_columns(&client, mapping).await,
    );
    let schema = schema(&client, mapping).await;
    // Drift is measured against the installed mapping, so it only means something once that fits.
    let fits = schema.is_ok();
    findings.report("schema", Failure::Other, schema);
    if fits {
        findings.report("drift", Failure::Other, drift(&client).await);
    }
}

/// Whether the schema and the installed triggers fit this build and `mapping`.
async fn schema(client: &tokio_postgres::Client, mapping: &Mapping) -> Result<String, String> {
    let state = store::handshake::read_state(client)
        .await
        .map_err(|e| e.to_string())?;
    match store::handshake::compare(&state, mapping).map_err(|e| e.to_string())? {
        Some(mismatch) => Err(mismatch.to_string()),
        None => Ok(format!(
            "schema chimpsync at version {}, its triggers capture this mapping",
            state.version()
        )),
    }
}

/// Whether the table has every column the mapping names.
async fn mapped_columns(
    client: &tokio_postgres::Client,
    mapping: &Mapping,
) -> Result<String, String> {
    let generated = store::Generated::for_mapping(client, mapping)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "table {} has every mapped column",
        generated.table()
    ))
}

/// Whether the table still fits the mapping `setup` installed.
async fn drift(client: &tokio_postgres::Client) -> Result<String, String> {
    match store::drift::read(client).await {
        Ok(drift) => match drift.reason() {
            None => Ok("table fits the installed mapping (no drift)".into()),
            Some(reason) => Err(reason),
        },
        Err(e) => Err(format!("reading the mapping drift: {e}")),
    }
}

async fn mailchimp(config: &Config, mapping: Option<&Mapping>, findings: &mut Findings) {
    let client = match config.client(&Timeouts::default()) {
        Ok(client) => client,
        Err(e) => return findings.problem("mailchimp", exit::status(&e), e.to_string()),
    };
    if let Err(e) = client.ping().await {
        return findings.problem("mailchimp", Failure::Mailchimp, format!("Mailchimp: {e}"));
    }
    findings.ok("mailchimp", "Mailchimp key works (GET /ping)");
    let Some(mapping) = mapping else { return };
    let id = match config.audience_id(mapping) {
        Ok(id) => id,
        Err(e) => return findings.problem("audience", exit::status(&e), e.to_string()),
    };
    let audience = match client.get_audience(&id).await {
        Ok(audience) => audience,
        Err(e) => {
            return findings.problem(
                "audience",
                Failure::Mailchimp,
                format!("audience {id}: {e}"),
            )
        }
    };
    findings.ok(
        "audience",
        &format!(
            "audience {id} ({:?}, {} members)",
            audience.name, audience.member_count
        ),
    );
    let fields = match client.merge_fields(&id).await {
        Ok(fields) => fields,
        Err(e) => {
            return findings.problem(
                "merge_fields",
                Failure::Mailchimp,
                format!("reading merge fields: {e}"),
            )
        }
    };
    for tag in mapping.merge_fields.keys() {
        if fields.iter().any(|f| &f.tag == tag) {
            findings.ok("merge_fields", &format!("merge field {tag} exists"));
        } else {
            findings.problem("merge_fields", Failure::Config, format!("merge_fields.{tag}: the audience has no merge field {tag}; `chimpsync setup --mailchimp` creates it"));
        }
    }
    for outcome in groups::check(&client, &id, mapping).await {
        findings.report("interests", Failure::Config, outcome);
    }
    if let Some(outcome) = groups::permissions(&client, &audience, mapping).await {
        findings.report("marketing_permissions", Failure::Config, outcome);
    }
}
