//! The client against the real emulator over HTTP: every row of the behaviour matrix
//! (docs/mailchimp.md, "Behaviour matrix") as the client sees it, and the emulator's faults as errors.
//!
//! The matrix tests talk to the emulator through a small recording proxy, and every exchange
//! (request and response) is then checked against the OpenAPI subset, so the emulator's
//! bodies are held to Mailchimp's documented shapes too. The fault tests talk to the emulator
//! directly, because the proxy would change what a dropped connection or a cap on
//! connections looks like.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::contract::Contract;
use common::{ltv_merge_field, new_audience, KEY, LIST};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mailchimp::{
    subscriber_hash, ApiKey, BatchMember, Client, ClientConfig, Error, InterestCategoryType,
    ListMembers, MarketingPermissionChange, MemberUpsert, NewInterestCategory, NewMergeField,
    ProblemKind, Status, TagChange,
};
use mailchimp_emulator::{Config, Emulator, Fault};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

// ---- harness --------------------------------------------------------------------------------

/// One request/response pair seen by the recorder.
struct Exchange {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    request: Bytes,
    status: u16,
    response: Bytes,
}

/// A pass-through HTTP proxy in front of the emulator that keeps every exchange.
struct Recorder {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Exchange>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    async fn start(upstream: String) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let task = {
            let log = log.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (log, http, upstream) = (log.clone(), http.clone(), upstream.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            forward(req, http.clone(), upstream.clone(), log.clone())
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Recorder { addr, log, task }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Checks every exchange so far against the contract; panics listing all violations.
    fn assert_all_match_the_contract(&self, contract: &Contract) {
        let log = self.log.lock().unwrap();
        assert!(!log.is_empty(), "nothing was recorded");
        let mut violations = Vec::new();
        for x in log.iter() {
            let documented = contract.operation(&x.method, &x.path).is_some();
            if documented {
                if let Err(e) = contract.check_request(&x.method, &x.path, &x.query, &x.request) {
                    violations.extend(e);
                }
                if let Err(e) = contract.check_response(&x.method, &x.path, x.status, &x.response) {
                    violations.extend(e);
                }
            } else if !(200..300).contains(&x.status) {
                // A call outside the subset (raw checks): its error must still be a problem.
                match serde_json::from_slice::<Value>(&x.response) {
                    Ok(body) => {
                        if let Err(e) = contract.check_problem(&body) {
                            violations.extend(e);
                        }
                    }
                    Err(e) => violations.push(format!("{} {}: not JSON: {e}", x.method, x.path)),
                }
            }
        }
        assert!(
            violations.is_empty(),
            "emulator traffic violates the contract:\n{}",
            violations.join("\n")
        );
    }

    /// The operations seen so far.
    fn operations(&self, contract: &Contract) -> BTreeSet<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|x| {
                contract
                    .operation(&x.method, &x.path)
                    .map(|o| o.key.clone())
            })
            .collect()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn forward(
    req: Request<Incoming>,
    http: reqwest::Client,
    upstream: String,
    log: Arc<Mutex<Vec<Exchange>>>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = req.into_parts();
    let request = body.collect().await?.to_bytes();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut out = http.request(parts.method.clone(), format!("{upstream}{path_and_query}"));
    for (name, value) in &parts.headers {
        if ![HOST, CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING].contains(name) {
            out = out.header(name, value);
        }
    }
    // An upstream that drops the connection makes this fail, and the error closes the
    // client's connection without an answer too.
    let resp = out.body(request.clone()).send().await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let response = resp.bytes().await?;
    let query = parts
        .uri
        .query()
        .map(|q| url_pairs(q).into_iter().collect::<Vec<(String, String)>>())
        .unwrap_or_default();
    log.lock().unwrap().push(Exchange {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        request,
        status: status.as_u16(),
        response: response.clone(),
    });
    let mut builder = Response::builder().status(status);
    for (name, value) in &headers {
        if ![CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING].contains(name) {
            builder = builder.header(name, value);
        }
    }
    Ok(builder.body(Full::new(response))?)
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{query}")).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// An emulator with one audience, a recorder in front of it, and a client pointed at it.
struct World {
    emulator: Emulator,
    recorder: Recorder,
    client: Client,
    raw: reqwest::Client,
}

impl World {
    async fn start() -> World {
        World::with(Config::default()).await
    }

    /// A world whose emulator also has what `config` sets (the key and `LIST` are always there).
    async fn with(config: Config) -> World {
        let config = Config {
            api_key: Some(KEY.to_owned()),
            audiences: vec![LIST.to_owned()],
            ..config
        };
        let emulator = Emulator::start("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let upstream = emulator.base_url().trim_end_matches("/3.0").to_owned();
        let recorder = Recorder::start(upstream).await;
        let client = client_at(&format!("{}/3.0", recorder.base()), KEY);
        World {
            emulator,
            recorder,
            client,
            raw: reqwest::Client::new(),
        }
    }

    /// A raw request through the recorder (for calls the client does not make).
    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .raw
            .request(method, format!("{}/3.0{path}", self.recorder.base()))
            .basic_auth("raw", Some(KEY));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, json)
    }

    fn status_of(&self, email: &str) -> Option<String> {
        self.emulator.member(LIST, email).map(|m| m.status)
    }

    /// Creates `email` subscribed through the client.
    async fn subscribe(&self, email: &str) {
        let member = self
            .client
            .upsert_member(LIST, email, &subscribe_if_new())
            .await
            .unwrap();
        assert_eq!(member.status, Status::Subscribed);
    }

    /// Ends the test: every exchange must match the contract.
    fn check_contract(&self) {
        self.recorder
            .assert_all_match_the_contract(&Contract::load());
    }
}

fn client_at(base: &str, key: &str) -> Client {
    let mut config = ClientConfig::new(ApiKey::parse(key).unwrap());
    config.base_url = Some(base.to_owned());
    config.request_timeout = Duration::from_secs(10);
    Client::new(config).unwrap()
}

fn subscribe_if_new() -> MemberUpsert {
    MemberUpsert {
        status_if_new: Some(Status::Subscribed),
        ..Default::default()
    }
}

fn force(status: Status) -> MemberUpsert {
    MemberUpsert {
        status: Some(status),
        ..Default::default()
    }
}

fn kind_of(err: &Error) -> ProblemKind {
    err.problem()
        .unwrap_or_else(|| panic!("expected a problem document, got {err:?}"))
        .kind
}

fn merge(pairs: Value) -> Map<String, Value> {
    pairs.as_object().cloned().unwrap()
}

// Addresses on a real-looking domain: the emulator, like Mailchimp, calls example.com fake.
const ADA: &str = "ada@acme.io";
const BOB: &str = "bob@acme.io";
const CAROL: &str = "carol@acme.io";
const DAN: &str = "dan@acme.io";

// ---- the behaviour matrix -------------------------------------------------------------------

#[tokio::test]
async fn ping_and_audience_work_and_a_wrong_key_is_api_key_invalid() {
    let w = World::start().await;
    w.client.ping().await.unwrap();
    let audience = w.client.get_audience(LIST).await.unwrap();
    assert_eq!(audience.id, LIST);
    assert_eq!(audience.member_count, 0);
    let err = w.client.get_audience("nosuchlist").await.unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::NotFound);

