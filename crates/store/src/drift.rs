//! Whether the source table still fits the mapping `setup` installed, and what the capture guard
//! holds meanwhile (`sql/migrations/0005_drift.sql` explains both guards). Read by `status`,
//! `check`, `/readyz` and the `chimpsync_mapping_drift` gauge.

use crate::sql::queries;
use crate::Result;

/// The source table's drift from the installed mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// What no longer matches, per mapping key (e.g. `merge_fields.STORE: column store of
    /// public.customers is missing`); `None` when the table fits.
    pub problem: Option<String>,
    /// Changed rows the capture guard holds until `setup` is re-run.
    pub held: i64,
    /// What the last held row was held for.
    pub held_for: Option<String>,
}

impl Drift {
    /// One line for an operator, `None` when there is nothing to say.
    pub fn reason(&self) -> Option<String> {
        let fix = "edit the mapping file to match the table and run `chimpsync setup`";
        match (&self.problem, self.held) {
            (Some(problem), 0) => Some(format!("mapping drift: {problem}; {fix}")),
            (Some(problem), held) => Some(format!(
                "mapping drift: {problem}; {held} changed rows are held until you {fix}"
            )),
            (None, 0) => None,
            (None, held) => Some(format!(
                "mapping drift: {held} changed rows are held ({}); run `chimpsync setup` to queue them",
                self.held_for.as_deref().unwrap_or("the table did not fit the mapping")
            )),
        }
    }
}

/// Reads the drift (no drift when `setup` has not recorded a table yet). Reads the catalog and
/// chimpsync's tables only: no lock on the customer table.
pub async fn read(client: &tokio_postgres::Client) -> Result<Drift> {
    let row = client.query_one(queries::DRIFT, &[]).await?;
    Ok(Drift {
        problem: row.get("problem"),
        held: row.get("held"),
        held_for: row.get("held_for"),
    })
}
