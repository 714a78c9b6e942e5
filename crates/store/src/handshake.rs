//! The handshake between a chimpsync process and the database: whether the `chimpsync` schema is
//! the one this build was made for, and whether the change triggers capture what the process's
//! mapping file says.
//!
//! The schema's version is the set of migrations `setup` applied (`chimpsync.schema_migrations`);
//! this build knows [`MIGRATIONS`] and calls the highest of them [`SCHEMA_VERSION`]. A migration
//! the database lacks means `setup` has not run for this build; one this build does not know
//! means a newer chimpsync upgraded the schema. The mapping `setup` installed is recorded in
//! `chimpsync.installation`; of it, only what the triggers capture must match (see
//! [`CAPTURED`]). The audience policies and the `[inbound]` statements are read by each process
//! from its own mapping file and may differ safely.
//!
//! Each check is three short catalog and table reads, cheap enough for a running worker to repeat
//! every few seconds.

use std::fmt;

use serde_json::Value;

use crate::mapping::{Mapping, TableName};
use crate::sql::{queries, MIGRATIONS};
use crate::{Error, Result};

/// The schema version this build creates and understands: its highest migration.
pub const SCHEMA_VERSION: i32 = highest_migration();

const fn highest_migration() -> i32 {
    let mut highest = 0;
    let mut i = 0;
    while i < MIGRATIONS.len() {
        if MIGRATIONS[i].0 > highest {
            highest = MIGRATIONS[i].0;
        }
        i += 1;
    }
    highest
}

/// The mapping keys the change triggers are generated from: a difference in any of them means
/// the installed triggers capture something else than the mapping file asks for.
pub const CAPTURED: &[&str] = &[
    "source.table",
    "source.key",
    "source.email",
    "source.consent",
    "source.filter",
    "merge_fields",
    "tags.columns",
    "interests",
    "marketing_permissions",
];

/// What the database holds of chimpsync, as [`read_state`] finds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchemaState {
    /// Whether schema `chimpsync` and its migration record exist.
    pub present: bool,
    /// The migrations applied, ascending.
    pub applied: Vec<i32>,
    /// The mapping the last `setup` installed (its JSON form), when the schema is the one this
    /// build knows and `setup` recorded one.
    pub installed_mapping: Option<Value>,
    /// The catalog's fingerprint of the triggers that `setup` installed, as it recorded it.
    pub trigger_fingerprint: Option<String>,
}

impl SchemaState {
    /// The schema's version: its highest applied migration (0 when there is none).
    pub fn version(&self) -> i32 {
        self.applied.iter().copied().max().unwrap_or(0)
    }
}

/// Why a process must not work against this database, in one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// No schema `chimpsync`, or one that lacks migrations of this build.
    Older {
        /// The database's version (0: no schema).
        database: i32,
    },
    /// The schema has migrations this build does not know.
    Newer {
        /// The database's version.
        database: i32,
    },
    /// The schema is current but `setup` recorded no installation.
    NotInstalled,
    /// The installed triggers capture something else than the mapping file asks for.
    Mapping {
        /// The mapping key that differs (e.g. `merge_fields.PETNAME`).
        key: String,
        /// How it differs, e.g. "is in the mapping file but not in the installed triggers".
        how: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Older { database: 0 } => write!(
                f,
                "the database has no chimpsync schema, this chimpsync needs version \
                 {SCHEMA_VERSION}: run `chimpsync setup`"
            ),
            Mismatch::Older { database } => write!(
                f,
                "the database's chimpsync schema is at version {database}, this chimpsync needs \
                 {SCHEMA_VERSION}: run `chimpsync setup`"
            ),
            Mismatch::Newer { database } => write!(
                f,
                "the database's chimpsync schema is at version {database}, newer than this \
                 chimpsync ({SCHEMA_VERSION}): upgrade chimpsync"
            ),
            Mismatch::NotInstalled => write!(
                f,
                "no change triggers are installed (chimpsync.installation is empty): run \
                 `chimpsync setup`"
            ),
            Mismatch::Mapping { key, how } => {
                write!(f, "{key} {how}: run `chimpsync setup`")
            }
        }
    }
}

