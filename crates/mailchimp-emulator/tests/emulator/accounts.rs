//! Several Mailchimp accounts in one emulator: each API key is its own account with its own
//! audiences, members, webhooks and cap on requests in flight.

use std::time::Duration;

use clap::Parser;
use mailchimp_emulator::{Args, Config};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{Answer, Harness};
use crate::lists::audience_body;
use crate::webhooks::{settled, Receiver};

const KEY_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-us6";
const KEY_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-us6";
const LIST_A: &str = "aaaa000001";
const LIST_B: &str = "bbbb000001";

async fn two_accounts(extra: Config) -> Harness {
    let mut h = Harness::with(Config {
        accounts: vec![(KEY_A.into(), LIST_A.into()), (KEY_B.into(), LIST_B.into())],
        ..extra
    })
    .await;
    h.key = KEY_A.into();
    h
}

fn hash(email: &str) -> String {
    mailchimp_emulator::subscriber_hash(email)
}

/// The problem document without its per-request `instance`.
#[track_caller]
fn not_found(a: &Answer) -> Value {
    let mut body = a.problem(404, "Resource Not Found").clone();
    body.as_object_mut().unwrap().remove("instance");
    body
}

#[tokio::test]
async fn a_key_gets_404_on_another_accounts_audience() {
    let h = two_accounts(Config::default()).await;
    let missing = not_found(&h.get("/lists/nosuchlist").await);
    let email = "shared@mail.org";
    let b_member = format!("/lists/{LIST_B}/members/{}", hash(email));
    let as_b = json!({"email_address": email, "status_if_new": "subscribed", "merge_fields": {"FNAME": "Bea"}});
    h.send_as(KEY_B, Method::PUT, &b_member, Some(&as_b))
        .await
        .ok();
    let before = h.emu.members(LIST_B);
    let member =
        json!({"email_address": email, "status": "unsubscribed", "merge_fields": {"FNAME": "Ann"}});
    let batch = json!({"members": [
        {"email_address": email, "status": "unsubscribed"},
        {"email_address": "new@mail.org", "status": "subscribed"},
    ], "update_existing": true});

    let refused = [
        h.get(&format!("/lists/{LIST_B}")).await,
        h.get(&format!("/lists/{LIST_B}/members/{}", hash(email)))
            .await,
        h.post(&format!("/lists/{LIST_B}"), &batch).await,
        h.put(&format!("/lists/{LIST_B}/members/{}", hash(email)), &member)
            .await,
        h.get(&format!("/lists/{LIST_B}/members")).await,
        h.get(&format!("{b_member}/tags")).await,
        h.post(
            &format!("{b_member}/tags"),
            &json!({"tags": [{"name": "x", "status": "active"}]}),
        )
        .await,
        h.patch(&b_member, &member).await,
        h.delete(&b_member).await,
        h.get(&format!("/lists/{LIST_B}/merge-fields")).await,
        h.post(
            &format!("/lists/{LIST_B}/merge-fields"),
            &json!({"name": "Plan", "type": "text"}),
        )
        .await,
        h.get(&format!("/lists/{LIST_B}/webhooks")).await,
        h.delete(&format!("/lists/{LIST_B}")).await,
    ];
    for a in &refused {
        assert_eq!(not_found(a), missing, "{}", a.raw);
    }
    assert_eq!(h.emu.members(LIST_B), before, "nothing was written");

    // B's own key reaches it, and the writes above changed nothing there.
    let b = h.send_as(KEY_B, Method::GET, &b_member, None).await;
    assert_eq!(b.ok()["merge_fields"]["FNAME"], "Bea");
    let merge = h
        .send_as(
            KEY_B,
            Method::GET,
            &format!("/lists/{LIST_B}/merge-fields"),
            None,
        )
        .await;
    assert_eq!(merge.ok()["total_items"], 4);
    // A's key writes the same address into its own audience.
    h.put(&format!("/lists/{LIST_A}/members/{}", hash(email)), &member)
        .await
        .ok();
    assert_eq!(h.emu.members(LIST_B), before);
}

