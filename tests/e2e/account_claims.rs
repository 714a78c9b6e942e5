//! The claim with many accounts, against Postgres alone: one claim serves many accounts with due
//! rows, a big account fills what the batch has left, the accounts passed over keep their place,
//! concurrent claims never take a row twice, and the per-account index is the only way the claim
//! reads due rows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{ensure, Result};
use chimpsync_tests::TestDb;
use tokio_postgres::Client;

use crate::many_accounts::installed;

const LEASE: Duration = Duration::from_secs(60);

/// A multi-account installation with `accounts` connected directly in the table (nothing is
/// sent, so their keys are placeholders), each with `rows` due queue rows; the rows of earlier
/// accounts in the list were queued earlier.
async fn installation(accounts: &[(&str, i64)]) -> Result<(TestDb, Client, store::Pool)> {
    let (db, sql, _secret) = installed().await?;
    for (i, (account, rows)) in accounts.iter().enumerate() {
        sql.execute(
            "insert into chimpsync.accounts (account, audience_id, api_key, api_key_last4, key_group, encrypted_for)
             values ($1, 'aud' || $1, '\\x00', '0000', 1, 'test')",
            &[account],
        )
        .await?;
        sql.execute(
            "insert into chimpsync.sync_queue (account, customer_key, operation, email, payload, next_attempt_at)
             select $1, g::text, 'upsert', $1 || '-' || g || '@pets.test', '{}',
                    now() - interval '1 hour' + $2::int * interval '1 second' + g * interval '1 ms'
             from generate_series(1, $3::bigint) g",
            &[account, &(i as i32), rows],
        )
        .await?;
    }
    sql.batch_execute("analyze chimpsync.sync_queue; analyze chimpsync.accounts")
        .await?;
    let pool = store::pool(&db.url, 8, Duration::from_secs(30))?;
    Ok((db, sql, pool))
}

