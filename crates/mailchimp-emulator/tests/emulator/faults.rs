//! Limits and faults: max connections, fail/drop rates, seeds, latency, scripted faults.

use std::time::{Duration, Instant};

use futures_join::join_all;
use mailchimp_emulator::{Config, Fault};
use reqwest::Method;
use serde_json::json;

use crate::harness::{Harness, LIST};

mod futures_join {
    /// Runs the futures concurrently on the current task and collects their outputs in order.
    pub async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
        let handles: Vec<_> = futs.into_iter().map(Box::pin).collect();
        let mut out = Vec::with_capacity(handles.len());
        let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
        let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut all_done = true;
            for (i, slot) in pending.iter_mut().enumerate() {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => {
                            results[i] = Some(v);
                            *slot = None;
                        }
                        std::task::Poll::Pending => all_done = false,
                    }
                }
            }
            if all_done {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        out.extend(results.into_iter().flatten());
        out
    }
}

fn put_body(email: &str) -> serde_json::Value {
    json!({"email_address": email, "status_if_new": "subscribed"})
}

#[tokio::test]
async fn requests_beyond_max_connections_get_429() {
    let h = Harness::with(Config {
        audiences: vec![LIST.into()],
        latency: Duration::from_millis(500),
        max_connections: Some(3),
        ..Config::default()
    })
    .await;
    let answers = join_all((0..8).map(|_| h.get("/ping")).collect()).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let throttled: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!((ok, throttled.len()), (3, 5));
    assert_eq!(
        throttled[0].problem(429, "Too Many Requests")["detail"],
        "You have exceeded the limit of 3 simultaneous connections."
    );
    let stats = h.emu.stats();
    assert_eq!(stats.throttled, 5);
    assert_eq!(stats.max_in_flight, 3);
    assert_eq!(stats.max_concurrent, 8);
    assert_eq!(stats.requests, 8);

    h.emu.set_max_connections(None);
    h.emu.set_latency(Duration::ZERO);
    let answers = join_all((0..8).map(|_| h.get("/ping")).collect()).await;
    assert!(answers.iter().all(|a| a.status == 200));
}

#[tokio::test]
async fn fail_rate_one_answers_503_and_applies_nothing() {
    let h = Harness::with(Config {
        audiences: vec![LIST.into()],
        fail_rate: 1.0,
        ..Config::default()
    })
    .await;
    for _ in 0..3 {
        let a = h
            .put(&Harness::member_path("f@mail.org"), &put_body("f@mail.org"))
            .await;
        a.problem(503, "Service Unavailable");
    }
    assert!(h.emu.members(LIST).is_empty());
    h.get("/ping").await.ok();
    let stats = h.emu.stats();
    assert_eq!((stats.failed, stats.member_writes), (3, 0));
    h.emu.set_fail_rate(0.0);
    h.upsert("f@mail.org", "subscribed").await;
}

#[tokio::test]
async fn drop_rate_one_closes_the_connection_after_applying_the_write() {
    let h = Harness::with(Config {
        audiences: vec![LIST.into()],
        drop_rate: 1.0,
        ..Config::default()
    })
    .await;
    h.get("/ping").await.ok();
    let result = h
        .try_send(
            Method::PUT,
            &Harness::member_path("d@mail.org"),
            Some(&put_body("d@mail.org")),
        )
        .await;
    assert!(result.is_err(), "no answer expected, got {result:?}");
    assert_eq!(
        h.emu.member(LIST, "d@mail.org").unwrap().status,
        "subscribed"
    );
    assert_eq!(h.emu.stats().dropped, 1);
    h.get("/ping").await.ok();
}

async fn outcomes(seed: u64) -> Vec<u16> {
    let h = Harness::with(Config {
        audiences: vec![LIST.into()],
        fail_rate: 0.3,
        drop_rate: 0.2,
        seed,
        ..Config::default()
    })
    .await;
    let mut seen = Vec::new();
    for i in 0..40 {
        let email = format!("s{i}@mail.org");
        let a = h
            .try_send(
                Method::PUT,
                &Harness::member_path(&email),
                Some(&put_body(&email)),
            )
            .await;
        seen.push(a.map(|a| a.status.as_u16()).unwrap_or(0));
    }
    seen
}

#[tokio::test]
async fn the_same_seed_gives_the_same_fault_sequence() {
    let first = outcomes(42).await;
    assert_eq!(first, outcomes(42).await);
    assert!(
        first.contains(&200) && first.contains(&503) && first.contains(&0),
        "{first:?}"
    );
    assert_ne!(first, outcomes(43).await);
}