#[tokio::test]
async fn the_same_address_in_two_accounts_is_two_members() {
    let h = two_accounts(Config::default()).await;
    let email = "Both@Mail.org";
    let path = |list: &str| format!("/lists/{list}/members/{}", hash(email));
    let body = |name: &str| json!({"email_address": email, "status_if_new": "subscribed", "merge_fields": {"FNAME": name}});
    h.put(&path(LIST_A), &body("Ann")).await.ok();
    h.send_as(KEY_B, Method::PUT, &path(LIST_B), Some(&body("Bea")))
        .await
        .ok();
    h.delete(&path(LIST_A)).await;

    let a = h.emu.member_of(KEY_A, LIST_A, email).unwrap();
    assert_eq!(
        (a.status.as_str(), &a.merge_fields["FNAME"]),
        ("archived", &json!("Ann"))
    );
    let b = h.emu.member_of(KEY_B, LIST_B, email).unwrap();
    assert_eq!(
        (b.status.as_str(), &b.merge_fields["FNAME"]),
        ("subscribed", &json!("Bea"))
    );
    assert_eq!(h.emu.members_of(KEY_A, LIST_A).len(), 1);
    assert!(h.emu.members_of(KEY_A, LIST_B).is_empty());
    assert!(h.emu.member_of(KEY_B, LIST_A, email).is_none());
    assert_eq!(h.emu.members(LIST_B), h.emu.members_of(KEY_B, LIST_B));

    let root_a = h.get("/").await;
    let root_b = h.send_as(KEY_B, Method::GET, "/", None).await;
    assert_eq!(root_a.ok()["total_subscribers"], 0);
    assert_eq!(root_b.ok()["total_subscribers"], 1);
    assert_ne!(root_a.json["account_id"], root_b.json["account_id"]);
}

#[tokio::test]
async fn saturating_one_keys_connections_does_not_throttle_another_key() {
    let h = two_accounts(Config {
        latency: Duration::from_millis(1500),
        max_connections: Some(2),
        ..Config::default()
    })
    .await;
    let ping = |key: &'static str| h.send_as(key, Method::GET, "/ping", None);
    let (a1, a2, (a3, b1, b2)) = tokio::join!(ping(KEY_A), ping(KEY_A), async {
        // Both of A's slots are taken (and held for the latency) before B's requests go out.
        while h.emu.account_stats(KEY_A).unwrap().max_in_flight < 2 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::join!(ping(KEY_A), ping(KEY_B), ping(KEY_B))
    });
    let statuses = [&a1, &a2, &b1, &b2].map(|a| a.status.as_u16());
    assert_eq!(statuses, [200; 4]);
    assert_eq!(
        a3.problem(429, "Too Many Requests")["detail"],
        "You have exceeded the limit of 2 simultaneous connections."
    );
    let (a, b) = (
        h.emu.account_stats(KEY_A).unwrap(),
        h.emu.account_stats(KEY_B).unwrap(),
    );
    assert_eq!((a.requests, a.throttled, a.max_in_flight), (3, 1, 2));
    assert_eq!((b.requests, b.throttled, b.max_in_flight), (2, 0, 2));
    let all = h.emu.stats();
    assert_eq!((all.requests, all.throttled, all.max_in_flight), (5, 1, 4));
    assert_eq!(h.emu.account_stats("unknown-us1"), None);
}

#[tokio::test]
async fn a_revoked_key_is_api_key_invalid_until_restored() {
    let h = two_accounts(Config::default()).await;
    h.get("/ping").await.ok();
    h.emu.revoke_key(KEY_A);
    let invalid = |a: &Answer| {
        a.problem(401, "API Key Invalid");
    };
    invalid(&h.get("/ping").await);
    invalid(&h.get(&format!("/lists/{LIST_A}")).await);
    h.send_as(KEY_B, Method::GET, "/ping", None).await.ok();
    invalid(
        &h.send_as(
            "cccccccccccccccccccccccccccccccc-us6",
            Method::GET,
            "/ping",
            None,
        )
        .await,
    );
    h.emu.restore_key(KEY_A);
    h.get(&format!("/lists/{LIST_A}")).await.ok();
}

