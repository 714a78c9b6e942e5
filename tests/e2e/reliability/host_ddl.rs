//! Schema changes of the customer table by the application's own developers. Each kind ends one
//! of two ways: refused at DDL time by the DDL guard with one line naming chimpsync and the
//! mapping key, or, let through (`chimpsync.allow_ddl = on`, or no guard installed), the
//! application's writes keep working, the drift is reported, and once the mapping fits again and
//! `setup` ran, the customers changed meanwhile reach Mailchimp.

use anyhow::{ensure, Context, Result};
use chimpsync_tests::{Fixture, MAPPING};
use store::{Mapping, SetupOptions, TriggerShape};

use super::Scenario;

/// One kind of schema change.
struct Case {
    test: &'static str,
    name: &'static str,
    /// The DDL, one statement or more.
    ddl: &'static str,
    /// The mapping key the refusal and the drift name; `None` when the change keeps the mapping
    /// working and passes silently.
    key: Option<&'static str>,
    /// The application's writes once the change went through: customer 1's first name becomes
    /// `Drifted`, customer 2 is deleted, customer 10 (`c10@pets.test`) is inserted.
    writes: &'static [&'static str],
    /// What the operator does before re-running setup: SQL on the table, and the mapping.
    fix_sql: &'static str,
    fix_mapping: fn() -> String,
    /// Let through by removing the DDL guard (`setup --no-ddl-guard`) instead of
    /// `chimpsync.allow_ddl = on`.
    without_guard: bool,
}

/// A case with the usual writes, no fix beyond re-running setup with [`MAPPING`], and the DDL
/// guard in place.
fn case(
    test: &'static str,
    name: &'static str,
    ddl: &'static str,
    key: Option<&'static str>,
) -> Case {
    Case {
        test,
        name,
        ddl,
        key,
        writes: WRITES,
        fix_sql: "",
        fix_mapping: same_mapping,
        without_guard: false,
    }
}

const WRITES: &[&str] = &[
    "update customers set first_name = 'Drifted' where id = 1",
    "delete from customers where id = 2",
    "insert into customers (id, email, first_name, consent_contact) values (10, 'c10@pets.test', 'New', true)",
];

fn same_mapping() -> String {
    MAPPING.to_string()
}

async fn setup(f: &mut Fixture, mapping: &str, ddl_guard: bool) -> Result<store::SetupReport> {
    let options = SetupOptions {
        ddl_guard,
        ..SetupOptions::default()
    };
    Ok(store::setup_with(
        &mut f.sql,
        &Mapping::parse(mapping)?,
        TriggerShape::Statement,
        options,
    )
    .await?)
}

async fn drift(f: &Fixture) -> Result<store::drift::Drift> {
    Ok(store::drift::read(&*f.queue.pool().get().await?).await?)
}