/// Reads what the database holds of chimpsync. The installation is read only when the schema's
/// migrations are exactly this build's (another version's columns may differ).
pub async fn read_state(client: &impl tokio_postgres::GenericClient) -> Result<SchemaState> {
    let present: bool = client.query_one(queries::SCHEMA_EXISTS, &[]).await?.get(0);
    if !present {
        return Ok(SchemaState::default());
    }
    let applied: Vec<i32> = client
        .query(queries::APPLIED_MIGRATIONS, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut state = SchemaState {
        present,
        applied,
        ..SchemaState::default()
    };
    if schema_mismatch(&state).is_none() {
        if let Some(row) = client.query_opt(queries::INSTALLED_MAPPING, &[]).await? {
            state.installed_mapping = Some(row.get(0));
            state.trigger_fingerprint = row.get(1);
        }
    }
    Ok(state)
}

/// Whether the schema's migrations are those of this build.
fn schema_mismatch(state: &SchemaState) -> Option<Mismatch> {
    let known = |v: &i32| MIGRATIONS.iter().any(|(m, _, _)| m == v);
    if state.applied.iter().any(|v| !known(v)) {
        return Some(Mismatch::Newer {
            database: state.version(),
        });
    }
    if MIGRATIONS
        .iter()
        .any(|(m, _, _)| !state.applied.contains(m))
    {
        return Some(Mismatch::Older {
            database: state.version(),
        });
    }
    None
}

/// Why `mapping` cannot be worked with against a database in `state`; `None` when it can.
pub fn compare(state: &SchemaState, mapping: &Mapping) -> Result<Option<Mismatch>> {
    if let Some(mismatch) = schema_mismatch(state) {
        return Ok(Some(mismatch));
    }
    let Some(installed) = &state.installed_mapping else {
        return Ok(Some(Mismatch::NotInstalled));
    };
    let wanted = serde_json::to_value(mapping).map_err(|e| Error::Mapping(e.to_string()))?;
    Ok(mapping_difference(&wanted, installed))
}

/// [`read_state`] then [`compare`].
pub async fn check(
    client: &impl tokio_postgres::GenericClient,
    mapping: &Mapping,
) -> Result<Option<Mismatch>> {
    compare(&read_state(client).await?, mapping)
}

const IN_FILE_ONLY: &str = "is in the mapping file but not in the installed triggers";
const INSTALLED_ONLY: &str = "is in the installed triggers but not in the mapping file";

/// The first captured key in which `wanted` (the mapping file) and `installed` differ.
fn mapping_difference(wanted: &Value, installed: &Value) -> Option<Mismatch> {
    let differs = |key: &str, how: String| {
        Some(Mismatch::Mapping {
            key: key.to_string(),
            how,
        })
    };
    let table = |v: &Value| {
        let text = v.pointer("/source/table").and_then(Value::as_str);
        text.map(|t| {
            TableName::parse(t)
                .map(|n| n.to_string())
                .unwrap_or(t.into())
        })
    };
    let (file, db) = (table(wanted), table(installed));
    if file != db {
        return differs("source.table", values_differ(&file, &db));
    }
    for key in ["key", "email", "consent", "filter"] {
        let pointer = format!("/source/{key}");
        let text = |v: &Value| {
            v.pointer(&pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (file, db) = (text(wanted), text(installed));
        if file != db {
            return differs(&format!("source.{key}"), values_differ(&file, &db));
        }
    }
    let fields = |v: &Value| {
        v.get("merge_fields")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (file, db) = (fields(wanted), fields(installed));
    for (tag, column) in &file {
        match db.get(tag) {
            None => return differs(&format!("merge_fields.{tag}"), IN_FILE_ONLY.into()),
            Some(c) if c != column => {
                let text = |v: &Value| v.as_str().map(str::to_string);
                return differs(
                    &format!("merge_fields.{tag}"),
                    values_differ(&text(column), &text(c)),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(tag) = db.keys().find(|t| !file.contains_key(*t)) {
        return differs(&format!("merge_fields.{tag}"), INSTALLED_ONLY.into());
    }
    let tags = |v: &Value| -> Vec<String> {
        v.pointer("/tags/columns")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (file, db) = (tags(wanted), tags(installed));
    if let Some(column) = file.iter().find(|c| !db.contains(c)) {
        return differs(&format!("tags.columns {column:?}"), IN_FILE_ONLY.into());
    }
    if let Some(column) = db.iter().find(|c| !file.contains(c)) {
        return differs(&format!("tags.columns {column:?}"), INSTALLED_ONLY.into());
    }
    // Interest categories and permissions: their titles, types and columns are all in the
    // payload the triggers build. Absent (an older setup) is the same as empty.
    for key in ["interests", "marketing_permissions"] {
        let value = |v: &Value| match v.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) if a.is_empty() => None,
            Some(Value::Object(o)) if o.is_empty() => None,
            Some(other) => Some(other.to_string()),
        };
        let (file, db) = (value(wanted), value(installed));
        if file != db {
            return differs(key, values_differ(&file, &db));
        }
    }
    None
}

/// "is X in the mapping file but Y in the installed triggers", for optional values.
fn values_differ(file: &Option<String>, installed: &Option<String>) -> String {
    match (file, installed) {
        (Some(_), None) => IN_FILE_ONLY.into(),
        (None, Some(_)) => INSTALLED_ONLY.into(),
        (file, installed) => format!(
            "is {:?} in the mapping file but {:?} in the installed triggers",
            file.as_deref().unwrap_or_default(),
            installed.as_deref().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [source]
        table = "customers"
        key = "id"
        email = "email"
        consent = "consent_contact"
        [audience]
        id = "a1"
        [merge_fields]
        FNAME = "first_name"
        [tags]
        columns = ["customer_type"]
    "#;

    fn current(installed: &str) -> SchemaState {
        let mapping = Mapping::parse(installed).unwrap();
        SchemaState {
            present: true,
            applied: MIGRATIONS.iter().map(|m| m.0).collect(),
            installed_mapping: Some(serde_json::to_value(mapping).unwrap()),
            trigger_fingerprint: None,
        }
    }

    fn mismatch(installed: &str, file: &str) -> Option<String> {
        compare(&current(installed), &Mapping::parse(file).unwrap())
            .unwrap()
            .map(|m| m.to_string())
    }

    #[test]
    fn the_same_mapping_matches_and_policies_may_differ() {
        assert_eq!(mismatch(BASE, BASE), None);
        let policies = BASE.replace("id = \"a1\"", "id = \"a2\"\non_remove = \"unsubscribe\"");
        assert_eq!(mismatch(BASE, &policies), None);
        let qualified = BASE.replace("table = \"customers\"", "table = \"public.customers\"");
        assert_eq!(mismatch(BASE, &qualified), None);
    }

    #[test]
    fn an_added_merge_field_is_named() {
        let added = BASE.replace(
            "FNAME = \"first_name\"",
            "FNAME = \"first_name\"\nPETNAME = \"pet\"",
        );
        assert_eq!(
            mismatch(BASE, &added).unwrap(),
            "merge_fields.PETNAME is in the mapping file but not in the installed triggers: \
             run `chimpsync setup`"
        );
        assert_eq!(
            mismatch(&added, BASE).unwrap(),
            "merge_fields.PETNAME is in the installed triggers but not in the mapping file: \
             run `chimpsync setup`"
        );
    }

    #[test]
    fn changed_columns_and_filters_are_named() {
        let email = BASE.replace("email = \"email\"", "email = \"mail\"");
        assert_eq!(
            mismatch(BASE, &email).unwrap(),
            "source.email is \"mail\" in the mapping file but \"email\" in the installed \
             triggers: run `chimpsync setup`"
        );
        let filter = BASE.replace("consent = ", "filter = \"active\"\nconsent = ");
        assert!(mismatch(BASE, &filter)
            .unwrap()
            .starts_with("source.filter is in the mapping file"));
        let tags = BASE.replace("[\"customer_type\"]", "[]");
        assert!(mismatch(BASE, &tags)
            .unwrap()
            .starts_with("tags.columns \"customer_type\" is in the installed triggers"));
    }

    #[test]
    fn schema_versions_are_compared_as_sets() {
        let mapping = Mapping::parse(BASE).unwrap();
        let none = compare(&SchemaState::default(), &mapping).unwrap().unwrap();
        assert!(none
            .to_string()
            .starts_with("the database has no chimpsync schema"));
        let mut older = current(BASE);
        older.applied = vec![1, 2];
        assert_eq!(
            compare(&older, &mapping).unwrap().unwrap().to_string(),
            format!(
                "the database's chimpsync schema is at version 2, this chimpsync needs \
                 {SCHEMA_VERSION}: run `chimpsync setup`"
            )
        );
        let mut newer = current(BASE);
        newer.applied.push(9999);
        assert_eq!(
            compare(&newer, &mapping).unwrap(),
            Some(Mismatch::Newer { database: 9999 })
        );
        let mut bare = current(BASE);
        bare.installed_mapping = None;
        assert_eq!(
            compare(&bare, &mapping).unwrap(),
            Some(Mismatch::NotInstalled)
        );
    }
}
