//! Contract test: every request the client builds, captured through wiremock, must match
//! Mailchimp's OpenAPI description (the committed subset, gaps patched), and so must the
//! canned responses the other tests use.

mod common;

use common::contract::Contract;
use std::collections::BTreeMap;

use common::{
    category_json, client_for, interest_json, list_json, ltv_merge_field, member_json,
    merge_field_json, new_audience, problem_json, LIST,
};
use mailchimp::{
    BatchMember, InterestCategoryType, ListMembers, MarketingPermissionChange, MemberUpsert,
    NewInterestCategory, Status, TagChange,
};
use serde_json::{json, Map, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MEMBER: &str = r"^/3\.0/lists/[^/]+/members/[0-9a-f]{32}";
const CATEGORIES: &str = r"^/3\.0/lists/[^/]+/interest-categories";

/// Documented operations the client has no method for: the emulator serves them and
/// `against_emulator.rs` checks them with plain requests through the recorder.
const NOT_CALLED_BY_THE_CLIENT: [&str; 11] = [
    "PATCH /lists/{list_id}",
    "PATCH /lists/{list_id}/merge-fields/{merge_id}",
    "PATCH /lists/{list_id}/webhooks/{webhook_id}",
    "GET /lists/{list_id}/tag-search",
    "GET /search-members",
    "GET /lists/{list_id}/interest-categories/{interest_category_id}",
    "PATCH /lists/{list_id}/interest-categories/{interest_category_id}",
    "DELETE /lists/{list_id}/interest-categories/{interest_category_id}",
    "GET /lists/{list_id}/interest-categories/{interest_category_id}/interests/{interest_id}",
    "PATCH /lists/{list_id}/interest-categories/{interest_category_id}/interests/{interest_id}",
    "DELETE /lists/{list_id}/interest-categories/{interest_category_id}/interests/{interest_id}",
];

/// Interest id → on/off, as member bodies carry them.
fn interests(pairs: &[(&str, bool)]) -> BTreeMap<String, bool> {
    pairs
        .iter()
        .map(|(id, on)| ((*id).to_owned(), *on))
        .collect()
}

fn permission(id: &str, enabled: bool) -> MarketingPermissionChange {
    MarketingPermissionChange {
        marketing_permission_id: id.into(),
        enabled,
    }
}

/// A server that answers every operation with a documented-shape body.
async fn mailchimp_double() -> MockServer {
    let server = MockServer::start().await;
    let ok = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    let member = member_json("ada@example.com", "subscribed");
    let mounts = [
        (
            "GET",
            "^/3\\.0/ping$".to_owned(),
            ok(json!({"health_status": "Everything's Chimpy!"})),
        ),
        (
            "POST",
            "^/3\\.0/lists$".to_owned(),
            ok(list_json("f00dfeed01", "Customers", 0)),
        ),
        (
            "GET",
            "^/3\\.0/lists/[^/]+$".to_owned(),
            ok(list_json(LIST, "Customers", 3)),
        ),
        (
            "POST",
            "^/3\\.0/lists/[^/]+$".to_owned(),
            ok(json!({
                "new_members": [member.clone()], "updated_members": [], "errors": [],
                "total_created": 1, "total_updated": 0, "error_count": 0, "_links": []
            })),
        ),
        (
            "GET",
            "^/3\\.0/lists/[^/]+/members$".to_owned(),
            ok(
                json!({"members": [member.clone()], "list_id": LIST, "total_items": 1, "_links": []}),
            ),
        ),
        ("GET", format!("{MEMBER}$"), ok(member.clone())),
        ("PUT", format!("{MEMBER}$"), ok(member.clone())),
        ("PATCH", format!("{MEMBER}$"), ok(member.clone())),
        ("DELETE", format!("{MEMBER}$"), ResponseTemplate::new(204)),
        (
            "POST",
            format!("{MEMBER}/actions/delete-permanent$"),
            ResponseTemplate::new(204),
        ),
        (
            "GET",
            format!("{MEMBER}/tags$"),
            ok(
                json!({"tags": [{"id": 1, "name": "customer", "date_added": "2024-01-01T00:00:00+00:00"}], "total_items": 1, "_links": []}),
            ),
        ),
        (
            "POST",
            format!("{MEMBER}/tags$"),
            ResponseTemplate::new(204),
        ),
        (
            "GET",
            "^/3\\.0/lists/[^/]+/merge-fields$".to_owned(),
            ok(
                json!({"merge_fields": [merge_field_json(1, "FNAME", "First Name", "text", false)], "list_id": LIST, "total_items": 1, "_links": []}),
            ),
        ),
        (
            "POST",
            "^/3\\.0/lists/[^/]+/merge-fields$".to_owned(),
            ok(merge_field_json(
                2,
                "LTV",
                "Lifetime value",
                "number",
                false,
            )),
        ),
        (
            "GET",
            format!("{CATEGORIES}$"),
            ok(json!({
                "list_id": LIST, "categories": [category_json("c0ffee0001", "Pets", "checkboxes")],
                "total_items": 1, "_links": []
            })),
        ),
        (
            "POST",
            format!("{CATEGORIES}$"),
            ok(category_json("c0ffee0002", "Staff", "hidden")),
        ),
        (
            "GET",
            format!("{CATEGORIES}/[^/]+/interests$"),
            ok(json!({
                "interests": [interest_json("beef000001", "c0ffee0001", "Dogs")],
                "list_id": LIST, "category_id": "c0ffee0001", "total_items": 1, "_links": []
            })),
        ),
        (
            "POST",
            format!("{CATEGORIES}/[^/]+/interests$"),
            ok(interest_json("beef000002", "c0ffee0001", "Cats")),
        ),
    ];
    for (verb, regex, response) in mounts {
        Mock::given(method(verb))
            .and(path_regex(regex))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    server
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Calls every client method with inputs that use every optional field at least once.
async fn exercise_every_call(server: &MockServer) {
    let client = client_for(&server.uri());
    let ada = "Ada.Lovelace@Example.com";
    let address = json!({"addr1": "1 Main St", "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US"});

    client.ping().await.unwrap();
    client.get_audience(LIST).await.unwrap();
    client
        .create_audience(&new_audience("Customers", "news@acme.example"))
        .await
        .unwrap();

    let batch: Vec<BatchMember> = [
        Status::Subscribed,
        Status::Unsubscribed,
        Status::Cleaned,
        Status::Pending,
        Status::Transactional,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, status)| BatchMember {
        email_address: format!("m{i}@example.com"),
        status_if_new: (i % 2 == 0).then_some(status),
        status: (i % 2 == 1).then_some(status),
        merge_fields: fields(json!({"FNAME": "M", "LTV": i, "ADDRESS": address})),
        tags: if i == 0 {
            vec!["customer".into(), "vip".into()]
        } else {
            Vec::new()
        },
        interests: if i == 1 {
            interests(&[("beef000001", true), ("beef000002", false)])
        } else {
            BTreeMap::new()
        },
    })
    .collect();
    client.batch_upsert(LIST, &batch).await.unwrap();
    let full: Vec<BatchMember> = (0..500)
        .map(|i| BatchMember {
            email_address: format!("n{i}@example.com"),
            status_if_new: Some(Status::Subscribed),
            ..Default::default()
        })
        .collect();
    client.batch_upsert(LIST, &full).await.unwrap();

    for status in [
        Status::Subscribed,
        Status::Unsubscribed,
        Status::Cleaned,
        Status::Pending,
        Status::Transactional,
    ] {
        let upsert = MemberUpsert {
            status_if_new: Some(status),
            merge_fields: fields(json!({"FNAME": "Ada", "LTV": 15.5, "ADDRESS": address})),
            ..Default::default()
        };
        client.upsert_member(LIST, ada, &upsert).await.unwrap();
        let forced = MemberUpsert {
            status: Some(status),
            ..Default::default()
        };
        client.upsert_member(LIST, ada, &forced).await.unwrap();
    }
    client
        .upsert_member(LIST, ada, &MemberUpsert::default())
        .await
        .unwrap();
    let consenting = MemberUpsert {
        status_if_new: Some(Status::Subscribed),
        interests: interests(&[("beef000001", true), ("beef000002", false)]),
        marketing_permissions: vec![
            permission("a1b2c3d4e5", true),
            permission("f6a7b8c9d0", false),
        ],
        ..Default::default()
    };
    client.upsert_member(LIST, ada, &consenting).await.unwrap();
    client
        .rename_existing_member(LIST, ada, "ada@example.org", &consenting)
        .await
        .unwrap();
    client
        .set_member_permissions(LIST, ada, &[permission("a1b2c3d4e5", false)])
        .await
        .unwrap();
    client
        .rename_member(
            LIST,
            ada,
            "ada@example.org",
            &MemberUpsert {
                status_if_new: Some(Status::Subscribed),
                merge_fields: fields(json!({"FNAME": "Ada"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client
        .rename_member(LIST, ada, "ada@example.org", &MemberUpsert::default())
        .await
        .unwrap();
    // PATCH documents subscribed|unsubscribed|cleaned|pending only.
    for status in [
        Status::Subscribed,
        Status::Unsubscribed,
        Status::Cleaned,
        Status::Pending,
    ] {
        client.set_status(LIST, ada, status).await.unwrap();
    }
    client.archive_member(LIST, ada).await.unwrap();
    client.delete_member_permanently(LIST, ada).await.unwrap();
    client
        .update_tags(
            LIST,
            ada,
            &[TagChange::add("customer"), TagChange::remove("churned")],
        )
        .await
        .unwrap();
    client.get_member(LIST, ada).await.unwrap();
    client.member_tags(LIST, ada).await.unwrap();
    client
        .list_members(LIST, &ListMembers::default())
        .await
        .unwrap();
    for status in [
        Status::Subscribed,
        Status::Unsubscribed,
        Status::Cleaned,
        Status::Pending,
        Status::Transactional,
        Status::Archived,
    ] {
        let query = ListMembers {
            count: 10,
            offset: 20,
            status: Some(status),
            since_last_changed: Some("2024-01-01T00:00:00+00:00".into()),
        };
        client.list_members(LIST, &query).await.unwrap();
    }
    client.merge_fields(LIST).await.unwrap();
    client
        .create_merge_field(LIST, &ltv_merge_field())
        .await
        .unwrap();
    client.interest_categories(LIST).await.unwrap();
    for kind in [
        InterestCategoryType::Checkboxes,
        InterestCategoryType::Dropdown,
        InterestCategoryType::Radio,
        InterestCategoryType::Hidden,
    ] {
        client
            .create_interest_category(
                LIST,
                &NewInterestCategory {
                    title: "Pets".into(),
                    kind,
                },
            )
            .await
            .unwrap();
    }
    client.interests(LIST, "c0ffee0001").await.unwrap();
    client
        .create_interest(LIST, "c0ffee0001", "Dogs")
        .await
        .unwrap();
    client.marketing_permissions(LIST).await.unwrap();
}

#[tokio::test]
async fn every_request_the_client_builds_matches_the_openapi_description() {
    let contract = Contract::load();
    let server = mailchimp_double().await;
    exercise_every_call(&server).await;

    let requests = server.received_requests().await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut violations = Vec::new();
    for req in &requests {
        let query: Vec<(String, String)> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        match contract.check_request(req.method.as_str(), req.url.path(), &query, &req.body) {
            Ok(key) => {
                seen.insert(key);
            }
            Err(errs) => violations.extend(errs),
        }
        if let Some(ct) = req.headers.get("content-type") {
            assert_eq!(ct, "application/json", "{} {}", req.method, req.url);
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
    let missing: Vec<&str> = contract
        .keys()
        .into_iter()
        .filter(|k| !seen.contains(*k) && !NOT_CALLED_BY_THE_CLIENT.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "operations never exercised: {missing:?}"
    );
    for key in NOT_CALLED_BY_THE_CLIENT {
        assert!(contract.keys().contains(&key), "{key} is not in the subset");
    }
}

#[tokio::test]
async fn the_canned_responses_of_the_tests_match_the_openapi_description() {
    let contract = Contract::load();
    let member = member_json("ada@example.com", "subscribed");
    let checks = [
        ("GET /lists/{list_id}", list_json(LIST, "Customers", 3)),
        ("POST /lists", list_json(LIST, "Customers", 0)),
        (
            "GET /lists/{list_id}/members/{subscriber_hash}",
            member.clone(),
        ),
        (
            "PUT /lists/{list_id}/members/{subscriber_hash}",
            member.clone(),
        ),
        (
            "PATCH /lists/{list_id}/members/{subscriber_hash}",
            member.clone(),
        ),
        (
            "POST /lists/{list_id}/merge-fields",
            merge_field_json(2, "LTV", "Lifetime value", "number", false),
        ),
        (
            "GET /lists/{list_id}/members",
            json!({"members": [member.clone()], "list_id": LIST, "total_items": 1}),
        ),
        (
            "POST /lists/{list_id}/interest-categories",
            category_json("c0ffee0002", "Staff", "hidden"),
        ),
        (
            "POST /lists/{list_id}/interest-categories/{interest_category_id}/interests",
            interest_json("beef000002", "c0ffee0001", "Cats"),
        ),
    ];
    for (key, body) in checks {
        contract
            .check_response_body(key, &body)
            .unwrap_or_else(|e| panic!("{e:#?}"));
    }
    for title in ["Member Exists", "Invalid Resource", "Resource Not Found"] {
        let mut problem = problem_json(400, title, "x");
        problem["errors"] = json!([{"field": "LTV", "message": "Please enter a number"}]);
        contract
            .check_problem(&problem)
            .unwrap_or_else(|e| panic!("{e:#?}"));
    }
}

#[tokio::test]
async fn the_contract_catches_a_misspelt_field_a_bad_status_and_an_oversized_batch() {
    let contract = Contract::load();
    let put = "PUT /lists/{list_id}/members/{subscriber_hash}";
    assert!(contract
        .check_request_body(
            put,
            &json!({"email_address": "a@example.com", "status_if_nwe": "subscribed"})
        )
        .is_err());
    assert!(contract
        .check_request_body(put, &json!({"status": "archived"}))
        .is_err());
    assert!(contract
        .check_request_body(put, &json!({"status": "subscribed", "tags": ["a"]}))
        .is_ok());
    let members: Vec<Value> = (0..501)
        .map(|i| json!({"email_address": format!("m{i}@example.com"), "status_if_new": "subscribed"}))
        .collect();
    assert!(contract
        .check_request_body("POST /lists/{list_id}", &json!({"members": members}))
        .is_err());
    assert!(contract
        .check_request_body(
            "PATCH /lists/{list_id}/members/{subscriber_hash}",
            &json!({"status": "transactional"})
        )
        .is_err());
    assert!(contract
        .check_request(
            "GET",
            "/3.0/lists/x/members",
            &[("count".into(), "1001".into())],
            b""
        )
        .is_err());
    assert!(contract
        .check_problem(&json!({"type": "t", "title": "Invalid Resource", "status": 400, "detail": "d", "instance": "i", "errors": [{"field": "F"}]}))
        .is_err());
}

#[test]
fn the_committed_subset_is_self_contained_small_and_patched() {
    let text = include_str!("fixtures/openapi-subset.json");
    assert!(!text.contains("$ref"));
    assert!(text.len() < 200_000, "subset grew to {} bytes", text.len());
    let contract = Contract::load();
    let raw = &contract.raw;
    assert_eq!(raw["source"]["info_version"], "3.0.55");
    let batch = &raw["operations"]["POST /lists/{list_id}"]["request"]["properties"]["members"];
    assert_eq!(batch["maxItems"], 500);
    assert!(batch["items"]["properties"]["status_if_new"].is_object());
    assert!(batch["items"]["properties"]["tags"].is_object());
    let put = &raw["operations"]["PUT /lists/{list_id}/members/{subscriber_hash}"]["request"];
    assert!(put["properties"]["tags"].is_object());
    assert!(put.get("required").is_none());
    assert!(raw["problem"]["properties"]["errors"].is_object());
    let required = raw["problem"]["required"].as_array().unwrap();
    assert!(required.contains(&json!("title")) && !required.contains(&json!("type")));
}

#[test]
fn the_contract_matches_paths_with_and_without_the_api_prefix() {
    let contract = Contract::load();
    assert_eq!(
        contract
            .operation(
                "GET",
                "/3.0/lists/abc/members/0123456789abcdef0123456789abcdef/tags"
            )
            .map(|o| o.key.as_str()),
        Some("GET /lists/{list_id}/members/{subscriber_hash}/tags")
    );
    assert_eq!(
        contract
            .operation("post", "/lists/abc")
            .map(|o| o.key.as_str()),
        Some("POST /lists/{list_id}")
    );
    assert!(contract.operation("GET", "/3.0/batches").is_none());
}