/// Rows per account of a claim.
fn per_account(claim: &store::Claim) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in &claim.rows {
        *counts.entry(row.account.clone()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_claim_serves_the_small_accounts_and_the_big_one_fills_the_rest() -> Result<()> {
    // "a-big" sorts first and its rows are the oldest: it is first in line.
    let mut accounts = vec![("a-big", 1_200)];
    let small: Vec<String> = (0..30).map(|i| format!("s{i:02}")).collect();
    accounts.extend(small.iter().map(|s| (s.as_str(), 2)));
    let (_db, _sql, pool) = installation(&accounts).await?;
    let queue = store::Queue::for_accounts(pool);

    let first = queue.claim_batch("t", 500, LEASE, None).await?;
    ensure!(
        per_account(&first) == BTreeMap::from([("a-big".to_string(), 500)]),
        "the account first in line takes the whole batch: {:?}",
        per_account(&first)
    );
    ensure!(first.account == "a-big", "a claim of one account names it");

    // Now the small accounts are first in line (they got nothing), the big one last.
    let second = queue.claim_batch("t", 500, LEASE, None).await?;
    let counts = per_account(&second);
    for s in &small {
        ensure!(
            counts.get(s) == Some(&2),
            "every small account is served in one claim: {counts:?}"
        );
    }
    ensure!(
        counts.get("a-big") == Some(&(500 - 60)),
        "the big account fills what the batch has left: {counts:?}"
    );
    ensure!(
        second.account.is_empty(),
        "a claim of many accounts names none"
    );
    let parts = second.clone().by_account();
    ensure!(parts.len() == 31, "one part per account");
    for part in &parts {
        ensure!(
            part.token == second.token && part.rows.iter().all(|r| r.account == part.account),
            "each part holds one account's rows under the claim's token"
        );
    }

    let third = queue.claim_batch("t", 500, LEASE, None).await?;
    ensure!(
        per_account(&third) == BTreeMap::from([("a-big".to_string(), 1_200 - 500 - 440)]),
        "what is left: {:?}",
        per_account(&third)
    );
    let empty = queue.claim_batch("t", 500, LEASE, None).await?;
    ensure!(empty.rows.is_empty(), "everything is leased");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_accounts_than_one_claim_serves_take_turns() -> Result<()> {
    let names: Vec<String> = (0..store::ACCOUNTS_PER_CLAIM * 2 + 7)
        .map(|i| format!("acct{i:03}"))
        .collect();
    let accounts: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    let (_db, _sql, pool) = installation(&accounts).await?;
    let queue = store::Queue::for_accounts(pool);
    let mut seen = BTreeSet::new();
    let mut claims = 0;
    loop {
        let claim = queue.claim_batch("t", 500, LEASE, None).await?;
        if claim.rows.is_empty() {
            break;
        }
        claims += 1;
        ensure!(
            claim.rows.len() as i64 <= store::ACCOUNTS_PER_CLAIM,
            "one claim serves at most {} accounts",
            store::ACCOUNTS_PER_CLAIM
        );
        for row in &claim.rows {
            ensure!(seen.insert(row.account.clone()), "an account served twice");
        }
    }
    ensure!(seen.len() == names.len() && claims == 3, "{claims} claims");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_take_a_row_twice() -> Result<()> {
    let names: Vec<String> = (0..120).map(|i| format!("acct{i:03}")).collect();
    let accounts: Vec<(&str, i64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), if i % 10 == 0 { 700 } else { 7 }))
        .collect();
    let total: i64 = accounts.iter().map(|(_, rows)| rows).sum();
    let (_db, _sql, pool) = installation(&accounts).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4 {
        let queue = store::Queue::for_accounts(pool.clone());
        tasks.spawn(async move {
            let mut ids: Vec<(i64, String)> = Vec::new();
            let mut empty_in_a_row = 0;
            // Another claimer may hold the last rows' accounts for a moment: stop after a few
            // empty claims in a row, the rest is counted below.
            while empty_in_a_row < 3 {
                let claim = queue
                    .claim_batch(&format!("w{w}"), 100, LEASE, None)
                    .await?;
                empty_in_a_row = if claim.rows.is_empty() {
                    empty_in_a_row + 1
                } else {
                    0
                };
                ids.extend(claim.rows.into_iter().map(|r| (r.id, r.account)));
            }
            anyhow::Ok(ids)
        });
    }
    let mut claimed: BTreeMap<i64, String> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        for (id, account) in done?? {
            ensure!(
                claimed.insert(id, account).is_none(),
                "row {id} claimed twice"
            );
        }
    }
    let client = pool.get().await?;
    let leased: i64 = client
        .query_one(
            "select count(*) from chimpsync.sync_queue where lease_token is not null",
            &[],
        )
        .await?
        .get(0);
    ensure!(
        leased == claimed.len() as i64 && leased == total,
        "every row claimed once: {leased} leased, {} seen, {total} queued",
        claimed.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_account_is_claimed_without_reading_a_big_accounts_rows() -> Result<()> {
    // Two accounts, one with nearly every row: the shape whose plan once walked the big
    // account's rows for the small one's few.
    let (_db, sql, pool) = installation(&[("big", 20_000), ("small", 3)]).await?;
    let due_index: i64 = sql
        .query_one(
            "select count(*) from pg_indexes where schemaname = 'chimpsync' and indexname = 'sync_queue_due_idx'",
            &[],
        )
        .await?
        .get(0);
    ensure!(
        due_index == 0,
        "many accounts: the due index of one account is gone"
    );
    sql.execute(
        "update chimpsync.accounts set last_claimed_at = now() where account = 'big'",
        &[],
    )
    .await?;
    // The claim statement itself, run under EXPLAIN ANALYZE (and rolled back): the rows it
    // reads from the queue, in every node, are the small account's few and what picking the
    // accounts costs (one probe each), never the big account's 20,000.
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let explain = format!(
        "explain (analyze, format json) {}",
        store::sql::claim_batch(true)
    );
    let token = uuid::Uuid::new_v4();
    let (none, share, min_rows, window): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<f64>,
        Option<i64>,
        Option<f64>,
    ) = (None, None, None, None);
    let plan: serde_json::Value = tx
        .query_one(
            &explain,
            &[
                &"t",
                &token,
                &3_i64,
                &60.0_f64,
                &none,
                &share,
                &min_rows,
                &window,
                &store::ACCOUNTS_PER_CLAIM,
            ],
        )
        .await?
        .get(0);
    let read = queue_rows_read(&plan[0]["Plan"]);
    ensure!(
        read < 100,
        "the claim of the small account read {read} queue rows: {plan:#}"
    );
    let claimed: i64 = tx
        .query_one(
            "select count(*) from chimpsync.sync_queue where lease_token = $1 and account = 'small'",
            &[&token],
        )
        .await?
        .get(0);
    ensure!(
        claimed == 3,
        "the statement claimed the small account's rows"
    );
    tx.rollback().await?;
    Ok(())
}

/// The rows every scan of `sync_queue` in `plan` read (returned or filtered out), over all its
/// loops.
fn queue_rows_read(plan: &serde_json::Value) -> i64 {
    let own = if plan["Relation Name"] == "sync_queue" && plan["Node Type"] != "ModifyTable" {
        let seen = plan["Actual Rows"].as_i64().unwrap_or(0)
            + plan["Rows Removed by Filter"].as_i64().unwrap_or(0);
        seen * plan["Actual Loops"].as_i64().unwrap_or(1)
    } else {
        0
    };
    own + plan["Plans"]
        .as_array()
        .map(|plans| plans.iter().map(queue_rows_read).sum())
        .unwrap_or(0)
}
