//! Scenarios 3 and 4, and the trigger-shape comparison: the cost of chimpsync's change
//! triggers on the customer's own writes. Three variants of the same table, measured side by
//! side and interleaved (the order rotates each round so drift on a shared machine spreads
//! evenly): no trigger, statement-level triggers with transition tables (the default), the
//! row-level trigger, and a "floor": a minimal trigger that only writes one queue row per
//! changed customer (row-level for single-row updates, statement-level for the bulk update),
//! which shows what any trigger feeding this queue costs at least; and "keys": no row per
//! customer at all, one row per statement holding the changed keys, which shows what a trigger
//! costs in a design that writes less than a queue row per change; and "append": one key per
//! changed customer appended to a table without any index, the cheapest durable record of a
//! change any trigger can make. Before each measurement the queue is emptied and the table
//! vacuumed.
//! The worker is not running: this is the trigger's own cost.
//!
//! - 3: single-row updates of a mapped column from 8 pgbench clients (custom script, prepared
//!   statements); goal: TPS with triggers >= 85 % of TPS without.
//! - 4: one UPDATE of every customer (100k); goal: time with triggers <= 2 x time without.

use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use store::TriggerShape;

use super::Sizes;
use crate::env::{sql, Bench, BenchDb, Chimpsync, MAPPING};
use crate::report::{median, thousands, Report, Row};

/// Which triggers the table has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    None,
    Statement,
    Row,
    /// The minimal trigger any queue row per change costs (`sql/floor_*.sql`).
    Floor,
    /// No queue row per customer: one row per statement with the changed keys
    /// (`sql/keys_statement.sql`).
    Keys,
    /// One key per changed customer into a table without index (`sql/append_*.sql`).
    Append,
}

impl Variant {
    const ALL: [Variant; 6] = [
        Variant::None,
        Variant::Statement,
        Variant::Row,
        Variant::Floor,
        Variant::Keys,
        Variant::Append,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::None => "none",
            Variant::Statement => "statement",
            Variant::Row => "row",
            Variant::Floor => "floor",
            Variant::Keys => "keys",
            Variant::Append => "append",
        }
    }

    fn shape(self) -> Option<TriggerShape> {
        match self {
            Variant::None | Variant::Floor | Variant::Keys | Variant::Append => None,
            Variant::Statement => Some(TriggerShape::Statement),
            Variant::Row => Some(TriggerShape::Row),
        }
    }
}

/// Round `r`'s order: rotated so each variant takes each position equally often.
fn order(round: usize) -> Vec<Variant> {
    let n = Variant::ALL.len();
    (0..n).map(|i| Variant::ALL[(i + round) % n]).collect()
}

