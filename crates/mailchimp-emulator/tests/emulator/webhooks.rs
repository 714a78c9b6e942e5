//! Webhooks: registration (`/lists/{id}/webhooks`, the validator's GET) and the delivery of
//! member changes as form-encoded POSTs (docs/mailchimp.md).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::harness::{Harness, LIST};

/// A request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    method: String,
    user_agent: String,
    content_type: String,
    pub(crate) form: BTreeMap<String, String>,
}

/// A tiny HTTP endpoint standing in for chimpsync's receiver: records every request and answers
/// GETs with `get_status`, POSTs with the scripted statuses first, then 200.
#[derive(Clone)]
pub(crate) struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
    get_status: Arc<Mutex<u16>>,
    post_statuses: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            get_status: Arc::new(Mutex::new(200)),
            post_statuses: Arc::default(),
        };
        let state = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let method = req.method().to_string();
                            let header = |name: &str| {
                                req.headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            let (user_agent, content_type) =
                                (header("user-agent"), header("content-type"));
                            let body = req.into_body().collect().await?.to_bytes();
                            let form = form_urlencoded::parse(&body).into_owned().collect();
                            let status = if method == "GET" {
                                *state.get_status.lock().unwrap()
                            } else {
                                state
                                    .post_statuses
                                    .lock()
                                    .unwrap()
                                    .pop_front()
                                    .unwrap_or(200)
                            };
                            state.seen.lock().unwrap().push(Received {
                                method,
                                user_agent,
                                content_type,
                                form,
                            });
                            let mut resp = Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                            Ok::<_, hyper::Error>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        r
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn posts(&self) -> Vec<Received> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == "POST")
            .cloned()
            .collect()
    }
}

/// Waits until the emulator has no delivery queued or in flight.
pub(crate) async fn settled(h: &Harness) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while h.emu.stats().webhooks_pending > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn register(h: &Harness, r: &Receiver, api: bool) -> String {
    let a = h
        .post(
            &format!("/lists/{LIST}/webhooks"),
            &json!({
                "url": r.url("/hook"),
                "events": {"subscribe": true, "unsubscribe": true, "profile": true, "cleaned": true, "upemail": true, "campaign": false},
                "sources": {"user": true, "admin": true, "api": api},
            }),
        )
        .await;
    a.ok()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn creating_a_webhook_sends_the_validator_get_and_lists_it() {
    let h = Harness::start().await;
    let r = Receiver::start().await;
    let id = register(&h, &r, false).await;
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].user_agent, "MailChimp.com WebHook Validator");

    let list = h.get(&format!("/lists/{LIST}/webhooks")).await;
    let list = list.ok();
    assert_eq!(list["total_items"], 1);
    assert_eq!(list["webhooks"][0]["url"], r.url("/hook"));
    assert_eq!(list["webhooks"][0]["sources"]["api"], false);
    assert_eq!(list["webhooks"][0]["events"]["campaign"], false);
    let one = h.get(&format!("/lists/{LIST}/webhooks/{id}")).await;
    assert_eq!(one.ok()["id"], id.as_str());

    assert_eq!(
        h.delete(&format!("/lists/{LIST}/webhooks/{id}"))
            .await
            .status,
        204
    );
    h.get(&format!("/lists/{LIST}/webhooks/{id}"))
        .await
        .problem(404, "Resource Not Found");
}

#[tokio::test]
async fn a_url_that_does_not_answer_the_validator_with_200_is_refused() {
    let h = Harness::start().await;
    let r = Receiver::start().await;
    *r.get_status.lock().unwrap() = 401;
    let a = h
        .post(
            &format!("/lists/{LIST}/webhooks"),
            &json!({"url": r.url("/hook")}),
        )
        .await;
    let p = a.problem(400, "Invalid Resource");
    assert_eq!(p["errors"][0]["field"], "url");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("401"));
    let closed = h
        .post(
            &format!("/lists/{LIST}/webhooks"),
            &json!({"url": "http://127.0.0.1:9/nothing-listens"}),
        )
        .await;
    closed.problem(400, "Invalid Resource");
    assert_eq!(
        h.get(&format!("/lists/{LIST}/webhooks")).await.ok()["total_items"],
        0
    );
}

