//! The emulator stands in for Mailchimp in benchmarks, so a 500-member batch must be cheap.
//! Run with `--release --nocapture` for the real figure.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Harness, LIST};

fn batch(round: usize) -> Value {
    let members: Vec<Value> = (0..500)
        .map(|i| {
            json!({
                "email_address": format!("customer.{i}@mail.org"),
                "status_if_new": "subscribed",
                "merge_fields": {"FNAME": format!("First{i}"), "LNAME": format!("Last{round}"),
                                 "PHONE": "+1 555 0100"},
                "tags": ["customer"],
            })
        })
        .collect();
    json!({"members": members, "update_existing": true})
}

#[tokio::test]
async fn a_500_member_batch_upsert_costs_little_cpu() {
    let h = Harness::start().await;
    let path = format!("/lists/{LIST}");
    let rounds = 10;

    let before = h.emu.stats().busy_nanos;
    let r = h.post(&path, &batch(0)).await;
    assert_eq!(r.ok()["total_created"], 500);
    let create = Duration::from_nanos(h.emu.stats().busy_nanos - before);

    let before = h.emu.stats().busy_nanos;
    let started = Instant::now();
    for round in 1..=rounds {
        let r = h.post(&path, &batch(round)).await;
        assert_eq!(r.ok()["total_updated"], 500);
    }
    let wall = started.elapsed() / rounds as u32;
    let update = Duration::from_nanos(h.emu.stats().busy_nanos - before) / rounds as u32;

    println!(
        "500-member batch: create {create:?}, upsert {update:?} of emulator CPU; \
         {wall:?} wall per round trip incl. client (profile: {})",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    assert_eq!(h.emu.members(LIST).len(), 500);
    assert!(create < Duration::from_millis(50), "{create:?}");
    assert!(update < Duration::from_millis(50), "{update:?}");
}
