//! Authentication.

use mailchimp_emulator::Config;

use crate::harness::{Harness, KEY, LIST};

#[tokio::test]
async fn a_request_without_a_key_is_api_key_missing() {
    let h = Harness::start().await;
    let resp = h.client.get(h.url("/ping")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["title"], "API Key Missing");
    assert_eq!(body["instance"], id.as_str());
}

#[tokio::test]
async fn a_wrong_key_is_api_key_invalid_when_a_key_is_configured() {
    let mut h = Harness::with(Config {
        api_key: Some(KEY.into()),
        audiences: vec![LIST.into()],
        ..Config::default()
    })
    .await;
    h.get("/ping").await.ok();
    let bearer = h
        .client
        .get(h.url("/ping"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    h.key = "ffffffffffffffffffffffffffffffff-us1".into();
    let a = h.get("/ping").await;
    assert_eq!(
        a.problem(401, "API Key Invalid")["detail"],
        "Your API key may be invalid, or you've attempted to access the wrong datacenter."
    );
}

#[tokio::test]
async fn without_a_configured_key_any_key_is_accepted() {
    let mut h = Harness::start().await;
    h.key = "whatever".into();
    h.get("/ping").await.ok();
}