    let wrong = client_at(
        &format!("{}/3.0", w.recorder.base()),
        "ffffffffffffffffffffffffffffffff-us6",
    );
    let err = wrong.ping().await.unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::ApiKeyInvalid);
    assert_eq!(err.problem().unwrap().status, 401);
    assert!(!err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("ffffffffffffffff"));
    w.check_contract();
}

#[tokio::test]
async fn put_creates_a_member_under_the_hash_of_the_body_address() {
    let w = World::start().await;
    // Plain create with status_if_new.
    let ada = w
        .client
        .upsert_member(LIST, "Ada@Acme.io", &subscribe_if_new())
        .await
        .unwrap();
    assert_eq!(ada.id, subscriber_hash(ADA));
    assert_eq!(ada.status, Status::Subscribed);
    // `status` alone creates too.
    let bob = w
        .client
        .upsert_member(LIST, BOB, &force(Status::Pending))
        .await
        .unwrap();
    assert_eq!(bob.status, Status::Pending);
    // PUT to an unknown hash X with body address E creates md5(E), not X.
    let carol = w
        .client
        .upsert_member(
            LIST,
            "ghost@acme.io",
            &MemberUpsert {
                email_address: Some(CAROL.into()),
                status_if_new: Some(Status::Subscribed),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(carol.id, subscriber_hash(CAROL));
    assert!(w.emulator.member(LIST, "ghost@acme.io").is_none());
    assert_eq!(w.status_of(CAROL).as_deref(), Some("subscribed"));
    // status_if_new does not touch an existing member.
    let again = w
        .client
        .upsert_member(LIST, BOB, &subscribe_if_new())
        .await
        .unwrap();
    assert_eq!(again.status, Status::Pending);
    let got = w.client.get_member(LIST, ADA).await.unwrap();
    assert_eq!(got.email_address.to_lowercase(), ADA);
    let page = w
        .client
        .list_members(LIST, &ListMembers::default())
        .await
        .unwrap();
    assert_eq!(page.total_items, 3);
    let pending = w
        .client
        .list_members(
            LIST,
            &ListMembers {
                status: Some(Status::Pending),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pending.members.len(), 1);
    assert_eq!(pending.members[0].email_address, BOB);
    w.check_contract();
}

#[tokio::test]
async fn put_to_another_hash_with_a_present_address_is_member_exists() {
    let w = World::start().await;
    w.subscribe(ADA).await;
    let err = w
        .client
        .upsert_member(
            LIST,
            "ghost@acme.io",
            &MemberUpsert {
                email_address: Some(ADA.into()),
                status_if_new: Some(Status::Subscribed),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::MemberExists);
    assert_eq!(err.problem().unwrap().status, 400);
    // The same through rename from an address that is not in the list.
    let err = w
        .client
        .rename_member(LIST, "ghost@acme.io", ADA, &MemberUpsert::default())
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::MemberExists);
    // And POST of an existing address (a call the client does not make), raw.
    let (status, body) = w
        .raw(
            reqwest::Method::POST,
            &format!("/lists/{LIST}/members"),
            Some(json!({"email_address": ADA, "status": "subscribed"})),
        )
        .await;
    assert_eq!(
        (status, body["title"].as_str()),
        (400, Some("Member Exists"))
    );
    assert_eq!(
        body["detail"],
        format!("{ADA} is already a list member. Use PUT to insert or update list members.")
    );
    w.check_contract();
}

#[tokio::test]
async fn rename_moves_the_member_to_the_new_hash_and_refuses_taken_or_unsubscribed() {
    let w = World::start().await;
    w.subscribe(ADA).await;
    w.subscribe(BOB).await;
    w.subscribe(CAROL).await;

    let renamed = w
        .client
        .rename_member(LIST, ADA, DAN, &MemberUpsert::default())
        .await
        .unwrap();
    assert_eq!(renamed.id, subscriber_hash(DAN));
    assert_eq!(renamed.email_address, DAN);
    let gone = w.client.get_member(LIST, ADA).await.unwrap_err();
    assert_eq!(kind_of(&gone), ProblemKind::NotFound);
    assert!(w.emulator.member(LIST, ADA).is_none());

    // Onto an address already in the list.
    let err = w
        .client
        .rename_member(LIST, DAN, BOB, &MemberUpsert::default())
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::InvalidResource);
    let problem = err.problem().unwrap();
    assert_eq!(problem.errors.len(), 1);
    assert_eq!(problem.errors[0].field, "email address");
    assert!(
        problem.errors[0]
            .message
            .contains("is already in this list"),
        "{problem:?}"
    );

    // A member that is not subscribed.
    w.client
        .set_status(LIST, CAROL, Status::Unsubscribed)
        .await
        .unwrap();
    let err = w
        .client
        .rename_member(LIST, CAROL, "carol2@acme.io", &MemberUpsert::default())
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::InvalidResource);
    let problem = err.problem().unwrap();
    assert_eq!(problem.errors[0].field, "email address");
    assert!(
        problem.errors[0].message.contains(
            "You can only update email addresses for members with a status of \"subscribed.\""
        ),
        "{problem:?}"
    );
    assert_eq!(w.status_of(CAROL).as_deref(), Some("unsubscribed"));
    assert!(w.emulator.member(LIST, "carol2@acme.io").is_none());
    w.check_contract();
}

#[tokio::test]
async fn a_contact_in_compliance_state_cannot_be_subscribed_but_can_be_set_pending() {
    let w = World::start().await;
    w.subscribe(ADA).await;
    w.subscribe(BOB).await;
    w.subscribe(CAROL).await;

    // Unsubscribed by themselves.
    assert!(w.emulator.simulate_unsubscribe(LIST, ADA));
    let err = w
        .client
        .upsert_member(LIST, ADA, &force(Status::Subscribed))
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::ComplianceState);
    assert_eq!(
        err.problem().unwrap().detail,
        format!("{ADA} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.")
    );
    let err = w
        .client
        .set_status(LIST, ADA, Status::Subscribed)
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::ComplianceState);
    // status_if_new alone does not try to subscribe an existing contact.
    let kept = w
        .client
        .upsert_member(LIST, ADA, &subscribe_if_new())
        .await
        .unwrap();
    assert_eq!(kept.status, Status::Unsubscribed);
    // The workaround: pending, then the contact confirms.
    let pending = w
        .client
        .set_status(LIST, ADA, Status::Pending)
        .await
        .unwrap();
    assert_eq!(pending.status, Status::Pending);
    assert!(w.emulator.simulate_confirm(LIST, ADA));
    assert_eq!(
        w.client.get_member(LIST, ADA).await.unwrap().status,
        Status::Subscribed
    );

    // Bounced (cleaned): same refusal, same way back through PUT.
    assert!(w.emulator.simulate_bounce(LIST, BOB));
    assert_eq!(
        w.client.get_member(LIST, BOB).await.unwrap().status,
        Status::Cleaned
    );
    let err = w
        .client
        .upsert_member(LIST, BOB, &force(Status::Subscribed))
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::ComplianceState);
    let pending = w
        .client
        .upsert_member(LIST, BOB, &force(Status::Pending))
        .await
        .unwrap();
    assert_eq!(pending.status, Status::Pending);

    // Unsubscribed by the API (admin) may be re-subscribed directly.
    let unsub = w
        .client
        .set_status(LIST, CAROL, Status::Unsubscribed)
        .await
        .unwrap();
    assert_eq!(unsub.status, Status::Unsubscribed);
    let back = w
        .client
        .upsert_member(LIST, CAROL, &force(Status::Subscribed))
        .await
        .unwrap();
    assert_eq!(back.status, Status::Subscribed);
    w.check_contract();
}

