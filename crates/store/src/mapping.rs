//! The mapping file (`chimpsync.toml`): which table, which columns, which audience, and the
//! policies for removal, new contacts and re-consent. Parsing is strict: an unknown key, a
//! malformed merge tag or a missing required key is refused with an error that names the key.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The parsed mapping file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// `[source]`: the customer table.
    pub source: Source,
    /// `[audience]`: the Mailchimp audience and its policies.
    #[serde(default)]
    pub audience: AudienceSettings,
    /// `[merge_fields]`: Mailchimp merge tag → source column.
    #[serde(default)]
    pub merge_fields: BTreeMap<String, String>,
    /// `[tags]`: columns whose values become tags.
    #[serde(default)]
    pub tags: Tags,
    /// `[inbound]`: statements applying Mailchimp-side events to the table.
    #[serde(default)]
    pub inbound: Inbound,
}

/// `[source]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `schema.table` or `table` (schema `public`); a part may be double-quoted.
    pub table: String,
    /// The primary-key column (any type; carried as text).
    pub key: String,
    /// The email column.
    pub email: String,
    /// Optional boolean consent column: false or NULL means "must not be subscribed".
    pub consent: Option<String>,
    /// Optional SQL condition; a row that stops matching counts as removed.
    pub filter: Option<String>,
    /// Optional column naming the account (business) a customer belongs to (any type; carried
    /// as text). Set, chimpsync serves many Mailchimp accounts (`chimpsync.accounts`); absent,
    /// one account from the environment.
    pub account: Option<String>,
}

/// `[audience]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceSettings {
    /// The audience (list) id; `MAILCHIMP_AUDIENCE_ID` overrides it.
    pub id: Option<String>,
    /// What a removed row does in Mailchimp.
    #[serde(default)]
    pub on_remove: OnRemove,
    /// Status of a new contact that has consent.
    #[serde(default)]
    pub new_status: NewStatus,
    /// What happens when an opted-out contact consents again.
    #[serde(default)]
    pub resubscribe: Resubscribe,
}

/// `[audience].on_remove`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnRemove {
    /// Archive the member (`DELETE`), keeping its history; the default.
    #[default]
    Archive,
    /// Set the member to unsubscribed.
    Unsubscribe,
    /// Delete permanently (GDPR); the address can never be re-added through the API.
    DeletePermanent,
}

/// `[audience].new_status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NewStatus {
    /// Subscribe directly; the default.
    #[default]
    Subscribed,
    /// Double opt-in: Mailchimp sends a confirmation mail.
    Pending,
}

/// `[audience].resubscribe`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resubscribe {
    /// Set the member to pending: Mailchimp asks the contact to confirm; the default.
    #[default]
    Pending,
    /// Park the change with the reason, for a human to decide.
    Park,
}

/// `[tags]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tags {
    /// Each non-null value of these columns is a tag.
    #[serde(default)]
    pub columns: Vec<String>,
}

/// `[inbound]`: SQL statements run when Mailchimp reports an event (`$1` = the address).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inbound {
    /// Run when a contact unsubscribes in Mailchimp.
    pub unsubscribe: Option<String>,
    /// Run when an address bounces (cleaned).
    pub cleaned: Option<String>,
    /// Run when a contact changes address in Mailchimp (`$2` = the new address).
    pub upemail: Option<String>,
    /// Run when a contact subscribes in Mailchimp.
    pub subscribe: Option<String>,
    /// Run when a contact edits their profile in Mailchimp.
    pub profile: Option<String>,
}

/// Why a mapping file was refused. The message always names the offending key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError(pub String);

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MappingError {}

/// A qualified table name, unquoted parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The schema (`public` when the mapping names none).
    pub schema: String,
    /// The table.
    pub name: String,
}

