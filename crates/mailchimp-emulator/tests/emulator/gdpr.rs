//! GDPR audiences: marketing permissions on the list and its members.

use mailchimp_emulator::Config;
use serde_json::{json, Value};

use crate::harness::{Harness, LIST};
use crate::lists::audience_body;

const GDPR: &str = "9d9d9d9d9d";

async fn start() -> Harness {
    Harness::with(Config {
        audiences: vec![LIST.into()],
        gdpr_audiences: vec![GDPR.into()],
        ..Config::default()
    })
    .await
}

fn member_path(list: &str, email: &str) -> String {
    format!(
        "/lists/{list}/members/{}",
        mailchimp_emulator::subscriber_hash(email)
    )
}

/// `(id, text, enabled)` of a member's permissions.
fn permissions(member: &Value) -> Vec<(String, String, bool)> {
    member["marketing_permissions"]
        .as_array()
        .unwrap_or_else(|| panic!("no marketing_permissions in {member}"))
        .iter()
        .map(|p| {
            (
                p["marketing_permission_id"].as_str().unwrap().to_owned(),
                p["text"].as_str().unwrap().to_owned(),
                p["enabled"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_gdpr_audience_has_the_three_default_permissions_with_stable_ids() {
    let h = start().await;
    assert_eq!(
        h.get(&format!("/lists/{GDPR}")).await.ok()["marketing_permissions"],
        true
    );
    assert_eq!(
        h.get(&format!("/lists/{LIST}")).await.ok()["marketing_permissions"],
        false
    );
    let m = h.upsert_in(GDPR, "eu@mail.org").await;
    let got = permissions(&m);
    let texts: Vec<&str> = got.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["Email", "Direct Mail", "Customized Online Advertising"]
    );
    assert!(got.iter().all(|(_, _, enabled)| !enabled));
    for (id, _, _) in &got {
        assert_eq!(id.len(), 10);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    // The same audience id has the same permission ids in another emulator.
    let again = start().await;
    let m = again.upsert_in(GDPR, "eu@mail.org").await;
    assert_eq!(permissions(&m), got);
}

#[tokio::test]
async fn members_of_other_audiences_carry_no_marketing_permissions() {
    let h = start().await;
    let m = h.upsert("plain@mail.org", "subscribed").await;
    assert!(m.get("marketing_permissions").is_none(), "{m}");
}

#[tokio::test]
async fn writes_turn_only_the_given_permissions_on_or_off() {
    let h = start().await;
    let first = h.upsert_in(GDPR, "eu@mail.org").await;
    let ids: Vec<String> = permissions(&first).into_iter().map(|p| p.0).collect();
    let path = member_path(GDPR, "eu@mail.org");
    let m = h
        .patch(
            &path,
            &json!({"marketing_permissions": [{"marketing_permission_id": ids[0], "enabled": true}, {"marketing_permission_id": ids[2], "enabled": true}]}),
        )
        .await;
    let enabled: Vec<bool> = permissions(m.ok()).iter().map(|p| p.2).collect();
    assert_eq!(enabled, [true, false, true]);
    let m = h
        .put(
            &path,
            &json!({"marketing_permissions": [{"marketing_permission_id": ids[2], "enabled": false}]}),
        )
        .await;
    let enabled: Vec<bool> = permissions(m.ok()).iter().map(|p| p.2).collect();
    assert_eq!(enabled, [true, false, false]);
    assert_eq!(
        h.emu
            .member(GDPR, "eu@mail.org")
            .unwrap()
            .marketing_permissions,
        [ids[0].clone()]
    );
    let m = h
        .post(
            &format!("/lists/{GDPR}/members"),
            &json!({"email_address": "new.eu@mail.org", "status": "subscribed",
                    "marketing_permissions": [{"marketing_permission_id": ids[1], "enabled": true}]}),
        )
        .await;
    let enabled: Vec<bool> = permissions(m.ok()).iter().map(|p| p.2).collect();
    assert_eq!(enabled, [false, true, false]);
}

#[tokio::test]
async fn an_unknown_permission_id_is_refused_and_every_id_is_unknown_outside_gdpr() {
    let h = start().await;
    h.upsert_in(GDPR, "eu@mail.org").await;
    let body = json!({"merge_fields": {"FNAME": "Eu"},
                      "marketing_permissions": [{"marketing_permission_id": "0000000000", "enabled": true}]});
    let p = h.patch(&member_path(GDPR, "eu@mail.org"), &body).await;
    assert_eq!(
        p.problem(400, "Invalid Resource")["detail"],
        "Invalid marketing permission ID: '0000000000'."
    );
    assert!(h
        .emu
        .member(GDPR, "eu@mail.org")
        .unwrap()
        .merge_fields
        .is_empty());

    // A GDPR audience's ids mean nothing to another audience.
    let gdpr_member = h.get(&member_path(GDPR, "eu@mail.org")).await;
    let id = permissions(gdpr_member.ok())[0].0.clone();
    h.upsert("plain@mail.org", "subscribed").await;
    let p = h
        .patch(
            &Harness::member_path("plain@mail.org"),
            &json!({"marketing_permissions": [{"marketing_permission_id": id, "enabled": true}]}),
        )
        .await;
    p.problem(400, "Invalid Resource");
    let ok = h
        .patch(
            &Harness::member_path("plain@mail.org"),
            &json!({"marketing_permissions": []}),
        )
        .await;
    ok.ok();
    let p = h
        .patch(
            &Harness::member_path("plain@mail.org"),
            &json!({"marketing_permissions": {"marketing_permission_id": id}}),
        )
        .await;
    assert_eq!(
        p.problem(400, "Invalid Resource")["errors"][0]["message"],
        "Schema describes array, object found instead"
    );
}

#[tokio::test]
async fn batch_members_ignore_marketing_permissions_like_any_undeclared_field() {
    let h = start().await;
    let a = h
        .post(
            &format!("/lists/{GDPR}"),
            &json!({"members": [{"email_address": "eu@mail.org", "status": "subscribed",
                                 "marketing_permissions": [{"marketing_permission_id": "0000000000", "enabled": true}],
                                 "favourite_colour": "blue"}]}),
        )
        .await;
    let r = a.ok();
    assert_eq!(r["error_count"], 0, "{r}");
    let enabled: Vec<bool> = permissions(&r["new_members"][0])
        .iter()
        .map(|p| p.2)
        .collect();
    assert_eq!(enabled, [false, false, false]);
}

#[tokio::test]
async fn post_and_patch_lists_make_gdpr_audiences() {
    let h = start().await;
    let mut body = audience_body();
    body["marketing_permissions"] = json!(true);
    let a = h.post("/lists", &body).await;
    assert_eq!(a.ok()["marketing_permissions"], true);
    let id = a.ok()["id"].as_str().unwrap().to_owned();
    let m = h.upsert_in(&id, "eu@mail.org").await;
    assert_eq!(permissions(&m).len(), 3);

    let mut patch = audience_body();
    patch["contact"]["state"] = json!("GA");
    patch["contact"]["zip"] = json!("30308");
    patch["marketing_permissions"] = json!(true);
    let a = h.patch(&format!("/lists/{LIST}"), &patch).await;
    assert_eq!(a.ok()["marketing_permissions"], true);
    let m = h.upsert("now.eu@mail.org", "subscribed").await;
    assert_eq!(permissions(&m).len(), 3);
}

#[tokio::test]
async fn gdpr_audience_ids_given_to_an_account_make_that_audience_gdpr() {
    let key = "fedcba9876543210fedcba9876543210-us6";
    let mut h = Harness::with(Config {
        accounts: vec![(key.into(), GDPR.into())],
        gdpr_audiences: vec![GDPR.into()],
        ..Config::default()
    })
    .await;
    h.key = key.into();
    assert_eq!(
        h.get(&format!("/lists/{GDPR}")).await.ok()["marketing_permissions"],
        true
    );
    assert_eq!(h.emu.audiences_of(key), vec![GDPR.to_owned()]);
}