#[tokio::test]
async fn archive_works_for_subscribed_and_unsubscribed_and_is_405_for_pending_cleaned_archived() {
    let w = World::start().await;
    w.subscribe(ADA).await;
    w.subscribe(BOB).await;
    w.subscribe(CAROL).await;
    w.client
        .upsert_member(LIST, DAN, &force(Status::Pending))
        .await
        .unwrap();

    w.client.archive_member(LIST, ADA).await.unwrap();
    assert_eq!(
        w.client.get_member(LIST, ADA).await.unwrap().status,
        Status::Archived
    );
    let archived = w
        .client
        .list_members(
            LIST,
            &ListMembers {
                status: Some(Status::Archived),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(archived.members.len(), 1);

    w.client
        .set_status(LIST, BOB, Status::Unsubscribed)
        .await
        .unwrap();
    w.client.archive_member(LIST, BOB).await.unwrap();
    assert_eq!(w.status_of(BOB).as_deref(), Some("archived"));

    assert!(w.emulator.simulate_bounce(LIST, CAROL));
    for (email, what) in [(ADA, "archived"), (CAROL, "cleaned"), (DAN, "pending")] {
        let err = w.client.archive_member(LIST, email).await.unwrap_err();
        assert_eq!(kind_of(&err), ProblemKind::MethodNotAllowed, "{what}");
        let problem = err.problem().unwrap();
        assert_eq!(problem.status, 405);
        assert_eq!(
            problem.detail,
            "This list member cannot be removed. Can not archive a contact that is bounced, pending or archived"
        );
    }
    // An archived contact comes back with a PUT.
    let back = w
        .client
        .upsert_member(LIST, ADA, &force(Status::Subscribed))
        .await
        .unwrap();
    assert_eq!(back.status, Status::Subscribed);
    // Archiving an address that is not in the list is 404.
    let err = w
        .client
        .archive_member(LIST, "nobody@acme.io")
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::NotFound);
    w.check_contract();
}

#[tokio::test]
async fn a_permanently_deleted_address_is_forgotten_for_every_later_write() {
    let w = World::start().await;
    w.subscribe(ADA).await;
    w.client.delete_member_permanently(LIST, ADA).await.unwrap();
    assert!(w.emulator.is_forgotten(LIST, ADA));
    let err = w.client.get_member(LIST, ADA).await.unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::NotFound);

    for body in [subscribe_if_new(), force(Status::Pending)] {
        let err = w.client.upsert_member(LIST, ADA, &body).await.unwrap_err();
        assert_eq!(kind_of(&err), ProblemKind::ForgottenEmail);
        assert_eq!(
            err.problem().unwrap().detail,
            format!("{ADA} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.")
        );
    }
    let (status, body) = w
        .raw(
            reqwest::Method::POST,
            &format!("/lists/{LIST}/members"),
            Some(json!({"email_address": ADA, "status": "pending"})),
        )
        .await;
    assert_eq!(
        (status, body["title"].as_str()),
        (400, Some("Forgotten Email Not Subscribed"))
    );
    assert!(w.emulator.member(LIST, ADA).is_none());
    w.check_contract();
}

