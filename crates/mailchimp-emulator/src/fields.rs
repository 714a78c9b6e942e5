//! The `fields` and `exclude_fields` query parameters every GET takes: comma-separated paths,
//! sub-objects in dot notation (`fields=members.email_address,total_items`). A path walks into
//! every element of an array it meets, so `members.email_address` keeps that field of each
//! member. Applied to the finished answer, so no endpoint needs to know about them.

use serde_json::{Map, Value};

/// The paths of one parameter as a tree: a key whose subtree is empty names the whole value.
#[derive(Default)]
struct Tree(Map<String, Value>);

impl Tree {
    fn of(list: &str) -> Tree {
        let mut root = Map::new();
        for path in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut node = &mut root;
            for part in path.split('.') {
                let next = node
                    .entry(part.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(next) = next else { break };
                node = next;
            }
        }
        Tree(root)
    }
}

/// Keeps only what `tree` names.
fn keep(value: &mut Value, tree: &Map<String, Value>) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| keep(v, tree)),
        Value::Object(obj) => {
            obj.retain(|k, _| tree.contains_key(k));
            for (k, v) in obj.iter_mut() {
                if let Some(Value::Object(sub)) = tree.get(k) {
                    if !sub.is_empty() {
                        keep(v, sub);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Drops what `tree` names.
fn drop(value: &mut Value, tree: &Map<String, Value>) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| drop(v, tree)),
        Value::Object(obj) => {
            for (k, sub) in tree {
                match sub {
                    Value::Object(sub) if !sub.is_empty() => {
                        if let Some(v) = obj.get_mut(k) {
                            drop(v, sub);
                        }
                    }
                    _ => {
                        obj.remove(k);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The answer `body` narrowed by `fields`, then without `exclude_fields`; unchanged when
/// neither is given (or the body is not JSON).
pub(crate) fn select(body: Vec<u8>, fields: Option<&str>, exclude: Option<&str>) -> Vec<u8> {
    let fields = fields.filter(|f| !f.trim().is_empty());
    let exclude = exclude.filter(|f| !f.trim().is_empty());
    if fields.is_none() && exclude.is_none() {
        return body;
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    if let Some(f) = fields {
        keep(&mut value, &Tree::of(f).0);
    }
    if let Some(e) = exclude {
        drop(&mut value, &Tree::of(e).0);
    }
    serde_json::to_vec(&value).unwrap_or(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(body: Value, fields: Option<&str>, exclude: Option<&str>) -> Value {
        let out = select(body.to_string().into_bytes(), fields, exclude);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn fields_walk_into_arrays_and_sub_objects() {
        let body = json!({
            "members": [{"email_address": "a@b.io", "status": "subscribed", "stats": {"x": 1, "y": 2}}],
            "total_items": 1, "list_id": "l"
        });
        assert_eq!(
            run(
                body.clone(),
                Some("members.email_address,members.stats.y,total_items"),
                None
            ),
            json!({"members": [{"email_address": "a@b.io", "stats": {"y": 2}}], "total_items": 1})
        );
        assert_eq!(
            run(body, None, Some("members.stats,list_id")),
            json!({"members": [{"email_address": "a@b.io", "status": "subscribed"}], "total_items": 1})
        );
    }

    #[test]
    fn without_parameters_the_body_is_untouched() {
        let raw = br#"{"b":1,"a":2}"#.to_vec();
        assert_eq!(select(raw.clone(), None, Some(" ")), raw);
    }
}