#[tokio::test]
async fn a_url_may_exist_on_a_list_only_once() {
    let h = Harness::start().await;
    let r = Receiver::start().await;
    register(&h, &r, false).await;
    let again = h
        .post(
            &format!("/lists/{LIST}/webhooks"),
            &json!({"url": r.url("/hook")}),
        )
        .await;
    again.problem(400, "Invalid Resource");
    assert_eq!(
        r.seen.lock().unwrap().len(),
        1,
        "no second validation for a duplicate"
    );
    h.post(
        &format!("/lists/{LIST}/webhooks"),
        &json!({"url": "not a url"}),
    )
    .await
    .problem(400, "Invalid Resource");
    h.post("/lists/nosuchlist/webhooks", &json!({"url": r.url("/x")}))
        .await
        .problem(404, "Resource Not Found");
}

#[tokio::test]
async fn a_contact_unsubscribing_is_posted_form_encoded_with_bracket_keys() {
    let h = Harness::start().await;
    h.put(
        &Harness::member_path("ana@mail.org"),
        &json!({"email_address": "ana@mail.org", "status_if_new": "subscribed", "merge_fields": {"FNAME": "Ana"}}),
    )
    .await
    .ok();
    let r = Receiver::start().await;
    register(&h, &r, false).await;
    assert!(h.emu.simulate_unsubscribe(LIST, "ana@mail.org"));
    settled(&h).await;
    let posts = r.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let p = &posts[0];
    assert_eq!(p.user_agent, "MailChimp.com");
    assert_eq!(p.content_type, "application/x-www-form-urlencoded");
    assert_eq!(p.form["type"], "unsubscribe");
    assert_eq!(p.form["data[action]"], "unsub");
    assert_eq!(p.form["data[email]"], "ana@mail.org");
    assert_eq!(p.form["data[list_id]"], LIST);
    assert_eq!(p.form["data[merges][FNAME]"], "Ana");
    assert_eq!(p.form["data[merges][EMAIL]"], "ana@mail.org");
    assert_eq!(
        p.form["data[id]"].len(),
        10,
        "unique_email_id, not the hash"
    );
    let fired = chrono::NaiveDateTime::parse_from_str(&p.form["fired_at"], "%Y-%m-%d %H:%M:%S");
    assert!(fired.is_ok(), "fired_at {:?}", p.form["fired_at"]);
    let d = h.emu.webhook_deliveries();
    assert_eq!(d.len(), 1);
    assert!(d[0].delivered);
    assert_eq!((d[0].event.as_str(), d[0].attempts), ("unsubscribe", 1));
    assert_eq!(h.emu.stats().webhooks_delivered, 1);
}

#[tokio::test]
async fn bounces_address_changes_and_profile_edits_have_their_own_shapes() {
    let h = Harness::start().await;
    h.upsert("bo@mail.org", "subscribed").await;
    h.upsert("cy@mail.org", "subscribed").await;
    let r = Receiver::start().await;
    register(&h, &r, false).await;
    assert!(h.emu.simulate_bounce(LIST, "bo@mail.org"));
    assert!(h
        .emu
        .simulate_email_change(LIST, "cy@mail.org", "cy.new@mail.org"));
    assert!(h
        .emu
        .simulate_profile_update(LIST, "cy.new@mail.org", &[("LNAME", json!("Ng"))]));
    settled(&h).await;
    let posts = r.posts();
    let types: Vec<&str> = posts.iter().map(|p| p.form["type"].as_str()).collect();
    assert_eq!(types, ["cleaned", "upemail", "profile"]);
    assert_eq!(posts[0].form["data[reason]"], "hard");
    assert_eq!(posts[0].form["data[email]"], "bo@mail.org");
    assert_eq!(posts[1].form["data[old_email]"], "cy@mail.org");
    assert_eq!(posts[1].form["data[new_email]"], "cy.new@mail.org");
    assert!(posts[1].form.contains_key("data[new_id]"));
    assert_eq!(posts[2].form["data[merges][LNAME]"], "Ng");
    let m = h.emu.member(LIST, "cy.new@mail.org").expect("renamed");
    assert_eq!(m.merge_fields["LNAME"], "Ng");
    assert!(h.emu.member(LIST, "cy@mail.org").is_none());
    assert!(
        !h.emu
            .simulate_email_change(LIST, "bo@mail.org", "bo2@mail.org"),
        "only a subscribed contact changes address"
    );
}