#[tokio::test]
async fn fake_and_malformed_addresses_are_invalid_email() {
    let w = World::start().await;
    let err = w
        .client
        .upsert_member(LIST, "foo@example.com", &subscribe_if_new())
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::InvalidEmail);
    assert_eq!(
        err.problem().unwrap().detail,
        "foo@example.com looks fake or invalid, please enter a real email address."
    );
    let err = w
        .client
        .upsert_member(LIST, "not-an-address", &subscribe_if_new())
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::InvalidEmail);
    assert_eq!(
        err.problem().unwrap().detail,
        "Please provide a valid email address."
    );
    assert!(w.emulator.members(LIST).is_empty());
    w.check_contract();
}

#[tokio::test]
async fn merge_fields_are_listed_created_and_validated() {
    let w = World::start().await;
    let fields = w.client.merge_fields(LIST).await.unwrap();
    let tags: Vec<&str> = fields.iter().map(|f| f.tag.as_str()).collect();
    for tag in ["FNAME", "LNAME"] {
        assert!(tags.contains(&tag), "{tags:?}");
    }
    let ltv = w
        .client
        .create_merge_field(LIST, &ltv_merge_field())
        .await
        .unwrap();
    assert_eq!((ltv.tag.as_str(), ltv.r#type.as_str()), ("LTV", "number"));
    assert!(w
        .client
        .merge_fields(LIST)
        .await
        .unwrap()
        .iter()
        .any(|f| f.tag == "LTV"));

    let good = MemberUpsert {
        status_if_new: Some(Status::Subscribed),
        merge_fields: merge(json!({"FNAME": "Ada", "LNAME": "Lovelace", "LTV": 15.5})),
        ..Default::default()
    };
    let ada = w.client.upsert_member(LIST, ADA, &good).await.unwrap();
    assert_eq!(ada.merge_fields["FNAME"], "Ada");
    assert_eq!(
        w.emulator.member(LIST, ADA).unwrap().merge_fields["LNAME"],
        "Lovelace"
    );

    let bad = MemberUpsert {
        merge_fields: merge(json!({"LTV": "lots"})),
        ..Default::default()
    };
    let err = w.client.upsert_member(LIST, ADA, &bad).await.unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::MergeFieldsInvalid);
    let problem = err.problem().unwrap();
    assert_eq!(problem.detail, "Your merge fields were invalid.");
    assert_eq!(problem.errors[0].field, "LTV");
    assert_eq!(problem.errors[0].message, "Please enter a number");
    w.check_contract();
}

#[tokio::test]
async fn an_unknown_hash_is_not_found_for_reads_patch_and_tags() {
    let w = World::start().await;
    let nobody = "nobody@acme.io";
    let errors = [
        w.client.get_member(LIST, nobody).await.unwrap_err(),
        w.client
            .set_status(LIST, nobody, Status::Unsubscribed)
            .await
            .unwrap_err(),
        w.client
            .update_tags(LIST, nobody, &[TagChange::add("x")])
            .await
            .unwrap_err(),
        w.client.member_tags(LIST, nobody).await.unwrap_err(),
        w.client
            .delete_member_permanently(LIST, nobody)
            .await
            .unwrap_err(),
    ];
    for err in errors {
        assert_eq!(kind_of(&err), ProblemKind::NotFound, "{err:?}");
        let problem = err.problem().unwrap();
        assert_eq!(problem.status, 404);
        assert_eq!(problem.detail, "The requested resource could not be found.");
    }
    assert!(w.emulator.members(LIST).is_empty());
    w.check_contract();
}

#[tokio::test]
async fn batch_upsert_creates_updates_and_reports_each_refused_member() {
    let w = World::start().await;
    w.client
        .create_merge_field(LIST, &ltv_merge_field())
        .await
        .unwrap();
    w.subscribe(BOB).await; // will be updated
    w.subscribe(CAROL).await; // will unsubscribe herself
    assert!(w.emulator.simulate_unsubscribe(LIST, CAROL));
    w.subscribe(DAN).await; // will be forgotten
    w.client.delete_member_permanently(LIST, DAN).await.unwrap();

    let member = |email: &str| BatchMember {
        email_address: email.into(),
        status_if_new: Some(Status::Subscribed),
        ..Default::default()
    };
    let members = vec![
        BatchMember {
            merge_fields: merge(json!({"FNAME": "Ada"})),
            tags: vec!["customer".into()],
            ..member(ADA)
        },
        BatchMember {
            merge_fields: merge(json!({"FNAME": "Bob"})),
            ..member(BOB)
        },
        BatchMember {
            status: Some(Status::Subscribed),
            ..member(CAROL)
        },
        member(DAN),
        member("foo@example.com"),
        member("not-an-address"),
        BatchMember {
            merge_fields: merge(json!({"LTV": "lots"})),
            ..member("erin@acme.io")
        },
    ];
    let result = w.client.batch_upsert(LIST, &members).await.unwrap();

    let created: Vec<&str> = result
        .created
        .iter()
        .map(|m| m.email_address.as_str())
        .collect();
    assert_eq!(created, [ADA]);
    assert_eq!(result.created[0].id, subscriber_hash(ADA));
    assert_eq!(result.created[0].status, Status::Subscribed);
    let updated: Vec<&str> = result
        .updated
        .iter()
        .map(|m| m.email_address.as_str())
        .collect();
    assert_eq!(updated, [BOB]);

    let kinds: Vec<(&str, ProblemKind)> = result
        .errors
        .iter()
        .map(|e| (e.email_address.as_str(), e.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            (CAROL, ProblemKind::ComplianceState),
            (DAN, ProblemKind::ForgottenEmail),
            ("foo@example.com", ProblemKind::InvalidEmail),
            ("not-an-address", ProblemKind::InvalidEmail),
            ("erin@acme.io", ProblemKind::MergeFieldsInvalid),
        ],
        "{:#?}",
        result.errors
    );
    for e in &result.errors {
        assert_eq!(e.error_code, "ERROR_GENERIC", "{e:?}");
    }
    let merge_error = &result.errors[4];
    assert_eq!(merge_error.field.as_deref(), Some("LTV"));

    let ada = w.emulator.member(LIST, ADA).unwrap();
    assert_eq!(ada.tags, ["customer"]);
    assert_eq!(ada.merge_fields["FNAME"], "Ada");
    assert_eq!(
        w.emulator.member(LIST, BOB).unwrap().merge_fields["FNAME"],
        "Bob"
    );
    assert_eq!(w.status_of(CAROL).as_deref(), Some("unsubscribed"));
    assert!(w.emulator.member(LIST, "erin@acme.io").is_none());

    // Without update_existing Mailchimp refuses existing members with ERROR_CONTACT_EXISTS
    // (a request the client never sends; raw).
    let (status, body) = w
        .raw(
            reqwest::Method::POST,
            &format!("/lists/{LIST}"),
            Some(json!({"members": [{"email_address": BOB, "status": "subscribed"}], "update_existing": false})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["errors"][0]["error_code"], "ERROR_CONTACT_EXISTS",
        "{body}"
    );
    w.check_contract();
}

#[tokio::test]
async fn tags_are_added_and_removed_through_the_tags_endpoint() {
    let w = World::start().await;
    w.subscribe(ADA).await;
    w.client
        .update_tags(
            LIST,
            ADA,
            &[TagChange::add("customer"), TagChange::add("vip")],
        )
        .await
        .unwrap();
    let mut tags = w.client.member_tags(LIST, ADA).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["customer", "vip"]);
    w.client
        .update_tags(
            LIST,
            ADA,
            &[TagChange::remove("vip"), TagChange::remove("never-had")],
        )
        .await
        .unwrap();
    assert_eq!(w.client.member_tags(LIST, ADA).await.unwrap(), ["customer"]);
    assert_eq!(
        w.client.get_member(LIST, ADA).await.unwrap().tags,
        ["customer"]
    );
    assert_eq!(w.emulator.member(LIST, ADA).unwrap().tags, ["customer"]);
    // An archived member still accepts tag changes (204).
    w.client.archive_member(LIST, ADA).await.unwrap();
    w.client
        .update_tags(LIST, ADA, &[TagChange::add("churned")])
        .await
        .unwrap();
    w.check_contract();
}

// ---- interests, marketing permissions and the endpoints the client does not call -----------

const GDPR_LIST: &str = "9d9d9d9d9d";

fn with_interests(pairs: &[(&str, bool)]) -> std::collections::BTreeMap<String, bool> {
    pairs
        .iter()
        .map(|(id, on)| ((*id).to_owned(), *on))
        .collect()
}

#[tokio::test]
async fn interests_are_created_listed_and_set_on_members_through_the_client() {
    let w = World::start().await;
    assert!(w.client.interest_categories(LIST).await.unwrap().is_empty());
    let pets = w
        .client
        .create_interest_category(
            LIST,
            &NewInterestCategory {
                title: "Pets".into(),
                kind: InterestCategoryType::Checkboxes,
            },
        )
        .await
        .unwrap();
    assert_eq!(pets.kind, InterestCategoryType::Checkboxes);
    assert_eq!(pets.id.len(), 10);
    let err = w
        .client
        .create_interest_category(
            LIST,
            &NewInterestCategory {
                title: "Pets".into(),
                kind: InterestCategoryType::Hidden,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::InvalidResource);
    assert_eq!(
        w.client.interest_categories(LIST).await.unwrap(),
        std::slice::from_ref(&pets)
    );

    let dogs = w
        .client
        .create_interest(LIST, &pets.id, "Dogs")
        .await
        .unwrap();
    let cats = w
        .client
        .create_interest(LIST, &pets.id, "Cats")
        .await
        .unwrap();
    assert_eq!(dogs.category_id, pets.id);
    assert_eq!(
        w.client.interests(LIST, &pets.id).await.unwrap(),
        [dogs.clone(), cats.clone()]
    );
    let err = w
        .client
        .create_interest(LIST, &pets.id, "Dogs")
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::InvalidResource);
    let err = w.client.interests(LIST, "nocategory").await.unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::NotFound);

    let body = MemberUpsert {
        status_if_new: Some(Status::Subscribed),
        interests: with_interests(&[(&dogs.id, true)]),
        ..Default::default()
    };
    let member = w.client.upsert_member(LIST, ADA, &body).await.unwrap();
    assert_eq!(
        member.interests,
        with_interests(&[(&dogs.id, true), (&cats.id, false)])
    );
    let result = w
        .client
        .batch_upsert(
            LIST,
            &[
                BatchMember {
                    email_address: ADA.into(),
                    status_if_new: Some(Status::Subscribed),
                    interests: with_interests(&[(&cats.id, true)]),
                    ..Default::default()
                },
                BatchMember {
                    email_address: BOB.into(),
                    status_if_new: Some(Status::Subscribed),
                    interests: with_interests(&[("0000000000", true)]),
                    ..Default::default()
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(result.updated.len(), 1);
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].error, "Invalid interest ID: '0000000000'.");
    let member = w.client.get_member(LIST, ADA).await.unwrap();
    assert_eq!(
        member.interests,
        with_interests(&[(&dogs.id, true), (&cats.id, true)]),
        "the interests a write leaves out stay"
    );

    let bad = MemberUpsert {
        interests: with_interests(&[("0000000000", true)]),
        ..subscribe_if_new()
    };
    let err = w.client.upsert_member(LIST, CAROL, &bad).await.unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::InvalidResource);
    assert!(!err.is_retryable());
    assert!(w.emulator.member(LIST, CAROL).is_none());
    w.check_contract();
}

