//! The SQL generated from the mapping: the change triggers and their functions, and the
//! statements of backfill, reconcile and the inbound side that read the mapped table. Every
//! identifier from the mapping is quoted before it enters a template.

use crate::mapping::{quote_ident, quote_literal, Mapping, TableName};
use crate::sql::{queries, templates};
use crate::{Error, Result};

/// How the change triggers are shaped. Both enqueue exactly the same rows; `BENCHMARKS.md`
/// compares their cost to the customer's writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TriggerShape {
    /// Three statement-level triggers with transition tables (one insert per statement).
    #[default]
    Statement,
    /// One row-level trigger (one insert per changed row).
    Row,
}

impl TriggerShape {
    /// The name stored in `chimpsync.installation`.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerShape::Statement => "statement",
            TriggerShape::Row => "row",
        }
    }
}

/// A source table's column, as the catalog describes it.
#[derive(Debug, Clone)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// Its SQL type, e.g. `integer` or `character varying(200)`.
    pub sql_type: String,
    /// Its type's oid.
    pub type_oid: u32,
    /// Its type's category (`pg_type.typcategory`: `S` string, `N` numeric, `B` boolean, ...).
    pub category: String,
}

/// The SQL generated from one mapping, ready to print or apply.
#[derive(Debug, Clone)]
pub struct Generated {
    table: TableName,
    key: String,
    /// The key and email columns' names, unquoted.
    key_column: String,
    email_column: String,
    email: String,
    payload: String,
    /// The payload's input columns (quoted, each once), projected as `v1..vN` by
    /// [`Generated::update_projection`].
    inputs: Vec<String>,
    /// The payload built from `n.v1..vN` (new rows) and `o.v1..vN` (old rows) instead of the
    /// columns.
    payload_of_new: String,
    payload_of_old: String,
    /// The consent column (quoted), when it is not also a merge field or a tag column.
    consent_only: Option<String>,
    filter: String,
    key_type: String,
    /// The account column's SQL type (`text` without one): one account's customers are found
    /// by comparing the column with a value of its own type, which an index on it can serve.
    account_type: String,
    /// The account column (quoted), with many accounts.
    account: Option<String>,
    /// The columns the generated statements read, as the capture and DDL guards compare them
    /// with the table (see `chimpsync.mapping_drift`).
    expected: serde_json::Value,
}

/// The payload (`jsonb`) of one customer: merge fields, tags and consent, each column read
/// through `col`.
fn payload_expression(mapping: &Mapping, col: &dyn Fn(&str) -> String) -> String {
    let merge_fields = if mapping.merge_fields.is_empty() {
        "'{}'::jsonb".to_string()
    } else {
        let pairs: Vec<String> = mapping
            .merge_fields
            .iter()
            .map(|(tag, column)| format!("{}, {}", quote_literal(tag), col(column)))
            .collect();
        format!("jsonb_build_object({})", pairs.join(", "))
    };
    let tags = if mapping.tags.columns.is_empty() {
        "'{}'::jsonb".to_string()
    } else {
        let pairs: Vec<String> = mapping
            .tags
            .columns
            .iter()
            .map(|column| format!("{}, {}", quote_literal(column), col(column)))
            .collect();
        format!("jsonb_build_object({})", pairs.join(", "))
    };
    let consent = match &mapping.source.consent {
        Some(column) => format!("coalesce({}, false)", col(column)),
        None => "true".to_string(),
    };
    let mut payload = format!(
        "jsonb_build_object('merge_fields', {merge_fields}, 'tags', {tags}, 'consent', {consent}"
    );
    // Interests and permissions enter the payload only when mapped, so a mapping without them
    // builds the payload it always did.
    if !mapping.interests.is_empty() {
        let categories: Vec<String> = mapping
            .interests
            .iter()
            .map(|entry| {
                let value = match (&entry.column, &entry.columns) {
                    (Some(column), _) => format!("({})::text", col(column)),
                    (None, columns) => {
                        let pairs: Vec<String> = columns
                            .iter()
                            .flatten()
                            .map(|(name, column)| {
                                format!("{}, coalesce({}, false)", quote_literal(name), col(column))
                            })
                            .collect();
                        format!("jsonb_build_object({})", pairs.join(", "))
                    }
                };
                format!("{}, {value}", quote_literal(&entry.category))
            })
            .collect();
        payload.push_str(&format!(
            ", 'interests', jsonb_build_object({})",
            categories.join(", ")
        ));
    }
    if !mapping.marketing_permissions.is_empty() {
        let pairs: Vec<String> = mapping
            .marketing_permissions
            .iter()
            .map(|(text, column)| {
                format!("{}, coalesce({}, false)", quote_literal(text), col(column))
            })
            .collect();
        payload.push_str(&format!(
            ", 'permissions', jsonb_build_object({})",
            pairs.join(", ")
        ));
    }
    payload.push(')');
    payload
}