impl TableName {
    /// Reads `table` or `schema.table` (schema `public` when none is named); a part may be
    /// double-quoted, as [`TableName::quoted`] writes it.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let parts = split_qualified(text)?;
        match parts.as_slice() {
            [name] => Ok(TableName {
                schema: "public".into(),
                name: name.clone(),
            }),
            [schema, name] => Ok(TableName {
                schema: schema.clone(),
                name: name.clone(),
            }),
            _ => Err(format!("{text:?} is not `table` or `schema.table`")),
        }
    }

    /// The name as SQL, each part quoted.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Quotes an identifier for SQL: wraps it in double quotes and doubles any double quote inside.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl Mapping {
    /// Parses and validates a mapping file's text.
    pub fn parse(text: &str) -> Result<Mapping, MappingError> {
        let mapping: Mapping = toml::from_str(text)
            .map_err(|e| MappingError(format!("mapping file: {}", e.message())))?;
        mapping.validate()?;
        Ok(mapping)
    }

    fn validate(&self) -> Result<(), MappingError> {
        let required = [
            ("source.table", &self.source.table),
            ("source.key", &self.source.key),
            ("source.email", &self.source.email),
        ];
        for (key, value) in required {
            if value.trim().is_empty() {
                return Err(MappingError(format!("{key}: must not be empty")));
            }
        }
        self.table()
            .map_err(|e| MappingError(format!("source.table: {e}")))?;
        for (tag, column) in &self.merge_fields {
            let valid = !tag.is_empty()
                && tag.len() <= 10
                && tag
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(MappingError(format!(
                    "merge_fields.{tag}: a merge tag must be 1 to 10 characters of A-Z, 0-9 and _"
                )));
            }
            if tag == "EMAIL" {
                return Err(MappingError(
                    "merge_fields.EMAIL: the address comes from source.email, not a merge field"
                        .into(),
                ));
            }
            if column.trim().is_empty() {
                return Err(MappingError(format!(
                    "merge_fields.{tag}: the column name must not be empty"
                )));
            }
        }
        if let Some(filter) = &self.source.filter {
            if filter.trim().is_empty() {
                return Err(MappingError(
                    "source.filter: must not be empty when given".into(),
                ));
            }
            if filter.contains(';') {
                return Err(MappingError(
                    "source.filter: must be a single SQL condition (no ';')".into(),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for column in &self.tags.columns {
            if !seen.insert(column) {
                return Err(MappingError(format!(
                    "tags.columns: {column:?} is listed twice"
                )));
            }
        }
        if let Some(id) = &self.audience.id {
            if id.trim().is_empty() {
                return Err(MappingError(
                    "audience.id: must not be empty when given".into(),
                ));
            }
        }
        Ok(())
    }

    /// Whether this mapping serves many accounts (`[source].account`).
    pub fn multi_account(&self) -> bool {
        self.source.account.is_some()
    }

    /// The source table, split into schema and name.
    pub fn table(&self) -> Result<TableName, String> {
        TableName::parse(&self.source.table)
    }

    /// Every column the mapping reads, with the key that names it (for error messages).
    pub fn columns(&self) -> Vec<(String, &str)> {
        let mut columns = vec![
            ("source.key".to_string(), self.source.key.as_str()),
            ("source.email".to_string(), self.source.email.as_str()),
        ];
        if let Some(consent) = &self.source.consent {
            columns.push(("source.consent".to_string(), consent));
        }
        if let Some(account) = &self.source.account {
            columns.push(("source.account".to_string(), account));
        }
        for (tag, column) in &self.merge_fields {
            columns.push((format!("merge_fields.{tag}"), column));
        }
        for column in &self.tags.columns {
            columns.push(("tags.columns".to_string(), column));
        }
        columns
    }
}

/// Splits `a.b` / `"A b"."c.d"` into unquoted parts. Unquoted parts are taken exactly as written
/// (no case folding), so `Customer List` names the table `"Customer List"`.
fn split_qualified(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if current.is_empty() && !quoted_part => {
                quoted_part = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            current.push('"');
                        }
                        Some('"') => break,
                        Some(ch) => current.push(ch),
                        None => return Err(format!("{text:?} has an unclosed quote")),
                    }
                }
            }
            '.' => {
                if current.is_empty() {
                    return Err(format!("{text:?} has an empty name part"));
                }
                parts.push(std::mem::take(&mut current));
                quoted_part = false;
            }
            _ if quoted_part => return Err(format!("{text:?}: text after a closing quote")),
            _ => current.push(c),
        }
    }
    if current.is_empty() {
        return Err(format!("{text:?} has an empty name part"));
    }
    parts.push(current);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[source]
table   = "public.customers"
key     = "id"
email   = "email"
consent = "consent_contact"
filter  = "deleted_at is null"

[audience]
id          = "a1b2c3d4e5"
on_remove   = "archive"
new_status  = "subscribed"
resubscribe = "pending"

[merge_fields]
FNAME = "first_name"
LNAME = "last_name"

[tags]
columns = ["customer_type"]

