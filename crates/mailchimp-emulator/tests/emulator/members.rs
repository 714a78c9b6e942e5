//! Single-member endpoints and every row of the behaviour matrix in docs/mailchimp.md.

use serde_json::json;

use crate::harness::{Harness, LIST};
use mailchimp_emulator::subscriber_hash;

fn members(_: &Harness) -> String {
    format!("/lists/{LIST}/members")
}

#[tokio::test]
async fn ping_answers_everything_is_chimpy_with_a_request_id() {
    let h = Harness::start().await;
    let a = h.get("/ping").await;
    assert_eq!(a.ok(), &json!({"health_status": "Everything's Chimpy!"}));
    assert_eq!(
        a.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(a.header("x-request-id").is_some_and(|id| id.len() == 36));
    let root = h.get("/").await;
    assert!(root.ok()["account_id"].is_string());
}

#[tokio::test]
async fn put_to_an_unknown_hash_creates_the_member_under_the_body_address() {
    let h = Harness::start().await;
    let wrong = subscriber_hash("somebody.else@mail.org");
    let a = h
        .put(
            &format!("{}/{wrong}", members(&h)),
            &json!({"email_address": "Urist.McVankab@freddiesjokes.com", "status_if_new": "subscribed",
                    "merge_fields": {"FNAME": "Urist", "LNAME": "McVankab"}}),
        )
        .await;
    let m = a.ok();
    assert_eq!(m["id"], "62eeb292278cc15f5817cb78f7790b08");
    assert_eq!(m["email_address"], "Urist.McVankab@freddiesjokes.com");
    assert_eq!(m["status"], "subscribed");
    assert_eq!(m["full_name"], "Urist McVankab");
    assert_eq!(m["list_id"], LIST);
    assert_eq!(h.get(&format!("{}/{wrong}", members(&h))).await.status, 404);
}

#[tokio::test]
async fn put_with_status_and_no_status_if_new_creates_with_that_status() {
    let h = Harness::start().await;
    let a = h
        .put(
            &Harness::member_path("p@mail.org"),
            &json!({"email_address": "p@mail.org", "status": "pending"}),
        )
        .await;
    assert_eq!(a.ok()["status"], "pending");
}

#[tokio::test]
async fn put_without_an_address_to_an_unknown_hash_is_invalid_resource() {
    let h = Harness::start().await;
    let a = h
        .put(
            &Harness::member_path("x@mail.org"),
            &json!({"status_if_new": "subscribed"}),
        )
        .await;
    let p = a.problem(400, "Invalid Resource");
    assert_eq!(
        p["type"],
        "https://mailchimp.com/developer/marketing/docs/errors/"
    );
    assert!(p["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("email_address"));
}

#[tokio::test]
async fn member_json_has_the_documented_shape_with_every_merge_field() {
    let h = Harness::start().await;
    let m = h.upsert("shape@mail.org", "subscribed").await;
    for key in [
        "id",
        "email_address",
        "unique_email_id",
        "contact_id",
        "full_name",
        "web_id",
        "email_type",
        "status",
        "merge_fields",
        "stats",
        "ip_signup",
        "timestamp_signup",
        "ip_opt",
        "timestamp_opt",
        "member_rating",
        "last_changed",
        "language",
        "vip",
        "email_client",
        "location",
        "source",
        "tags_count",
        "tags",
        "list_id",
        "_links",
    ] {
        assert!(m.get(key).is_some(), "missing {key}: {m}");
    }
    assert_eq!(
        m["merge_fields"],
        json!({"FNAME": "", "LNAME": "", "ADDRESS": "", "PHONE": ""})
    );
    assert_eq!(m["unique_email_id"].as_str().unwrap().len(), 10);
    assert_eq!(m["source"], "API - Generic");
    assert_eq!(m["email_type"], "html");
    assert!(m.get("unsubscribe_reason").is_none());
    assert!(m["last_changed"].as_str().unwrap().ends_with("+00:00"));
}

#[tokio::test]
async fn the_path_may_name_the_member_by_its_raw_address() {
    let h = Harness::start().await;
    h.upsert("raw.path@mail.org", "subscribed").await;
    let a = h.get(&format!("{}/Raw.Path%40mail.org", members(&h))).await;
    assert_eq!(a.ok()["id"], subscriber_hash("raw.path@mail.org"));
}

#[tokio::test]
async fn put_to_an_unknown_hash_whose_body_address_exists_is_member_exists() {
    let h = Harness::start().await;
    h.upsert("taken@mail.org", "subscribed").await;
    let a = h
        .put(
            &Harness::member_path("other@mail.org"),
            &json!({"email_address": "taken@mail.org", "status_if_new": "subscribed"}),
        )
        .await;
    let p = a.problem(400, "Member Exists");
    assert_eq!(
        p["detail"],
        "taken@mail.org is already a list member. Use PUT to insert or update list members."
    );
    assert!(p.get("type").is_none(), "Mailchimp sent no type here");
}

#[tokio::test]
async fn post_of_an_existing_address_is_member_exists() {
    let h = Harness::start().await;
    for status in ["subscribed", "pending"] {
        let email = format!("{status}@mail.org");
        h.upsert(&email, status).await;
        let a = h
            .post(
                &members(&h),
                &json!({"email_address": email, "status": "subscribed"}),
            )
            .await;
        a.problem(400, "Member Exists");
    }
}

#[tokio::test]
async fn post_of_an_archived_address_brings_it_back_with_the_posted_status() {
    let h = Harness::start().await;
    let created = h.upsert("back@mail.org", "subscribed").await;
    assert_eq!(
        h.delete(&Harness::member_path("back@mail.org"))
            .await
            .status,
        204
    );
    let a = h
        .post(
            &members(&h),
            &json!({"email_address": "back@mail.org", "status": "unsubscribed"}),
        )
        .await;
    let m = a.ok();
    assert_eq!(m["status"], "unsubscribed");
    assert_eq!(
        m["unique_email_id"], created["unique_email_id"],
        "same contact"
    );
    assert_eq!(m["unsubscribe_reason"], "N/A (Unsubscribed by admin)");
}

#[tokio::test]
async fn put_on_an_archived_member_uses_status_if_new() {
    let h = Harness::start().await;
    h.upsert("arch@mail.org", "subscribed").await;
    h.delete(&Harness::member_path("arch@mail.org")).await;
    let m = h.upsert("arch@mail.org", "pending").await;
    assert_eq!(m["status"], "pending");
}

#[tokio::test]
async fn put_on_an_existing_member_changes_status_only_when_status_is_given() {
    let h = Harness::start().await;
    h.upsert("keep@mail.org", "subscribed").await;
    let path = Harness::member_path("keep@mail.org");
    let a = h
        .put(
            &path,
            &json!({"email_address": "keep@mail.org", "status_if_new": "pending",
                            "merge_fields": {"FNAME": "K"}}),
        )
        .await;
    assert_eq!(a.ok()["status"], "subscribed");
    assert_eq!(a.ok()["merge_fields"]["FNAME"], "K");
    let a = h.put(&path, &json!({"status": "unsubscribed"})).await;
    assert_eq!(a.ok()["status"], "unsubscribed");
    assert_eq!(
        a.ok()["merge_fields"]["FNAME"],
        "K",
        "PUT keeps unmentioned merge fields"
    );
}

#[tokio::test]
async fn renaming_a_subscribed_member_moves_it_to_the_new_hash() {
    let h = Harness::start().await;
    h.upsert("old@mail.org", "subscribed").await;
    let a = h
        .put(
            &Harness::member_path("old@mail.org"),
            &json!({"email_address": "new@mail.org"}),
        )
        .await;
    assert_eq!(a.ok()["id"], subscriber_hash("new@mail.org"));
    assert_eq!(a.ok()["email_address"], "new@mail.org");
    h.get(&Harness::member_path("old@mail.org"))
        .await
        .problem(404, "Resource Not Found");
    let a = h
        .patch(
            &Harness::member_path("new@mail.org"),
            &json!({"email_address": "newer@mail.org"}),
        )
        .await;
    assert_eq!(a.ok()["id"], subscriber_hash("newer@mail.org"));
    assert_eq!(h.emu.members(LIST).len(), 1);
}

#[tokio::test]
async fn renaming_onto_a_taken_address_is_invalid_resource() {
    let h = Harness::start().await;
    h.upsert("one@mail.org", "subscribed").await;
    h.upsert("two@mail.org", "transactional").await;
    let a = h
        .patch(
            &Harness::member_path("one@mail.org"),
            &json!({"email_address": "two@mail.org"}),
        )
        .await;
    let p = a.problem(400, "Invalid Resource");
    assert_eq!(
        p["detail"],
        "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
    );
    assert_eq!(
        p["errors"],
        json!([{"field": "email address",
                "message": "\"two@mail.org\" is already in this list with a status of \"Non-Subscribed\"."}])
    );
}

#[tokio::test]
async fn renaming_a_member_who_is_not_subscribed_is_invalid_resource() {
    let h = Harness::start().await;
    h.upsert("unsub@mail.org", "unsubscribed").await;
    let a = h
        .put(
            &Harness::member_path("unsub@mail.org"),
            &json!({"email_address": "fresh@mail.org"}),
        )
        .await;
    let p = a.problem(400, "Invalid Resource");
    assert_eq!(
        p["errors"],
        json!([{"field": "email address",
                "message": "This member's status is \"unsubscribed.\" You can only update email addresses for members with a status of \"subscribed.\""}])
    );
    assert!(h.emu.member(LIST, "fresh@mail.org").is_none());
}

#[tokio::test]
async fn subscribing_a_contact_who_unsubscribed_themselves_is_a_compliance_state() {
    let h = Harness::start().await;
    h.upsert("left@mail.org", "subscribed").await;
    assert!(h.emu.simulate_unsubscribe(LIST, "left@mail.org"));
    let path = Harness::member_path("left@mail.org");
    let got = h.get(&path).await;
    assert_eq!(got.ok()["status"], "unsubscribed");
    assert_ne!(
        got.ok()["unsubscribe_reason"],
        "N/A (Unsubscribed by admin)"
    );

    for attempt in [
        h.put(
            &path,
            &json!({"email_address": "left@mail.org", "status": "subscribed"}),
        )
        .await,
        h.patch(&path, &json!({"status": "subscribed"})).await,
    ] {
        let p = attempt.problem(400, "Member In Compliance State");
        assert_eq!(
            p["detail"],
            "left@mail.org is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."
        );
    }
    assert!(
        h.emu
            .member(LIST, "left@mail.org")
            .unwrap()
            .unsubscribed_by_contact
    );

    // The workaround: pending sends a confirmation mail; confirming subscribes them.
    let a = h.patch(&path, &json!({"status": "pending"})).await;
    assert_eq!(a.ok()["status"], "pending");
    h.patch(&path, &json!({"status": "subscribed"}))
        .await
        .problem(400, "Member In Compliance State");
    assert!(h.emu.simulate_confirm(LIST, "left@mail.org"));
    let v = h.emu.member(LIST, "left@mail.org").unwrap();
    assert_eq!(v.status, "subscribed");
    assert!(!v.unsubscribed_by_contact);
}

#[tokio::test]
async fn subscribing_a_cleaned_contact_is_a_compliance_state() {
    let h = Harness::start().await;
    h.upsert("bounced@mail.org", "subscribed").await;
    assert!(h.emu.simulate_bounce(LIST, "bounced@mail.org"));
    let path = Harness::member_path("bounced@mail.org");
    assert_eq!(h.get(&path).await.ok()["status"], "cleaned");
    h.put(&path, &json!({"status": "subscribed"}))
        .await
        .problem(400, "Member In Compliance State");
    assert_eq!(
        h.patch(&path, &json!({"status": "pending"})).await.ok()["status"],
        "pending"
    );
}

#[tokio::test]
async fn a_contact_unsubscribed_through_the_api_can_be_resubscribed() {
    let h = Harness::start().await;
    h.upsert("admin@mail.org", "subscribed").await;
    let path = Harness::member_path("admin@mail.org");
    let a = h.patch(&path, &json!({"status": "unsubscribed"})).await;
    assert_eq!(a.ok()["unsubscribe_reason"], "N/A (Unsubscribed by admin)");
    let a = h.put(&path, &json!({"status": "subscribed"})).await;
    assert_eq!(a.ok()["status"], "subscribed");
}

#[tokio::test]
async fn archiving_a_subscribed_or_unsubscribed_member_leaves_it_archived() {
    let h = Harness::start().await;
    for status in ["subscribed", "unsubscribed", "transactional"] {
        let email = format!("{status}.gone@mail.org");
        h.upsert(&email, status).await;
        let a = h.delete(&Harness::member_path(&email)).await;
        assert_eq!(a.status, 204);
        assert!(a.raw.is_empty());
        assert!(a.header("x-request-id").is_some());
        assert_eq!(
            h.get(&Harness::member_path(&email)).await.ok()["status"],
            "archived"
        );
        assert_eq!(h.emu.member(LIST, &email).unwrap().status, "archived");
    }
}

#[tokio::test]
async fn archiving_a_pending_member_is_not_allowed() {
    let h = Harness::start().await;
    h.upsert("pend@mail.org", "pending").await;
    h.upsert("clean@mail.org", "cleaned").await;
    h.upsert("twice@mail.org", "subscribed").await;
    h.delete(&Harness::member_path("twice@mail.org")).await;
    for email in ["pend@mail.org", "clean@mail.org", "twice@mail.org"] {
        let a = h.delete(&Harness::member_path(email)).await;
        let p = a.problem(405, "Method Not Allowed");
        assert_eq!(
            p["detail"],
            "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived"
        );
        assert_eq!(a.header("allow"), Some("GET, PUT"));
    }
    assert_eq!(
        h.emu.member(LIST, "pend@mail.org").unwrap().status,
        "pending"
    );
}

#[tokio::test]
async fn a_permanently_deleted_address_can_never_come_back() {
    let h = Harness::start().await;
    h.upsert("gdpr@mail.org", "subscribed").await;
    let path = Harness::member_path("gdpr@mail.org");
    let a = h
        .post(&format!("{path}/actions/delete-permanent"), &json!({}))
        .await;
    assert_eq!(a.status, 204);
    h.get(&path).await.problem(404, "Resource Not Found");
    assert!(h.emu.member(LIST, "gdpr@mail.org").is_none());
    assert!(h.emu.is_forgotten(LIST, "gdpr@mail.org"));

    let detail = "gdpr@mail.org was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.";
    for a in [
        h.post(
            &format!("/lists/{LIST}/members"),
            &json!({"email_address": "gdpr@mail.org", "status": "pending"}),
        )
        .await,
        h.put(
            &path,
            &json!({"email_address": "gdpr@mail.org", "status_if_new": "pending"}),
        )
        .await,
        h.put(
            &path,
            &json!({"email_address": "gdpr@mail.org", "status": "subscribed"}),
        )
        .await,
    ] {
        assert_eq!(
            a.problem(400, "Forgotten Email Not Subscribed")["detail"],
            detail
        );
    }
    let batch = h
        .post(
            &format!("/lists/{LIST}"),
            &json!({"members": [{"email_address": "gdpr@mail.org", "status": "pending"}]}),
        )
        .await;
    assert_eq!(batch.ok()["errors"][0]["error"], detail);
    assert_eq!(batch.ok()["errors"][0]["error_code"], "ERROR_GENERIC");
    h.patch(&path, &json!({"status": "pending"}))
        .await
        .problem(404, "Resource Not Found");
    assert!(h.emu.members(LIST).is_empty());
}

#[tokio::test]
async fn invalid_and_fake_addresses_are_refused() {
    let h = Harness::start().await;
    for bad in [
        "no-at-sign",
        "two@@mail.org",
        "sp ace@mail.org",
        "x@nodot",
        "",
    ] {
        let a = h
            .post(
                &format!("/lists/{LIST}/members"),
                &json!({"email_address": bad, "status": "subscribed"}),
            )
            .await;
        assert_eq!(
            a.problem(400, "Invalid Resource")["detail"],
            "Please provide a valid email address.",
            "{bad}"
        );
    }
    for fake in [
        "x@example.com",
        "y@Example.org",
        "z@example.net",
        "w@test.com",
    ] {
        let a = h
            .put(
                &Harness::member_path(fake),
                &json!({"email_address": fake, "status_if_new": "subscribed"}),
            )
            .await;
        assert_eq!(
            a.problem(400, "Invalid Resource")["detail"],
            format!("{fake} looks fake or invalid, please enter a real email address.")
        );
    }
    assert!(h.emu.members(LIST).is_empty());
}

#[tokio::test]
async fn merge_values_are_validated_against_the_field_types() {
    let h = Harness::start().await;
    let fields = format!("/lists/{LIST}/merge-fields");
    h.post(
        &fields,
        &json!({"name": "Lifetime value", "type": "number", "tag": "LTV"}),
    )
    .await
    .ok();
    h.post(
        &fields,
        &json!({"name": "Customer id", "type": "text", "required": true}),
    )
    .await
    .ok();
    let path = Harness::member_path("merge@mail.org");
    let put = |merge: serde_json::Value| {
        let body = json!({"email_address": "merge@mail.org", "status_if_new": "subscribed", "merge_fields": merge});
        let path = path.clone();
        let h = &h;
        async move { h.put(&path, &body).await }
    };

    let a = put(json!({"LTV": "lots", "MMERGE6": "c1"})).await;
    let p = a.problem(400, "Invalid Resource");
    assert_eq!(p["detail"], "Your merge fields were invalid.");
    assert_eq!(
        p["errors"],
        json!([{"field": "LTV", "message": "Please enter a number"}])
    );

    let a = put(json!({"FNAME": "A"})).await;
    assert_eq!(
        a.problem(400, "Invalid Resource")["errors"],
        json!([{"field": "MMERGE6", "message": "Please enter a value"}])
    );

    let a = put(json!({"FNAME": "x".repeat(256), "MMERGE6": "c1"})).await;
    assert_eq!(
        a.problem(400, "Invalid Resource")["errors"][0]["message"],
        "Value must be 255 characters or fewer"
    );

    let a = put(json!({"FNAME": true, "MMERGE6": "c1"})).await;
    assert_eq!(
        a.problem(400, "Invalid Resource")["errors"][0]["field"],
        "FNAME"
    );
    assert!(
        h.emu.members(LIST).is_empty(),
        "refused writes change nothing"
    );

    let a = put(json!({"FNAME": "Ann", "LTV": "15.5", "MMERGE6": "c1", "NOPE": "dropped", "email_address": "x"})).await;
    let m = a.ok();
    assert_eq!(m["merge_fields"]["LTV"], 15.5);
    assert_eq!(m["merge_fields"]["FNAME"], "Ann");
    assert!(m["merge_fields"].get("NOPE").is_none());

    let a = h
        .patch(&path, &json!({"merge_fields": {"FNAME": ""}}))
        .await;
    assert_eq!(a.ok()["merge_fields"]["FNAME"], "");
    let a = h
        .patch(&path, &json!({"merge_fields": {"MMERGE6": ""}}))
        .await;
    a.problem(400, "Invalid Resource");

    let with_skip = h
        .put(
            &format!(
                "{}?skip_merge_validation=true",
                Harness::member_path("skip@mail.org")
            ),
            &json!({"email_address": "skip@mail.org", "status_if_new": "subscribed"}),
        )
        .await;
    with_skip.ok();
}

#[tokio::test]
async fn unknown_members_are_resource_not_found() {
    let h = Harness::start().await;
    let path = Harness::member_path("nobody@mail.org");
    h.get(&path).await.problem(404, "Resource Not Found");
    h.patch(&path, &json!({"status": "subscribed"}))
        .await
        .problem(404, "Resource Not Found");
    h.delete(&path).await.problem(404, "Resource Not Found");
    h.post(&format!("{path}/tags"), &json!({"tags": []}))
        .await
        .problem(404, "Resource Not Found");
    h.get(&format!("{path}/tags"))
        .await
        .problem(404, "Resource Not Found");
    let p = h.get("/lists/0000000000/members").await;
    assert_eq!(
        p.problem(404, "Resource Not Found")["detail"],
        "The requested resource could not be found."
    );
}

#[tokio::test]
async fn tags_in_a_member_body_only_apply_on_create() {
    let h = Harness::start().await;
    let path = Harness::member_path("tagged@mail.org");
    let a = h
        .put(&path, &json!({"email_address": "tagged@mail.org", "status_if_new": "subscribed", "tags": ["vip", "Customer"]}))
        .await;
    assert_eq!(a.ok()["tags_count"], 2);
    h.put(&path, &json!({"tags": ["other"]})).await.ok();
    assert_eq!(
        h.emu.member(LIST, "tagged@mail.org").unwrap().tags,
        vec!["Customer", "vip"]
    );
}

#[tokio::test]
async fn listing_members_pages_filters_and_keeps_creation_order() {
    let h = Harness::start().await;
    let emails: Vec<String> = (0..15).map(|i| format!("m{i:02}@mail.org")).collect();
    for e in &emails {
        h.upsert(e, "subscribed").await;
    }
    h.upsert("pending@mail.org", "pending").await;
    h.delete(&Harness::member_path("m03@mail.org")).await;

    let page = h.get(&format!("/lists/{LIST}/members")).await;
    let page = page.ok();
    assert_eq!(
        page["total_items"], 15,
        "archived members are not listed by default"
    );
    assert_eq!(
        page["members"].as_array().unwrap().len(),
        10,
        "default count is 10"
    );
    assert_eq!(page["list_id"], LIST);
    assert_eq!(page["members"][0]["email_address"], "m00@mail.org");
    assert_eq!(page["members"][3]["email_address"], "m04@mail.org");

    let rest = h
        .get(&format!("/lists/{LIST}/members?count=1000&offset=10"))
        .await;
    let got: Vec<&str> = rest.ok()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email_address"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            "m11@mail.org",
            "m12@mail.org",
            "m13@mail.org",
            "m14@mail.org",
            "pending@mail.org"
        ]
    );

    let pending = h
        .get(&format!("/lists/{LIST}/members?status=pending"))
        .await;
    assert_eq!(pending.ok()["total_items"], 1);
    let archived = h
        .get(&format!("/lists/{LIST}/members?status=archived"))
        .await;
    assert_eq!(archived.ok()["members"][0]["email_address"], "m03@mail.org");

    h.get(&format!("/lists/{LIST}/members?count=1001"))
        .await
        .problem(400, "Invalid Resource");

    let future = h
        .get(&format!(
            "/lists/{LIST}/members?since_last_changed=2999-01-01T00:00:00%2B00:00"
        ))
        .await;
    assert_eq!(future.ok()["total_items"], 0);
    let past = h
        .get(&format!(
            "/lists/{LIST}/members?since_last_changed=2000-01-01T00:00:00Z&count=1"
        ))
        .await;
    assert_eq!(past.ok()["total_items"], 15);
}

#[tokio::test]
async fn transactional_contacts_are_supported() {
    let h = Harness::start().await;
    let m = h.upsert("tx@mail.org", "transactional").await;
    assert_eq!(m["status"], "transactional");
    let a = h
        .patch(
            &Harness::member_path("tx@mail.org"),
            &json!({"status": "transactional"}),
        )
        .await;
    a.problem(400, "Invalid Resource");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_parse_error() {
    let h = Harness::start().await;
    let resp = h
        .client
        .put(h.url(&Harness::member_path("j@mail.org")))
        .basic_auth("u", Some(&h.key))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["title"], "JSON Parse Error");
}

#[tokio::test]
async fn the_simulation_routes_act_like_the_contact_without_auth() {
    let h = Harness::start().await;
    h.upsert("sim@mail.org", "subscribed").await;
    let base = format!("http://{}/_emulator/lists/{LIST}/members", h.emu.addr());
    let r = h
        .client
        .post(format!("{base}/sim%40mail.org/unsubscribe"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        h.emu
            .member(LIST, "sim@mail.org")
            .unwrap()
            .unsubscribed_by_contact
    );
    let r = h
        .client
        .post(format!("{base}/{}/bounce", subscriber_hash("sim@mail.org")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        h.emu.member(LIST, "sim@mail.org").unwrap().status,
        "cleaned"
    );
    let r = h
        .client
        .post(format!("{base}/nobody%40mail.org/bounce"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let stats: serde_json::Value = h
        .client
        .get(format!("http://{}/_emulator/stats", h.emu.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 1, "simulation routes are not counted");
}