async fn run(case: Case) -> Result<()> {
    let mut record = Scenario::new("host", &format!("reliability::host_ddl::{}", case.test), case.name)
        .tried(&format!(
            "with three synced customers: `{}`, first as is (DDL guard installed), then let \
             through ({}); the application then updates, deletes and inserts customers; then the \
             mapping is fixed and setup re-run",
            case.ddl,
            if case.without_guard { "setup --no-ddl-guard" } else { "set local chimpsync.allow_ddl = on" }
        ))
        .asserted(match case.key {
            Some(_) => "the DDL is refused with one line naming chimpsync and the mapping key; let \
                        through, every application write succeeds, the drift names the key (status, \
                        check, readyz), and after the fix and setup the changed customers reach \
                        Mailchimp",
            None => "the DDL passes silently, no drift is reported, and the changes made \
                     afterwards are synced as usual",
        });
    let mut f = Fixture::new().await?;
    f.insert_customers(3, 1).await?;
    let w = f.worker(|_| {})?;
    f.drain(&w).await?;
    f.assert_converged().await?;

    // With the DDL guard.
    let refused = f.sql.batch_execute(case.ddl).await;
    match case.key {
        Some(key) => {
            let e = refused
                .err()
                .context("the DDL guard let a breaking change through")?;
            let line = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default();
            ensure!(
                line.starts_with("chimpsync: ")
                    && line.contains(key)
                    && line.contains("chimpsync setup")
                    && line.contains("chimpsync.allow_ddl")
                    && !line.contains('\n'),
                "refusal line: {line}"
            );
            record.figure("refusal", line);
        }
        None => {
            refused.context("a change that keeps the mapping working was refused")?;
        }
    }

    // Let through.
    if case.key.is_some() {
        if case.without_guard {
            let report = setup(&mut f, MAPPING, false).await?;
            ensure!(report.ddl_guard == store::DdlGuard::Removed, "{report:?}");
            f.sql.batch_execute(case.ddl).await?;
        } else {
            f.sql
                .batch_execute(&format!(
                    "begin; set local chimpsync.allow_ddl = on; {}; commit",
                    case.ddl
                ))
                .await?;
        }
    }
    let mut failed = 0;
    for write in case.writes {
        if let Err(e) = f.sql.batch_execute(write).await {
            failed += 1;
            eprintln!("{write}: {e:?}");
        }
    }
    record.figure("application writes failed", failed);
    ensure!(failed == 0, "application writes failed");
    let seen = drift(&f).await?;
    match case.key {
        Some(key) => {
            let reason = seen.reason().context("no drift reported")?;
            ensure!(reason.contains(key), "drift: {reason}");
            record.figure("drift", reason);
            record.figure("held rows", seen.held);
        }
        None => ensure!(seen.reason().is_none(), "{seen:?}"),
    }

    // The fix.
    if !case.fix_sql.is_empty() {
        f.sql
            .batch_execute(&format!(
                "begin; set local chimpsync.allow_ddl = on; {}; commit",
                case.fix_sql
            ))
            .await?;
    }
    let report = setup(&mut f, &(case.fix_mapping)(), !case.without_guard).await?;
    ensure!(
        drift(&f).await?.reason().is_none(),
        "drift after setup: {report:?}"
    );
    f.drain(&w).await?;
    let one = f.member("c1@pets.test").context("member c1")?;
    ensure!(
        one.merge_fields.get("FNAME").and_then(|v| v.as_str()) == Some("Drifted"),
        "{one:?}"
    );
    let two = f.member("c2@pets.test").context("member c2")?;
    ensure!(two.status == "archived", "{two:?}");
    let ten = f.member("c10@pets.test").context("member c10")?;
    ensure!(ten.status == "subscribed", "{ten:?}");
    record.figure(
        "customers queued again by setup",
        report.replayed.map_or(0, |r| r.queued),
    );
    record.save()?;
    f.finish().await
}

#[tokio::test]
async fn renaming_a_mapped_column() -> Result<()> {
    run(Case {
        fix_mapping: || MAPPING.replace("STORE = \"store\"", "STORE = \"shop\""),
        ..case(
            "renaming_a_mapped_column",
            "rename a mapped column",
            "alter table customers rename column store to shop",
            Some("merge_fields.STORE"),
        )
    })
    .await
}

#[tokio::test]
async fn renaming_a_mapped_column_without_the_ddl_guard() -> Result<()> {
    run(Case {
        fix_mapping: || MAPPING.replace("STORE = \"store\"", "STORE = \"shop\""),
        without_guard: true,
        ..case(
            "renaming_a_mapped_column_without_the_ddl_guard",
            "rename a mapped column, no DDL guard",
            "alter table customers rename column store to shop",
            Some("merge_fields.STORE"),
        )
    })
    .await
}

#[tokio::test]
async fn dropping_a_mapped_column() -> Result<()> {
    run(Case {
        fix_mapping: || MAPPING.replace("STORE = \"store\"", ""),
        ..case(
            "dropping_a_mapped_column",
            "drop a mapped column",
            "alter table customers drop column store",
            Some("merge_fields.STORE"),
        )
    })
    .await
}

#[tokio::test]
async fn text_to_varchar_passes() -> Result<()> {
    run(case(
        "text_to_varchar_passes",
        "change a mapped column from text to varchar(20)",
        "alter table customers alter column store type varchar(20)",
        None,
    ))
    .await
}