[inbound]
unsubscribe = "update public.customers set consent_contact = false where lower(email) = lower($1)"
cleaned     = "update public.customers set consent_contact = false where lower(email) = lower($1)"
upemail     = "update public.customers set email = $2 where lower(email) = lower($1)"
"#;

    #[test]
    fn the_contract_example_parses() {
        let m = Mapping::parse(EXAMPLE).unwrap();
        assert_eq!(m.source.consent.as_deref(), Some("consent_contact"));
        assert_eq!(m.audience.on_remove, OnRemove::Archive);
        assert_eq!(m.merge_fields["LNAME"], "last_name");
        assert_eq!(m.tags.columns, vec!["customer_type"]);
        assert_eq!(m.table().unwrap().quoted(), "\"public\".\"customers\"");
        assert!(m.inbound.upemail.unwrap().contains("$2"));
    }

    #[test]
    fn only_table_key_and_email_are_required() {
        let m = Mapping::parse("[source]\ntable='c'\nkey='id'\nemail='e'\n").unwrap();
        assert_eq!(m.audience.new_status, NewStatus::Subscribed);
        assert_eq!(m.audience.resubscribe, Resubscribe::Pending);
        assert!(m.merge_fields.is_empty());
        assert_eq!(
            m.table().unwrap(),
            TableName {
                schema: "public".into(),
                name: "c".into()
            }
        );
    }

    #[test]
    fn a_missing_required_key_is_named() {
        let err = Mapping::parse("[source]\ntable='c'\nkey='id'\n").unwrap_err();
        assert!(err.0.contains("email"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err =
            Mapping::parse("[source]\ntable='c'\nkey='id'\nemail='e'\nemial='x'\n").unwrap_err();
        assert!(err.0.contains("emial"), "{err}");
        let err = Mapping::parse(
            "[source]\ntable='c'\nkey='id'\nemail='e'\n[audience]\nid='x'\nonremove='archive'\n",
        )
        .unwrap_err();
        assert!(err.0.contains("onremove"), "{err}");
    }

    #[test]
    fn a_bad_policy_value_is_named() {
        let err = Mapping::parse(
            "[source]\ntable='c'\nkey='id'\nemail='e'\n[audience]\non_remove='shred'\n",
        )
        .unwrap_err();
        assert!(
            err.0.contains("shred") && err.0.contains("archive"),
            "{err}"
        );
    }

    #[test]
    fn merge_tags_must_be_upper_case_and_short() {
        for tag in ["fname", "FIRST-NAME", "ABCDEFGHIJK", "EMAIL"] {
            let text = format!(
                "[source]\ntable='c'\nkey='id'\nemail='e'\n[merge_fields]\n\"{tag}\" = 'x'\n"
            );
            let err = Mapping::parse(&text).unwrap_err();
            assert!(err.0.contains(&format!("merge_fields.{tag}")), "{err}");
        }
        let ok = "[source]\ntable='c'\nkey='id'\nemail='e'\n[merge_fields]\nSTORE_01 = 'store'\n";
        assert!(Mapping::parse(ok).is_ok());
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let err = Mapping::parse("[source]\ntable='c'\nkey='id'\nemail='e").unwrap_err();
        assert!(err.0.starts_with("mapping file:"), "{err}");
    }

    #[test]
    fn table_names_with_quotes_spaces_and_capitals_split_correctly() {
        let cases = [
            ("Customer List", ("public", "Customer List")),
            ("\"Customer List\"", ("public", "Customer List")),
            ("crm.\"Odd \"\"Name\"\".x\"", ("crm", "Odd \"Name\".x")),
            ("\"My Schema\".customers", ("My Schema", "customers")),
        ];
        for (text, (schema, name)) in cases {
            let m = Mapping::parse(&format!(
                "[source]\ntable={}\nkey='id'\nemail='e'\n",
                toml_string(text)
            ))
            .unwrap();
            assert_eq!(
                m.table().unwrap(),
                TableName {
                    schema: schema.into(),
                    name: name.into()
                },
                "{text}"
            );
        }
        for bad in ["a..b", "a.b.c", "\"open", ".x"] {
            let err = Mapping::parse(&format!(
                "[source]\ntable={}\nkey='id'\nemail='e'\n",
                toml_string(bad)
            ))
            .unwrap_err();
            assert!(err.0.starts_with("source.table"), "{bad}: {err}");
        }
    }

    #[test]
    fn identifiers_are_quoted_safely() {
        assert_eq!(quote_ident("E-mail"), "\"E-mail\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    fn toml_string(s: &str) -> String {
        toml::Value::String(s.to_string()).to_string()
    }
}
