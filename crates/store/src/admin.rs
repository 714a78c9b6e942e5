//! Operator actions beside `setup`: the worker's least-privilege role (`setup --worker-role`)
//! and the clean removal of everything chimpsync installed (`setup --uninstall`).
//!
//! Both run in one transaction under the same advisory lock as `setup`, so they never interleave
//! with a concurrent setup, and a failure changes nothing.

use tracing::{info, instrument};

use crate::mapping::{quote_ident, quote_literal};
use crate::sql::{queries, templates};
use crate::{Error, Result};

/// Checks a role name before it is quoted into SQL. Quoting makes any name safe; these checks
/// catch names Postgres would silently truncate or reserves.
fn check_role(role: &str) -> Result<()> {
    if role.trim().is_empty() {
        return Err(Error::Argument(
            "--worker-role: the role name is empty".into(),
        ));
    }
    if role.len() > 63 {
        return Err(Error::Argument(format!(
            "--worker-role: {role:?} is longer than Postgres's 63-byte name limit"
        )));
    }
    if role.starts_with("pg_") || role.eq_ignore_ascii_case("public") {
        return Err(Error::Argument(format!(
            "--worker-role: {role:?} is a name Postgres reserves"
        )));
    }
    Ok(())
}

/// The SQL that creates the worker's role (if missing) and grants it exactly what the worker
/// needs; for `setup --print-sql`.
pub fn worker_role_sql(role: &str) -> Result<String> {
    check_role(role)?;
    Ok(templates::fill(
        templates::WORKER_ROLE,
        &[
            ("role_literal", &quote_literal(role)),
            ("role", &quote_ident(role)),
        ],
    ))
}

/// Creates the worker's role if it does not exist (LOGIN, no password: the DBA sets one) and
/// sets its privileges in schema `chimpsync` to exactly what `chimpsync run` needs: USAGE on the
/// schema; SELECT, UPDATE, DELETE on `sync_queue` (claim, acknowledge, park, reschedule,
/// release; no INSERT, the triggers insert as security definer); SELECT, INSERT, UPDATE, DELETE
/// on `synced_contacts`; SELECT on `queue_summary`. Nothing on the customer table. The
/// connection cap's advisory locks need no grant. Run after [`crate::setup`].
#[instrument(skip_all, fields(role = %role))]
pub async fn grant_worker_role(client: &mut tokio_postgres::Client, role: &str) -> Result<()> {
    let sql = worker_role_sql(role)?;
    let tx = client.transaction().await?;
    tx.execute(queries::MIGRATION_LOCK, &[]).await?;
    let installed: bool = tx.query_one(queries::SCHEMA_EXISTS, &[]).await?.get(0);
    if !installed {
        return Err(Error::Argument(
            "--worker-role: schema chimpsync is not installed (run setup first)".into(),
        ));
    }
    tx.batch_execute(&sql).await?;
    tx.commit().await?;
    info!("worker role granted");
    Ok(())
}

/// What [`uninstall`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UninstallReport {
    /// Whether schema `chimpsync` existed (and was dropped).
    pub schema_dropped: bool,
    /// The table whose change triggers went with it (as recorded by `setup`).
    pub triggers_removed_from: Option<String>,
    /// The worker role dropped, if one was named.
    pub role_dropped: Option<String>,
}

/// The SQL that [`uninstall`] runs, for `setup --uninstall --print-sql`.
pub fn uninstall_sql(worker_role: Option<&str>) -> Result<String> {
    let mut out = String::from("begin;\n");
    out.push_str(&format!("{};\n", queries::MIGRATION_LOCK.trim_end()));
    out.push_str(&format!("{};\n", queries::DROP_SCHEMA.trim_end()));
    if let Some(role) = worker_role {
        out.push_str(&format!("{};\n", drop_role_sql(role)?.trim_end()));
    }
    out.push_str("commit;\n");
    Ok(out)
}

fn drop_role_sql(role: &str) -> Result<String> {
    check_role(role)?;
    Ok(templates::fill(
        templates::DROP_ROLE,
        &[("role", &quote_ident(role))],
    ))
}

/// Removes everything chimpsync installed in this database: schema `chimpsync` with the queue,
/// the record of what Mailchimp holds, the migrations table and the trigger functions, and with
/// those functions the change triggers on the customer table (dropped by the cascade, wherever
/// the mapping pointed). With `worker_role`, drops that role too. The customer table and its
/// rows are untouched. Idempotent: uninstalling twice is not an error.
#[instrument(skip_all)]
pub async fn uninstall(
    client: &mut tokio_postgres::Client,
    worker_role: Option<&str>,
) -> Result<UninstallReport> {
    let drop_role = worker_role.map(drop_role_sql).transpose()?;
    let tx = client.transaction().await?;
    tx.execute(queries::MIGRATION_LOCK, &[]).await?;
    let mut report = UninstallReport::default();
    let installed: bool = tx.query_one(queries::SCHEMA_EXISTS, &[]).await?.get(0);
    if installed {
        report.triggers_removed_from = tx
            .query_opt(queries::INSTALLED_TABLE, &[])
            .await?
            .map(|r| r.get(0));
    }
    report.schema_dropped = installed;
    tx.batch_execute(queries::DROP_SCHEMA).await?;
    if let Some(sql) = drop_role {
        tx.batch_execute(&sql).await?;
        report.role_dropped = worker_role.map(str::to_string);
    }
    tx.commit().await?;
    info!(schema_dropped = report.schema_dropped, "uninstalled");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_quoted_not_pasted() {
        let sql = worker_role_sql(r#"odd"name"#).expect("valid");
        assert!(sql.contains(r#"create role "odd""name" login"#));
        assert!(sql.contains(r#"rolname = 'odd"name'"#));
        assert!(!sql.contains("{{"));
        assert!(sql.contains("grant select, update, delete on chimpsync.sync_queue"));
        assert!(!sql.contains("insert on chimpsync.sync_queue"));
    }

    #[test]
    fn reserved_empty_and_overlong_role_names_are_refused() {
        for bad in ["", " ", "pg_monitor", "PUBLIC", &"x".repeat(64)] {
            assert!(worker_role_sql(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uninstall_sql_drops_the_schema_and_the_named_role() {
        let sql = uninstall_sql(Some("chimpsync_worker")).expect("valid");
        assert!(sql.contains("drop schema if exists chimpsync cascade"));
        assert!(sql.contains(r#"drop role if exists "chimpsync_worker""#));
    }
}