/// The columns of `columns` that `filter` names: its identifiers (unquoted ones folded to lower
/// case, as Postgres does), outside string literals. A word that only looks like a column makes
/// the drift check stricter, never blind.
fn filter_columns<'a>(filter: &str, columns: &'a [Column]) -> Vec<&'a Column> {
    let mut words: Vec<String> = Vec::new();
    let mut chars = filter.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            '"' => words.push(chars.by_ref().take_while(|c| *c != '"').collect()),
            c if c.is_alphanumeric() || c == '_' => {
                let mut word = c.to_lowercase().to_string();
                while let Some(&c) = chars.peek() {
                    if !(c.is_alphanumeric() || c == '_' || c == '$') {
                        break;
                    }
                    word.extend(c.to_lowercase());
                    chars.next();
                }
                words.push(word);
            }
            _ => {}
        }
    }
    columns.iter().filter(|c| words.contains(&c.name)).collect()
}

/// The mapping's source table; the error names the mapping key.
fn source_table(mapping: &Mapping) -> Result<TableName> {
    mapping
        .table()
        .map_err(|e| Error::Mapping(format!("source.table: {e}")))
}

impl Generated {
    /// Reads the mapped table's columns from the catalog and builds the SQL for `mapping`,
    /// refusing a missing table or column, or a consent column that is not boolean (the error
    /// names the mapping key).
    pub async fn for_mapping(
        client: &impl tokio_postgres::GenericClient,
        mapping: &Mapping,
    ) -> Result<Generated> {
        let table = source_table(mapping)?;
        let columns = table_columns(client, &table).await?;
        Generated::new(mapping, table, &columns)
    }

