//! Mailchimp fault suite: every fault the emulator can show, on every kind of call the worker
//! makes (the batch upsert, a rename, a removal, a tag update), each with its asserted outcome;
//! then a 429 storm, latency above the client timeout, and a batch in which every member is an
//! error.

use std::time::Duration;

use anyhow::{ensure, Result};
use chimpsync_tests::{wait_until, Fixture, API_KEY, AUDIENCE, MAPPING};
use mailchimp_emulator::{Config, Fault};
use tokio_util::sync::CancellationToken;

use super::{doubled_contacts, wait_drained, Scenario};

/// The client timeout of this suite's workers: `Fault::Delay` beyond it is a timeout.
const TIMEOUT: Duration = Duration::from_millis(300);

/// A worker whose Mailchimp requests time out after `timeout`.
fn worker_with_timeout(
    f: &Fixture,
    timeout: Duration,
    tweak: impl FnOnce(&mut worker::Settings),
) -> Result<worker::Worker> {
    let mut config = mailchimp::ClientConfig::new(mailchimp::ApiKey::parse(API_KEY)?);
    config.base_url = Some(f.emulator.base_url());
    config.request_timeout = timeout;
    config.connect_timeout = Duration::from_secs(2);
    let mut s = f.settings();
    s.request_timeout = timeout;
    s.lease = Duration::from_secs(10);
    tweak(&mut s);
    Ok(worker::Worker::new(
        f.queue.clone(),
        mailchimp::Client::new(config)?,
        s,
    )?)
}

/// The kinds of call the worker makes, each driven by its own kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// A field change: one batch upsert for all rows.
    Batch,
    /// An email change: PATCH of the old address per row.
    Rename,
    /// A delete: tags off, then archive, per row.
    Remove,
    /// A tag value change: the batch upsert, then a tag update per row.
    Tags,
}

const CALLS: [Call; 4] = [Call::Batch, Call::Rename, Call::Remove, Call::Tags];

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Batch => "batch upsert",
            Call::Rename => "rename",
            Call::Remove => "removal",
            Call::Tags => "tag update",
        }
    }

    fn change(self) -> &'static str {
        match self {
            Call::Batch => "update customers set last_name = 'Changed'",
            Call::Rename => "update customers set email = 'renamed' || id || '@pets.test'",
            Call::Remove => "delete from customers",
            Call::Tags => "update customers set customer_type = 'breeder'",
        }
    }

    /// Whether Mailchimp holds the change for customer `id`.
    fn applied(self, f: &Fixture, id: i64) -> bool {
        let old = format!("c{id}@pets.test");
        match self {
            Call::Batch => f
                .member(&old)
                .is_some_and(|m| m.merge_fields["LNAME"] == "Changed"),
            Call::Rename => f.member(&format!("renamed{id}@pets.test")).is_some(),
            // The removal's first call takes chimpsync's tags off.
            Call::Remove => f.member(&old).is_some_and(|m| m.tags.is_empty()),
            Call::Tags => f
                .member(&old)
                .is_some_and(|m| m.tags.iter().any(|t| t == "breeder")),
        }
    }
}

/// What one fault must do to the first attempt.
struct Expect {
    /// Every row of the attempt is retried (not parked, not deleted).
    retried: bool,
    /// The worker noted throttling.
    throttled: bool,
    /// Text the rows' `last_error` holds.
    error: &'static str,
}

