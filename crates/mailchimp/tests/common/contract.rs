//! Mailchimp's documented contract for the endpoints chimpsync uses, read from the committed
//! subset of the OpenAPI description (`tests/fixtures/openapi-subset.json`, produced by
//! `tests/fixtures/extract_openapi.py`), and checks of requests and responses against it.

use std::collections::BTreeMap;

use jsonschema::{Draft, Validator};
use serde_json::Value;

const SUBSET: &str = include_str!("../fixtures/openapi-subset.json");

/// One documented operation.
pub struct Operation {
    /// `"PUT /lists/{list_id}/members/{subscriber_hash}"`.
    pub key: String,
    method: String,
    segments: Vec<String>,
    request: Option<Validator>,
    response: Option<Validator>,
    /// 200 or 204.
    pub response_status: u16,
    query: BTreeMap<String, (Value, Validator)>,
}

/// The loaded subset.
pub struct Contract {
    operations: Vec<Operation>,
    problem: Validator,
    /// The raw subset, for tests that inspect it.
    pub raw: Value,
}

fn validator(schema: &Value) -> Validator {
    // OpenAPI 3.0 schemas are a JSON Schema draft-4 dialect. Formats are not checked:
    // Mailchimp itself sends "" for unset `date-time` fields (e.g. `timestamp_signup`).
    jsonschema::options()
        .with_draft(Draft::Draft4)
        .should_validate_formats(false)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

fn errors(v: &Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{e} (at {})", e.instance_path))
        .collect()
}

impl Contract {
    /// Loads and compiles the committed subset.
    pub fn load() -> Contract {
        let raw: Value = serde_json::from_str(SUBSET).expect("openapi-subset.json is JSON");
        let mut operations = Vec::new();
        for (key, op) in raw["operations"].as_object().expect("operations") {
            let (method, path) = key.split_once(' ').expect("METHOD /path");
            let query = op["query"]
                .as_object()
                .map(|q| {
                    q.iter()
                        .map(|(name, schema)| (name.clone(), (schema.clone(), validator(schema))))
                        .collect()
                })
                .unwrap_or_default();
            operations.push(Operation {
                key: key.clone(),
                method: method.to_owned(),
                segments: path.split('/').skip(1).map(str::to_owned).collect(),
                request: op.get("request").map(validator),
                response: op.get("response").map(validator),
                response_status: op["response_status"].as_u64().expect("status") as u16,
                query,
            });
        }
        let problem = validator(&raw["problem"]);
        Contract {
            operations,
            problem,
            raw,
        }
    }

    /// Every documented operation key.
    pub fn keys(&self) -> Vec<&str> {
        self.operations.iter().map(|o| o.key.as_str()).collect()
    }

    /// The operation `method path` belongs to; `path` may carry the `/3.0` prefix.
    pub fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let path = path.strip_prefix("/3.0").unwrap_or(path);
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        self.operations.iter().find(|op| {
            op.method.eq_ignore_ascii_case(method)
                && op.segments.len() == segments.len()
                && op
                    .segments
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| want.starts_with('{') || want == got)
        })
    }

    /// Checks a request the client sent; returns the operation key, or every violation.
    pub fn check_request(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> Result<String, Vec<String>> {
        let op = self
            .operation(method, path)
            .ok_or_else(|| vec![format!("{method} {path} is not a documented operation")])?;
        let mut problems = Vec::new();
        for (name, value) in query {
            match op.query.get(name) {
                None => problems.push(format!("query parameter {name} is not documented")),
                Some((schema, v)) => {
                    let value = typed_query_value(schema, value);
                    for e in errors(v, &value) {
                        problems.push(format!("query parameter {name}: {e}"));
                    }
                }
            }
        }
        match (&op.request, body.is_empty()) {
            (Some(v), false) => match serde_json::from_slice::<Value>(body) {
                Ok(json) => problems.extend(errors(v, &json)),
                Err(e) => problems.push(format!("request body is not JSON: {e}")),
            },
            (Some(_), true) => problems.push("request body missing".to_owned()),
            (None, false) => problems.push("this operation takes no request body".to_owned()),
            (None, true) => {}
        }
        if problems.is_empty() {
            Ok(op.key.clone())
        } else {
            Err(problems
                .into_iter()
                .map(|p| format!("{}: {p}", op.key))
                .collect())
        }
    }

    /// Checks a response: a 2xx against the operation's documented status and schema, any
    /// other status against the problem document.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), Vec<String>> {
        let op = self
            .operation(method, path)
            .ok_or_else(|| vec![format!("{method} {path} is not a documented operation")])?;
        let fail = |msg: String| Err(vec![format!("{} → {status}: {msg}", op.key)]);
        if (200..300).contains(&status) {
            if status != op.response_status {
                return fail(format!("documented status is {}", op.response_status));
            }
            return match &op.response {
                None if body.is_empty() => Ok(()),
                None => fail("a 204 has a body".to_owned()),
                Some(v) => match serde_json::from_slice::<Value>(body) {
                    Ok(json) => as_result(errors(v, &json), &op.key),
                    Err(e) => fail(format!("body is not JSON: {e}")),
                },
            };
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(json) => as_result(errors(&self.problem, &json), &format!("{} problem", op.key)),
            Err(e) => fail(format!("error body is not JSON: {e}")),
        }
    }

    /// Checks a body against the problem document.
    pub fn check_problem(&self, body: &Value) -> Result<(), Vec<String>> {
        as_result(errors(&self.problem, body), "problem")
    }

    /// Checks a response body of `key` (e.g. `"GET /ping"`) directly.
    pub fn check_response_body(&self, key: &str, body: &Value) -> Result<(), Vec<String>> {
        let op = self
            .operations
            .iter()
            .find(|o| o.key == key)
            .unwrap_or_else(|| panic!("no operation {key}"));
        let v = op.response.as_ref().expect("a response schema");
        as_result(errors(v, body), key)
    }

    /// Checks a request body of `key` directly.
    pub fn check_request_body(&self, key: &str, body: &Value) -> Result<(), Vec<String>> {
        let op = self
            .operations
            .iter()
            .find(|o| o.key == key)
            .unwrap_or_else(|| panic!("no operation {key}"));
        let v = op.request.as_ref().expect("a request schema");
        as_result(errors(v, body), key)
    }
}

fn as_result(errors: Vec<String>, what: &str) -> Result<(), Vec<String>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into_iter().map(|e| format!("{what}: {e}")).collect())
    }
}

/// A query string value as the JSON value its schema describes.
fn typed_query_value(schema: &Value, raw: &str) -> Value {
    match schema["type"].as_str() {
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Some("number") => raw
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
        Some("array") => Value::Array(
            raw.split(',')
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        _ => Value::String(raw.to_owned()),
    }
}
