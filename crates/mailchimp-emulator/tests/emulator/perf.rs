//! The emulator stands in for Mailchimp in benchmarks, so a 500-member batch must be cheap.
//! `cargo test --release -p mailchimp-emulator --test emulator perf -- --nocapture` prints the
//! real figure; the assertions are deliberately loose (the machine may be shared).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Harness, LIST};

const ROUNDS: u32 = 10;

fn batch(first: usize, round: usize) -> Value {
    let members: Vec<Value> = (first..first + 500)
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

/// Emulator busy time (parse + apply + serialize) of each batch, sorted. It is wall time of a
/// synchronous section, so on a loaded machine preemption inflates it: the minimum is the best
/// estimate of the CPU cost, the median a conservative one.
async fn busy_per_batch(h: &Harness, bodies: &[Value], field: &str) -> Vec<Duration> {
    let path = format!("/lists/{LIST}");
    let mut times = Vec::with_capacity(bodies.len());
    for body in bodies {
        let before = h.emu.stats().busy_nanos;
        let r = h.post(&path, body).await;
        assert_eq!(r.ok()[field], 500, "{field}");
        times.push(Duration::from_nanos(h.emu.stats().busy_nanos - before));
    }
    times.sort();
    times
}

#[tokio::test]
async fn a_500_member_batch_upsert_costs_little_cpu() {
    let h = Harness::start().await;
    let creates: Vec<Value> = (0..ROUNDS as usize).map(|r| batch(r * 500, 0)).collect();
    let creates = busy_per_batch(&h, &creates, "total_created").await;

    let updates: Vec<Value> = (1..=ROUNDS as usize).map(|r| batch(0, r)).collect();
    let started = Instant::now();
    let updates = busy_per_batch(&h, &updates, "total_updated").await;
    let wall = started.elapsed() / ROUNDS;

    let (create_min, create) = (creates[0], creates[creates.len() / 2]);
    let (update_min, update) = (updates[0], updates[updates.len() / 2]);
    println!(
        "500-member batch ({} build), emulator CPU per batch: create min {create_min:?} median \
         {create:?}; upsert min {update_min:?} median {update:?}; {wall:?} wall per upsert round \
         trip incl. the reqwest client",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert_eq!(h.emu.members(LIST).len(), 500 * ROUNDS as usize);
    let limit = if cfg!(debug_assertions) {
        Duration::from_millis(500)
    } else {
        Duration::from_millis(25)
    };
    assert!(create < limit, "{create:?}");
    assert!(update < limit, "{update:?}");
}
