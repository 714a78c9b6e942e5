//! Member tags: `GET|POST /lists/{id}/members/{hash}/tags`.

use serde_json::json;

use crate::harness::{Harness, LIST};

#[tokio::test]
async fn tags_are_added_and_removed_case_insensitively_with_an_empty_204() {
    let h = Harness::start().await;
    h.upsert("tags@mail.org", "subscribed").await;
    let path = format!("{}/tags", Harness::member_path("tags@mail.org"));
    let a = h
        .post(&path, &json!({"tags": [{"name": "Customer", "status": "active"}, {"name": "beta", "status": "active"}], "is_syncing": true}))
        .await;
    assert_eq!(a.status, 204);
    assert!(a.raw.is_empty());
    assert_eq!(
        a.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let a = h
        .post(&path, &json!({"tags": [{"name": "CUSTOMER", "status": "active"}, {"name": "BETA", "status": "inactive"}]}))
        .await;
    assert_eq!(a.status, 204);
    let got = h.get(&path).await;
    let got = got.ok();
    assert_eq!(got["total_items"], 1);
    assert_eq!(
        got["tags"][0]["name"], "Customer",
        "the first spelling wins"
    );
    assert!(got["tags"][0]["id"].is_u64());
    assert!(got["tags"][0]["date_added"].is_string());
    assert_eq!(
        h.emu.member(LIST, "tags@mail.org").unwrap().tags,
        vec!["Customer"]
    );

    let m = h.get(&Harness::member_path("tags@mail.org")).await;
    assert_eq!(
        m.ok()["tags"],
        json!([{"id": got["tags"][0]["id"], "name": "Customer"}])
    );
    assert_eq!(m.ok()["tags_count"], 1);
}

#[tokio::test]
async fn tagging_an_archived_member_is_accepted() {
    let h = Harness::start().await;
    h.upsert("arch.tags@mail.org", "subscribed").await;
    h.delete(&Harness::member_path("arch.tags@mail.org")).await;
    let path = format!("{}/tags", Harness::member_path("arch.tags@mail.org"));
    let a = h
        .post(&path, &json!({"tags": [{"name": "x", "status": "active"}]}))
        .await;
    assert_eq!(a.status, 204);
}

#[tokio::test]
async fn a_tag_with_a_bad_status_is_invalid_resource() {
    let h = Harness::start().await;
    h.upsert("bad.tags@mail.org", "subscribed").await;
    let path = format!("{}/tags", Harness::member_path("bad.tags@mail.org"));
    let a = h
        .post(&path, &json!({"tags": [{"name": "x", "status": "on"}]}))
        .await;
    a.problem(400, "Invalid Resource");
    assert!(h
        .emu
        .member(LIST, "bad.tags@mail.org")
        .unwrap()
        .tags
        .is_empty());
}

#[tokio::test]
async fn member_tags_are_paged_ten_at_a_time_by_default() {
    let h = Harness::start().await;
    h.upsert("many.tags@mail.org", "subscribed").await;
    let path = format!("{}/tags", Harness::member_path("many.tags@mail.org"));
    let tags: Vec<_> = (0..12)
        .map(|i| json!({"name": format!("t{i}"), "status": "active"}))
        .collect();
    assert_eq!(h.post(&path, &json!({"tags": tags})).await.status, 204);
    let page = h.get(&path).await;
    assert_eq!(page.ok()["tags"].as_array().unwrap().len(), 10);
    assert_eq!(page.ok()["total_items"], 12);
    let all = h.get(&format!("{path}?count=1000")).await;
    assert_eq!(all.ok()["tags"].as_array().unwrap().len(), 12);
}