/// One fault, injected on the first attempt of every kind of call; returns a line per call.
async fn fault_on_every_kind_of_call(
    fault: Fault,
    expect: impl Fn(Call) -> Expect,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for call in CALLS {
        let f = Fixture::new().await?;
        let w = worker_with_timeout(&f, TIMEOUT, |_| {})?;
        f.insert_customers(2, 1).await?;
        f.drain(&w).await?;
        f.exec(call.change()).await?;
        let rows = if call == Call::Batch { 1 } else { 2 };
        if call == Call::Tags {
            // The batch upsert goes through; the fault hits the tag updates after it.
            f.emulator.inject(Fault::Delay(Duration::ZERO), 1);
        }
        f.emulator.inject(fault.clone(), rows);
        let writes_before = f.emulator.stats().unchanged_member_writes;
        let first = w.drain_once().await?;
        let e = expect(call);
        let queued = f.queue_rows().await?;
        let what = format!("{fault:?} on {}", call.name());
        if e.retried {
            ensure!(
                (first.claimed, first.acked, first.retried, first.parked) == (2, 0, 2, 0),
                "{what}: the first attempt must retry both rows: {first:?}"
            );
            ensure!(
                queued.len() == 2
                    && queued.iter().all(|r| !r.2
                        && r.4 == 1
                        && r.3.as_deref().unwrap_or("").contains(e.error)),
                "{what}: both rows stay queued with the error {:?}: {queued:?}",
                e.error
            );
        } else {
            ensure!(
                (first.acked, first.parked) == (2, 0) && queued.is_empty(),
                "{what}: a 2xx answer acknowledges: {first:?} {queued:?}"
            );
        }
        ensure!(
            first.throttled == e.throttled,
            "{what}: throttled {} expected {}",
            first.throttled,
            e.throttled
        );
        // Whether the faulted call was applied: for a delay beyond the timeout, the emulator
        // applies once its delay has passed (if it still runs the request), so look after it.
        if let Fault::Delay(d) = fault {
            tokio::time::sleep(d).await; // the injected delay is part of the fault, not a race
        }
        let applied = (1..=2).filter(|id| call.applied(&f, *id)).count();
        let rest = f.drain(&w).await?;
        f.assert_converged().await?;
        ensure!(f.queue_rows().await?.is_empty(), "{what}: the queue drains");
        let doubled = doubled_contacts(&f).await?;
        ensure!(doubled.is_empty(), "{what}: {doubled:?}");
        ensure!(
            f.emulator.members(AUDIENCE).len() == 2,
            "{what}: two members, no copy: {:?}",
            f.emulator.members(AUDIENCE)
        );
        let resent = f.emulator.stats().unchanged_member_writes - writes_before;
        lines.push(format!(
            "{}: first attempt {}, faulted call applied for {applied}/2, then acked {} (duplicated writes {resent})",
            call.name(),
            if e.retried {
                format!("retried 2/2 ({})", e.error)
            } else {
                "acknowledged".into()
            },
            first.acked + rest.acked,
        ));
        f.finish().await?;
    }
    Ok(lines)
}

/// The record of one fault's scenario (created when the test starts, so it times the test).
fn fault_record(test: &str, name: &str, fault: &str, asserted: &str) -> Scenario {
    Scenario::new(
        "mailchimp",
        &format!("reliability::mailchimp::{test}"),
        name,
    )
    .tried(&format!(
        "{fault} on the first attempt of each kind of call, for 2 synced customers each: the \
             batch upsert (a field change), a rename (PATCH), a removal (tags off, then archive), \
             a tag update after the batch; then the worker drains"
    ))
    .asserted(&format!(
        "{asserted}; then every kind converges: audience = table, queue empty, 2 members, no \
             doubled contact"
    ))
}

fn save_fault(mut record: Scenario, lines: Vec<String>) -> Result<()> {
    for line in lines {
        let (call, rest) = line.split_once(": ").unwrap_or(("", &line));
        record.figure(call, rest);
    }
    record.save()
}