#[tokio::test]
async fn marketing_permissions_are_read_from_a_member_and_set_through_the_client() {
    let w = World::with(Config {
        gdpr_audiences: vec![GDPR_LIST.to_owned()],
        ..Config::default()
    })
    .await;
    let audience = w.client.get_audience(GDPR_LIST).await.unwrap();
    assert!(audience.marketing_permissions);
    assert!(
        !w.client
            .get_audience(LIST)
            .await
            .unwrap()
            .marketing_permissions
    );
    assert!(
        w.client
            .marketing_permissions(GDPR_LIST)
            .await
            .unwrap()
            .is_empty(),
        "no member to read them from yet"
    );

    let member = w
        .client
        .upsert_member(GDPR_LIST, ADA, &subscribe_if_new())
        .await
        .unwrap();
    assert!(member.marketing_permissions.iter().all(|p| !p.enabled));
    let permissions = w.client.marketing_permissions(GDPR_LIST).await.unwrap();
    let texts: Vec<&str> = permissions.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(
        texts,
        ["Email", "Direct Mail", "Customized Online Advertising"]
    );

    let email = MarketingPermissionChange {
        marketing_permission_id: permissions[0].id.clone(),
        enabled: true,
    };
    let member = w
        .client
        .set_member_permissions(GDPR_LIST, ADA, std::slice::from_ref(&email))
        .await
        .unwrap();
    let enabled: Vec<bool> = member
        .marketing_permissions
        .iter()
        .map(|p| p.enabled)
        .collect();
    assert_eq!(enabled, [true, false, false]);
    let body = MemberUpsert {
        marketing_permissions: vec![MarketingPermissionChange {
            marketing_permission_id: permissions[2].id.clone(),
            enabled: true,
        }],
        ..subscribe_if_new()
    };
    let member = w.client.upsert_member(GDPR_LIST, BOB, &body).await.unwrap();
    let enabled: Vec<bool> = member
        .marketing_permissions
        .iter()
        .map(|p| p.enabled)
        .collect();
    assert_eq!(enabled, [false, false, true]);

    let unknown = MarketingPermissionChange {
        marketing_permission_id: "0000000000".into(),
        enabled: true,
    };
    let err = w
        .client
        .set_member_permissions(GDPR_LIST, ADA, &[unknown])
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::InvalidResource);
    let err = w
        .client
        .set_member_permissions(GDPR_LIST, DAN, std::slice::from_ref(&email))
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::NotFound);

    // An audience that is not a GDPR one: members carry none, and no id is valid.
    w.subscribe(CAROL).await;
    assert!(w
        .client
        .marketing_permissions(LIST)
        .await
        .unwrap()
        .is_empty());
    let member = w.client.get_member(LIST, CAROL).await.unwrap();
    assert!(member.marketing_permissions.is_empty());
    let err = w
        .client
        .set_member_permissions(LIST, CAROL, &[email])
        .await
        .unwrap_err();
    assert_eq!(kind_of(&err), ProblemKind::InvalidResource);
    w.check_contract();
}