    /// Builds the SQL for `mapping` against the `columns` of its `table`.
    fn new(mapping: &Mapping, table: TableName, columns: &[Column]) -> Result<Generated> {
        if columns.is_empty() {
            return Err(Error::Mapping(format!(
                "source.table: table {table} does not exist (names are matched exactly, case included)"
            )));
        }
        for (key, column) in mapping.columns() {
            if !columns.iter().any(|c| c.name == column) {
                return Err(Error::Mapping(format!(
                    "{key}: column {column:?} does not exist in table {table}"
                )));
            }
        }
        let type_of = |name: &str| {
            columns
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.sql_type.clone())
                .unwrap_or_default()
        };
        for (key, column) in mapping.boolean_columns() {
            if type_of(column) != "boolean" {
                return Err(Error::Mapping(format!(
                    "{key}: column {column:?} must be boolean, it is {}",
                    type_of(column)
                )));
            }
        }
        // The payload's input columns, each once, in mapping order.
        let mut inputs: Vec<String> = Vec::new();
        let payload_columns = mapping
            .merge_fields
            .values()
            .chain(mapping.tags.columns.iter())
            .chain(mapping.source.consent.iter())
            .map(String::as_str)
            .chain(
                mapping
                    .interests
                    .iter()
                    .flat_map(|entry| entry.source_columns().into_iter().map(|(_, c)| c)),
            )
            .chain(mapping.marketing_permissions.values().map(String::as_str));
        for column in payload_columns {
            let quoted = quote_ident(column);
            if !inputs.contains(&quoted) {
                inputs.push(quoted);
            }
        }
        let consent_only = mapping
            .source
            .consent
            .as_ref()
            .filter(|c| {
                !mapping.merge_fields.values().any(|m| m == *c) && !mapping.tags.columns.contains(c)
            })
            .map(|c| quote_ident(c));
        let payload = payload_expression(mapping, &|name| format!("t.{}", quote_ident(name)));
        let input_of = |alias: &str, name: &str| {
            let quoted = quote_ident(name);
            let i = inputs.iter().position(|c| *c == quoted).unwrap_or(0);
            format!("{alias}.v{}", i + 1)
        };
        let column = |name: &str| columns.iter().find(|c| c.name == name);
        let filter = mapping.source.filter.as_deref().unwrap_or_default();
        let expected: Vec<serde_json::Value> = mapping
            .columns()
            .into_iter()
            .filter_map(|(key, name)| column(name).map(|c| (key, c)))
            .chain(
                filter_columns(filter, columns)
                    .into_iter()
                    .map(|c| ("source.filter".to_string(), c)),
            )
            .map(|(key, c)| {
                serde_json::json!({
                    "key": key, "column": c.name, "type": c.type_oid,
                    "type_name": c.sql_type, "category": c.category,
                })
            })
            .collect();
        let payload_of_new = payload_expression(mapping, &|name| input_of("n", name));
        let payload_of_old = payload_expression(mapping, &|name| input_of("o", name));
        Ok(Generated {
            key: quote_ident(&mapping.source.key),
            key_column: mapping.source.key.clone(),
            email_column: mapping.source.email.clone(),
            email: quote_ident(&mapping.source.email),
            key_type: type_of(&mapping.source.key),
            filter: mapping
                .source
                .filter
                .clone()
                .unwrap_or_else(|| "true".into()),
            payload,
            inputs,
            payload_of_new,
            payload_of_old,
            consent_only,
            account: mapping.source.account.as_deref().map(quote_ident),
            account_type: mapping
                .source
                .account
                .as_deref()
                .map(type_of)
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "text".into()),
            table,
            expected: serde_json::Value::Array(expected),
        })
    }

    /// Whether the mapping serves many accounts.
    pub fn multi_account(&self) -> bool {
        self.account.is_some()
    }

    /// The source table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The account of a row of the table aliased `alias`: its account column, or `''` with one
    /// account.
    fn account_of(&self, alias: &str) -> String {
        match &self.account {
            Some(column) => format!("{alias}.{column}"),
            None => "''".to_string(),
        }
    }

    /// Account `a`, key `k`, address `e`, whether the row belongs in the audience `f`, then
    /// `columns`.
    fn project(&self, rows: &str, columns: &str) -> String {
        templates::fill(
            templates::PROJECTION,
            &[
                ("account", &self.account_of("t")),
                ("key", &format!("t.{}", self.key)),
                ("email", &format!("t.{}", self.email)),
                ("filter", &self.filter),
                ("rows", rows),
                ("columns", columns),
            ],
        )
    }

    /// [`Generated::project`] with the payload `p`.
    fn projection(&self, rows: &str) -> String {
        self.project(rows, &format!(",\n       {} as p", self.payload))
    }

    fn enqueue(&self, changes: &str) -> String {
        templates::fill(
            templates::ENQUEUE,
            &[("changes", changes), ("conflict", self.conflict())],
        )
    }

    /// The unique key of queue rows and synced contacts for this mapping.
    fn conflict(&self) -> &'static str {
        crate::sql::conflict_key(self.multi_account())
    }

    fn insert_changes(&self, new_rows: &str) -> String {
        self.enqueue(&templates::fill(
            templates::CHANGES_INSERT,
            &[("new", &self.projection(new_rows))],
        ))
    }

    /// The rows of an UPDATE's transition table as [`Generated::update_changes`] compares them:
    /// key, address, filter, and the payload's input columns `v1..vN` (the payload itself is
    /// built later, for enqueued rows only).
    fn update_projection(&self, rows: &str) -> String {
        let inputs: String = self
            .inputs
            .iter()
            .enumerate()
            .map(|(i, column)| format!(",\n       t.{column} as v{}", i + 1))
            .collect();
        self.project(rows, &inputs)
    }

    fn update_changes(&self, new_rows: &str, old_rows: &str) -> String {
        // An input changed: compared as text, which every type has (some, like json, have no
        // equality operator). Text that differs where the payload would not (`1.0` and `1.00`)
        // enqueues a change that sends the same values; no change is missed. The consent column
        // enters the payload as coalesce(consent, false), and is compared that way.
        let compared = |alias: &str| -> String {
            self.inputs
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    if Some(column) == self.consent_only.as_ref() {
                        format!("coalesce({alias}.v{}, false)", i + 1)
                    } else {
                        format!("{alias}.v{}::text", i + 1)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let changed = if self.inputs.is_empty() {
            String::new()
        } else {
            format!(
                "\n                or ({}) is distinct from ({})",
                compared("o"),
                compared("n")
            )
        };
        self.enqueue(&templates::fill(
            templates::CHANGES_UPDATE,
            &[
                ("new_payload", &self.payload_of_new),
                ("old_payload", &self.payload_of_old),
                ("new", &self.update_projection(new_rows)),
                ("old", &self.update_projection(old_rows)),
                ("changed", &changed),
            ],
        ))
    }

    fn delete_changes(&self, old_rows: &str) -> String {
        self.enqueue(&templates::fill(
            templates::CHANGES_DELETE,
            &[("old", &self.projection(old_rows))],
        ))
    }

    /// The columns the guards compare with the table, as recorded in
    /// `chimpsync.installation.expected_columns`.
    pub fn expected_columns(&self) -> &serde_json::Value {
        &self.expected
    }

    /// [`Generated::expected_columns`] as a SQL literal.
    fn expected_literal(&self) -> String {
        format!("{}::jsonb", quote_literal(&self.expected.to_string()))
    }

    /// The capture guard's fast check: whether the table has each expected column with the type
    /// setup saw (`name oid`, each once).
    fn fits(&self) -> String {
        let mut signature: Vec<String> = Vec::new();
        for column in self.expected.as_array().into_iter().flatten() {
            let entry = format!(
                "{} {}",
                column["column"].as_str().unwrap_or_default(),
                column["type"]
            );
            if !signature.contains(&entry) {
                signature.push(entry);
            }
        }
        let array = format!(
            "array[{}]::text[]",
            signature
                .iter()
                .map(|s| quote_literal(s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        templates::fill(
            templates::TABLE_FITS,
            &[
                ("signature", &array),
                ("columns", &signature.len().to_string()),
            ],
        )
        .trim_end()
        .to_string()
    }

    /// Statements that remove chimpsync's triggers from `table`.
    pub fn drop_triggers(table: &TableName) -> Vec<String> {
        templates::fill(templates::DROP_TRIGGERS, &[("table", &table.quoted())])
            .split(";\n")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Statements that (re)install the triggers in the given shape.
    pub fn install_triggers(&self, shape: TriggerShape) -> Vec<String> {
        let table = self.table.quoted();
        let mut statements = Self::drop_triggers(&self.table);
        match shape {
            TriggerShape::Statement => {
                let events = [
                    (
                        "insert",
                        "INSERT",
                        "new table as chimpsync_new",
                        self.insert_changes("chimpsync_new"),
                    ),
                    (
                        "update",
                        "UPDATE",
                        "new table as chimpsync_new old table as chimpsync_old",
                        self.update_changes("chimpsync_new", "chimpsync_old"),
                    ),
                    (
                        "delete",
                        "DELETE",
                        "old table as chimpsync_old",
                        self.delete_changes("chimpsync_old"),
                    ),
                ];
                let new_rows = "select 'new' as side, to_jsonb(n) as row_data from chimpsync_new n";
                let old_rows = "select 'old' as side, to_jsonb(o) as row_data from chimpsync_old o";
                let both = format!("{old_rows}\n      union all\n      {new_rows}");
                let held = [new_rows, &both, old_rows]
                    .map(|rows| templates::fill(templates::HELD_CHANGES, &[("rows", rows)]));
                for ((event, keyword, transition, statement), held) in events.into_iter().zip(held)
                {
                    let function = format!("enqueue_{event}");
                    statements.push(templates::fill(
                        templates::STATEMENT_FUNCTION,
                        &[
                            ("function", &function),
                            ("expected", &self.expected_literal()),
                            ("fits", &self.fits()),
                            ("held", held.trim_end()),
                            ("statement", &statement),
                        ],
                    ));
                    statements.push(templates::fill(
                        templates::STATEMENT_TRIGGER,
                        &[
                            ("trigger", &format!("chimpsync_enqueue_{event}")),
                            ("event", keyword),
                            ("table", &table),
                            ("transition", transition),
                            ("function", &function),
                        ],
                    ));
                }
            }
            TriggerShape::Row => {
                statements.push(templates::fill(
                    templates::ROW_FUNCTION,
                    &[
                        ("expected", &self.expected_literal()),
                        ("fits", &self.fits()),
                        ("insert", &self.insert_changes("(select new.*)")),
                        (
                            "update",
                            &self.update_changes("(select new.*)", "(select old.*)"),
                        ),
                        ("delete", &self.delete_changes("(select old.*)")),
                    ],
                ));
                statements.push(templates::fill(
                    templates::ROW_TRIGGER,
                    &[("table", &table)],
                ));
            }
        }
        statements.extend(self.truncate_trigger());
        statements
    }

    /// The function and trigger that queue the removal of every customer Mailchimp may hold
    /// when the table is truncated (a TRUNCATE trigger is statement-level in either shape).
    fn truncate_trigger(&self) -> [String; 2] {
        [
            templates::fill(
                templates::TRUNCATE_FUNCTION,
                &[("enqueue", &self.enqueue(templates::CHANGES_TRUNCATE))],
            ),
            templates::fill(
                templates::TRUNCATE_TRIGGER,
                &[("table", &self.table.quoted())],
            ),
        ]
    }

    /// The backfill statement: `$1` = last key of the previous chunk (null to start), `$2` =
    /// chunk size, `$3` = one account only (null = every customer).
    pub fn backfill_chunk(&self) -> String {
        templates::fill(
            templates::BACKFILL_CHUNK,
            &[
                ("account", &self.account_of("c")),
                ("account_type", &self.account_type),
                ("conflict", self.conflict()),
                ("table", &self.table.quoted()),
                ("key", &self.key),
                ("key_type", &self.key_type),
                ("projection", &self.projection("chunk")),
            ],
        )
    }

    /// A statement that fails when the mapping's filter cannot be evaluated on the table.
    pub fn filter_check(&self) -> String {
        templates::fill(
            templates::FILTER_CHECK,
            &[("table", &self.table.quoted()), ("filter", &self.filter)],
        )
    }

    /// Counts the source table's rows (for the backfill progress bar).
    pub fn count_rows(&self) -> String {
        templates::fill(
            templates::COUNT_ROWS,
            &[
                ("table", &self.table.quoted()),
                ("account", &self.account_of("c")),
                ("account_type", &self.account_type),
            ],
        )
    }

    /// The distinct non-empty values of `column` as text, at most `limit` (for the interests
    /// of an `[[interests]]` column that `setup --mailchimp` creates).
    pub fn interest_values(&self, column: &str, limit: usize) -> String {
        templates::fill(
            templates::INTEREST_VALUES,
            &[
                ("table", &self.table.quoted()),
                ("column", &quote_ident(column)),
                ("limit", &limit.to_string()),
            ],
        )
    }

    /// The placeholders every statement over chunks of customers shares.
    fn chunk_values(&self) -> [(&'static str, String); 5] {
        [
            ("account", self.account_of("c")),
            ("table", self.table.quoted()),
            ("key", self.key.clone()),
            ("email", self.email.clone()),
            ("projection", self.projection("chunk")),
        ]
    }

    fn fill_chunk(&self, template: &str, extra: &[(&str, &str)]) -> String {
        let values = self.chunk_values();
        let mut all: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        templates::fill(template, &all)
    }

    /// The chunk of the customers at the addresses `$1`, of the account `account_param`.
    fn customers_at(&self, account_param: &str) -> String {
        templates::fill(
            templates::CUSTOMERS_AT,
            &[
                ("account", &self.account_of("c")),
                ("account_param", account_param),
                ("table", &self.table.quoted()),
                ("key", &self.key),
                ("email", &self.email),
            ],
        )
    }

    /// After an inbound event: `$1` addresses (lower-cased), `$2` the consent Mailchimp holds,
    /// `$3` the account (`''` with one account).
    pub fn inbound_applied(&self) -> String {
        self.fill_chunk(
            templates::INBOUND_APPLIED,
            &[("customers_at", &self.customers_at("$3"))],
        )
    }

    /// The customers of a page of members: `$1` addresses (lower-cased), `$2` the account
    /// (`''` with one account).
    pub fn reconcile_customers(&self) -> String {
        self.fill_chunk(
            templates::RECONCILE_CUSTOMERS,
            &[("customers_at", &self.customers_at("$2"))],
        )
    }

    /// Every customer that should be in the audience and has nothing queued.
    pub fn reconcile_wanted(&self) -> String {
        self.fill_chunk(templates::RECONCILE_WANTED, &[])
    }

    /// Queues the customers whose changes the capture guard held, and deletes what it read (see
    /// the template): `$1` the key column of the mapping they were held under.
    pub fn drift_replay(&self) -> String {
        let changes = format!(
            "{}\nunion all\n{}",
            templates::CHANGES_REQUEUE.trim_end(),
            templates::CHANGES_GONE.trim_end()
        );
        templates::fill(
            templates::DRIFT_REPLAY,
            &[
                ("table", &self.table.quoted()),
                ("key", &self.key),
                ("key_literal", &quote_literal(&self.key_column)),
                ("email_literal", &quote_literal(&self.email_column)),
                ("projection", &self.projection("chunk")),
                ("enqueue", &self.enqueue(&changes)),
            ],
        )
    }

    /// Records what Mailchimp holds for customers and queues them again (see the template).
    pub fn reconcile_requeue(&self) -> String {
        let enqueue = self.enqueue(templates::CHANGES_REQUEUE);
        self.fill_chunk(
            templates::RECONCILE_REQUEUE,
            &[("enqueue", &enqueue), ("conflict", self.conflict())],
        )
    }
}

/// Reads a table's columns from the catalog (empty when the table does not exist).
pub async fn table_columns(
    client: &impl tokio_postgres::GenericClient,
    table: &TableName,
) -> Result<Vec<Column>> {
    let rows = client
        .query(queries::TABLE_COLUMNS, &[&table.schema, &table.name])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Column {
            name: r.get(0),
            sql_type: r.get(1),
            type_oid: r.get(2),
            category: r.get(3),
        })
        .collect())
}