#[tokio::test]
async fn api_changes_are_posted_only_with_sources_api() {
    let h = Harness::start().await;
    let quiet = Receiver::start().await;
    register(&h, &quiet, false).await;
    let loud = Receiver::start().await;
    register(&h, &loud, true).await;
    h.upsert("dee@mail.org", "subscribed").await;
    h.patch(
        &Harness::member_path("dee@mail.org"),
        &json!({"merge_fields": {"FNAME": "Dee"}}),
    )
    .await
    .ok();
    h.patch(
        &Harness::member_path("dee@mail.org"),
        &json!({"status": "unsubscribed"}),
    )
    .await
    .ok();
    h.delete(&Harness::member_path("dee@mail.org")).await;
    settled(&h).await;
    assert!(quiet.posts().is_empty(), "sources.api is false");
    let posts = loud.posts();
    let types: Vec<&str> = posts.iter().map(|p| p.form["type"].as_str()).collect();
    assert_eq!(
        types,
        ["subscribe", "profile", "unsubscribe", "unsubscribe"]
    );
    assert_eq!(posts[2].form["data[action]"], "unsub");
    assert_eq!(posts[3].form["data[action]"], "delete");
    // A contact's own unsubscribe reaches both.
    h.upsert("eve@mail.org", "subscribed").await;
    h.emu.simulate_unsubscribe(LIST, "eve@mail.org");
    settled(&h).await;
    assert_eq!(quiet.posts().len(), 1);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_and_then_given_up() {
    let h = Harness::start().await;
    h.upsert("fay@mail.org", "subscribed").await;
    h.upsert("gus@mail.org", "subscribed").await;
    let r = Receiver::start().await;
    register(&h, &r, false).await;
    r.post_statuses.lock().unwrap().extend([500, 503]);
    h.emu.simulate_unsubscribe(LIST, "fay@mail.org");
    settled(&h).await;
    let d = h.emu.webhook_deliveries();
    assert_eq!((d[0].attempts, d[0].delivered), (3, true));
    assert_eq!(r.posts().len(), 3, "the same body three times");

    r.post_statuses.lock().unwrap().extend([500; 10]);
    h.emu.simulate_unsubscribe(LIST, "gus@mail.org");
    settled(&h).await;
    let d = h.emu.webhook_deliveries();
    assert_eq!((d[1].attempts, d[1].delivered), (4, false));
    assert_eq!(d[1].last_status, Some(500));
    let s = h.emu.stats();
    assert_eq!((s.webhooks_delivered, s.webhooks_failed), (1, 1));
}

#[tokio::test]
async fn simulation_routes_change_addresses_and_profiles() {
    let h = Harness::start().await;
    h.upsert("hal@mail.org", "subscribed").await;
    let base = h.emu.base_url().replace("/3.0", "");
    let c = reqwest::Client::new();
    let a = c
        .post(format!(
            "{base}/_emulator/lists/{LIST}/members/hal@mail.org/email-change?new_email=hal2%40mail.org"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
    let a = c
        .post(format!(
            "{base}/_emulator/lists/{LIST}/members/hal2@mail.org/profile?FNAME=Hal"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
    let m = h.emu.member(LIST, "hal2@mail.org").unwrap();
    assert_eq!(m.merge_fields["FNAME"], "Hal");
}
