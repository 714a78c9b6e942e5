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
    /// `[[interests]]`: interest categories (Mailchimp's groups) set from columns.
    #[serde(default)]
    pub interests: Vec<InterestCategoryMapping>,
    /// `[marketing_permissions]`: a GDPR marketing permission's text, as the audience names it
    /// → boolean column.
    #[serde(default)]
    pub marketing_permissions: BTreeMap<String, String>,
}

/// One `[[interests]]` entry: an interest category and where its interests come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterestCategoryMapping {
    /// The category's title in the audience (matched ignoring case).
    pub category: String,
    /// How the category is shown on forms; used when chimpsync creates it.
    #[serde(rename = "type")]
    pub kind: InterestKind,
    /// The column whose value names the one interest that is on (the category's others are
    /// off; NULL turns them all off).
    pub column: Option<String>,
    /// Interest name → boolean column: each interest on when its column is true.
    pub columns: Option<BTreeMap<String, String>>,
}

impl InterestCategoryMapping {
    /// The `[[interests]]` key of this entry, for messages.
    pub fn key(&self) -> String {
        format!("interests[{:?}]", self.category)
    }

    /// The columns this entry reads, each with the mapping key that names it.
    pub fn source_columns(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        if let Some(column) = &self.column {
            out.push((format!("{}.column", self.key()), column.as_str()));
        }
        for (name, column) in self.columns.iter().flatten() {
            out.push((format!("{}.columns.{name}", self.key()), column.as_str()));
        }
        out
    }
}

/// An interest category's type, as Mailchimp names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterestKind {
    /// Any number of interests on.
    Checkboxes,
    /// One interest, from a drop-down list.
    Dropdown,
    /// One interest, from radio buttons.
    Radio,
    /// Not shown on forms.
    Hidden,
}

impl InterestKind {
    /// Mailchimp's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            InterestKind::Checkboxes => "checkboxes",
            InterestKind::Dropdown => "dropdown",
            InterestKind::Radio => "radio",
            InterestKind::Hidden => "hidden",
        }
    }
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
        self.validate_interests()?;
        for (text, column) in &self.marketing_permissions {
            if text.trim().is_empty() {
                return Err(MappingError(
                    "marketing_permissions: a permission's text must not be empty".into(),
                ));
            }
            if column.trim().is_empty() {
                return Err(MappingError(format!(
                    "marketing_permissions.{text:?}: the column name must not be empty"
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

    fn validate_interests(&self) -> Result<(), MappingError> {
        let mut titles = std::collections::BTreeSet::new();
        for entry in &self.interests {
            let key = entry.key();
            if entry.category.trim().is_empty() {
                return Err(MappingError(
                    "interests: a category must have a title (category = \"...\")".into(),
                ));
            }
            if !titles.insert(entry.category.trim().to_lowercase()) {
                return Err(MappingError(format!(
                    "{key}: the category is mapped twice (titles are matched ignoring case)"
                )));
            }
            match (&entry.column, &entry.columns) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(MappingError(format!(
                        "{key}: give either column (its value names the interest that is on) \
                         or columns (interest name = boolean column), not both or neither"
                    )))
                }
                (Some(column), None) if column.trim().is_empty() => {
                    return Err(MappingError(format!(
                        "{key}.column: the column name must not be empty"
                    )))
                }
                (None, Some(columns)) if columns.is_empty() => {
                    return Err(MappingError(format!(
                        "{key}.columns: name at least one interest"
                    )))
                }
                _ => {}
            }
            let mut names = std::collections::BTreeSet::new();
            for (name, column) in entry.columns.iter().flatten() {
                if name.trim().is_empty() || column.trim().is_empty() {
                    return Err(MappingError(format!(
                        "{key}.columns: interest names and column names must not be empty"
                    )));
                }
                if !names.insert(name.trim().to_lowercase()) {
                    return Err(MappingError(format!(
                        "{key}.columns: interest {name:?} is named twice (names are matched ignoring case)"
                    )));
                }
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
        for entry in &self.interests {
            columns.extend(entry.source_columns());
        }
        for (text, column) in &self.marketing_permissions {
            columns.push((format!("marketing_permissions.{text:?}"), column));
        }
        columns
    }

    /// The columns that must be boolean: consent, marketing permissions and the interests of
    /// `columns` entries, each with the key that names it.
    pub fn boolean_columns(&self) -> Vec<(String, &str)> {
        let mut out: Vec<(String, &str)> = Vec::new();
        if let Some(consent) = &self.source.consent {
            out.push(("source.consent".to_string(), consent));
        }
        for entry in &self.interests {
            if entry.columns.is_some() {
                out.extend(entry.source_columns());
            }
        }
        for (text, column) in &self.marketing_permissions {
            out.push((format!("marketing_permissions.{text:?}"), column));
        }
        out
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

    const GROUPS: &str = r#"
[source]
table = "customers"
key = "id"
email = "email"

[[interests]]
category = "Pet type"
type = "dropdown"
column = "pet_type"

[[interests]]
category = "Newsletters"
type = "checkboxes"
columns = { "Monthly news" = "wants_news", "Offers" = "wants_offers" }

[marketing_permissions]
"Email" = "consent_contact"
"#;

    #[test]
    fn interest_groups_and_marketing_permissions_parse() {
        let m = Mapping::parse(GROUPS).unwrap();
        assert_eq!(m.interests.len(), 2);
        assert_eq!(m.interests[0].kind, InterestKind::Dropdown);
        assert_eq!(m.interests[0].column.as_deref(), Some("pet_type"));
        assert_eq!(
            m.interests[1].columns.as_ref().unwrap()["Offers"],
            "wants_offers"
        );
        assert_eq!(m.marketing_permissions["Email"], "consent_contact");
        let columns: Vec<&str> = m.columns().into_iter().map(|(_, c)| c).collect();
        for c in ["pet_type", "wants_news", "wants_offers", "consent_contact"] {
            assert!(columns.contains(&c), "{c} missing from {columns:?}");
        }
        let booleans: Vec<String> = m.boolean_columns().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            booleans,
            vec![
                "interests[\"Newsletters\"].columns.Monthly news",
                "interests[\"Newsletters\"].columns.Offers",
                "marketing_permissions.\"Email\"",
            ]
        );
    }

    #[test]
    fn an_interest_category_needs_exactly_one_source_and_a_known_type() {
        let both = GROUPS.replace(
            "column = \"pet_type\"",
            "column = \"pet_type\"\ncolumns = { \"Dog\" = \"is_dog\" }",
        );
        let e = Mapping::parse(&both).unwrap_err().0;
        assert!(
            e.contains("interests[\"Pet type\"]") && e.contains("not both"),
            "{e}"
        );
        let neither = GROUPS.replace("column = \"pet_type\"", "");
        let e = Mapping::parse(&neither).unwrap_err().0;
        assert!(e.contains("interests[\"Pet type\"]"), "{e}");
        let bad_type = GROUPS.replace("\"dropdown\"", "\"select\"");
        let e = Mapping::parse(&bad_type).unwrap_err().0;
        assert!(e.contains("select"), "{e}");
        let twice = format!(
            "{GROUPS}\n[[interests]]\ncategory = \"pet TYPE\"\ntype = \"radio\"\ncolumn = \"x\"\n"
        )
        .replace(
            "[marketing_permissions]\n\"Email\" = \"consent_contact\"\n",
            "",
        );
        let e = Mapping::parse(&twice).unwrap_err().0;
        assert!(e.contains("mapped twice"), "{e}");
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
