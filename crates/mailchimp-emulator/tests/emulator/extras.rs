//! The endpoints client libraries offer beyond chimpsync's own calls: tag search, member
//! search, the PATCHes of lists, merge fields and webhooks, `fields`/`exclude_fields` on every
//! GET and `include_total_contacts`.

use reqwest::Method;
use serde_json::json;

use crate::harness::{Harness, LIST};
use crate::lists::audience_body;
use crate::webhooks::Receiver;

#[tokio::test]
async fn tag_search_finds_the_audiences_tags_by_prefix() {
    let h = Harness::start().await;
    h.upsert("t@mail.org", "subscribed").await;
    let tags = format!("{}/tags", Harness::member_path("t@mail.org"));
    h.post(
        &tags,
        &json!({"tags": [{"name": "Customer", "status": "active"}, {"name": "cust-2024", "status": "active"}, {"name": "vip", "status": "active"}]}),
    )
    .await;
    let a = h.get(&format!("/lists/{LIST}/tag-search?name=cus")).await;
    let r = a.ok();
    assert_eq!(r["total_items"], 2);
    let names: Vec<&str> = r["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Customer", "cust-2024"]);
    assert!(r["tags"][0]["id"].is_u64());
    let all = h.get(&format!("/lists/{LIST}/tag-search")).await;
    assert_eq!(all.ok()["total_items"], 3);
    h.get("/lists/nolist/tag-search")
        .await
        .problem(404, "Resource Not Found");
}

#[tokio::test]
async fn search_members_finds_exact_addresses_and_names_in_the_callers_audiences() {
    let h = Harness::start().await;
    h.put(
        &Harness::member_path("ada@mail.org"),
        &json!({"email_address": "ada@mail.org", "status_if_new": "subscribed", "merge_fields": {"FNAME": "Ada", "LNAME": "Lovelace"}}),
    )
    .await
    .ok();
    h.put(
        &Harness::member_path("lovelace.fan@mail.org"),
        &json!({"email_address": "lovelace.fan@mail.org", "status_if_new": "subscribed"}),
    )
    .await
    .ok();
    let a = h.get("/search-members?query=ADA@mail.org").await;
    let r = a.ok();
    assert_eq!(r["exact_matches"]["total_items"], 1);
    assert_eq!(
        r["exact_matches"]["members"][0]["email_address"],
        "ada@mail.org"
    );
    assert_eq!(r["full_search"]["total_items"], 0);

    let a = h
        .get(&format!("/search-members?query=lovelace&list_id={LIST}"))
        .await;
    let r = a.ok();
    assert_eq!(r["exact_matches"]["total_items"], 0);
    assert_eq!(r["full_search"]["total_items"], 2, "a name and an address");

    h.get("/search-members?query=x&list_id=nolist")
        .await
        .problem(404, "Resource Not Found");
    h.get("/search-members")
        .await
        .problem(400, "Invalid Resource");
}

#[tokio::test]
async fn patch_list_needs_the_create_settings_and_keeps_what_it_leaves_out() {
    let h = Harness::start().await;
    let path = format!("/lists/{LIST}");
    let p = h.patch(&path, &json!({"name": "Renamed"})).await;
    p.problem(400, "Invalid Resource");
    // The spec's PATCH contact also requires state and zip.
    let mut body = audience_body();
    body["contact"].as_object_mut().unwrap().remove("zip");
    let p = h.patch(&path, &body).await;
    let fields: Vec<&str> = p.problem(400, "Invalid Resource")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["contact.zip"]);

    let mut body = audience_body();
    body["double_optin"] = json!(true);
    let a = h.patch(&path, &body).await;
    assert_eq!(a.ok()["name"], "Customers");
    assert_eq!(a.ok()["double_optin"], true);
    let mut body = audience_body();
    body["name"] = json!("Renamed");
    let a = h.patch(&path, &body).await;
    assert_eq!(a.ok()["name"], "Renamed");
    assert_eq!(a.ok()["double_optin"], true, "left out, so kept");
    h.patch("/lists/nolist", &audience_body())
        .await
        .problem(404, "Resource Not Found");
}

#[tokio::test]
async fn patch_merge_field_changes_what_it_gives_and_keeps_tags_unique() {
    let h = Harness::start().await;
    let path = format!("/lists/{LIST}/merge-fields/1");
    let a = h
        .patch(
            &path,
            &json!({"name": "Given name", "required": true, "help_text": "Yours"}),
        )
        .await;
    let f = a.ok();
    assert_eq!(f["name"], "Given name");
    assert_eq!(f["tag"], "FNAME");
    assert_eq!(f["type"], "text");
    assert_eq!(f["required"], true);
    assert_eq!(f["help_text"], "Yours");
    assert_eq!(h.get(&path).await.ok()["name"], "Given name");
    h.patch(&path, &json!({"required": false}))
        .await
        .problem(400, "Invalid Resource");
    h.patch(&path, &json!({"name": "x", "tag": "LNAME"}))
        .await
        .problem(400, "Invalid Resource");
    let a = h.patch(&path, &json!({"name": "x", "tag": "first"})).await;
    assert_eq!(a.ok()["tag"], "FIRST");
    h.patch(
        &format!("/lists/{LIST}/merge-fields/99"),
        &json!({"name": "x"}),
    )
    .await
    .problem(404, "Resource Not Found");
}

