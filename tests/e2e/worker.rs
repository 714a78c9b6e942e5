//! The worker against the real emulator over HTTP and a real Postgres: the twelve invariants of
//! docs/queue.md, one or more tests each.

use std::time::Duration;

use anyhow::Result;
use chimpsync_tests::{Fixture, AUDIENCE, MAPPING};
use mailchimp_emulator::{Config, Fault};

const ANA: &str = "insert into customers values (1, 'ana@pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', true, null, null)";

#[tokio::test]
async fn a_new_contact_with_consent_is_subscribed_with_merge_fields_and_tags() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    let o = f.drain(&w).await?;
    assert_eq!(o.acked, 1);
    let m = f.member("ana@pets.test").expect("member created");
    assert_eq!(m.status, "subscribed");
    assert_eq!(m.merge_fields["FNAME"], "Ana");
    assert_eq!(m.merge_fields["STORE"], "Berlin");
    assert_eq!(m.tags, vec!["groomer"]);
    assert!(
        f.queue_rows().await?.is_empty(),
        "acknowledged rows are deleted"
    );
    f.finish().await
}

#[tokio::test]
async fn new_status_pending_creates_pending_contacts_and_no_consent_creates_unsubscribed(
) -> Result<()> {
    let f = Fixture::with(
        &MAPPING.replace(
            "id = \"a1b2c3d4e5\"",
            "id = \"a1b2c3d4e5\"\nnew_status = \"pending\"",
        ),
        Config::default(),
    )
    .await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.exec("insert into customers values (2, 'bo@pets.test', 'Bo', 'Ng', null, null, false, null, null)").await?;
    f.drain(&w).await?;
    assert_eq!(f.member("ana@pets.test").unwrap().status, "pending");
    assert_eq!(
        f.member("bo@pets.test").unwrap().status,
        "unsubscribed",
        "never created as subscribed"
    );
    f.finish().await
}

#[tokio::test]
async fn changed_fields_update_the_member_and_leave_its_status_alone() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    // The contact confirmed/unsubscribed on Mailchimp's side; a field change must not resubscribe.
    assert!(f.emulator.simulate_unsubscribe(AUDIENCE, "ana@pets.test"));
    f.exec("update customers set last_name = 'Souza' where id = 1")
        .await?;
    let o = f.drain(&w).await?;
    assert_eq!((o.acked, o.parked), (1, 0));
    let m = f.member("ana@pets.test").unwrap();
    assert_eq!(m.merge_fields["LNAME"], "Souza");
    assert_eq!(m.status, "unsubscribed");
    f.finish().await
}

#[tokio::test]
async fn consent_removed_unsubscribes_and_consent_given_again_asks_for_confirmation() -> Result<()>
{
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    f.exec("update customers set consent_contact = false where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(f.member("ana@pets.test").unwrap().status, "unsubscribed");
    f.exec("update customers set consent_contact = true where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(
        f.member("ana@pets.test").unwrap().status,
        "pending",
        "resubscribe = pending"
    );
    f.finish().await
}

#[tokio::test]
async fn consent_given_again_by_a_contact_who_unsubscribed_themselves_still_reaches_pending(
) -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    f.exec("update customers set consent_contact = false where id = 1")
        .await?;
    f.drain(&w).await?;
    f.emulator.simulate_unsubscribe(AUDIENCE, "ana@pets.test");
    f.exec("update customers set consent_contact = true where id = 1")
        .await?;
    let o = f.drain(&w).await?;
    assert_eq!(o.parked, 0, "pending is the compliance-state workaround");
    assert_eq!(f.member("ana@pets.test").unwrap().status, "pending");
    f.finish().await
}

#[tokio::test]
async fn resubscribe_park_parks_the_row_with_the_reason() -> Result<()> {
    let f = Fixture::with(
        &MAPPING.replace(
            "id = \"a1b2c3d4e5\"",
            "id = \"a1b2c3d4e5\"\nresubscribe = \"park\"",
        ),
        Config::default(),
    )
    .await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    f.exec("update customers set consent_contact = false where id = 1")
        .await?;
    f.drain(&w).await?;
    f.exec("update customers set consent_contact = true where id = 1")
        .await?;
    f.drain(&w).await?;
    let rows = f.queue_rows().await?;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].2, "parked");
    assert!(
        rows[0].3.as_deref().unwrap().contains("resubscribe"),
        "{:?}",
        rows[0].3
    );
    assert_eq!(f.member("ana@pets.test").unwrap().status, "unsubscribed");
    f.finish().await
}

