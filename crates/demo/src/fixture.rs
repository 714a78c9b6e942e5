//! The pet business every demonstration and test starts from: its customer table, the mapping
//! file that syncs it, and the audience and key the emulator is started with. The SQL comes from
//! `sql/demo/` and enters Rust here only.

/// The customer table (`sql/demo/customers.sql`), empty.
pub const CUSTOMERS: &str = include_str!("../../../sql/demo/customers.sql");

/// The audience the mapping names.
pub const AUDIENCE: &str = "a1b2c3d4e5";

/// The API key the emulator is started with (the shape of a real key, data centre `us6`).
pub const API_KEY: &str = "0123456789abcdef0123456789abcdef-us6";

/// The mapping file for [`CUSTOMERS`] into [`AUDIENCE`]; `[audience]` policies are left at their
/// defaults.
pub const MAPPING: &str = r#"
[source]
table   = "public.customers"
key     = "id"
email   = "email"
consent = "consent_contact"
filter  = "deleted_at is null"

[audience]
id = "a1b2c3d4e5"

[merge_fields]
FNAME = "first_name"
LNAME = "last_name"
STORE = "store"

[tags]
columns = ["customer_type"]
"#;

/// What the demo maps besides [`MAPPING`]: the pet type as an interest group (the value names
/// the interest that is on) and the consent column as the audience's "Email" marketing
/// permission (the audience has GDPR fields).
pub const GROUPS: &str = r#"
[[interests]]
category = "Pet type"
type     = "dropdown"
column   = "pet_type"

[marketing_permissions]
"Email" = "consent_contact"
"#;

/// Two interest categories of the pet business, for the tests and the benchmark: the pet type
/// (its value names the interest) and the newsletters (one boolean column each).
pub const INTEREST_GROUPS: &str = r#"
[[interests]]
category = "Pet type"
type     = "dropdown"
column   = "pet_type"

[[interests]]
category = "Newsletters"
type     = "checkboxes"
columns  = { "Monthly news" = "wants_news", "Offers" = "wants_offers" }
"#;

/// The demo's mapping file: [`MAPPING`] with [`GROUPS`].
pub fn demo_mapping() -> String {
    format!("{MAPPING}{GROUPS}")
}

/// The merge field the mapping needs besides those every new audience has (`FNAME`, `LNAME`).
pub fn store_merge_field() -> mailchimp::NewMergeField {
    mailchimp::NewMergeField {
        tag: "STORE".into(),
        name: "Store".into(),
        r#type: "text".into(),
    }
}

/// `count` sample customers (`sql/demo/sample.sql`) for [`CUSTOMERS`].
pub fn sample(count: i64) -> String {
    include_str!("../../../sql/demo/sample.sql").replace("{{count}}", &count.to_string())
}

/// The demo's own queries.
pub(crate) mod queries {
    /// The table's side of the final comparison (`sql/demo/compare.sql`).
    pub const COMPARE: &str = include_str!("../../../sql/demo/compare.sql");
    /// The parked rows and their reasons (`sql/demo/parked.sql`).
    pub const PARKED: &str = include_str!("../../../sql/demo/parked.sql");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_names_the_audience_and_parses() {
        let mapping = store::Mapping::parse(MAPPING).unwrap();
        assert_eq!(mapping.audience.id.as_deref(), Some(AUDIENCE));
        assert_eq!(mapping.merge_fields[&store_merge_field().tag], "store");
        assert!(sample(3).contains("generate_series(1, 3)"));
        let demo = store::Mapping::parse(&demo_mapping()).unwrap();
        assert_eq!(demo.interests[0].column.as_deref(), Some("pet_type"));
        assert_eq!(demo.marketing_permissions["Email"], "consent_contact");
    }
}
