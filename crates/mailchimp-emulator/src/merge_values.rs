//! Merge values: how each field type takes a value, and the check of a write's values.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::MergeField;
use crate::problem::{json_type_name, ApiError, FieldError};

/// Longest merge value the emulator accepts (characters).
const MAX_MERGE_TEXT: usize = 255;

/// Normalizes one merge value for its field: `Ok(None)` clears the field.
fn normalize_merge(field: &MergeField, v: &Value) -> Result<Option<Value>, String> {
    let as_text = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(format!(
                "Schema describes string, {} found instead",
                json_type_name(other)
            )),
        }
    };
    match v {
        Value::Null => return Ok(None),
        Value::Bool(_) => return Err("Schema describes string, boolean found instead".to_owned()),
        _ => {}
    }
    match field.kind.as_str() {
        "number" => match v {
            Value::Number(_) => Ok(Some(v.clone())),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => {
                let s = s.trim();
                if let Ok(i) = s.parse::<i64>() {
                    Ok(Some(Value::from(i)))
                } else {
                    match s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                        Some(n) => Ok(Some(Value::Number(n))),
                        None => Err("Please enter a number".to_owned()),
                    }
                }
            }
            _ => Err("Please enter a number".to_owned()),
        },
        "address" => match v {
            Value::String(s) if s.trim().is_empty() => Ok(None),
            // Mailchimp also takes an address as one string with parts separated by two spaces.
            Value::String(s) if s.chars().count() <= MAX_MERGE_TEXT => Ok(Some(v.clone())),
            Value::Object(o) => {
                let part = |name: &str| -> Result<String, String> {
                    match o.get(name) {
                        None | Some(Value::Null) => Ok(String::new()),
                        Some(p) => as_text(p),
                    }
                };
                let mut addr = Map::new();
                for name in ["addr1", "addr2", "city", "state", "zip", "country"] {
                    let value = part(name)?;
                    let needed = matches!(name, "addr1" | "city" | "state" | "zip");
                    if needed && value.trim().is_empty() {
                        return Err("Please enter a complete address".to_owned());
                    }
                    addr.insert(name.to_owned(), Value::String(value));
                }
                Ok(Some(Value::Object(addr)))
            }
            _ => Err("Please enter a complete address".to_owned()),
        },
        _ => {
            let text = as_text(v)?;
            if text.is_empty() {
                return Ok(None);
            }
            if text.chars().count() > MAX_MERGE_TEXT {
                return Err(format!(
                    "Value must be {MAX_MERGE_TEXT} characters or fewer"
                ));
            }
            if let Some(choices) = field.choices() {
                if !choices.iter().any(|c| c.as_str() == Some(text.as_str())) {
                    return Err("Please choose one of the available options".to_owned());
                }
            }
            Ok(Some(Value::String(text)))
        }
    }
}

/// The changes a write makes: a tag and its new value, `None` to clear it.
pub(crate) type MergeChanges = Vec<(String, Option<Value>)>;

/// Checks the merge values of a write; on create every required field must end up set.
pub(crate) fn validate_merge(
    fields: &[MergeField],
    input: Option<&Map<String, Value>>,
    current: Option<&BTreeMap<String, Value>>,
    creating: bool,
    skip_validation: bool,
) -> Result<MergeChanges, ApiError> {
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    if let Some(input) = input {
        for (key, v) in input {
            // Unknown tags are dropped silently, like Mailchimp does.
            let Some(field) = fields.iter().find(|f| f.tag == *key) else {
                continue;
            };
            match normalize_merge(field, v) {
                Ok(None) if field.required && !skip_validation => {
                    errors.push(FieldError::new(&field.tag, "Please enter a value"))
                }
                Ok(value) => changes.push((field.tag.clone(), value)),
                Err(message) => errors.push(FieldError::new(&field.tag, message)),
            }
        }
    }
    if creating && !skip_validation {
        for field in fields.iter().filter(|f| f.required) {
            let provided = input.is_some_and(|i| i.contains_key(&field.tag));
            let present = current.is_some_and(|c| c.contains_key(&field.tag));
            if !provided && !present {
                errors.push(FieldError::new(&field.tag, "Please enter a value"));
            }
        }
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(ApiError::merge_fields_invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::default_options;

    fn field(kind: &str) -> MergeField {
        MergeField {
            merge_id: 9,
            tag: "F".into(),
            name: "F".into(),
            kind: kind.into(),
            required: false,
            default_value: String::new(),
            public: false,
            display_order: 1,
            options: default_options(kind),
            help_text: String::new(),
        }
    }

    #[test]
    fn number_fields_take_numbers_and_numeric_strings_only() {
        let f = field("number");
        assert_eq!(normalize_merge(&f, &json!(15.5)), Ok(Some(json!(15.5))));
        assert_eq!(normalize_merge(&f, &json!("42")), Ok(Some(json!(42))));
        assert_eq!(normalize_merge(&f, &json!("")), Ok(None));
        assert_eq!(
            normalize_merge(&f, &json!("abc")),
            Err("Please enter a number".into())
        );
    }

    #[test]
    fn text_longer_than_the_limit_and_booleans_are_refused() {
        let f = field("text");
        assert!(normalize_merge(&f, &json!("x".repeat(255))).is_ok());
        assert_eq!(
            normalize_merge(&f, &json!("x".repeat(256))),
            Err("Value must be 255 characters or fewer".into())
        );
        assert!(normalize_merge(&f, &json!(true)).is_err());
        assert_eq!(normalize_merge(&f, &json!(7)), Ok(Some(json!("7"))));
    }

    #[test]
    fn an_address_needs_its_four_parts() {
        let f = field("address");
        assert!(normalize_merge(
            &f,
            &json!({"addr1": "1 Main", "city": "A", "state": "GA", "zip": "1"})
        )
        .is_ok());
        assert_eq!(
            normalize_merge(&f, &json!({"addr1": "1 Main"})),
            Err("Please enter a complete address".into())
        );
    }
}