/// Every emulator endpoint the client has no method for, with plain requests through the
/// recorder (so the contract check covers them): tag search, member search, the PATCHes of a
/// list, a merge field, a webhook, a category and an interest, reading and deleting categories
/// and interests, `fields`, `exclude_fields` and `include_total_contacts`.
async fn exercise_plain_endpoints(w: &World) {
    use reqwest::Method;
    w.subscribe(DAN).await;
    w.client
        .update_tags(
            LIST,
            DAN,
            &[TagChange::add("Customer"), TagChange::add("vip")],
        )
        .await
        .unwrap();
    let (status, tags) = w
        .raw(
            Method::GET,
            &format!("/lists/{LIST}/tag-search?name=cus"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{tags}");
    assert_eq!(tags["total_items"], 1);
    assert_eq!(tags["tags"][0]["name"], "Customer");

    let (status, found) = w
        .raw(
            Method::GET,
            &format!("/search-members?query={DAN}&list_id={LIST}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["exact_matches"]["members"][0]["email_address"], DAN);
    let (status, _) = w
        .raw(Method::GET, "/search-members?query=acme.io", None)
        .await;
    assert_eq!(status, 200);

    let list = json!({
        "name": "Renamed", "permission_reminder": "You bought from us.",
        "contact": {"company": "Acme", "address1": "1 Main St", "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US"},
        "campaign_defaults": {"from_name": "Acme", "from_email": "news@acme.io", "subject": "", "language": "en"},
        "email_type_option": false
    });
    let (status, patched) = w
        .raw(Method::PATCH, &format!("/lists/{LIST}"), Some(list.clone()))
        .await;
    assert_eq!((status, patched["name"].as_str()), (200, Some("Renamed")));

    let (status, field) = w
        .raw(
            Method::PATCH,
            &format!("/lists/{LIST}/merge-fields/1"),
            Some(json!({"name": "Given name", "required": false})),
        )
        .await;
    assert_eq!((status, field["name"].as_str()), (200, Some("Given name")));

    let validator = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&validator)
        .await;
    let (status, hook) = w
        .raw(
            Method::POST,
            &format!("/lists/{LIST}/webhooks"),
            Some(json!({"url": format!("{}/hook", validator.uri())})),
        )
        .await;
    assert_eq!(status, 200, "{hook}");
    let hook_path = format!("/lists/{LIST}/webhooks/{}", hook["id"].as_str().unwrap());
    let (status, hook) = w
        .raw(
            Method::PATCH,
            &hook_path,
            Some(json!({"url": format!("{}/moved", validator.uri()), "sources": {"api": true}})),
        )
        .await;
    assert_eq!(status, 200, "{hook}");
    assert_eq!(hook["sources"]["api"], true);

    let categories = format!("/lists/{LIST}/interest-categories");
    let (_, category) = w
        .raw(
            Method::POST,
            &categories,
            Some(json!({"title": "Plain", "type": "radio"})),
        )
        .await;
    let category = format!("{categories}/{}", category["id"].as_str().unwrap());
    let (status, _) = w
        .raw(
            Method::GET,
            &format!("{categories}?count=5&type=radio"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, got) = w.raw(Method::GET, &category, None).await;
    assert_eq!((status, got["title"].as_str()), (200, Some("Plain")));
    let (status, got) = w
        .raw(
            Method::PATCH,
            &category,
            Some(json!({"title": "Plainer", "type": "dropdown", "display_order": 4})),
        )
        .await;
    assert_eq!((status, got["type"].as_str()), (200, Some("dropdown")));
    let (_, interest) = w
        .raw(
            Method::POST,
            &format!("{category}/interests"),
            Some(json!({"name": "One"})),
        )
        .await;
    let interest = format!("{category}/interests/{}", interest["id"].as_str().unwrap());
    let (status, got) = w.raw(Method::GET, &interest, None).await;
    assert_eq!((status, got["subscriber_count"].as_str()), (200, Some("0")));
    let (status, got) = w
        .raw(Method::PATCH, &interest, Some(json!({"name": "Uno"})))
        .await;
    assert_eq!((status, got["name"].as_str()), (200, Some("Uno")));
    let (status, _) = w.raw(Method::DELETE, &interest, None).await;
    assert_eq!(status, 204);
    let (status, _) = w.raw(Method::GET, &interest, None).await;
    assert_eq!(status, 404);
    let (status, _) = w.raw(Method::DELETE, &category, None).await;
    assert_eq!(status, 204);

    let (status, page) = w
        .raw(
            Method::GET,
            &format!("/lists/{LIST}/members?fields=members.email_address,total_items"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(page["members"][0].get("status").is_none(), "{page}");
    assert!(page.get("list_id").is_none());
    let (status, audience) = w
        .raw(
            Method::GET,
            &format!("/lists/{LIST}?include_total_contacts=true&exclude_fields=_links,contact"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(audience["stats"]["total_contacts"].is_u64(), "{audience}");
    assert!(audience.get("contact").is_none());
    let (status, _) = w
        .raw(Method::GET, &format!("/lists/{LIST}?fields=id,name"), None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_endpoints_the_client_does_not_call_pass_the_contract_too() {
    let w = World::start().await;
    exercise_plain_endpoints(&w).await;
    w.check_contract();
}

#[tokio::test]
async fn the_matrix_tests_cover_every_operation_of_the_contract() {
    // One world running a little of everything, so the coverage check stays in one place.
    let w = World::start().await;
    let contract = Contract::load();
    w.client.ping().await.unwrap();
    w.client.get_audience(LIST).await.unwrap();
    let created = w
        .client
        .create_audience(&new_audience("Second", "news@acme.io"))
        .await
        .unwrap();
    assert_eq!(created.name, "Second");
    assert_eq!(
        w.client.get_audience(&created.id).await.unwrap().id,
        created.id
    );
    w.client
        .batch_upsert(
            LIST,
            &[BatchMember {
                email_address: BOB.into(),
                status_if_new: Some(Status::Subscribed),
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    w.subscribe(ADA).await;
    w.client.get_member(LIST, ADA).await.unwrap();
    w.client
        .set_status(LIST, ADA, Status::Unsubscribed)
        .await
        .unwrap();
    w.client
        .update_tags(LIST, ADA, &[TagChange::add("x")])
        .await
        .unwrap();
    w.client.member_tags(LIST, ADA).await.unwrap();
    w.client
        .list_members(LIST, &ListMembers::default())
        .await
        .unwrap();
    w.client.merge_fields(LIST).await.unwrap();
    w.client
        .create_merge_field(
            LIST,
            &NewMergeField {
                tag: "CITY".into(),
                name: "City".into(),
                r#type: "text".into(),
            },
        )
        .await
        .unwrap();
    let category = w
        .client
        .create_interest_category(
            LIST,
            &NewInterestCategory {
                title: "Pets".into(),
                kind: InterestCategoryType::Hidden,
            },
        )
        .await
        .unwrap();
    w.client.interest_categories(LIST).await.unwrap();
    w.client
        .create_interest(LIST, &category.id, "Dogs")
        .await
        .unwrap();
    w.client.interests(LIST, &category.id).await.unwrap();
    w.client.marketing_permissions(LIST).await.unwrap();
    exercise_plain_endpoints(&w).await;
    w.client.archive_member(LIST, ADA).await.unwrap();
    w.client.delete_member_permanently(LIST, BOB).await.unwrap();
    let seen = w.recorder.operations(&contract);
    let missing: Vec<&str> = contract
        .keys()
        .into_iter()
        .filter(|k| !seen.contains(*k))
        .collect();
    assert!(missing.is_empty(), "not exercised: {missing:?}");
    assert_eq!(
        w.emulator.members(LIST).len(),
        2,
        "ADA archived, BOB forgotten, DAN subscribed"
    );
    w.check_contract();
}

// ---- faults, as the client sees them (direct, no recorder) ----------------------------------

async fn direct(config: Config) -> (Emulator, Client) {
    let config = Config {
        audiences: vec![LIST.to_owned()],
        ..config
    };
    let emulator = Emulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let client = client_at(&emulator.base_url(), KEY);
    (emulator, client)
}

#[tokio::test]
async fn requests_beyond_max_connections_are_throttled() {
    let (emulator, client) = direct(Config {
        max_connections: Some(1),
        latency: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.ping().await })
        })
        .collect();
    let mut throttled = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(()) => {}
            Err(err) => {
                assert!(matches!(err, Error::Throttled { status: 429 }), "{err:?}");
                assert!(err.is_retryable());
                throttled += 1;
            }
        }
    }
    assert!(throttled >= 1, "no request was throttled");
    assert!(emulator.stats().throttled >= 1);
}

#[tokio::test]
async fn fail_rate_gives_a_503_server_error_and_changes_nothing() {
    let (emulator, client) = direct(Config {
        fail_rate: 1.0,
        ..Config::default()
    })
    .await;
    let err = client
        .upsert_member(LIST, ADA, &subscribe_if_new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server { status: 503, .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(emulator.member(LIST, ADA).is_none());
    // Reads are not failed.
    client.ping().await.unwrap();
    emulator.set_fail_rate(0.0);
    client
        .upsert_member(LIST, ADA, &subscribe_if_new())
        .await
        .unwrap();
}

#[tokio::test]
async fn drop_rate_is_a_transport_error_although_the_write_was_applied() {
    let (emulator, client) = direct(Config {
        drop_rate: 1.0,
        ..Config::default()
    })
    .await;
    let err = client
        .upsert_member(LIST, ADA, &subscribe_if_new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                timeout: false,
                connect: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        emulator.member(LIST, ADA).map(|m| m.status).as_deref(),
        Some("subscribed")
    );
    assert_eq!(emulator.stats().dropped, 1);
    // The retry the worker would make is harmless: PUT is idempotent.
    emulator.set_drop_rate(0.0);
    let member = client
        .upsert_member(LIST, ADA, &subscribe_if_new())
        .await
        .unwrap();
    assert_eq!(member.status, Status::Subscribed);
}

#[tokio::test]
async fn injected_faults_map_to_throttled_server_and_decode_errors() {
    let (emulator, client) = direct(Config::default()).await;
    let body = subscribe_if_new();
    let put = || client.upsert_member(LIST, ADA, &body);

    emulator.inject(Fault::TooManyRequests, 1);
    assert!(matches!(
        put().await.unwrap_err(),
        Error::Throttled { status: 429 }
    ));
    emulator.inject(Fault::BareTooManyRequests, 1);
    assert!(matches!(
        put().await.unwrap_err(),
        Error::Throttled { status: 429 }
    ));
    emulator.inject(Fault::BareForbidden, 1);
    assert!(matches!(
        put().await.unwrap_err(),
        Error::Throttled { status: 403 }
    ));
    emulator.inject(Fault::ServiceUnavailable, 1);
    assert!(matches!(
        put().await.unwrap_err(),
        Error::Server { status: 503, .. }
    ));
    assert!(emulator.member(LIST, ADA).is_none());

    emulator.inject(Fault::GarbageJson, 1);
    let err = put().await.unwrap_err();
    assert!(matches!(err, Error::Decode { status: 200, .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(emulator.member(LIST, ADA).is_some(), "garbage after apply");

    emulator.inject(Fault::DropAfterApply, 1);
    let err = client
        .set_status(LIST, ADA, Status::Unsubscribed)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        emulator.member(LIST, ADA).map(|m| m.status).as_deref(),
        Some("unsubscribed")
    );
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_is_a_timeout_error() {
    let (emulator, _) = direct(Config::default()).await;
    let mut config = ClientConfig::new(ApiKey::parse(KEY).unwrap());
    config.base_url = Some(emulator.base_url());
    config.request_timeout = Duration::from_millis(200);
    let client = Client::new(config).unwrap();
    emulator.inject(Fault::Delay(Duration::from_secs(2)), 1);
    let err = client
        .upsert_member(LIST, ADA, &subscribe_if_new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transport { timeout: true, .. }),
        "{err:?}"
    );
}
