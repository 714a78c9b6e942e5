//! `chimpsync setup`: the migrations, then the change triggers generated from the mapping.
//!
//! Everything runs in one transaction under an advisory lock, so two replicas running setup at
//! once serialise, and a setup that fails (bad mapping, missing column) changes nothing.

use tracing::{info, instrument};

use crate::generated::{table_columns, Generated, TriggerShape};
use crate::mapping::{Mapping, TableName};
use crate::migrations;
use crate::sql::queries;
use crate::{Error, Result};

/// What `setup` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupReport {
    /// Migrations applied by this run (empty when the schema was current).
    pub applied_migrations: Vec<i32>,
    /// The table whose triggers were installed.
    pub table: String,
    /// A table whose old triggers were removed because the mapping moved to another table.
    pub removed_from: Option<String>,
}

/// The SQL that `setup` would run for a fresh database, for `setup --print-sql`.
pub fn setup_sql(generated: &Generated, shape: TriggerShape) -> String {
    let mut out = String::new();
    out.push_str("begin;\n");
    out.push_str(&format!("{};\n", queries::MIGRATION_LOCK.trim_end()));
    out.push_str(&migrations::script());
    out.push_str("\n-- change triggers\n");
    for statement in generated.install_triggers(shape) {
        out.push_str(statement.trim_end());
        out.push_str(";\n\n");
    }
    out.push_str("commit;\n");
    out
}

/// Creates or upgrades the schema and (re)installs the triggers, in one transaction under an
/// advisory lock. Idempotent.
#[instrument(skip_all, fields(table = %mapping.source.table, shape = shape.as_str()))]
pub async fn setup(
    client: &mut tokio_postgres::Client,
    mapping: &Mapping,
    shape: TriggerShape,
) -> Result<SetupReport> {
    let tx = client.transaction().await?;
    tx.execute(queries::MIGRATION_LOCK, &[]).await?;
    let mut report = SetupReport {
        applied_migrations: migrations::migrate(&tx).await?,
        ..SetupReport::default()
    };
    let generated = Generated::for_mapping(&tx, mapping).await?;
    let table = generated.table();
    if let Some(row) = tx.query_opt(queries::INSTALLED_TABLE, &[]).await? {
        let previous: String = row.get(0);
        if previous != table.quoted() {
            // The mapping moved to another table: the old table must stop enqueueing.
            // `previous` was written by `TableName::quoted`, which this parse reverses.
            if let Ok(old) = TableName::parse(&previous) {
                if !table_columns(&tx, &old).await?.is_empty() {
                    for statement in Generated::drop_triggers(&old) {
                        tx.batch_execute(&statement).await?;
                    }
                }
                report.removed_from = Some(old.to_string());
            }
        }
    }
    for statement in generated.install_triggers(shape) {
        tx.batch_execute(&statement).await?;
    }
    let mapping_json = serde_json::to_value(mapping).map_err(|e| Error::Mapping(e.to_string()))?;
    tx.execute(
        queries::RECORD_INSTALLATION,
        &[&table.quoted(), &shape.as_str(), &mapping_json],
    )
    .await?;
    tx.commit().await?;
    report.table = table.to_string();
    info!(migrations = ?report.applied_migrations, "setup complete");
    Ok(report)
}