#[tokio::test]
async fn an_email_change_renames_the_member_without_a_duplicate() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    let id_before = f.member("ana@pets.test").unwrap().id;
    f.exec("update customers set email = 'ana.lima@pets.test' where id = 1")
        .await?;
    f.drain(&w).await?;
    assert!(
        f.member("ana@pets.test").is_none(),
        "the old address is gone"
    );
    let m = f.member("ana.lima@pets.test").unwrap();
    assert_ne!(m.id, id_before);
    assert_eq!(m.tags, vec!["groomer"], "the renamed member kept its tags");
    assert_eq!(f.emulator.members(AUDIENCE).len(), 1);
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn an_email_change_onto_a_taken_address_falls_back_to_remove_and_upsert() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    // Someone (not our customer) already holds the new address in the audience.
    f.mailchimp
        .upsert_member(
            AUDIENCE,
            "taken@pets.test",
            &mailchimp::MemberUpsert {
                email_address: Some("taken@pets.test".into()),
                status_if_new: Some(mailchimp::Status::Subscribed),
                ..Default::default()
            },
        )
        .await?;
    f.exec("update customers set email = 'taken@pets.test' where id = 1")
        .await?;
    let o = f.drain(&w).await?;
    assert_eq!(o.acked, 1);
    assert_eq!(
        f.member("ana@pets.test").unwrap().status,
        "archived",
        "old address removed per on_remove"
    );
    let m = f.member("taken@pets.test").unwrap();
    assert_eq!(m.merge_fields["FNAME"], "Ana");
    assert_eq!(m.tags, vec!["groomer"]);
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn an_email_change_of_an_unsubscribed_member_falls_back_to_remove_and_upsert() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec("insert into customers values (1, 'ana@pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', false, null, null)").await?;
    f.drain(&w).await?;
    assert_eq!(f.member("ana@pets.test").unwrap().status, "unsubscribed");
    f.exec("update customers set email = 'ana2@pets.test' where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(f.member("ana@pets.test").unwrap().status, "archived");
    assert_eq!(f.member("ana2@pets.test").unwrap().status, "unsubscribed");
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn removal_follows_on_remove() -> Result<()> {
    for (policy, expect) in [
        ("archive", Some("archived")),
        ("unsubscribe", Some("unsubscribed")),
        ("delete-permanent", None),
    ] {
        let mapping = MAPPING.replace(
            "id = \"a1b2c3d4e5\"",
            &format!("id = \"a1b2c3d4e5\"\non_remove = \"{policy}\""),
        );
        let f = Fixture::with(&mapping, Config::default()).await?;
        let w = f.worker(|_| {})?;
        f.exec(ANA).await?;
        f.exec("insert into customers values (2, 'bo@pets.test', 'Bo', 'Ng', null, null, true, null, null)").await?;
        f.drain(&w).await?;
        f.exec("delete from customers where id = 1; update customers set deleted_at = now() where id = 2").await?;
        let o = f.drain(&w).await?;
        assert_eq!(o.acked, 2, "{policy}");
        for email in ["ana@pets.test", "bo@pets.test"] {
            assert_eq!(
                f.member(email).map(|m| m.status),
                expect.map(String::from),
                "{policy} {email}"
            );
        }
        if policy == "delete-permanent" {
            assert!(f.emulator.is_forgotten(AUDIENCE, "ana@pets.test"));
        }
        assert!(f.queue_rows().await?.is_empty());
        f.finish().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_removed_customer_that_comes_back_is_resubscribed_from_archive() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    f.exec("update customers set deleted_at = now() where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(f.member("ana@pets.test").unwrap().status, "archived");
    f.exec("update customers set deleted_at = null where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(f.member("ana@pets.test").unwrap().status, "subscribed");
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn a_tag_value_change_deactivates_the_old_tag_and_leaves_foreign_tags_alone() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    // A tag someone set by hand in Mailchimp.
    f.mailchimp
        .update_tags(
            AUDIENCE,
            "ana@pets.test",
            &[mailchimp::TagChange {
                name: "vip".into(),
                active: true,
            }],
        )
        .await?;
    f.exec("update customers set customer_type = 'breeder' where id = 1")
        .await?;
    f.drain(&w).await?;
    let mut tags = f.member("ana@pets.test").unwrap().tags;
    tags.sort();
    assert_eq!(tags, vec!["breeder", "vip"]);
    f.exec("update customers set customer_type = null where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(f.member("ana@pets.test").unwrap().tags, vec!["vip"]);
    f.finish().await
}

#[tokio::test]
async fn first_sync_of_a_contact_that_already_exists_still_sets_its_tags() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.mailchimp
        .upsert_member(
            AUDIENCE,
            "ana@pets.test",
            &mailchimp::MemberUpsert {
                email_address: Some("ana@pets.test".into()),
                status_if_new: Some(mailchimp::Status::Subscribed),
                ..Default::default()
            },
        )
        .await?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    assert_eq!(f.member("ana@pets.test").unwrap().tags, vec!["groomer"]);
    f.finish().await
}

#[tokio::test]
async fn a_partial_batch_parks_the_refused_members_and_acknowledges_the_rest() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.insert_customers(20, 1).await?;
    f.exec(
        "insert into customers values (100, 'nobody@example.com', 'Fake', 'Fake', null, null, true, null, null),
                                      (101, 'not-an-address', 'Bad', 'Bad', null, null, true, null, null),
                                      (102, 'long@pets.test', repeat('x', 300), 'Long', null, null, true, null, null)",
    )
    .await?;
    let o = f.drain(&w).await?;
    assert_eq!((o.acked, o.parked), (20, 3));
    let parked: Vec<_> = f.queue_rows().await?.into_iter().filter(|r| r.2).collect();
    assert_eq!(parked.len(), 3);
    let reasons: Vec<String> = parked
        .iter()
        .map(|r| r.3.clone().unwrap_or_default())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("looks fake")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("valid email")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("FNAME")), "{reasons:?}");
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn parked_rows_show_in_status_and_retry_puts_them_back() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec("insert into customers values (1, 'ana@pets.test', repeat('x', 300), 'Lima', null, null, true, null, null)").await?;
    f.drain(&w).await?;
    assert_eq!(f.queue.summary().await?.parked, 1);
    // Retrying unchanged data parks it again; nothing else waits behind it.
    let ids = f.queue.retry_parked(true, &[]).await?;
    assert_eq!(ids.len(), 1);
    assert_eq!(f.queue.summary().await?.parked, 0);
    f.exec(
        ANA.replace(
            "insert into customers values (1,",
            "insert into customers values (2,",
        )
        .replace("ana@", "ana2@")
        .as_str(),
    )
    .await?;
    let o = f.drain(&w).await?;
    assert_eq!((o.acked, o.parked), (1, 1));
    // Fixing the data unparks it by itself.
    f.exec("update customers set first_name = 'Ana' where id = 1")
        .await?;
    let o = f.drain(&w).await?;
    assert_eq!(o.acked, 1);
    assert_eq!(f.queue.summary().await?.parked, 0);
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn rows_stay_queued_while_mailchimp_refuses_and_go_once_it_accepts() -> Result<()> {
    let f = Fixture::with(
        MAPPING,
        Config {
            fail_rate: 1.0,
            ..Default::default()
        },
    )
    .await?;
    let w = f.worker(|_| {})?;
    f.insert_customers(10, 1).await?;
    for _ in 0..3 {
        let o = w.drain_once().await?;
        assert_eq!(o.acked, 0);
        assert_eq!(o.retried, 10);
        f.exec("update chimpsync.sync_queue set next_attempt_at = now()")
            .await?;
    }
    let rows = f.queue_rows().await?;
    assert_eq!(rows.len(), 10, "nothing deleted without an acknowledgement");
    assert!(
        rows.iter()
            .all(|r| r.4 == 3 && r.3.as_deref().unwrap_or("").contains("503")),
        "{rows:?}"
    );
    assert!(f.emulator.members(AUDIENCE).is_empty());
    f.emulator.set_fail_rate(0.0);
    f.drain(&w).await?;
    assert!(f.queue_rows().await?.is_empty());
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn a_row_that_keeps_failing_is_parked_after_max_attempts_not_deleted() -> Result<()> {
    let f = Fixture::with(
        MAPPING,
        Config {
            fail_rate: 1.0,
            ..Default::default()
        },
    )
    .await?;
    let w = f.worker(|s| s.retry.max_attempts = 3)?;
    f.exec(ANA).await?;
    let o = f.drain(&w).await?;
    assert_eq!(o.parked, 1);
    let rows = f.queue_rows().await?;
    assert!(rows[0].2);
    assert!(
        rows[0]
            .3
            .as_deref()
            .unwrap()
            .starts_with("gave up after 3 attempts"),
        "{:?}",
        rows[0].3
    );
    f.finish().await
}

#[tokio::test]
async fn a_lost_acknowledgement_is_retried_safely() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.insert_customers(5, 1).await?;
    f.emulator.inject(Fault::DropAfterApply, 1);
    let o = w.drain_once().await?;
    assert_eq!(o.acked, 0, "no answer, no acknowledgement");
    assert_eq!(
        f.emulator.members(AUDIENCE).len(),
        5,
        "but Mailchimp applied the write"
    );
    f.drain(&w).await?;
    assert_eq!(
        f.emulator.members(AUDIENCE).len(),
        5,
        "the resend did not duplicate anything"
    );
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn a_change_committed_while_the_older_one_is_in_flight_is_not_lost() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.emulator
        .inject(Fault::Delay(Duration::from_millis(400)), 1);
    let in_flight = {
        let w = w.clone();
        tokio::spawn(async move { w.drain_once().await })
    };
    chimpsync_tests::wait_until(Duration::from_secs(5), "the row to be claimed", || async {
        Ok(f.queue.summary().await?.in_flight == 1)
    })
    .await?;
    f.exec("update customers set last_name = 'Newer' where id = 1")
        .await?;
    let first = in_flight.await??;
    assert_eq!(
        first.changed_in_flight, 1,
        "the acknowledged version is not the latest"
    );
    assert_eq!(
        f.queue_rows().await?.len(),
        1,
        "the newer change stays queued"
    );
    assert_eq!(
        f.member("ana@pets.test").unwrap().merge_fields["LNAME"],
        "Lima"
    );
    f.drain(&w).await?;
    assert_eq!(
        f.member("ana@pets.test").unwrap().merge_fields["LNAME"],
        "Newer"
    );
    f.finish().await
}

#[tokio::test]
async fn an_acknowledgement_after_the_lease_expired_does_not_delete_a_reclaimed_row() -> Result<()>
{
    let f = Fixture::new().await?;
    f.exec(ANA).await?;
    let now = chrono::Utc::now();
    let first = f
        .queue
        .claim_batch("a", 10, Duration::from_secs(1), Some(now))
        .await?;
    assert_eq!(first.rows.len(), 1);
    // The lease lapses; another worker claims the row.
    let second = f
        .queue
        .claim_batch(
            "b",
            10,
            Duration::from_secs(60),
            Some(now + chrono::Duration::seconds(2)),
        )
        .await?;
    assert_eq!(second.rows.len(), 1);
    let row = &first.rows[0];
    let ack = store::Ack {
        id: row.id,
        version: row.version,
        customer_key: row.customer_key.clone(),
        email: "ana@pets.test".into(),
        consent: true,
        tags: vec![],
        removed: false,
    };
    let counts = f.queue.ack(first.token, std::slice::from_ref(&ack)).await?;
    assert_eq!(
        (counts.deleted, counts.released),
        (0, 0),
        "the stale claim's ack is fenced out"
    );
    assert_eq!(f.queue_rows().await?.len(), 1);
    let counts = f.queue.ack(second.token, &[ack]).await?;
    assert_eq!(counts.deleted, 1);
    f.finish().await
}

/// The acknowledgement is one statement without row locks taken first; a change a trigger commits
/// while it runs must still end as either deleted (not possible: the version moved) or released,
/// never left leased to the finished claim. Real concurrency: a writer updates the claimed
/// customers in many small transactions while the claim is acknowledged, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_racing_committed_changes_releases_every_changed_row() -> Result<()> {
    const CUSTOMERS: i64 = 300;
    const ROUNDS: usize = 30;
    let f = Fixture::new().await?;
    f.insert_customers(CUSTOMERS, 1).await?;
    let writer = f.db.client().await?;
    let mut released_total = 0;
    for round in 0..ROUNDS {
        let claim = f
            .queue
            .claim_batch("racer", CUSTOMERS, Duration::from_secs(60), None)
            .await?;
        assert_eq!(
            claim.rows.len() as i64,
            CUSTOMERS,
            "round {round}: all queued"
        );
        let acks: Vec<store::Ack> = claim
            .rows
            .iter()
            .map(|row| store::Ack {
                id: row.id,
                version: row.version,
                customer_key: row.customer_key.clone(),
                email: row.email.clone().unwrap_or_default(),
                consent: true,
                tags: vec![],
                removed: false,
            })
            .collect();
        // Every customer changes once more, one transaction each, in a random order, while the
        // acknowledgement runs.
        let changes = async {
            let mut ids: Vec<i64> = (1..=CUSTOMERS).collect();
            ids.sort_by_key(|id| (id * 7919 + round as i64 * 104_729) % CUSTOMERS);
            for id in ids {
                writer
                    .execute(
                        "update customers set store = $1 where id = $2",
                        &[&format!("r{round}"), &id],
                    )
                    .await?;
            }
            anyhow::Ok(())
        };
        let ack = async {
            let mut counts = store::queue::AckCounts::default();
            // The worker retries an acknowledgement that hit its lock timeout; so does this.
            for attempt in 0.. {
                match f.queue.ack(claim.token, &acks).await {
                    Ok(c) => {
                        counts = c;
                        break;
                    }
                    Err(e) if e.is_transient() && attempt < 50 => continue,
                    Err(e) => return Err(anyhow::Error::from(e)),
                }
            }
            anyhow::Ok(counts)
        };
        let ((), counts) = tokio::try_join!(changes, ack)?;
        assert_eq!(
            counts.deleted + counts.released,
            CUSTOMERS as u64,
            "round {round}: every acknowledged row is deleted or released"
        );
        released_total += counts.released;
        let still_leased: i64 = f
            .sql
            .query_one(
                "select count(*) from chimpsync.sync_queue where lease_token = $1",
                &[&claim.token],
            )
            .await?
            .get(0);
        assert_eq!(
            still_leased, 0,
            "round {round}: rows left leased to a finished claim"
        );
        // Every customer changed after the claim, so every one is queued again.
        let queued: i64 = f
            .sql
            .query_one("select count(*) from chimpsync.sync_queue", &[])
            .await?
            .get(0);
        assert_eq!(queued, CUSTOMERS, "round {round}: a change was lost");
    }
    // The race was really run: some changes landed while the acknowledgement was in progress.
    assert!(
        released_total > 0,
        "no change ever raced an acknowledgement"
    );
    f.finish().await
}

#[tokio::test]
async fn rows_of_a_dead_worker_come_back_when_the_lease_runs_out() -> Result<()> {
    let f = Fixture::new().await?;
    f.insert_customers(3, 1).await?;
    let now = chrono::Utc::now();
    let dead = f
        .queue
        .claim_batch("dead", 10, Duration::from_secs(30), Some(now))
        .await?;
    assert_eq!(dead.rows.len(), 3);
    assert!(f
        .queue
        .claim_batch("live", 10, Duration::from_secs(30), Some(now))
        .await?
        .rows
        .is_empty());
    let later = now + chrono::Duration::seconds(31);
    let back = f
        .queue
        .claim_batch("live", 10, Duration::from_secs(30), Some(later))
        .await?;
    assert_eq!(back.rows.len(), 3);
    assert!(back.rows.iter().all(|r| r.attempts == 2));
    f.finish().await
}

#[tokio::test]
async fn two_customers_with_one_address_do_not_fight() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(ANA).await?;
    f.drain(&w).await?;
    f.exec("insert into customers values (2, 'ANA@pets.test', 'Other', 'Person', null, 'vet', true, null, null)").await?;
    let o = f.drain(&w).await?;
    assert_eq!(o.parked, 1);
    let rows = f.queue_rows().await?;
    assert!(
        rows[0]
            .3
            .as_deref()
            .unwrap()
            .starts_with("address already belongs to customer 1"),
        "{rows:?}"
    );
    assert_eq!(
        f.member("ana@pets.test").unwrap().merge_fields["FNAME"],
        "Ana",
        "the owner keeps the member"
    );
    // The owner gives the address up: the waiting customer gets it without a manual retry.
    f.exec("update customers set email = 'ana.new@pets.test' where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(
        f.member("ana@pets.test").unwrap().merge_fields["FNAME"],
        "Other"
    );
    assert_eq!(
        f.member("ana.new@pets.test").unwrap().merge_fields["FNAME"],
        "Ana"
    );
    assert!(f.queue_rows().await?.is_empty());
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_loop_converges_with_failures_and_dropped_answers() -> Result<()> {
    let f = Fixture::with(
        MAPPING,
        Config {
            fail_rate: 0.2,
            drop_rate: 0.1,
            seed: 42,
            ..Default::default()
        },
    )
    .await?;
    f.insert_customers(1500, 1).await?;
    let w = f.worker(|s| s.batch_size = 100)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let run = {
        let (w, stop) = (w.clone(), stop.clone());
        tokio::spawn(async move { w.run(stop, false).await })
    };
    // Changes while the worker runs.
    f.exec("update customers set last_name = 'Changed' where id % 7 = 0; delete from customers where id % 11 = 0;
            update customers set email = 'moved' || id || '@pets.test' where id % 13 = 0;
            update customers set consent_contact = not consent_contact where id % 17 = 0").await?;
    chimpsync_tests::wait_until(Duration::from_secs(120), "the queue to drain", || async {
        let s = f.queue.summary().await?;
        Ok(s.pending + s.in_flight + s.retrying == 0)
    })
    .await?;
    stop.cancel();
    run.await??;
    let stats = f.emulator.stats();
    assert!(
        stats.failed > 0 && stats.dropped > 0,
        "faults were injected: {stats:?}"
    );
    assert_eq!(f.queue.summary().await?.parked, 0);
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_on_the_same_customers_end_with_the_latest_state() -> Result<()> {
    let f = Fixture::with(
        MAPPING,
        Config {
            latency: Duration::from_millis(5),
            fail_rate: 0.1,
            seed: 7,
            ..Default::default()
        },
    )
    .await?;
    f.insert_customers(50, 1).await?;
    let workers: Vec<_> = (0..3)
        .map(|_| f.worker(|s| s.batch_size = 10))
        .collect::<Result<_>>()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let runs: Vec<_> = workers
        .iter()
        .map(|w| {
            let (w, stop) = (w.clone(), stop.clone());
            tokio::spawn(async move { w.run(stop, false).await })
        })
        .collect();
    // Hammer the same 50 customers with successive versions while the workers drain.
    for round in 1..=20 {
        f.exec(&format!(
            "update customers set store = 'v{round}', customer_type = 't{}' where id <= 50",
            round % 4
        ))
        .await?;
        if round % 5 == 0 {
            f.exec(&format!(
                "update customers set email = 'r{round}.' || id || '@pets.test' where id % 5 = 0"
            ))
            .await?;
        }
    }
    chimpsync_tests::wait_until(Duration::from_secs(120), "the queue to drain", || async {
        let s = f.queue.summary().await?;
        Ok(s.pending + s.in_flight + s.retrying == 0)
    })
    .await?;
    stop.cancel();
    for r in runs {
        r.await??;
    }
    f.assert_converged().await?;
    for m in f
        .emulator
        .members(AUDIENCE)
        .iter()
        .filter(|m| m.status != "archived")
    {
        assert_eq!(m.merge_fields["STORE"], "v20", "{}", m.email_address);
    }
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_workers_share_a_cap_of_two_connections() -> Result<()> {
    let f = Fixture::with(
        MAPPING,
        Config {
            max_connections: Some(2),
            latency: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .await?;
    f.insert_customers(600, 1).await?;
    let workers: Vec<_> = (0..5)
        .map(|_| {
            f.worker(|s| {
                s.concurrency = 2;
                s.batch_size = 20;
            })
        })
        .collect::<Result<_>>()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let runs: Vec<_> = workers
        .iter()
        .map(|w| {
            let (w, stop) = (w.clone(), stop.clone());
            tokio::spawn(async move { w.run(stop, false).await })
        })
        .collect();
    chimpsync_tests::wait_until(Duration::from_secs(120), "the queue to drain", || async {
        let s = f.queue.summary().await?;
        Ok(s.pending + s.in_flight + s.retrying == 0)
    })
    .await?;
    stop.cancel();
    for r in runs {
        r.await??;
    }
    let stats = f.emulator.stats();
    assert!(stats.max_in_flight <= 2, "{stats:?}");
    assert!(
        stats.throttled <= 3,
        "the shared cap keeps 429s to a handful: {stats:?}"
    );
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn a_throttled_answer_pauses_the_whole_worker() -> Result<()> {
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.insert_customers(3, 1).await?;
    f.emulator.inject(Fault::BareForbidden, 1);
    let o = w.drain_once().await?;
    assert!(o.throttled && o.retried == 3, "{o:?}");
    let before = std::time::Instant::now();
    w.gate()
        .wait_throttle(&tokio_util::sync::CancellationToken::new())
        .await
        .ok();
    assert!(
        before.elapsed() >= Duration::from_millis(100),
        "the worker pauses after a throttled answer"
    );
    f.drain(&w).await?;
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn a_replica_that_dies_gives_its_slots_back() -> Result<()> {
    let f = Fixture::new().await?;
    let pool = store::pool(&f.db.url, 2, Duration::from_secs(5))?;
    let dying = std::sync::Arc::new(store::slots::SlotTable::new(pool.clone(), 2));
    assert!(dying.try_acquire().await?.is_some());
    assert!(dying.try_acquire().await?.is_some());
    let other = std::sync::Arc::new(store::slots::SlotTable::new(f.queue.pool().clone(), 2));
    assert_eq!(
        other.try_acquire().await?,
        None,
        "the cap holds across replicas"
    );
    drop(dying);
    pool.close();
    chimpsync_tests::wait_until(Duration::from_secs(5), "the slots to be freed", || async {
        Ok(other.in_use().await? == 0)
    })
    .await?;
    assert!(other.try_acquire().await?.is_some());
    f.finish().await
}

#[tokio::test]
async fn run_once_drains_what_is_due_and_returns() -> Result<()> {
    let f = Fixture::new().await?;
    f.insert_customers(1200, 1).await?;
    let w = f.worker(|_| {})?;
    let o = w
        .run(tokio_util::sync::CancellationToken::new(), true)
        .await?;
    assert_eq!(o.acked, 1200);
    assert!(f.queue_rows().await?.is_empty());
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test]
async fn backfill_enqueues_every_row_in_the_filter_once_and_is_safe_to_rerun() -> Result<()> {
    let f = Fixture::new().await?;
    f.insert_customers(2500, 1).await?;
    f.exec(
        "delete from chimpsync.sync_queue; update customers set deleted_at = now() where id <= 100",
    )
    .await?;
    f.exec("delete from chimpsync.sync_queue; update customers set last_name = 'Pending' where id = 200").await?;
    let backfill = store::backfill::Backfill::new(&f.sql, &f.mapping).await?;
    let mut after = None;
    let (mut scanned, mut enqueued) = (0, 0);
    loop {
        let chunk = backfill.chunk(&f.sql, after.as_deref(), 300).await?;
        if chunk.scanned == 0 {
            break;
        }
        scanned += chunk.scanned;
        enqueued += chunk.enqueued;
        after = chunk.last_key;
    }
    assert_eq!(scanned, 2500);
    assert_eq!(
        enqueued, 2399,
        "outside the filter: 100; already pending: 1"
    );
    let w = f.worker(|_| {})?;
    f.drain(&w).await?;
    f.assert_converged().await?;
    // Re-running after a full sync re-sends, and changes nothing in the audience.
    let chunk = backfill.chunk(&f.sql, None, 10_000).await?;
    assert_eq!(chunk.enqueued, 2400);
    f.drain(&w).await?;
    f.assert_converged().await?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_concurrent_changes_converge_with_faults_on() -> Result<()> {
    use rand::{RngExt, SeedableRng};
    let f = Fixture::with(
        MAPPING,
        Config {
            fail_rate: 0.1,
            drop_rate: 0.05,
            seed: 99,
            ..Default::default()
        },
    )
    .await?;
    f.insert_customers(200, 1).await?;
    let workers: Vec<_> = (0..3)
        .map(|_| f.worker(|s| s.batch_size = 25))
        .collect::<Result<_>>()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let runs: Vec<_> = workers
        .iter()
        .map(|w| {
            let (w, stop) = (w.clone(), stop.clone());
            tokio::spawn(async move { w.run(stop, false).await })
        })
        .collect();
    let mut writers = Vec::new();
    for writer in 0..4u64 {
        let client = f.db.client().await?;
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(writer);
            for step in 0..150u64 {
                let id: i64 = rng.random_range(1..=300);
                let sql = match rng.random_range(0..7) {
                    0 => format!(
                        "insert into customers (id, email, first_name, last_name, store, customer_type, consent_contact)
                         values ({id}, 'n{id}.{writer}.{step}@pets.test', 'N', 'New', 'S1', 'cat owner', true)
                         on conflict (id) do update set deleted_at = null"
                    ),
                    1 => format!("update customers set last_name = 'L{step}' where id = {id}"),
                    2 => format!("update customers set email = 'm{id}.{writer}.{step}@pets.test' where id = {id}"),
                    3 => format!("update customers set consent_contact = not coalesce(consent_contact, false) where id = {id}"),
                    4 => format!("update customers set customer_type = (array['dog owner','cat owner','groomer', null])[{}] where id = {id}", rng.random_range(1..=4)),
                    5 => format!("delete from customers where id = {id}"),
                    _ => format!("update customers set deleted_at = case when deleted_at is null then now() end where id = {id}"),
                };
                client.batch_execute(&sql).await?;
            }
            anyhow::Ok(())
        }));
    }
    for w in writers {
        w.await??;
    }
    let drained =
        chimpsync_tests::wait_until(Duration::from_secs(60), "the queue to drain", || async {
            let s = f.queue.summary().await?;
            Ok(s.pending + s.in_flight + s.retrying == 0)
        })
        .await;
    if let Err(e) = drained {
        let rows = f
            .sql
            .query("select id, customer_key, operation, email, attempts, last_error, (next_attempt_at - now())::text, (lease_expires_at - now())::text, maybe_applied::text from chimpsync.sync_queue", &[])
            .await?;
        for r in rows.iter().take(10) {
            eprintln!(
                "stuck: {} key={} op={} email={:?} attempts={} err={:?} next={:?} lease={:?} maybe={:?}",
                r.get::<_, i64>(0), r.get::<_, String>(1), r.get::<_, String>(2), r.get::<_, Option<String>>(3),
                r.get::<_, i32>(4), r.get::<_, Option<String>>(5), r.get::<_, Option<String>>(6), r.get::<_, Option<String>>(7), r.get::<_, Option<String>>(8)
            );
        }
        for r in f
            .sql
            .query(
                "select l.objid::text, l.pid, a.state, left(a.query, 60) from pg_locks l join pg_stat_activity a using (pid)
                 where l.locktype = 'advisory' order by l.objid",
                &[],
            )
            .await?
        {
            eprintln!("slot {} pid {} {:?} {:?}", r.get::<_, String>(0), r.get::<_, i32>(1), r.get::<_, Option<String>>(2), r.get::<_, Option<String>>(3));
        }
        return Err(e);
    }
    stop.cancel();
    for r in runs {
        r.await??;
    }
    let stats = f.emulator.stats();
    assert!(
        stats.failed > 0 && stats.dropped > 0,
        "faults were on: {stats:?}"
    );
    assert_eq!(f.queue.summary().await?.parked, 0);
    f.assert_converged().await?;
    f.finish().await
}