#[tokio::test]
async fn an_audience_created_with_a_key_belongs_to_its_account_only() {
    let h = two_accounts(Config::default()).await;
    let created = h
        .send_as(KEY_B, Method::POST, "/lists", Some(&audience_body()))
        .await;
    let id = created.ok()["id"].as_str().unwrap().to_owned();
    assert!(id != LIST_A && id != LIST_B);
    assert_eq!(
        h.emu.audiences_of(KEY_B),
        vec![LIST_B.to_owned(), id.clone()]
    );
    assert_eq!(h.emu.audiences_of(KEY_A), vec![LIST_A.to_owned()]);

    let ids = |a: &Answer| -> Vec<String> {
        let lists = a.ok()["lists"].as_array().unwrap().clone();
        lists
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let b_lists = h.send_as(KEY_B, Method::GET, "/lists", None).await;
    assert_eq!(ids(&b_lists), vec![LIST_B.to_owned(), id.clone()]);
    assert_eq!(b_lists.json["total_items"], 2);
    let a_lists = h.get("/lists").await;
    assert_eq!(ids(&a_lists), vec![LIST_A.to_owned()]);
    assert_eq!(a_lists.json["total_items"], 1);
    not_found(&h.get(&format!("/lists/{id}")).await);
}

#[tokio::test]
async fn a_deleted_audience_is_404_for_its_own_key() {
    let h = two_accounts(Config::default()).await;
    h.upsert_in(LIST_A, "gone@mail.org").await;
    assert!(!h.emu.delete_audience(KEY_B, LIST_A), "not B's audience");
    assert!(h.emu.delete_audience(KEY_A, LIST_A));
    not_found(&h.get(&format!("/lists/{LIST_A}")).await);
    not_found(
        &h.get(&format!(
            "/lists/{LIST_A}/members/{}",
            hash("gone@mail.org")
        ))
        .await,
    );
    assert!(h.emu.audiences_of(KEY_A).is_empty());
    // Created again (as a test setting up its next scenario would), it is empty.
    assert!(h.emu.create_audience_for(KEY_A, LIST_A));
    assert!(!h.emu.create_audience_for(KEY_B, LIST_A), "the id is A's");
    assert!(h.emu.members(LIST_A).is_empty());
}

#[tokio::test]
async fn events_go_only_to_the_webhooks_of_the_audience_they_happen_in() {
    let h = two_accounts(Config::default()).await;
    let (ra, rb) = (Receiver::start().await, Receiver::start().await);
    let hook = |r: &Receiver| json!({"url": r.url("/hook"), "sources": {"user": true, "admin": true, "api": false}});
    // A's key cannot register on B's audience (and no validator GET goes out for it).
    not_found(
        &h.post(&format!("/lists/{LIST_B}/webhooks"), &hook(&ra))
            .await,
    );
    h.post(&format!("/lists/{LIST_A}/webhooks"), &hook(&ra))
        .await
        .ok();
    h.send_as(
        KEY_B,
        Method::POST,
        &format!("/lists/{LIST_B}/webhooks"),
        Some(&hook(&rb)),
    )
    .await
    .ok();
    let email = "both@mail.org";
    h.upsert_in(LIST_A, email).await;
    let body = json!({"email_address": email, "status_if_new": "subscribed"});
    let b_path = format!("/lists/{LIST_B}/members/{}", hash(email));
    h.send_as(KEY_B, Method::PUT, &b_path, Some(&body))
        .await
        .ok();

    assert!(h.emu.simulate_unsubscribe(LIST_A, email));
    settled(&h).await;
    let posts = ra.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].form["type"], "unsubscribe");
    assert_eq!(posts[0].form["data[list_id]"], LIST_A);
    assert!(rb.posts().is_empty());
    assert_eq!(h.emu.member(LIST_B, email).unwrap().status, "subscribed");
}

#[tokio::test]
async fn a_key_not_configured_is_refused_when_accounts_are_given() {
    let mut h = two_accounts(Config {
        api_key: Some("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-us6".into()),
        audiences: vec!["kkkk000001".into()],
        ..Config::default()
    })
    .await;
    h.key = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-us6".into();
    h.get("/lists/kkkk000001").await.ok();
    not_found(&h.get(&format!("/lists/{LIST_A}")).await);
    h.key = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-us6".into();
    h.get("/ping").await.problem(401, "API Key Invalid");
    // The single-account helpers act on the `api_key` account.
    h.emu.create_audience("kkkk000002");
    assert_eq!(
        h.emu.audiences_of("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk-us6"),
        vec!["kkkk000001".to_owned(), "kkkk000002".to_owned()]
    );
}

#[tokio::test]
async fn an_audience_given_to_two_accounts_is_refused_at_start() {
    let config = Config {
        accounts: vec![(KEY_A.into(), LIST_A.into()), (KEY_B.into(), LIST_A.into())],
        ..Config::default()
    };
    let err = mailchimp_emulator::Emulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn the_command_line_takes_repeated_accounts() {
    let args = Args::try_parse_from([
        "mailchimp-emulator",
        "--account",
        "key-one-us6=list1",
        "--account",
        "key-two-us6=list2",
        "--account",
        "key-one-us6=list3",
        "--max-connections",
        "10",
    ])
    .unwrap();
    let config = args.config();
    let pair = |k: &str, a: &str| (k.to_owned(), a.to_owned());
    assert_eq!(
        config.accounts,
        vec![
            pair("key-one-us6", "list1"),
            pair("key-two-us6", "list2"),
            pair("key-one-us6", "list3")
        ]
    );
    assert_eq!(config.max_connections, Some(10));
    let shown = format!("{config:?} {args:?}");
    assert!(!shown.contains("key-one"), "keys are redacted: {shown}");
    assert!(shown.contains("list2"));

    for bad in ["no-audience", "=list", "key="] {
        let parsed = Args::try_parse_from(["mailchimp-emulator", "--account", bad]);
        assert!(parsed.is_err(), "{bad}");
    }
}