/// Installs one variant; `bulk` picks the statement-level floor, else the row-level one (the
/// cheaper shape for each workload).
async fn install(bench: &Bench, db: &BenchDb, variant: Variant, bulk: bool) -> Result<()> {
    let client = db.client().await?;
    client.batch_execute(sql::FLOOR_DROP).await?;
    match variant.shape() {
        Some(shape) => {
            Chimpsync::new(bench, db, None)
                .run(&["setup", "--trigger-shape", shape.as_str()])
                .await?;
        }
        None => {
            let mapping = store::Mapping::parse(MAPPING)?;
            let table = mapping.table().map_err(|e| anyhow!(e))?;
            for statement in store::Generated::drop_triggers(&table) {
                client.batch_execute(&statement).await?;
            }
            match variant {
                Variant::Floor => {
                    client
                        .batch_execute(if bulk {
                            sql::FLOOR_STATEMENT
                        } else {
                            sql::FLOOR_ROW
                        })
                        .await?
                }
                Variant::Keys => client.batch_execute(sql::KEYS_STATEMENT).await?,
                Variant::Append => {
                    client
                        .batch_execute(if bulk {
                            sql::APPEND_STATEMENT
                        } else {
                            sql::APPEND_ROW
                        })
                        .await?
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Empties the queue and vacuums, so every measurement starts from the same state.
async fn reset(db: &BenchDb) -> Result<()> {
    let client = db.client().await?;
    client.batch_execute(sql::RESET_QUEUE).await?;
    // One statement each: VACUUM refuses to run in the implicit transaction of a batch.
    client
        .batch_execute("vacuum analyze public.customers")
        .await?;
    client
        .batch_execute("vacuum analyze chimpsync.sync_queue")
        .await?;
    Ok(())
}

/// What a variant recorded: keys for the key-list and append-only triggers, else queue rows.
async fn recorded(db: &BenchDb, variant: Variant) -> Result<i64> {
    let query = match variant {
        Variant::Keys => sql::KEYS_COUNT,
        Variant::Append => sql::APPEND_COUNT,
        _ => return db.queued().await,
    };
    Ok(db.client().await?.query_one(query, &[]).await?.get(0))
}

/// The median of one variant's measurements.
fn median_of(runs: &[(Variant, f64)], variant: Variant) -> f64 {
    median(
        &runs
            .iter()
            .filter(|(v, _)| *v == variant)
            .map(|(_, x)| *x)
            .collect::<Vec<_>>(),
    )
}

/// Runs scenarios 3 and 4 and the shape comparison.
pub async fn run(bench: &Bench, sizes: &Sizes, report: &mut Report) -> Result<()> {
    let n = sizes.trigger_rows;
    eprintln!(
        "== 3, 4: trigger cost on {} customers (none / statement / row)",
        thousands(n)
    );
    let db = bench.database("triggers").await?;
    db.customers(n).await?;
    Chimpsync::new(bench, &db, None).run(&["setup"]).await?;

    let mut failures = Vec::new();
    if let Err(e) = bulk(bench, &db, sizes, report).await {
        failures.push(format!("4: {e:#}"));
    }
    match &bench.pgbench {
        Some(pgbench) => {
            if let Err(e) = clients(bench, &db, sizes, pgbench, report).await {
                failures.push(format!("3: {e:#}"));
            }
        }
        None => failures.push("3: pgbench not found".into()),
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    db.finish().await
}

async fn bulk(bench: &Bench, db: &BenchDb, sizes: &Sizes, report: &mut Report) -> Result<()> {
    let n = sizes.trigger_rows;
    let mut times: Vec<(Variant, f64)> = Vec::new();
    for round in 0..sizes.bulk_rounds {
        for variant in order(round) {
            install(bench, db, variant, true).await?;
            reset(db).await?;
            let client = db.client().await?;
            let salt = format!("{round}{}", variant.name());
            let started = Instant::now();
            let updated = client
                .execute(sql::BULK_UPDATE, &[&salt, &(n as i64)])
                .await?;
            let secs = started.elapsed().as_secs_f64();
            ensure!(updated == n, "the bulk update changed {updated} rows");
            let want = if variant == Variant::None {
                0
            } else {
                n as i64
            };
            let got = recorded(db, variant).await?;
            ensure!(
                got == want,
                "{}: {got} queue rows after the bulk update, expected {want}",
                variant.name()
            );
            eprintln!("  bulk update, {:<9} {secs:.2} s", variant.name());
            times.push((variant, secs));
        }
    }
    let med = |v: Variant| median_of(&times, v);
    let (none, statement, row) = (
        med(Variant::None),
        med(Variant::Statement),
        med(Variant::Row),
    );
    let k = thousands(n);
    report.rows.push(Row::goal(
        "4",
        format!("one UPDATE of {k} customers, statement-level triggers vs none"),
        format!(
            "{statement:.2} s vs {none:.2} s = {:.2} x",
            statement / none
        ),
        "<= 2 x the time without",
        2.0 / (statement / none),
    ));
    report.rows.push(Row::info(
        "T",
        format!("one UPDATE of {k} customers, row-level trigger vs none (trigger shape)"),
        format!("{row:.2} s vs {none:.2} s = {:.2} x", row / none),
        "statement-level above",
        Some(row / none),
    ));
    // The stand-ins that each drop something chimpsync needs, against no trigger.
    for (variant, what, baseline) in [
        (Variant::Floor, format!("floor: one UPDATE of {k} customers with a minimal trigger (queue row per customer, nothing else) vs none"), "what any queue row costs"),
        (Variant::Keys, format!("no row per customer: one UPDATE of {k} customers with a trigger writing one row per statement with the changed keys vs none"), "a design without per-customer rows"),
        (Variant::Append, format!("append only: one UPDATE of {k} customers with a trigger appending each changed key to a table without index vs none"), "the cheapest durable record per customer"),
    ] {
        let secs = med(variant);
        report.rows.push(Row::info(
            "4",
            what,
            format!("{secs:.2} s vs {none:.2} s = {:.2} x", secs / none),
            baseline,
            Some(secs / none),
        ));
    }
    report.note(format!(
        "4 bulk UPDATE, median of {} interleaved rounds; each run: {}",
        sizes.bulk_rounds,
        times
            .iter()
            .map(|(v, s)| format!("{} {s:.2}", v.name()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

async fn clients(
    bench: &Bench,
    db: &BenchDb,
    sizes: &Sizes,
    pgbench: &std::path::Path,
    report: &mut Report,
) -> Result<()> {
    let script = bench.work.join("pgbench_update.sql");
    std::fs::write(
        &script,
        sql::PGBENCH_UPDATE.replace("{{rows}}", &sizes.trigger_rows.to_string()),
    )?;
    let mut tps: Vec<(Variant, f64)> = Vec::new();
    for round in 0..sizes.pgbench_rounds {
        for variant in order(round) {
            install(bench, db, variant, false).await?;
            reset(db).await?;
            let out = tokio::process::Command::new(pgbench)
                .args(["-n", "-M", "prepared", "-c", "8", "-j", "2", "-T"])
                .arg(sizes.pgbench_seconds.to_string())
                .arg("-f")
                .arg(&script)
                .arg(&db.url)
                .output()
                .await
                .context("running pgbench")?;
            let text = String::from_utf8_lossy(&out.stdout);
            ensure!(
                out.status.success(),
                "pgbench failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
            let value = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("tps = "))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| anyhow!("no tps in pgbench's output: {text}"))?;
            let got = recorded(db, variant).await?;
            ensure!(
                (variant == Variant::None) == (got == 0),
                "{}: {got} queue rows after pgbench",
                variant.name()
            );
            eprintln!("  pgbench 8 clients, {:<9} {value:.0} tps", variant.name());
            tps.push((variant, value));
        }
    }
    let med = |v: Variant| median_of(&tps, v);
    let (none, statement, row) = (
        med(Variant::None),
        med(Variant::Statement),
        med(Variant::Row),
    );
    report.rows.push(Row::goal(
        "3",
        "8 clients, single-row updates of a mapped column (pgbench), statement-level triggers vs none",
        format!(
            "{statement:.0} vs {none:.0} tps = {:.1} %",
            100.0 * statement / none
        ),
        ">= 85 % of the TPS without",
        (statement / none) / 0.85,
    ));
    report.rows.push(Row::info(
        "T",
        "8 clients, single-row updates, row-level trigger vs none (trigger shape)",
        format!("{row:.0} vs {none:.0} tps = {:.1} %", 100.0 * row / none),
        "statement-level above",
        Some(row / none),
    ));
    // The stand-ins that each drop something chimpsync needs, against no trigger.
    for (variant, what, baseline) in [
        (Variant::Floor, "floor: 8 clients, single-row updates with a minimal row-level trigger (queue row, nothing else) vs none", "what any queue row costs"),
        (Variant::Keys, "no row per customer: 8 clients, single-row updates with a trigger writing one row per statement with the changed key vs none", "a design without per-customer rows"),
        (Variant::Append, "append only: 8 clients, single-row updates with a row-level trigger appending the key to a table without index vs none", "the cheapest durable record of a change"),
    ] {
        let value = med(variant);
        report.rows.push(Row::info(
            "3",
            what,
            format!("{value:.0} vs {none:.0} tps = {:.1} %", 100.0 * value / none),
            baseline,
            Some(value / none),
        ));
    }
    report.note(format!(
        "3 pgbench -n -M prepared -c 8 -j 2 -T {} on {} customers, median of {} interleaved rounds; each run (tps): {}",
        sizes.pgbench_seconds,
        thousands(sizes.trigger_rows),
        sizes.pgbench_rounds,
        tps.iter()
            .map(|(v, s)| format!("{} {s:.0}", v.name()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}