fn retried(error: &'static str, throttled: bool) -> Expect {
    Expect {
        retried: true,
        throttled,
        error,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_on_every_kind_of_call_is_retried_and_converges() -> Result<()> {
    let record = fault_record(
        "a_503_on_every_kind_of_call_is_retried_and_converges",
        "503 Service Unavailable",
        "A 503 problem document (nothing applied)",
        "both rows retried with backoff (attempts 1, last_error names HTTP 503), none parked or deleted",
    );
    let lines =
        fault_on_every_kind_of_call(Fault::ServiceUnavailable, |_| retried("HTTP 503", false))
            .await?;
    save_fault(record, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_every_kind_of_call_backs_off_and_converges() -> Result<()> {
    let record = fault_record(
        "a_429_on_every_kind_of_call_backs_off_and_converges",
        "429 Too Many Requests",
        "A 429 problem document (nothing applied)",
        "both rows retried, the worker throttled (whole-worker pause), last_error 'throttled by Mailchimp (HTTP 429)'",
    );
    let lines = fault_on_every_kind_of_call(Fault::TooManyRequests, |_| {
        retried("throttled by Mailchimp (HTTP 429)", true)
    })
    .await?;
    save_fault(record, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_403_on_every_kind_of_call_backs_off_and_converges() -> Result<()> {
    let record = fault_record(
        "a_bare_403_on_every_kind_of_call_backs_off_and_converges",
        "bare 403 without a body",
        "A 403 with an empty body and no content type (Mailchimp's overload answer; nothing applied)",
        "read as throttling, not as a refusal: both rows retried, the worker throttled, nothing parked",
    );
    let lines = fault_on_every_kind_of_call(Fault::BareForbidden, |_| {
        retried("throttled by Mailchimp (HTTP 403)", true)
    })
    .await?;
    save_fault(record, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_429_on_every_kind_of_call_backs_off_and_converges() -> Result<()> {
    let record = fault_record(
        "a_bare_429_on_every_kind_of_call_backs_off_and_converges",
        "bare 429 without a body",
        "A 429 with an empty body (nothing applied)",
        "both rows retried, the worker throttled, nothing parked",
    );
    let lines = fault_on_every_kind_of_call(Fault::BareTooManyRequests, |_| {
        retried("throttled by Mailchimp (HTTP 429)", true)
    })
    .await?;
    save_fault(record, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_json_on_every_kind_of_call_is_retried_or_acknowledged_and_converges() -> Result<()>
{
    // The write is applied and answered 200 with a body that is not JSON. Calls that read the
    // answer (the batch, the rename) cannot tell what happened: retried. Calls whose answer has
    // no body to read (archive, tag update: 204 normally) succeed on the 2xx.
    let record = fault_record(
        "garbage_json_on_every_kind_of_call_is_retried_or_acknowledged_and_converges",
        "garbage JSON (200, applied)",
        "A 200 whose body is not JSON, after the write was applied",
        "batch and rename (whose answer is read): retried as a lost answer, last_error 'unexpected response body'; removal and tag update (no body needed): acknowledged on the 2xx",
    );
    let lines = fault_on_every_kind_of_call(Fault::GarbageJson, |call| match call {
        Call::Batch | Call::Rename => retried("unexpected response body", false),
        Call::Remove | Call::Tags => Expect {
            retried: false,
            throttled: false,
            error: "",
        },
    })
    .await?;
    save_fault(record, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_after_the_write_on_every_kind_of_call_is_retried_without_a_duplicate(
) -> Result<()> {
    let record = fault_record(
        "a_connection_dropped_after_the_write_on_every_kind_of_call_is_retried_without_a_duplicate",
        "connection dropped after the write",
        "The write applied, then the connection closed without an answer",
        "both rows retried (transport error), what the lost attempt may have applied is remembered; the retry leaves no duplicate",
    );
    let lines =
        fault_on_every_kind_of_call(Fault::DropAfterApply, |_| retried("transport error", false))
            .await?;
    save_fault(record, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_above_the_client_timeout_on_every_kind_of_call_is_retried_without_a_duplicate(
) -> Result<()> {
    let delay = TIMEOUT * 3;
    let record = fault_record(
        "latency_above_the_client_timeout_on_every_kind_of_call_is_retried_without_a_duplicate",
        "answer later than the client timeout",
        &format!(
            "The answer delayed {} ms, the client gives up after {} ms",
            delay.as_millis(),
            TIMEOUT.as_millis()
        ),
        "both rows retried (transport error (timeout)), none parked; the retry leaves no duplicate",
    );
    let lines =
        fault_on_every_kind_of_call(Fault::Delay(delay), |_| retried("(timeout)", false)).await?;
    save_fault(record, lines)
}

/// Runs `w` until the queue is drained (or `timeout`), sampling the highest `attempts` of any
/// queue row meanwhile; returns the run's outcome and that maximum.
async fn run_until_drained(
    f: &Fixture,
    w: &worker::Worker,
    timeout: Duration,
) -> Result<(worker::DrainOutcome, i32)> {
    let stop = CancellationToken::new();
    let run = {
        let (w, stop) = (w.clone(), stop.clone());
        tokio::spawn(async move { w.run(stop, false).await })
    };
    let max_attempts = std::sync::atomic::AtomicI32::new(0);
    let drained = wait_until(timeout, "the queue to drain", || async {
        let most: Option<i32> = f
            .sql
            .query_one("select max(attempts) from chimpsync.sync_queue", &[])
            .await?
            .get(0);
        max_attempts.fetch_max(most.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        super::drained(f).await
    })
    .await;
    stop.cancel();
    let outcome = run.await??;
    drained?;
    Ok((outcome, max_attempts.into_inner()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_from_a_lower_connection_limit_slows_the_worker_and_it_converges() -> Result<()>
{
    let mut record = Scenario::new(
        "mailchimp",
        "reliability::mailchimp::a_429_storm_from_a_lower_connection_limit_slows_the_worker_and_it_converges",
        "429 storm: Mailchimp takes 2 connections, the worker uses 8",
    )
    .tried(
        "2,000 customers; Mailchimp admits 2 requests at once (429 beyond, 20 ms latency) and \
         answers the first 10 writes with an injected 429; one worker with 8 slots and batches of \
         50 runs with the production max_attempts (12)",
    )
    .asserted(
        "the worker pauses as a whole after each burst of refusals (one escalation per burst) and \
         drains within 60 s; Mailchimp never sees more than 2 requests at once; refusals stay \
         below 4 per batch the drain needs; nothing parked; audience = table",
    );
    let f = Fixture::with(
        MAPPING,
        Config {
            max_connections: Some(2),
            latency: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .await?;
    f.insert_customers(2000, 1).await?;
    let w = f.worker(|s| {
        s.concurrency = 8;
        s.batch_size = 50;
        s.retry.max_attempts = 12;
    })?;
    f.emulator.inject(Fault::TooManyRequests, 10);
    let started = std::time::Instant::now();
    let (outcome, max_attempts) = run_until_drained(&f, &w, Duration::from_secs(60)).await?;
    let took = started.elapsed();
    let stats = f.emulator.stats();
    assert_eq!(
        f.queue.summary().await?.parked,
        0,
        "throttling parks nothing"
    );
    assert!(stats.max_in_flight <= 2, "{stats:?}");
    let batches = 2000 / 50;
    assert!(
        stats.throttled < 4 * batches,
        "refusals stay bounded: {stats:?}"
    );
    assert!(outcome.throttled);
    f.assert_converged().await?;
    record.figure(
        "seconds to drain",
        (took.as_secs_f64() * 10.0).round() / 10.0,
    );
    record.figure("Mailchimp requests", stats.requests);
    record.figure("429 from the connection limit", stats.throttled);
    record.figure("injected 429", stats.failed);
    record.figure("row retries", outcome.retried as u64);
    record.figure("highest attempts of a row", max_attempts);
    record.figure("parked", 0);
    record.figure("lost", 0);
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_above_the_client_timeout_for_a_while_delays_but_loses_and_doubles_nothing(
) -> Result<()> {
    let mut record = Scenario::new(
        "mailchimp",
        "reliability::mailchimp::latency_above_the_client_timeout_for_a_while_delays_but_loses_and_doubles_nothing",
        "every answer slower than the client timeout, for a while",
    )
    .tried(
        "300 synced customers change (fields, addresses, tags, consent, deletes); Mailchimp's \
         latency is set to 3x the client timeout (300 ms) until every queued row has timed out at \
         least twice, then back to 0",
    )
    .asserted(
        "while slow: nothing acknowledged, nothing parked, rows keep their error (timeout); \
         afterwards the queue drains, audience = table, no doubled contact, the same number of \
         members as before",
    );
    let f = Fixture::new().await?;
    let w = worker_with_timeout(&f, TIMEOUT, |s| s.batch_size = 50)?;
    f.insert_customers(300, 1).await?;
    f.drain(&w).await?;
    let members_before = f.emulator.members(AUDIENCE).len();
    f.exec(
        "update customers set last_name = 'Slow' where id % 3 = 0;
         update customers set email = 'slow' || id || '@pets.test' where id % 7 = 0 and consent_contact;
         update customers set customer_type = 'breeder' where id % 5 = 0;
         update customers set consent_contact = not consent_contact where id % 11 = 0;
         delete from customers where id % 13 = 0",
    )
    .await?;
    let queued = f.queue_rows().await?.len() as i64;
    let writes_before = f.emulator.stats().member_writes;
    f.emulator.set_latency(TIMEOUT * 3);
    let stop = CancellationToken::new();
    let run = {
        let (w, stop) = (w.clone(), stop.clone());
        tokio::spawn(async move { w.run(stop, false).await })
    };
    wait_until(
        Duration::from_secs(60),
        "every queued row to time out twice",
        || async {
            let timed_out: i64 = f
                .sql
                .query_one(
                    "select count(*) from chimpsync.sync_queue
                     where attempts >= 2 and last_error like '%(timeout)%'",
                    &[],
                )
                .await?
                .get(0);
            Ok(timed_out == queued)
        },
    )
    .await?;
    let writes_while_slow = f.emulator.stats().member_writes - writes_before;
    assert_eq!(f.queue.summary().await?.parked, 0);
    assert_eq!(
        f.queue_rows().await?.len() as i64,
        queued,
        "nothing acknowledged without an answer"
    );
    f.emulator.set_latency(Duration::ZERO);
    wait_drained(&f, Duration::from_secs(60)).await?;
    stop.cancel();
    let outcome = run.await??;
    f.assert_converged().await?;
    let doubled = doubled_contacts(&f).await?;
    assert!(doubled.is_empty(), "{doubled:?}");
    assert_eq!(
        f.emulator.members(AUDIENCE).len(),
        members_before,
        "renames renamed, nothing created twice"
    );
    let stats = f.emulator.stats();
    record.figure("rows queued", queued);
    record.figure("row retries", outcome.retried as u64);
    record.figure("member writes applied while slow", writes_while_slow);
    record.figure("parked", 0);
    record.figure("lost", 0);
    record.figure("doubled contacts", 0);
    record.figure("duplicated writes", stats.unchanged_member_writes);
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_in_which_every_member_is_an_error_parks_each_with_its_reason_and_blocks_nothing(
) -> Result<()> {
    let mut record = Scenario::new(
        "mailchimp",
        "reliability::mailchimp::a_batch_in_which_every_member_is_an_error_parks_each_with_its_reason_and_blocks_nothing",
        "a 200 batch in which every member is an error",
    )
    .tried(
        "one batch (batch size 6) of six customers Mailchimp refuses each for its own reason: an \
         invalid address, a fake one, an over-long merge value, a forgotten (permanently deleted) \
         address, an archived contact in compliance state (unsubscribed themselves) whose new \
         customer consents, and another over-long value; 20 good customers queued behind them",
    )
    .asserted(
        "the 200 answer acknowledges nobody: all six parked, each with Mailchimp's own reason \
         (valid email address, looks fake, FNAME/LNAME 255 characters, permanently deleted, compliance state); nothing \
         deleted; the next batches carry the 20 good customers through; audience = table",
    );
    let f = Fixture::new().await?;
    // A forgotten address, and a contact who unsubscribed themselves and was archived since
    // (archived counts as absent, so the batch creates it again, with `subscribed`).
    for email in ["gone@pets.test", "optout@pets.test"] {
        f.mailchimp
            .upsert_member(
                AUDIENCE,
                email,
                &mailchimp::MemberUpsert {
                    email_address: Some(email.into()),
                    status_if_new: Some(mailchimp::Status::Subscribed),
                    ..Default::default()
                },
            )
            .await?;
    }
    f.mailchimp
        .delete_member_permanently(AUDIENCE, "gone@pets.test")
        .await?;
    assert!(f
        .emulator
        .simulate_unsubscribe(AUDIENCE, "optout@pets.test"));
    f.mailchimp
        .archive_member(AUDIENCE, "optout@pets.test")
        .await?;
    f.exec(
        "insert into customers (id, email, first_name, last_name, consent_contact) values
            (1, 'not-an-address', 'A', 'A', true),
            (2, 'someone@example.com', 'B', 'B', true),
            (3, 'long@pets.test', repeat('x', 256), 'C', true),
            (4, 'gone@pets.test', 'D', 'D', true),
            (5, 'optout@pets.test', 'E', 'E', true),
            (6, 'long2@pets.test', 'F', repeat('y', 300), true)",
    )
    .await?;
    f.insert_customers(20, 100).await?;
    let w = f.worker(|s| s.batch_size = 6)?;
    let first = w.drain_once().await?;
    let parked = f.queue_rows().await?;
    let reasons: Vec<(String, String)> = parked
        .iter()
        .filter(|r| r.2)
        .map(|r| (r.1.clone(), r.3.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        (first.claimed, first.acked, first.parked, first.retried),
        (6, 0, 6, 0),
        "{first:?} {reasons:?}"
    );
    let reason = |key: &str| {
        reasons
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    for (key, needle) in [
        ("1", "valid email address"),
        ("2", "looks fake"),
        ("3", "FNAME"),
        ("3", "255"),
        ("4", "permanently deleted"),
        ("5", "compliance"),
        ("6", "LNAME"),
    ] {
        assert!(
            reason(key).to_lowercase().contains(&needle.to_lowercase()),
            "customer {key}: {needle:?} not in {:?}",
            reason(key)
        );
    }
    let rest = f.drain(&w).await?;
    assert_eq!((rest.acked, rest.parked), (20, 0));
    assert_eq!(f.queue.summary().await?.parked, 6, "the six stay parked");
    f.assert_converged().await?;
    for (key, reason) in &reasons {
        record.figure(&format!("customer {key}"), reason.as_str());
    }
    record.figure("good rows acknowledged after them", rest.acked as u64);
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_archived_member_leaves_it_archived_even_if_a_later_call_fails() -> Result<()> {
    let mut record = Scenario::new(
        "mailchimp",
        "reliability::mailchimp::removing_an_archived_member_leaves_it_archived_even_if_a_later_call_fails",
        "removal of a member archived already, with a 503 waiting",
    )
    .tried(
        "a synced customer whose member was archived in Mailchimp meanwhile is deleted; Mailchimp \
         answers the archive with its 405 (one answer for pending, cleaned and archived) and has a \
         503 ready for the fourth write",
    )
    .asserted(
        "the worker reads the member, sees it archived and is done: the removal is acknowledged \
         and the member stays archived. (Setting the status to unsubscribed first would bring the \
         archived member back, and with the archive that follows refused it would be left live.)",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec("insert into customers values (1, 'ana@pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', true, null, null)")
        .await?;
    f.drain(&w).await?;
    f.mailchimp
        .archive_member(AUDIENCE, "ana@pets.test")
        .await?;
    f.exec("delete from customers where id = 1").await?;
    // tags off, archive (405), [status change], [archive again]
    f.emulator.inject(Fault::Delay(Duration::ZERO), 3);
    f.emulator.inject(Fault::ServiceUnavailable, 1);
    let o = w.drain_once().await?;
    assert_eq!((o.acked, o.retried, o.parked), (1, 0, 0), "{o:?}");
    assert_eq!(
        f.member("ana@pets.test").map(|m| m.status),
        Some("archived".to_string())
    );
    f.assert_converged().await?;
    record.figure("outcome", "acknowledged; member archived");
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_failed_after_unsubscribing_does_not_leave_a_returning_customer_unsubscribed(
) -> Result<()> {
    let mut record = Scenario::new(
        "mailchimp",
        "reliability::mailchimp::a_removal_that_failed_after_unsubscribing_does_not_leave_a_returning_customer_unsubscribed",
        "a removal that failed halfway, then the customer returns",
    )
    .tried(
        "a customer whose member is pending (consent withdrawn, then given again) is deleted: the \
         worker must unsubscribe the pending member before it can archive it, and the archive \
         after that gets a 503; before the retry the customer is inserted again, with consent",
    )
    .asserted(
        "the failed removal is remembered as a consent of false that may have reached Mailchimp, \
         so the returning customer's upsert sets the status again (pending, per resubscribe) \
         instead of leaving the contact unsubscribed; audience = table",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec("insert into customers values (1, 'ana@pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', true, null, null)")
        .await?;
    f.drain(&w).await?;
    for consent in ["false", "true"] {
        f.exec(&format!(
            "update customers set consent_contact = {consent} where id = 1"
        ))
        .await?;
        f.drain(&w).await?;
    }
    assert_eq!(
        f.member("ana@pets.test").map(|m| m.status),
        Some("pending".to_string())
    );
    f.exec("delete from customers where id = 1").await?;
    // tags off, archive (405: pending), status unsubscribed, archive again: 503
    f.emulator.inject(Fault::Delay(Duration::ZERO), 3);
    f.emulator.inject(Fault::ServiceUnavailable, 1);
    let o = w.drain_once().await?;
    assert_eq!((o.acked, o.retried), (0, 1), "{o:?}");
    assert_eq!(
        f.member("ana@pets.test").map(|m| m.status),
        Some("unsubscribed".to_string()),
        "the removal got halfway"
    );
    f.exec("insert into customers values (1, 'ana@pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', true, null, null)")
        .await?;
    f.drain(&w).await?;
    assert_eq!(
        f.member("ana@pets.test").map(|m| m.status),
        Some("pending".to_string())
    );
    f.assert_converged().await?;
    record.figure("status after the return", "pending");
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_copy_keeps_no_tag_of_ours_for_when_it_comes_back() -> Result<()> {
    let mut record = Scenario::new(
        "mailchimp",
        "reliability::mailchimp::a_removed_copy_keeps_no_tag_of_ours_for_when_it_comes_back",
        "removal of a member that a lost answer moved, then the customer returns",
    )
    .tried(
        "a tagged customer changes address and tag; the rename is applied but its answer is lost \
         (the member now lives at the new address with the old tag); the customer is soft-deleted \
         before the retry, then restored",
    )
    .asserted(
        "the removal clears chimpsync's tags on every address it archives, not only the first \
         (an archived member keeps its tags and brings them back when restored): the restored \
         member carries only the customer's tag; audience = table",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec("insert into customers values (1, 'a@pets.test', 'Ana', 'Lima', 'Berlin', 'dog owner', true, null, null)")
        .await?;
    f.drain(&w).await?;
    f.exec("update customers set email = 'b@pets.test', customer_type = 'groomer' where id = 1")
        .await?;
    f.emulator.inject(Fault::DropAfterApply, 1);
    let o = w.drain_once().await?;
    assert_eq!(o.retried, 1, "{o:?}");
    assert_eq!(
        f.member("b@pets.test").map(|m| m.tags),
        Some(vec!["dog owner".to_string()]),
        "renamed, old tag still on"
    );
    f.exec("update customers set deleted_at = now() where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(
        f.member("b@pets.test").map(|m| m.status),
        Some("archived".to_string())
    );
    f.exec("update customers set deleted_at = null where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(
        f.member("b@pets.test").map(|m| (m.status, m.tags)),
        Some(("subscribed".to_string(), vec!["groomer".to_string()]))
    );
    f.assert_converged().await?;
    record.figure("tags of the restored member", "groomer");
    record.save()?;
    f.finish().await
}
