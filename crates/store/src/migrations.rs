//! The migrations of schema `chimpsync`: forward-only and numbered (`sql/migrations`, listed in
//! [`MIGRATIONS`]), each applied once and recorded in `chimpsync.schema_migrations`. A shipped
//! migration never changes; a change to the schema is a new migration.
//!
//! The caller holds the setup lock (`sql/queries/migration_lock.sql`) and the transaction, so
//! migrations and whatever follows them commit or fail together.

use crate::mapping::quote_literal;
use crate::sql::{queries, MIGRATIONS};
use crate::{Error, Result};

/// Creates the migrations' own record if missing and applies every migration not yet recorded,
/// in order. Returns the versions applied (empty when the schema was current).
pub(crate) async fn migrate(tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<i32>> {
    tx.batch_execute(queries::BOOTSTRAP).await?;
    let applied: Vec<i32> = tx
        .query(queries::APPLIED_MIGRATIONS, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut now_applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| Error::Migration {
            version: *version,
            source: e,
        })?;
        tx.execute(queries::RECORD_MIGRATION, &[version, name])
            .await?;
        now_applied.push(*version);
    }
    Ok(now_applied)
}

/// What [`migrate`] runs on a database without schema `chimpsync`, as one script.
pub(crate) fn script() -> String {
    let mut out = String::from(queries::BOOTSTRAP);
    for (version, name, sql) in MIGRATIONS {
        out.push_str(&format!("\n-- migration {version:04} {name}\n{sql}"));
        let record = queries::RECORD_MIGRATION
            .trim_end()
            .replace("$1", &version.to_string())
            .replace("$2", &quote_literal(name));
        out.push_str(&format!("{record};\n"));
    }
    out
}