#[tokio::test]
async fn latency_delays_every_response() {
    let h = Harness::start().await;
    h.emu.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    h.get("/ping").await.ok();
    assert!(started.elapsed() >= Duration::from_millis(200));
    h.emu.set_latency(Duration::ZERO);
    let started = Instant::now();
    h.get("/ping").await.ok();
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn injected_refusals_apply_nothing_and_only_hit_writes() {
    let h = Harness::start().await;
    let path = Harness::member_path("i@mail.org");
    let body = put_body("i@mail.org");

    h.emu.inject(Fault::BareForbidden, 1);
    h.get("/ping").await.ok();
    let a = h.put(&path, &body).await;
    assert_eq!(a.status, 403);
    assert!(a.raw.is_empty() && a.header("content-type").is_none());

    h.emu.inject(Fault::BareTooManyRequests, 1);
    let a = h.put(&path, &body).await;
    assert_eq!(a.status, 429);
    assert!(a.raw.is_empty() && a.header("content-type").is_none());

    h.emu.inject(Fault::TooManyRequests, 1);
    h.put(&path, &body).await.problem(429, "Too Many Requests");

    h.emu.inject(Fault::ServiceUnavailable, 2);
    h.put(&path, &body)
        .await
        .problem(503, "Service Unavailable");
    h.put(&path, &body)
        .await
        .problem(503, "Service Unavailable");

    assert!(h.emu.members(LIST).is_empty());
    assert_eq!(h.emu.stats().failed, 5);
    h.put(&path, &body).await.ok();
}

#[tokio::test]
async fn injected_garbage_and_drops_still_apply_the_write() {
    let h = Harness::start().await;
    h.emu.inject(Fault::GarbageJson, 1);
    let a = h
        .put(&Harness::member_path("g@mail.org"), &put_body("g@mail.org"))
        .await;
    assert_eq!(a.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&a.raw).is_err());
    assert!(h.emu.member(LIST, "g@mail.org").is_some());

    h.emu.inject(Fault::DropAfterApply, 1);
    let r = h
        .try_send(
            Method::PUT,
            &Harness::member_path("x@mail.org"),
            Some(&put_body("x@mail.org")),
        )
        .await;
    assert!(r.is_err());
    assert!(h.emu.member(LIST, "x@mail.org").is_some());

    h.emu.inject(Fault::Delay(Duration::from_millis(300)), 1);
    let started = Instant::now();
    h.put(&Harness::member_path("y@mail.org"), &put_body("y@mail.org"))
        .await
        .ok();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let h = Harness::start().await;
    h.get("/ping").await.ok();
    let url = h.url("/ping");
    let client = reqwest::Client::new();
    h.emu.shutdown().await;
    let r = client.get(url).basic_auth("u", Some("k")).send().await;
    assert!(r.is_err());
}

#[tokio::test]
async fn a_write_that_leaves_the_member_as_it_was_counts_as_unchanged() {
    let h = Harness::start().await;
    let path = Harness::member_path("u@mail.org");
    let body = json!({"email_address": "u@mail.org", "status_if_new": "subscribed",
                      "merge_fields": {"FNAME": "Ann"}});
    h.put(&path, &body).await.ok();
    h.put(&path, &body).await.ok();
    let tags = json!({"tags": [{"name": "vip", "status": "active"}]});
    for _ in 0..2 {
        let a = h.post(&format!("{path}/tags"), &tags).await;
        assert_eq!(a.status, 204);
    }
    let batch = json!({"members": [{"email_address": "u@mail.org", "status_if_new": "subscribed",
                                     "merge_fields": {"FNAME": "Ann"}}], "update_existing": true});
    h.post(&format!("/lists/{LIST}"), &batch).await.ok();
    let stats = h.emu.stats();
    assert_eq!(
        (stats.member_writes, stats.unchanged_member_writes),
        (5, 3),
        "the second PUT, the second tag call and the batch re-send changed nothing"
    );
    // A real change and a rename are not unchanged.
    h.put(&path, &json!({"merge_fields": {"FNAME": "Bo"}}))
        .await
        .ok();
    h.patch(&path, &json!({"email_address": "u2@mail.org"}))
        .await
        .ok();
    let stats = h.emu.stats();
    assert_eq!((stats.member_writes, stats.unchanged_member_writes), (7, 3));
}
