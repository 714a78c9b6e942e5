//! Interest categories and interests, and the members' `interests`.

use serde_json::{json, Value};

use crate::harness::{Harness, LIST};

fn categories() -> String {
    format!("/lists/{LIST}/interest-categories")
}

/// Creates a category and returns its id.
async fn category(h: &Harness, title: &str, kind: &str) -> String {
    let a = h
        .post(&categories(), &json!({"title": title, "type": kind}))
        .await;
    a.ok()["id"].as_str().unwrap().to_owned()
}

/// Creates an interest in `cat` and returns its id.
async fn interest(h: &Harness, cat: &str, name: &str) -> String {
    let a = h
        .post(
            &format!("{}/{cat}/interests", categories()),
            &json!({"name": name}),
        )
        .await;
    a.ok()["id"].as_str().unwrap().to_owned()
}

fn is_mailchimp_id(id: &str) -> bool {
    id.len() == 10
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[tokio::test]
async fn categories_are_created_listed_filtered_paged_patched_and_deleted() {
    let h = Harness::start().await;
    let a = h
        .post(
            &categories(),
            &json!({"title": "Pets", "type": "checkboxes", "display_order": 3}),
        )
        .await;
    let pets = a.ok().clone();
    assert!(is_mailchimp_id(pets["id"].as_str().unwrap()), "{pets}");
    assert_eq!(pets["list_id"], LIST);
    assert_eq!(pets["title"], "Pets");
    assert_eq!(pets["type"], "checkboxes");
    assert_eq!(pets["display_order"], 3);
    let hidden = category(&h, "Internal", "hidden").await;

    let all = h.get(&categories()).await;
    let all = all.ok();
    assert_eq!(all["list_id"], LIST);
    assert_eq!(all["total_items"], 2);
    assert_eq!(all["categories"][0]["id"], pets["id"]);
    assert!(all["_links"].is_array());
    let only = h.get(&format!("{}?type=hidden", categories())).await;
    assert_eq!(only.ok()["total_items"], 1);
    assert_eq!(only.ok()["categories"][0]["id"], hidden.as_str());
    let page = h.get(&format!("{}?count=1&offset=1", categories())).await;
    assert_eq!(page.ok()["categories"].as_array().unwrap().len(), 1);
    assert_eq!(page.ok()["categories"][0]["id"], hidden.as_str());
    assert_eq!(page.ok()["total_items"], 2);

    let one = format!("{}/{hidden}", categories());
    assert_eq!(h.get(&one).await.ok()["title"], "Internal");
    let a = h
        .patch(&one, &json!({"title": "Staff only", "type": "radio"}))
        .await;
    assert_eq!(a.ok()["title"], "Staff only");
    assert_eq!(a.ok()["type"], "radio");
    // The spec's PATCH schema requires title and type.
    h.patch(&one, &json!({"title": "x"}))
        .await
        .problem(400, "Invalid Resource");

    assert_eq!(h.delete(&one).await.status, 204);
    h.get(&one).await.problem(404, "Resource Not Found");
    h.delete(&one).await.problem(404, "Resource Not Found");
    h.patch(&one, &json!({"title": "x", "type": "radio"}))
        .await
        .problem(404, "Resource Not Found");
    assert_eq!(h.get(&categories()).await.ok()["total_items"], 1);
}

#[tokio::test]
async fn category_bodies_are_validated_and_titles_are_unique_in_the_audience() {
    let h = Harness::start().await;
    let p = h.post(&categories(), &json!({"type": "checkboxes"})).await;
    let p = p.problem(400, "Invalid Resource");
    assert_eq!(
        p["errors"][0]["message"],
        "Required fields were not provided: title"
    );
    let p = h
        .post(
            &categories(),
            &json!({"title": "Pets", "type": "tickboxes"}),
        )
        .await;
    let p = p.problem(400, "Invalid Resource");
    assert_eq!(p["errors"][0]["field"], "type");
    let p = h
        .post(&categories(), &json!({"title": 7, "type": "radio"}))
        .await;
    assert_eq!(
        p.problem(400, "Invalid Resource")["errors"][0]["message"],
        "Schema describes string, integer found instead"
    );
    category(&h, "Pets", "checkboxes").await;
    let p = h
        .post(&categories(), &json!({"title": "Pets", "type": "radio"}))
        .await;
    assert_eq!(
        p.problem(400, "Invalid Resource")["detail"],
        "Cannot add \"Pets\" because it already exists on the list."
    );
    let other = category(&h, "Other", "radio").await;
    h.patch(
        &format!("{}/{other}", categories()),
        &json!({"title": "Pets", "type": "radio"}),
    )
    .await
    .problem(400, "Invalid Resource");
    h.get("/lists/nolist/interest-categories")
        .await
        .problem(404, "Resource Not Found");
}

#[tokio::test]
async fn interests_are_created_listed_patched_and_deleted_with_their_counts() {
    let h = Harness::start().await;
    let cat = category(&h, "Pets", "checkboxes").await;
    let interests = format!("{}/{cat}/interests", categories());
    let a = h
        .post(&interests, &json!({"name": "Dogs", "display_order": 2}))
        .await;
    let dogs = a.ok().clone();
    let dog_id = dogs["id"].as_str().unwrap().to_owned();
    assert!(is_mailchimp_id(&dog_id));
    assert_eq!(dogs["category_id"], cat.as_str());
    assert_eq!(dogs["list_id"], LIST);
    assert_eq!(dogs["name"], "Dogs");
    assert_eq!(dogs["subscriber_count"], "0", "a string, as in the spec");
    assert_eq!(dogs["display_order"], 2);
    let cats = interest(&h, &cat, "Cats").await;

    let p = h.post(&interests, &json!({"name": "Dogs"})).await;
    assert_eq!(
        p.problem(400, "Invalid Resource")["detail"],
        "Cannot add \"Dogs\" because it already exists on the list."
    );
    let p = h.post(&interests, &json!({"display_order": 1})).await;
    p.problem(400, "Invalid Resource");
    // The same name in another category is fine.
    let other = category(&h, "Other", "radio").await;
    interest(&h, &other, "Dogs").await;

    h.put(
        &Harness::member_path("pet@mail.org"),
        &json!({"email_address": "pet@mail.org", "status_if_new": "subscribed", "interests": {dog_id.clone(): true}}),
    )
    .await
    .ok();
    let list = h.get(&interests).await;
    let list = list.ok();
    assert_eq!(list["total_items"], 2);
    assert_eq!(list["category_id"], cat.as_str());
    assert_eq!(list["list_id"], LIST);
    assert_eq!(list["interests"][0]["subscriber_count"], "1");
    assert_eq!(list["interests"][1]["subscriber_count"], "0");

    let one = format!("{interests}/{cats}");
    let a = h.patch(&one, &json!({"name": "Felines"})).await;
    assert_eq!(a.ok()["name"], "Felines");
    h.patch(&one, &json!({"name": "Dogs"}))
        .await
        .problem(400, "Invalid Resource");
    h.patch(&one, &json!({"display_order": 1}))
        .await
        .problem(400, "Invalid Resource");
    assert_eq!(h.get(&one).await.ok()["name"], "Felines");
    // An interest is reached through its own category only.
    h.get(&format!("{}/{other}/interests/{cats}", categories()))
        .await
        .problem(404, "Resource Not Found");
    assert_eq!(h.delete(&one).await.status, 204);
    h.get(&one).await.problem(404, "Resource Not Found");
    h.get(&format!("{}/nocategory/interests", categories()))
        .await
        .problem(404, "Resource Not Found");
}

#[tokio::test]
async fn members_show_every_interest_and_writes_change_only_the_ones_given() {
    let h = Harness::start().await;
    let before = h.upsert("plain@mail.org", "subscribed").await;
    assert!(
        before.get("interests").is_none(),
        "an audience without interests shows none"
    );
    let cat = category(&h, "Pets", "checkboxes").await;
    let dogs = interest(&h, &cat, "Dogs").await;
    let cats = interest(&h, &cat, "Cats").await;
    let path = Harness::member_path("pet@mail.org");

    let m = h
        .post(
            &format!("/lists/{LIST}/members"),
            &json!({"email_address": "pet@mail.org", "status": "subscribed", "interests": {dogs.clone(): true}}),
        )
        .await;
    assert_eq!(
        m.ok()["interests"],
        json!({dogs.clone(): true, cats.clone(): false})
    );
    let m = h
        .patch(&path, &json!({"interests": {cats.clone(): true}}))
        .await;
    assert_eq!(
        m.ok()["interests"],
        json!({dogs.clone(): true, cats.clone(): true})
    );
    let m = h
        .put(&path, &json!({"interests": {dogs.clone(): false}}))
        .await;
    assert_eq!(
        m.ok()["interests"],
        json!({dogs.clone(): false, cats.clone(): true})
    );
    let m = h.get(&Harness::member_path("plain@mail.org")).await;
    assert_eq!(
        m.ok()["interests"],
        json!({dogs.clone(): false, cats.clone(): false})
    );
    assert_eq!(
        h.emu.member(LIST, "pet@mail.org").unwrap().interests,
        std::slice::from_ref(&cats)
    );
    let page = h.get(&format!("/lists/{LIST}/members")).await;
    assert_eq!(page.ok()["members"][1]["interests"][&cats], true);

    // Deleting an interest takes it off every member; deleting the category takes the rest.
    h.delete(&format!("{}/{cat}/interests/{cats}", categories()))
        .await;
    assert_eq!(
        h.get(&path).await.ok()["interests"],
        json!({dogs.clone(): false})
    );
    h.patch(&path, &json!({"interests": {dogs.clone(): true}}))
        .await
        .ok();
    h.delete(&format!("{}/{cat}", categories())).await;
    assert!(h.get(&path).await.ok().get("interests").is_none());
    let p = h
        .patch(&path, &json!({"interests": {dogs.clone(): true}}))
        .await;
    p.problem(400, "Invalid Resource");
}

#[tokio::test]
async fn an_unknown_interest_id_refuses_the_whole_write() {
    let h = Harness::start().await;
    let cat = category(&h, "Pets", "checkboxes").await;
    let dogs = interest(&h, &cat, "Dogs").await;
    let path = Harness::member_path("pet@mail.org");
    let body = json!({
        "email_address": "pet@mail.org", "status_if_new": "subscribed",
        "merge_fields": {"FNAME": "Pat"}, "interests": {dogs.clone(): true, "abc": true}
    });
    let p = h.put(&path, &body).await;
    let p = p.problem(400, "Invalid Resource");
    assert_eq!(p["detail"], "Invalid interest ID: 'abc'.");
    assert_eq!(p["errors"][0]["field"], "interests");
    assert_eq!(p["errors"][0]["message"], "Invalid interest ID: 'abc'.");
    assert!(
        h.emu.member(LIST, "pet@mail.org").is_none(),
        "nothing applied"
    );

    h.upsert("pet@mail.org", "subscribed").await;
    let p = h
        .patch(
            &path,
            &json!({"merge_fields": {"FNAME": "Pat"}, "interests": {"abc": false}}),
        )
        .await;
    p.problem(400, "Invalid Resource");
    let m = h.emu.member(LIST, "pet@mail.org").unwrap();
    assert!(!m.merge_fields.contains_key("FNAME"), "nothing applied");
    let p = h
        .patch(&path, &json!({"interests": {dogs.clone(): "yes"}}))
        .await;
    assert_eq!(
        p.problem(400, "Invalid Resource")["errors"][0]["field"],
        Value::String(format!("interests.{dogs}"))
    );
}

#[tokio::test]
async fn batch_members_carry_interests_and_an_unknown_one_fails_only_that_member() {
    let h = Harness::start().await;
    let cat = category(&h, "Pets", "checkboxes").await;
    let dogs = interest(&h, &cat, "Dogs").await;
    let cats = interest(&h, &cat, "Cats").await;
    h.put(
        &Harness::member_path("old@mail.org"),
        &json!({"email_address": "old@mail.org", "status_if_new": "subscribed", "interests": {cats.clone(): true}}),
    )
    .await
    .ok();
    let a = h
        .post(
            &format!("/lists/{LIST}"),
            &json!({
                "members": [
                    {"email_address": "new@mail.org", "status": "subscribed", "interests": {dogs.clone(): true}},
                    {"email_address": "bad@mail.org", "status": "subscribed", "interests": {"abc": true}},
                    {"email_address": "old@mail.org", "status_if_new": "subscribed", "interests": {dogs.clone(): true}},
                ],
                "update_existing": true
            }),
        )
        .await;
    let r = a.ok();
    assert_eq!(r["total_created"], 1);
    assert_eq!(r["total_updated"], 1);
    assert_eq!(r["error_count"], 1);
    assert_eq!(r["errors"][0]["email_address"], "bad@mail.org");
    assert_eq!(r["errors"][0]["error"], "Invalid interest ID: 'abc'.");
    assert_eq!(r["errors"][0]["error_code"], "ERROR_GENERIC");
    assert_eq!(
        r["new_members"][0]["interests"],
        json!({dogs.clone(): true, cats.clone(): false})
    );
    assert_eq!(
        r["updated_members"][0]["interests"],
        json!({dogs.clone(): true, cats.clone(): true}),
        "the interests not named stay"
    );
    assert!(h.emu.member(LIST, "bad@mail.org").is_none());
}
