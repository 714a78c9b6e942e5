//! The exact HTTP the client sends and how it reads every class of answer, against wiremock.

mod common;

use std::time::Duration;

use common::{
    client_for, client_with_timeout, list_json, ltv_merge_field, member_json, merge_field_json,
    new_audience, problem_json, KEY, KEY_SECRET_PART, LIST,
};
use mailchimp::{
    subscriber_hash, ApiKey, BatchMember, ClientConfig, Error, ListMembers, MemberUpsert,
    ProblemKind, Status, TagChange,
};
use serde_json::{json, Map, Value};
use wiremock::matchers::{
    basic_auth, body_json, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const USER_AGENT: &str = concat!("chimpsync/", env!("CARGO_PKG_VERSION"));
const ADA: &str = "Ada.Lovelace@Example.com";

fn member_path(email: &str) -> String {
    format!("/3.0/lists/{LIST}/members/{}", subscriber_hash(email))
}

/// A mock that also requires the Basic credentials and the user agent, answered once.
fn expect(verb: &str, at: impl Into<String>) -> wiremock::MockBuilder {
    Mock::given(method(verb))
        .and(path(at.into()))
        .and(basic_auth("chimpsync", KEY))
        .and(header("user-agent", USER_AGENT))
}

fn problem_response(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        serde_json::to_vec(&body).unwrap(),
        "application/problem+json; charset=utf-8",
    )
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[tokio::test]
async fn ping_sends_basic_auth_and_the_user_agent_to_get_ping() {
    let server = MockServer::start().await;
    expect("GET", "/3.0/ping")
        .and(header("accept", "application/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"health_status": "Everything's Chimpy!"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    client_for(&server.uri()).ping().await.unwrap();
}

#[tokio::test]
async fn get_audience_reads_id_name_and_member_count_from_stats() {
    let server = MockServer::start().await;
    expect("GET", format!("/3.0/lists/{LIST}"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list_json(LIST, "Customers", 42)))
        .expect(1)
        .mount(&server)
        .await;
    let audience = client_for(&server.uri()).get_audience(LIST).await.unwrap();
    assert_eq!(
        (
            audience.id.as_str(),
            audience.name.as_str(),
            audience.member_count
        ),
        (LIST, "Customers", 42)
    );
}

#[tokio::test]
async fn create_audience_posts_contact_and_campaign_defaults() {
    let server = MockServer::start().await;
    expect("POST", "/3.0/lists")
        .and(body_json(json!({
            "name": "Customers",
            "contact": {"company": "Acme", "address1": "1 Main St", "city": "Atlanta",
                        "state": "GA", "zip": "30308", "country": "US"},
            "permission_reminder": "You bought from us.",
            "campaign_defaults": {"from_name": "Acme", "from_email": "news@acme.example",
                                  "subject": "", "language": "en"},
            "email_type_option": false
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(list_json(
            "f00dfeed01",
            "Customers",
            0,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let audience = client_for(&server.uri())
        .create_audience(&new_audience("Customers", "news@acme.example"))
        .await
        .unwrap();
    assert_eq!(audience.id, "f00dfeed01");
}

#[tokio::test]
async fn batch_upsert_posts_members_with_update_existing_and_reads_per_member_results() {
    let server = MockServer::start().await;
    expect("POST", format!("/3.0/lists/{LIST}"))
        .and(body_json(json!({
            "members": [
                {"email_address": "a@example.com", "status_if_new": "subscribed",
                 "merge_fields": {"FNAME": "A"}, "tags": ["customer"]},
                {"email_address": "b@example.com", "status": "unsubscribed"},
                {"email_address": "c@example.com", "status_if_new": "pending"}
            ],
            "update_existing": true,
            "sync_tags": false
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "new_members": [member_json("a@example.com", "subscribed")],
            "updated_members": [member_json("b@example.com", "unsubscribed")],
            "errors": [{
                "email_address": "c@example.com",
                "error": "Your merge fields were invalid.",
                "error_code": "ERROR_GENERIC",
                "field": "FNAME",
                "field_message": "Please enter a value"
            }],
            "total_created": 1, "total_updated": 1, "error_count": 1, "_links": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    let members = [
        BatchMember {
            email_address: "a@example.com".into(),
            status_if_new: Some(Status::Subscribed),
            merge_fields: fields(&[("FNAME", json!("A"))]),
            tags: vec!["customer".into()],
            ..Default::default()
        },
        BatchMember {
            email_address: "b@example.com".into(),
            status: Some(Status::Unsubscribed),
            ..Default::default()
        },
        BatchMember {
            email_address: "c@example.com".into(),
            status_if_new: Some(Status::Pending),
            ..Default::default()
        },
    ];
    let result = client_for(&server.uri())
        .batch_upsert(LIST, &members)
        .await
        .unwrap();
    assert_eq!(result.created.len(), 1);
    assert_eq!(result.created[0].id, subscriber_hash("a@example.com"));
    assert_eq!(result.created[0].status, Status::Subscribed);
    assert_eq!(result.updated[0].email_address, "b@example.com");
    assert_eq!(result.errors[0].kind(), ProblemKind::MergeFieldsInvalid);
    assert_eq!(result.errors[0].field.as_deref(), Some("FNAME"));
}

#[tokio::test]
async fn batch_upsert_refuses_more_than_500_members_without_a_request() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    let members: Vec<BatchMember> = (0..501)
        .map(|i| BatchMember {
            email_address: format!("m{i}@example.com"),
            status_if_new: Some(Status::Subscribed),
            ..Default::default()
        })
        .collect();
    let err = client.batch_upsert(LIST, &members).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(!err.is_retryable());
    let empty = client.batch_upsert(LIST, &[]).await.unwrap();
    assert!(empty.created.is_empty() && empty.errors.is_empty());
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn upsert_member_puts_to_the_hash_of_the_lower_cased_address() {
    let server = MockServer::start().await;
    expect("PUT", member_path("ada.lovelace@example.com"))
        .and(body_json(json!({
            "email_address": ADA,
            "status_if_new": "subscribed",
            "merge_fields": {"FNAME": "Ada", "LTV": 15.5}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(member_json(ADA, "subscribed")))
        .expect(1)
        .mount(&server)
        .await;
    let body = MemberUpsert {
        status_if_new: Some(Status::Subscribed),
        merge_fields: fields(&[("FNAME", json!("Ada")), ("LTV", json!(15.5))]),
        ..Default::default()
    };
    let member = client_for(&server.uri())
        .upsert_member(LIST, ADA, &body)
        .await
        .unwrap();
    assert_eq!(member.id, subscriber_hash(ADA));
    assert_eq!(member.status, Status::Subscribed);
    assert_eq!(member.tags, ["customer"]);
    assert_eq!(member.merge_fields["FNAME"], "Ada");
    assert_eq!(
        member.last_changed.as_deref(),
        Some("2021-11-23T22:51:59+00:00")
    );
    assert_eq!(member.unsubscribe_reason, None);
}

#[tokio::test]
async fn rename_member_puts_the_new_address_to_the_old_hash() {
    let server = MockServer::start().await;
    expect("PUT", member_path("old@example.com"))
        .and(body_json(
            json!({"email_address": "new@example.com", "status": "subscribed"}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(member_json("new@example.com", "subscribed")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let body = MemberUpsert {
        email_address: Some("ignored@example.com".into()),
        status: Some(Status::Subscribed),
        ..Default::default()
    };
    let member = client_for(&server.uri())
        .rename_member(LIST, "old@example.com", "new@example.com", &body)
        .await
        .unwrap();
    assert_eq!(member.id, subscriber_hash("new@example.com"));
}

#[tokio::test]
async fn set_status_patches_only_the_status() {
    let server = MockServer::start().await;
    expect("PATCH", member_path(ADA))
        .and(body_json(json!({"status": "pending"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(member_json(ADA, "pending")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let member = client.set_status(LIST, ADA, Status::Pending).await.unwrap();
    assert_eq!(member.status, Status::Pending);
    let err = client
        .set_status(LIST, ADA, Status::Archived)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn archive_member_sends_delete_and_accepts_204() {
    let server = MockServer::start().await;
    expect("DELETE", member_path(ADA))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    client_for(&server.uri())
        .archive_member(LIST, ADA)
        .await
        .unwrap();
}

#[tokio::test]
async fn delete_member_permanently_posts_the_action_without_a_body() {
    let server = MockServer::start().await;
    expect(
        "POST",
        format!("{}/actions/delete-permanent", member_path(ADA)),
    )
    .respond_with(ResponseTemplate::new(204))
    .expect(1)
    .mount(&server)
    .await;
    client_for(&server.uri())
        .delete_member_permanently(LIST, ADA)
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].body.is_empty());
}

#[tokio::test]
async fn update_tags_posts_active_and_inactive_with_is_syncing() {
    let server = MockServer::start().await;
    expect("POST", format!("{}/tags", member_path(ADA)))
        .and(body_json(json!({
            "tags": [{"name": "customer", "status": "active"},
                     {"name": "churned", "status": "inactive"}],
            "is_syncing": true
        })))
        .respond_with(
            ResponseTemplate::new(204)
                .insert_header("content-type", "application/json; charset=utf-8"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    client
        .update_tags(
            LIST,
            ADA,
            &[TagChange::add("customer"), TagChange::remove("churned")],
        )
        .await
        .unwrap();
    // Nothing to change: no request.
    client.update_tags(LIST, ADA, &[]).await.unwrap();
}

#[tokio::test]
async fn get_member_reads_status_tags_and_unsubscribe_reason() {
    let server = MockServer::start().await;
    let mut body = member_json(ADA, "unsubscribed");
    body["unsubscribe_reason"] = json!("N/A (Unsubscribed by admin)");
    expect("GET", member_path(ADA))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;
    let member = client_for(&server.uri())
        .get_member(LIST, ADA)
        .await
        .unwrap();
    assert_eq!(member.status, Status::Unsubscribed);
    assert_eq!(
        member.unsubscribe_reason.as_deref(),
        Some("N/A (Unsubscribed by admin)")
    );
    assert_eq!(member.email_address, ADA);
}

#[tokio::test]
async fn member_tags_asks_for_1000_and_pages_when_mailchimp_reports_more() {
    let server = MockServer::start().await;
    let tags_path = format!("{}/tags", member_path(ADA));
    expect("GET", tags_path.clone())
        .and(query_param("count", "1000"))
        .and(query_param_is_missing("offset"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tags": [{"id": 1, "name": "customer", "date_added": "2024-01-01T00:00:00+00:00"},
                     {"id": 2, "name": "vip", "date_added": "2024-01-01T00:00:00+00:00"}],
            "total_items": 3, "_links": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    expect("GET", tags_path)
        .and(query_param("count", "1000"))
        .and(query_param("offset", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "tags": [{"id": 3, "name": "b2b", "date_added": "2024-01-01T00:00:00+00:00"}],
            "total_items": 3, "_links": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    let tags = client_for(&server.uri())
        .member_tags(LIST, ADA)
        .await
        .unwrap();
    assert_eq!(tags, ["customer", "vip", "b2b"]);
}

#[tokio::test]
async fn list_members_sends_count_offset_status_and_since_last_changed() {
    let server = MockServer::start().await;
    let page = json!({
        "members": [member_json("a@example.com", "subscribed"), member_json("b@example.com", "subscribed")],
        "list_id": LIST, "total_items": 1234, "_links": []
    });
    expect("GET", format!("/3.0/lists/{LIST}/members"))
        .and(query_param("count", "500"))
        .and(query_param("offset", "1000"))
        .and(query_param("status", "subscribed"))
        .and(query_param(
            "since_last_changed",
            "2024-01-01T00:00:00+00:00",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(page.clone()))
        .expect(1)
        .mount(&server)
        .await;
    expect("GET", format!("/3.0/lists/{LIST}/members"))
        .and(query_param("count", "1000"))
        .and(query_param("offset", "0"))
        .and(query_param_is_missing("status"))
        .and(query_param_is_missing("since_last_changed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let query = ListMembers {
        count: 500,
        offset: 1000,
        status: Some(Status::Subscribed),
        since_last_changed: Some("2024-01-01T00:00:00+00:00".into()),
    };
    let page = client.list_members(LIST, &query).await.unwrap();
    assert_eq!(page.total_items, 1234);
    assert_eq!(page.members.len(), 2);
    let page = client
        .list_members(LIST, &ListMembers::default())
        .await
        .unwrap();
    assert_eq!(page.members[1].email_address, "b@example.com");

    let too_big = ListMembers {
        count: 1001,
        ..Default::default()
    };
    let err = client.list_members(LIST, &too_big).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn merge_fields_asks_for_1000_and_reads_tag_type_and_required() {
    let server = MockServer::start().await;
    expect("GET", format!("/3.0/lists/{LIST}/merge-fields"))
        .and(query_param("count", "1000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "merge_fields": [merge_field_json(1, "FNAME", "First Name", "text", false),
                             merge_field_json(5, "LTV", "Lifetime value", "number", true)],
            "list_id": LIST, "total_items": 2, "_links": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    let fields = client_for(&server.uri()).merge_fields(LIST).await.unwrap();
    assert_eq!(fields.len(), 2);
    assert_eq!(
        (
            fields[1].merge_id,
            fields[1].tag.as_str(),
            fields[1].r#type.as_str(),
            fields[1].required
        ),
        (5, "LTV", "number", true)
    );
}

#[tokio::test]
async fn create_merge_field_posts_tag_name_and_type() {
    let server = MockServer::start().await;
    expect("POST", format!("/3.0/lists/{LIST}/merge-fields"))
        .and(body_json(
            json!({"tag": "LTV", "name": "Lifetime value", "type": "number"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(merge_field_json(
            7,
            "LTV",
            "Lifetime value",
            "number",
            false,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let field = client_for(&server.uri())
        .create_merge_field(LIST, &ltv_merge_field())
        .await
        .unwrap();
    assert_eq!(field.merge_id, 7);
}

/// The error a single `GET /ping` gets for `response`.
async fn ping_error(response: ResponseTemplate) -> Error {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(response)
        .mount(&server)
        .await;
    client_for(&server.uri()).ping().await.unwrap_err()
}

#[tokio::test]
async fn a_429_with_a_problem_document_is_throttled() {
    let err = ping_error(problem_response(
        429,
        problem_json(
            429,
            "Too Many Requests",
            "You have exceeded the limit of 10 simultaneous connections.",
        ),
    ))
    .await;
    assert!(matches!(err, Error::Throttled { status: 429 }), "{err:?}");
    assert!(err.is_throttled() && err.is_retryable());
}

#[tokio::test]
async fn a_bare_429_without_a_body_is_throttled() {
    let err = ping_error(ResponseTemplate::new(429)).await;
    assert!(matches!(err, Error::Throttled { status: 429 }), "{err:?}");
}

#[tokio::test]
async fn a_bare_403_without_a_json_body_is_throttled() {
    let err = ping_error(ResponseTemplate::new(403)).await;
    assert!(matches!(err, Error::Throttled { status: 403 }), "{err:?}");
    let err =
        ping_error(ResponseTemplate::new(403).set_body_string("<html>Forbidden</html>")).await;
    assert!(matches!(err, Error::Throttled { status: 403 }), "{err:?}");
}

#[tokio::test]
async fn a_403_with_a_problem_document_is_a_refusal_not_throttling() {
    let err = ping_error(problem_response(
        403,
        problem_json(
            403,
            "Wrong Datacenter",
            "The API key provided is linked to a different datacenter",
        ),
    ))
    .await;
    let problem = err.problem().expect("an API problem");
    assert_eq!((problem.status, problem.kind), (403, ProblemKind::Other));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_503_is_a_retryable_server_error_with_the_detail() {
    let err = ping_error(problem_response(
        503,
        problem_json(503, "Service Unavailable", "Try again later."),
    ))
    .await;
    match &err {
        Error::Server { status, detail } => {
            assert_eq!((*status, detail.as_str()), (503, "Try again later."))
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable() && !err.is_throttled());
    let err =
        ping_error(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>")).await;
    assert!(
        matches!(&err, Error::Server { status: 502, detail } if detail.contains("Bad Gateway")),
        "{err:?}"
    );
}

#[tokio::test]
async fn every_problem_title_is_classified() {
    let email_errors = json!([{"field": "email address", "message": "\"new@example.com\" is already in this list with a status of \"Non-Subscribed\"."}]);
    let merge_errors = json!([{"field": "LTV", "message": "Please enter a number"}]);
    let cases: Vec<(u16, Value, ProblemKind)> = vec![
        (
            400,
            // Observed without `type`: parsing must not require it.
            json!({"title": "Member Exists", "status": 400,
                   "detail": "ada@example.com is already a list member. Use PUT to insert or update list members.",
                   "instance": "abc"}),
            ProblemKind::MemberExists,
        ),
        (
            400,
            problem_json(400, "Member In Compliance State", "ada@example.com is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed."),
            ProblemKind::ComplianceState,
        ),
        (
            400,
            problem_json(400, "Forgotten Email Not Subscribed", "ada@example.com was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list."),
            ProblemKind::ForgottenEmail,
        ),
        (
            400,
            problem_json(400, "Invalid Resource", "Please provide a valid email address."),
            ProblemKind::InvalidEmail,
        ),
        (
            400,
            problem_json(400, "Invalid Resource", "foo@example.com looks fake or invalid, please enter a real email address."),
            ProblemKind::InvalidEmail,
        ),
        (
            400,
            {
                let mut p = problem_json(400, "Invalid Resource", "Your merge fields were invalid.");
                p["errors"] = merge_errors;
                p
            },
            ProblemKind::MergeFieldsInvalid,
        ),
        (
            400,
            {
                let mut p = problem_json(400, "Invalid Resource", "The resource submitted could not be validated. For field-specific details, see the 'errors' array.");
                p["errors"] = email_errors;
                p
            },
            ProblemKind::InvalidResource,
        ),
        (
            404,
            problem_json(404, "Resource Not Found", "The requested resource could not be found."),
            ProblemKind::NotFound,
        ),
        (
            401,
            problem_json(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter."),
            ProblemKind::ApiKeyInvalid,
        ),
        (
            401,
            problem_json(401, "API Key Missing", "Your request did not include an API key."),
            ProblemKind::ApiKeyMissing,
        ),
        (
            405,
            problem_json(405, "Method Not Allowed", "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived"),
            ProblemKind::MethodNotAllowed,
        ),
    ];
    for (status, body, kind) in cases {
        let err = ping_error(problem_response(status, body.clone())).await;
        let problem = err.problem().unwrap_or_else(|| panic!("{body}: {err:?}"));
        assert_eq!(problem.kind, kind, "{body}");
        assert_eq!(problem.status, status);
        assert_eq!(problem.title, body["title"].as_str().unwrap());
        assert_eq!(problem.detail, body["detail"].as_str().unwrap());
        assert!(!err.is_retryable(), "{body}");
        if kind == ProblemKind::InvalidResource {
            assert_eq!(problem.errors[0].field, "email address");
            assert_eq!(
                problem.instance.as_deref(),
                Some("14c40d88-9b23-1adf-9d0b-bb2996468021")
            );
        }
        // Display is safe to log: no address.
        assert!(!err.to_string().contains("@example.com"), "{err}");
    }
}

#[tokio::test]
async fn a_garbage_200_body_is_a_retryable_decode_error() {
    let err = ping_error(ResponseTemplate::new(200).set_body_string("<html>oops")).await;
    assert!(matches!(err, Error::Decode { status: 200, .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_member_body_with_an_unknown_status_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(member_json(ADA, "frozen")))
        .mount(&server)
        .await;
    let err = client_for(&server.uri())
        .get_member(LIST, ADA)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { status: 200, .. }), "{err:?}");
}

#[tokio::test]
async fn a_garbage_400_body_is_a_final_decode_error() {
    let err = ping_error(ResponseTemplate::new(400).set_body_string("nope")).await;
    assert!(matches!(err, Error::Decode { status: 400, .. }), "{err:?}");
    assert!(!err.is_retryable());
    let err = ping_error(ResponseTemplate::new(400).set_body_json(json!({"x": 1}))).await;
    assert!(matches!(err, Error::Decode { status: 400, .. }), "{err:?}");
}

#[tokio::test]
async fn a_response_slower_than_the_request_timeout_is_a_timeout_transport_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"health_status": "Everything's Chimpy!"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let client = client_with_timeout(&server.uri(), Duration::from_millis(200));
    let err = client.ping().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                timeout: true,
                connect: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = client_for(&format!("http://{addr}"))
        .ping()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transport { connect: true, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn no_debug_or_display_ever_contains_the_key() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    let key = ApiKey::parse(KEY).unwrap();
    let config = ClientConfig::new(key.clone());

    let mut texts = vec![
        format!("{client:?}"),
        format!("{client:#?}"),
        format!("{key:?}"),
        format!("{config:?}"),
        format!("{config:#?}"),
    ];
    let mut errors = vec![
        ping_error(ResponseTemplate::new(429)).await,
        ping_error(ResponseTemplate::new(403)).await,
        ping_error(ResponseTemplate::new(503).set_body_string("down")).await,
        ping_error(problem_response(
            401,
            problem_json(401, "API Key Invalid", "Your API key may be invalid."),
        ))
        .await,
        ping_error(ResponseTemplate::new(200).set_body_string("garbage")).await,
        Error::InvalidInput("x".into()),
        format!("{KEY}!").parse::<ApiKey>().unwrap_err(),
    ];
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    errors.push(
        client_for(&format!("http://{addr}"))
            .ping()
            .await
            .unwrap_err(),
    );
    errors.push(
        client_with_timeout(&server.uri(), Duration::from_millis(50))
            .batch_upsert(LIST, &vec![BatchMember::default(); 501])
            .await
            .unwrap_err(),
    );
    let slow = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&slow)
        .await;
    errors.push(
        client_with_timeout(&slow.uri(), Duration::from_millis(100))
            .ping()
            .await
            .unwrap_err(),
    );
    for err in &errors {
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    for text in texts {
        assert!(!text.contains(KEY_SECRET_PART), "key leaked: {text}");
        assert!(!text.contains(KEY), "key leaked: {text}");
    }
    assert!(format!("{client:?}").contains(&server.uri()));
}