#[tokio::test]
async fn boolean_to_text() -> Result<()> {
    run(Case {
        writes: &[
            "update customers set first_name = 'Drifted' where id = 1",
            "delete from customers where id = 2",
            "insert into customers (id, email, first_name, consent_contact) values (10, 'c10@pets.test', 'New', 'true')",
        ],
        fix_sql: "alter table customers alter column consent_contact type boolean using consent_contact::boolean",
        ..case("boolean_to_text", "change the consent column from boolean to text", "alter table customers alter column consent_contact type text using consent_contact::text", Some("source.consent"))
    })
    .await
}

#[tokio::test]
async fn dropping_the_email_column() -> Result<()> {
    run(Case {
        writes: &[
            "update customers set first_name = 'Drifted' where id = 1",
            "delete from customers where id = 2",
            "insert into customers (id, first_name, consent_contact) values (10, 'New', true)",
        ],
        fix_sql: "alter table customers add column email text; \
                  update customers set email = 'c' || id || '@pets.test'",
        ..case(
            "dropping_the_email_column",
            "drop the email column",
            "alter table customers drop column email",
            Some("source.email"),
        )
    })
    .await
}

#[tokio::test]
async fn dropping_the_key_column() -> Result<()> {
    run(Case {
        writes: &[
            "update customers set first_name = 'Drifted' where email = 'c1@pets.test'",
            "delete from customers where email = 'c2@pets.test'",
            "insert into customers (email, first_name, consent_contact) values ('c10@pets.test', 'New', true)",
        ],
        fix_sql: "alter table customers add column id bigint; \
                  update customers set id = substring(email from 'c([0-9]+)@')::bigint",
        ..case("dropping_the_key_column", "drop the key column", "alter table customers drop column id", Some("source.key"))
    })
    .await
}

#[tokio::test]
async fn renaming_the_table() -> Result<()> {
    run(Case {
        writes: &[
            "update clients set first_name = 'Drifted' where id = 1",
            "delete from clients where id = 2",
            "insert into clients (id, email, first_name, consent_contact) values (10, 'c10@pets.test', 'New', true)",
        ],
        fix_mapping: || MAPPING.replace("public.customers", "public.clients"),
        ..case("renaming_the_table", "rename the table", "alter table customers rename to clients", Some("source.table"))
    })
    .await
}

#[tokio::test]
async fn moving_the_table_to_another_schema() -> Result<()> {
    run(Case {
        writes: &[
            "update app.customers set first_name = 'Drifted' where id = 1",
            "delete from app.customers where id = 2",
            "insert into app.customers (id, email, first_name, consent_contact) values (10, 'c10@pets.test', 'New', true)",
        ],
        fix_mapping: || MAPPING.replace("public.customers", "app.customers"),
        ..case("moving_the_table_to_another_schema", "move the table to another schema", "create schema if not exists app; alter table customers set schema app", Some("source.table"))
    })
    .await
}

#[tokio::test]
async fn adding_a_column_passes() -> Result<()> {
    run(case(
        "adding_a_column_passes",
        "add a column",
        "alter table customers add column loyalty_points integer",
        None,
    ))
    .await
}

#[tokio::test]
async fn dropping_the_table() -> Result<()> {
    let mut record = Scenario::new(
        "host",
        "reliability::host_ddl::dropping_the_table",
        "drop the table",
    )
    .tried("with three synced customers: `drop table customers`, first as is (DDL guard installed), then with chimpsync.allow_ddl = on")
    .asserted("refused with one line naming chimpsync and source.table; let through, the drift says the table was dropped (status, check, readyz)");
    let f = Fixture::new().await?;
    f.insert_customers(3, 1).await?;
    let e = f
        .sql
        .batch_execute("drop table customers")
        .await
        .err()
        .context("the DDL guard let the drop through")?;
    let line = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    ensure!(
        line.starts_with("chimpsync: ") && line.contains("source.table"),
        "{line}"
    );
    record.figure("refusal", line);
    f.sql
        .batch_execute("begin; set local chimpsync.allow_ddl = on; drop table customers; commit")
        .await?;
    let reason = drift(&f)
        .await?
        .reason()
        .context("no drift after the drop")?;
    ensure!(
        reason.contains("source.table") && reason.contains("dropped"),
        "{reason}"
    );
    record.figure("drift", reason);
    record.save()?;
    f.finish().await
}
