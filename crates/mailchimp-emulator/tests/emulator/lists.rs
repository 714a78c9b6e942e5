//! Audiences and merge fields.

use serde_json::json;

use crate::harness::{Harness, LIST};

pub(crate) fn audience_body() -> serde_json::Value {
    json!({
        "name": "Customers",
        "contact": {"company": "Acme", "address1": "1 Main St", "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US"},
        "permission_reminder": "You are a customer.",
        "campaign_defaults": {"from_name": "Acme", "from_email": "news@acme.dev", "subject": "", "language": "en"},
        "email_type_option": false
    })
}

#[tokio::test]
async fn creating_an_audience_returns_a_list_object_with_a_fresh_id() {
    let h = Harness::start().await;
    let a = h.post("/lists", &audience_body()).await;
    let list = a.ok();
    let id = list["id"].as_str().unwrap();
    assert_eq!(id.len(), 10);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(list["name"], "Customers");
    assert_eq!(list["stats"]["member_count"], 0);
    let got = h.get(&format!("/lists/{id}")).await;
    assert_eq!(got.ok()["contact"]["company"], "Acme");
    let all = h.get("/lists").await;
    assert_eq!(all.ok()["total_items"], 2);
}

#[tokio::test]
async fn creating_an_audience_without_required_fields_names_them() {
    let h = Harness::start().await;
    let a = h
        .post("/lists", &json!({"name": "x", "contact": {"company": "c"}}))
        .await;
    let p = a.problem(400, "Invalid Resource");
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for want in [
        "permission_reminder",
        "contact.address1",
        "contact.city",
        "contact.country",
        "campaign_defaults.from_name",
        "email_type_option",
    ] {
        assert!(fields.contains(&want), "{want} not in {fields:?}");
    }
    assert!(!fields.contains(&"name"));
}

#[tokio::test]
async fn list_stats_count_members_by_status() {
    let h = Harness::start().await;
    h.upsert("s1@mail.org", "subscribed").await;
    h.upsert("s2@mail.org", "subscribed").await;
    h.upsert("u@mail.org", "unsubscribed").await;
    h.upsert("c@mail.org", "cleaned").await;
    let a = h.get(&format!("/lists/{LIST}")).await;
    let stats = &a.ok()["stats"];
    assert_eq!(stats["member_count"], 2);
    assert_eq!(stats["unsubscribe_count"], 1);
    assert_eq!(stats["cleaned_count"], 1);
    h.get("/lists/nope")
        .await
        .problem(404, "Resource Not Found");
}

#[tokio::test]
async fn new_audiences_have_the_default_merge_fields() {
    let h = Harness::start().await;
    let a = h.get(&format!("/lists/{LIST}/merge-fields")).await;
    let r = a.ok();
    assert_eq!(r["list_id"], LIST);
    assert_eq!(r["total_items"], 4);
    let tags: Vec<(&str, &str, u64)> = r["merge_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["tag"].as_str().unwrap(),
                f["type"].as_str().unwrap(),
                f["merge_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        vec![
            ("FNAME", "text", 1),
            ("LNAME", "text", 2),
            ("ADDRESS", "address", 3),
            ("PHONE", "phone", 4)
        ]
    );
    let f = &r["merge_fields"][0];
    for key in [
        "name",
        "required",
        "default_value",
        "public",
        "display_order",
        "options",
        "help_text",
        "list_id",
    ] {
        assert!(f.get(key).is_some(), "{key}");
    }
}

#[tokio::test]
async fn merge_fields_get_a_generated_tag_and_duplicates_are_refused() {
    let h = Harness::start().await;
    let path = format!("/lists/{LIST}/merge-fields");
    let a = h
        .post(&path, &json!({"name": "Joined", "type": "date"}))
        .await;
    assert_eq!(a.ok()["tag"], "MMERGE5");
    assert_eq!(a.ok()["merge_id"], 5);
    let a = h
        .post(
            &path,
            &json!({"name": "Other first", "type": "text", "tag": "FNAME"}),
        )
        .await;
    a.problem(400, "Invalid Resource");
    let a = h
        .post(&path, &json!({"name": "Bad", "type": "colour"}))
        .await;
    a.problem(400, "Invalid Resource");
    let a = h.post(&path, &json!({"type": "text"})).await;
    a.problem(400, "Invalid Resource");
    let m = h.upsert("mf@mail.org", "subscribed").await;
    assert_eq!(m["merge_fields"]["MMERGE5"], "");
}
