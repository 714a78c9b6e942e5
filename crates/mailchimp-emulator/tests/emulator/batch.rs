//! Batch subscribe: `POST /lists/{id}`.

use serde_json::{json, Value};

use crate::harness::{Harness, LIST};

fn batch_path() -> String {
    format!("/lists/{LIST}")
}

#[tokio::test]
async fn batch_subscribe_reports_created_updated_and_failed_members() {
    let h = Harness::start().await;
    h.upsert("existing@mail.org", "subscribed").await;
    h.upsert("left@mail.org", "subscribed").await;
    h.emu.simulate_unsubscribe(LIST, "left@mail.org");
    let a = h
        .post(
            &batch_path(),
            &json!({
                "members": [
                    {"email_address": "new@mail.org", "status": "subscribed", "merge_fields": {"FNAME": "New"}, "tags": ["t1"]},
                    {"email_address": "new2@mail.org", "status_if_new": "pending"},
                    {"email_address": "existing@mail.org", "status": "unsubscribed", "merge_fields": {"LNAME": "Ex"}},
                    {"email_address": "not-an-address", "status": "subscribed"},
                    {"email_address": "fake@example.com", "status": "subscribed"},
                    {"email_address": "left@mail.org", "status": "subscribed"},
                    {"email_address": "bad@mail.org", "status": "subscribed", "merge_fields": {"PHONE": true}},
                ],
                "update_existing": true,
            }),
        )
        .await;
    let r = a.ok();
    assert_eq!(r["total_created"], 2);
    assert_eq!(r["total_updated"], 1);
    assert_eq!(r["error_count"], 4);
    assert_eq!(r["new_members"][0]["email_address"], "new@mail.org");
    assert_eq!(r["new_members"][0]["tags"][0]["name"], "t1");
    assert_eq!(r["new_members"][1]["status"], "pending");
    assert_eq!(r["updated_members"][0]["status"], "unsubscribed");
    assert_eq!(r["updated_members"][0]["merge_fields"]["LNAME"], "Ex");
    let errors = r["errors"].as_array().unwrap();
    let by_email = |e: &str| {
        errors
            .iter()
            .find(|x| x["email_address"] == e)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        by_email("not-an-address")["error"],
        "Please provide a valid email address."
    );
    assert_eq!(
        by_email("fake@example.com")["error"],
        "fake@example.com looks fake or invalid, please enter a real email address."
    );
    assert_eq!(
        by_email("left@mail.org")["error"],
        "left@mail.org is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."
    );
    let bad = by_email("bad@mail.org");
    assert_eq!(bad["error"], "Your merge fields were invalid.");
    assert_eq!(bad["field"], "PHONE");
    assert!(bad["field_message"].is_string());
    for e in errors {
        assert_eq!(e["error_code"], "ERROR_GENERIC");
    }
    assert!(r["_links"].is_array());
    assert_eq!(h.emu.members(LIST).len(), 4);
}

#[tokio::test]
async fn batch_without_update_existing_reports_contact_exists() {
    let h = Harness::start().await;
    h.upsert("here@mail.org", "subscribed").await;
    let a = h
        .post(
            &batch_path(),
            &json!({"members": [{"email_address": "here@mail.org", "status": "unsubscribed"}]}),
        )
        .await;
    let r = a.ok();
    assert_eq!(r["total_updated"], 0);
    assert_eq!(
        r["errors"],
        json!([{"email_address": "here@mail.org",
                "error": "here@mail.org is already a list member, do you want to update? please provide update_existing:true in the request body",
                "error_code": "ERROR_CONTACT_EXISTS"}])
    );
    assert_eq!(
        h.emu.member(LIST, "here@mail.org").unwrap().status,
        "subscribed"
    );
}

#[tokio::test]
async fn more_than_500_members_are_refused() {
    let h = Harness::start().await;
    let members: Vec<Value> = (0..501)
        .map(|i| json!({"email_address": format!("m{i}@mail.org"), "status": "subscribed"}))
        .collect();
    let a = h.post(&batch_path(), &json!({"members": members})).await;
    let p = a.problem(400, "Invalid Resource");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("at most 500 members"),
        "{p}"
    );
    assert!(h.emu.members(LIST).is_empty());
}

#[tokio::test]
async fn batch_tags_apply_to_existing_members_only_with_sync_tags() {
    let h = Harness::start().await;
    let first = json!({"members": [{"email_address": "t@mail.org", "status": "subscribed", "tags": ["a", "b"]}]});
    h.post(&batch_path(), &first).await.ok();
    let again = json!({"members": [{"email_address": "t@mail.org", "tags": ["c"]}], "update_existing": true});
    h.post(&batch_path(), &again).await.ok();
    assert_eq!(
        h.emu.member(LIST, "t@mail.org").unwrap().tags,
        vec!["a", "b"]
    );
    let synced = json!({"members": [{"email_address": "t@mail.org", "tags": ["B", "c"]}], "update_existing": true, "sync_tags": true});
    h.post(&batch_path(), &synced).await.ok();
    assert_eq!(
        h.emu.member(LIST, "t@mail.org").unwrap().tags,
        vec!["b", "c"]
    );
}

#[tokio::test]
async fn a_batch_can_bring_back_archived_members_as_new() {
    let h = Harness::start().await;
    h.upsert("arch@mail.org", "subscribed").await;
    h.delete(&Harness::member_path("arch@mail.org")).await;
    let a = h
        .post(&batch_path(), &json!({"members": [{"email_address": "arch@mail.org", "status_if_new": "subscribed"}]}))
        .await;
    assert_eq!(a.ok()["total_created"], 1);
    assert_eq!(
        h.emu.member(LIST, "arch@mail.org").unwrap().status,
        "subscribed"
    );
}

#[tokio::test]
async fn a_batch_for_an_unknown_list_is_not_found() {
    let h = Harness::start().await;
    h.post("/lists/ffffffffff", &json!({"members": []}))
        .await
        .problem(404, "Resource Not Found");
}