#[tokio::test]
async fn patch_webhook_changes_flags_and_validates_a_new_url() {
    let h = Harness::start().await;
    let r = Receiver::start().await;
    let hooks = format!("/lists/{LIST}/webhooks");
    let a = h.post(&hooks, &json!({"url": r.url("/a")})).await;
    let id = a.ok()["id"].as_str().unwrap().to_owned();
    h.post(&hooks, &json!({"url": r.url("/b")})).await.ok();
    let one = format!("{hooks}/{id}");

    let a = h
        .patch(
            &one,
            &json!({"sources": {"api": true}, "events": {"campaign": false}}),
        )
        .await;
    let w = a.ok();
    assert_eq!(w["url"], r.url("/a"));
    assert_eq!(
        w["sources"],
        json!({"user": true, "admin": true, "api": true})
    );
    assert_eq!(w["events"]["campaign"], false);
    assert_eq!(w["events"]["subscribe"], true);

    let a = h.patch(&one, &json!({"url": r.url("/c")})).await;
    assert_eq!(a.ok()["url"], r.url("/c"));
    assert_eq!(h.get(&one).await.ok()["sources"]["api"], true);
    let p = h.patch(&one, &json!({"url": r.url("/b")})).await;
    assert_eq!(
        p.problem(400, "Invalid Resource")["errors"][0]["field"],
        "url"
    );
    let p = h
        .patch(&one, &json!({"url": "http://127.0.0.1:9/nothing-listens"}))
        .await;
    p.problem(400, "Invalid Resource");
    assert_eq!(h.get(&one).await.ok()["url"], r.url("/c"));
    h.patch(&format!("{hooks}/nohook"), &json!({}))
        .await
        .problem(404, "Resource Not Found");
}

#[tokio::test]
async fn fields_and_exclude_fields_narrow_every_get() {
    let h = Harness::start().await;
    h.upsert("f@mail.org", "subscribed").await;
    let a = h
        .get(&format!(
            "/lists/{LIST}/members?fields=members.email_address,members.stats.avg_open_rate,total_items"
        ))
        .await;
    assert_eq!(
        a.ok(),
        &json!({"members": [{"email_address": "f@mail.org", "stats": {"avg_open_rate": 0}}], "total_items": 1})
    );
    let a = h
        .get(&format!(
            "{}?exclude_fields=_links,merge_fields,stats",
            Harness::member_path("f@mail.org")
        ))
        .await;
    let m = a.ok();
    assert_eq!(m["email_address"], "f@mail.org");
    for gone in ["_links", "merge_fields", "stats"] {
        assert!(m.get(gone).is_none(), "{gone}");
    }
    let a = h
        .get(&format!("/lists/{LIST}?fields=id,stats.member_count"))
        .await;
    assert_eq!(a.ok(), &json!({"id": LIST, "stats": {"member_count": 1}}));
    // Writes answer in full.
    let a = h
        .send(
            Method::PUT,
            &format!("{}?fields=id", Harness::member_path("f@mail.org")),
            Some(&json!({"status_if_new": "subscribed"})),
        )
        .await;
    assert!(a.ok().get("email_address").is_some());
}

#[tokio::test]
async fn include_total_contacts_counts_contacts_in_any_state() {
    let h = Harness::start().await;
    h.upsert("a@mail.org", "subscribed").await;
    h.upsert("b@mail.org", "unsubscribed").await;
    h.upsert("c@mail.org", "subscribed").await;
    h.delete(&Harness::member_path("c@mail.org")).await;
    let plain = h.get(&format!("/lists/{LIST}")).await;
    assert!(plain.ok()["stats"].get("total_contacts").is_none());
    let a = h
        .get(&format!("/lists/{LIST}?include_total_contacts=true"))
        .await;
    assert_eq!(a.ok()["stats"]["total_contacts"], 3);
    assert_eq!(a.ok()["stats"]["member_count"], 1);
}

#[tokio::test]
async fn the_allow_header_lists_the_new_methods() {
    let h = Harness::start().await;
    let cases = [
        (
            Method::PUT,
            format!("/lists/{LIST}"),
            "GET, POST, PATCH, DELETE",
        ),
        (
            Method::PUT,
            format!("/lists/{LIST}/merge-fields/1"),
            "GET, PATCH, DELETE",
        ),
        (
            Method::PUT,
            format!("/lists/{LIST}/webhooks/x"),
            "GET, PATCH, DELETE",
        ),
        (
            Method::PUT,
            format!("/lists/{LIST}/interest-categories"),
            "GET, POST",
        ),
        (
            Method::PUT,
            format!("/lists/{LIST}/interest-categories/x"),
            "GET, PATCH, DELETE",
        ),
        (
            Method::PUT,
            format!("/lists/{LIST}/interest-categories/x/interests"),
            "GET, POST",
        ),
        (
            Method::PUT,
            format!("/lists/{LIST}/interest-categories/x/interests/y"),
            "GET, PATCH, DELETE",
        ),
        (Method::POST, format!("/lists/{LIST}/tag-search"), "GET"),
        (Method::POST, "/search-members".to_owned(), "GET"),
    ];
    for (method, path, allow) in cases {
        let a = h.send(method, &path, Some(&json!({}))).await;
        a.problem(405, "Method Not Allowed");
        assert_eq!(a.header("allow"), Some(allow), "{path}");
    }
}
