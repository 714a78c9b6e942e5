//! `setup` next to a running application: every lock it takes on the customer table is bounded
//! by its lock timeout, a busy lock is retried until a deadline, and a setup with nothing to
//! change takes no lock on the table at all.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use chimpsync_tests::reliability::Scenario;
use chimpsync_tests::{TestDb, CUSTOMERS, MAPPING};
use store::{Mapping, SetupOptions, TriggerShape};
use tokio_postgres::Client;

/// [`MAPPING`] with one more merge field: setup must reinstall the triggers for it.
fn changed_mapping() -> Result<Mapping> {
    Ok(Mapping::parse(&MAPPING.replace(
        "STORE = \"store\"",
        "STORE = \"store\"\nNOTES = \"notes\"",
    ))?)
}

/// A database with 100 customers and chimpsync set up with [`MAPPING`].
async fn installed() -> Result<(TestDb, Client)> {
    let db = TestDb::new().await?;
    let mut c = db.client().await?;
    c.batch_execute(CUSTOMERS).await?;
    c.batch_execute(
        "insert into customers (id, email, first_name, consent_contact)
         select i, 'c' || i || '@pets.test', 'C' || i, true from generate_series(1, 100) i",
    )
    .await?;
    store::setup(&mut c, &Mapping::parse(MAPPING)?, TriggerShape::Statement).await?;
    c.batch_execute("delete from chimpsync.sync_queue").await?;
    Ok((db, c))
}

/// Opens a transaction on `client` that reads the customer table and stays open: it holds the
/// table's ACCESS SHARE lock, as an application's long report would.
async fn long_read(client: &Client) -> Result<i32> {
    client
        .batch_execute("begin; select count(*) from customers")
        .await?;
    Ok(client
        .query_one("select pg_backend_pid()", &[])
        .await?
        .get(0))
}

/// What `NOTES` the queue holds for customer 1 after an update of its notes and of a field
/// [`MAPPING`] maps: `Null` unless the triggers carry the changed mapping.
async fn notes_synced(c: &Client) -> Result<serde_json::Value> {
    c.batch_execute(
        "delete from chimpsync.sync_queue;
         update customers set notes = 'mapped?', first_name = first_name || '!' where id = 1",
    )
    .await?;
    let payload: serde_json::Value = c
        .query_one(
            "select payload from chimpsync.sync_queue where customer_key = '1'",
            &[],
        )
        .await?
        .get(0);
    Ok(payload["merge_fields"]["NOTES"].clone())
}

async fn installed_sql(c: &Client) -> Result<String> {
    Ok(
        c.query_one("select trigger_sql from chimpsync.installation", &[])
            .await?
            .get(0),
    )
}

/// Runs `sql` in a loop on its own connection until `stop`; returns the longest any run took and
/// how many ran.
fn application(
    db: &TestDb,
    sql: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<(Duration, u32)>> {
    let url = db.url.clone();
    tokio::spawn(async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let (mut longest, mut runs) = (Duration::ZERO, 0);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            client.batch_execute(sql).await?;
            longest = longest.max(started.elapsed());
            runs += 1;
        }
        Ok((longest, runs))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_transaction_delays_setup_and_the_application_waits_at_most_the_lock_timeout(
) -> Result<()> {
    let (db, c) = installed().await?;
    let options = SetupOptions {
        lock_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(120),
        ..SetupOptions::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reader = application(&db, "select count(*) from customers", stop.clone());
    let writer = application(
        &db,
        "update customers set first_name = first_name || '.' where id = 7",
        stop.clone(),
    );
    let long = db.client().await?;
    let long_pid = long_read(&long).await?;

    let mut setup_client = db.client().await?;
    let setup_pid: i32 = setup_client
        .query_one("select pg_backend_pid()", &[])
        .await?
        .get(0);
    let setup = tokio::spawn(async move {
        store::setup_with(
            &mut setup_client,
            &changed_mapping()?,
            TriggerShape::Statement,
            options,
        )
        .await
        .map_err(anyhow::Error::from)
    });

    // Each attempt is one statement waiting on the customer table's lock; its query_start tells
    // the attempts apart. Two of them show the timeout and the retry at work.
    let mut attempts_seen = BTreeSet::new();
    let mut modes = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while attempts_seen.len() < 2 {
        ensure!(
            Instant::now() < deadline,
            "setup never waited twice for the table"
        );
        for row in c
            .query(
                "select a.query_start::text, l.mode
                 from pg_stat_activity a
                 join pg_locks l on l.pid = a.pid and not l.granted
                 where a.pid = $1 and a.wait_event_type = 'Lock'
                   and l.relation = 'public.customers'::regclass",
                &[&setup_pid],
            )
            .await?
        {
            attempts_seen.insert(row.get::<_, String>(0));
            modes.insert(row.get::<_, String>(1));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !setup.is_finished(),
        "setup waits while the table is locked"
    );
    let blocker: Vec<i32> = c
        .query_one("select pg_blocking_pids($1)", &[&setup_pid])
        .await?
        .get(0);
    assert!(
        blocker.is_empty() || blocker == [long_pid],
        "only the long transaction blocks setup: {blocker:?}"
    );

    long.batch_execute("commit").await?;
    let report = setup.await??;
    stop.store(true, Ordering::Relaxed);
    let (read_wait, reads) = reader.await??;
    let (write_wait, writes) = writer.await??;
    println!(
        "setup: {} attempts, lock requested {modes:?}; application: {reads} reads, longest {read_wait:?}; {writes} writes, longest {write_wait:?}; lock timeout {:?}",
        report.attempts, options.lock_timeout
    );

    assert!(report.triggers_installed);
    assert!(report.attempts >= 2, "{report:?}");
    assert_eq!(modes, BTreeSet::from(["AccessExclusiveLock".to_string()]));
    let bound = options.lock_timeout + Duration::from_millis(500);
    for (what, longest) in [("read", read_wait), ("write", write_wait)] {
        ensure!(
            longest <= bound,
            "an application {what} waited {longest:?}, more than the lock timeout allows"
        );
        // They did queue behind setup's lock requests: the lock timeout is what let them go.
        ensure!(
            longest >= options.lock_timeout / 2,
            "no application {what} waited behind setup ({longest:?}): the test did not test"
        );
    }
    assert_eq!(notes_synced(&c).await?, "mapped?");
    let mut record = Scenario::new(
        "host",
        "setup_locks::a_long_transaction_delays_setup_and_the_application_waits_at_most_the_lock_timeout",
        "`setup` while a long transaction reads the customer table",
    )
    .tried(
        "a transaction holds a read of the customer table open while `setup` reinstalls the \
         triggers for a changed mapping (lock timeout 1 s); meanwhile the application reads \
         (`select count(*)`) and updates customers in a loop; then the long transaction ends",
    )
    .asserted(
        "setup's ACCESS EXCLUSIVE request times out and is retried with backoff (at least two \
         attempts) instead of queueing every reader behind it; no application read or write \
         waited longer than the lock timeout (+0.5 s), and some did wait (so the test tested); \
         setup completes once the long transaction ends",
    );
    record.figure("setup attempts", report.attempts as u64);
    record.figure("application reads", reads as u64);
    record.figure("longest read wait (ms)", read_wait.as_millis() as u64);
    record.figure("application writes", writes as u64);
    record.figure("longest write wait (ms)", write_wait.as_millis() as u64);
    record.figure("lock timeout (ms)", options.lock_timeout.as_millis() as u64);
    record.save()?;
    db.finish().await
}

#[tokio::test]
async fn a_setup_with_nothing_to_change_takes_no_lock_on_the_customer_table() -> Result<()> {
    let (db, mut c) = installed().await?;
    let before: String = c
        .query_one("select installed_at::text from chimpsync.installation", &[])
        .await?
        .get(0);
    // Another transaction holds the strongest lock on the table: any lock request by setup
    // would wait, time out and end in an error.
    let holder = db.client().await?;
    holder
        .batch_execute("begin; lock table customers in access exclusive mode")
        .await?;
    let options = SetupOptions {
        lock_timeout: Duration::from_millis(200),
        deadline: Duration::from_secs(1),
        ..SetupOptions::default()
    };
    let report = store::setup_with(
        &mut c,
        &Mapping::parse(MAPPING)?,
        TriggerShape::Statement,
        options,
    )
    .await?;
    assert!(report.changed_nothing(), "{report:?}");
    assert_eq!(report.attempts, 1);
    // A mapping change the triggers do not depend on is recorded, still without the table.
    let other_audience = Mapping::parse(&MAPPING.replace("a1b2c3d4e5", "f0e1d2c3b4"))?;
    let report =
        store::setup_with(&mut c, &other_audience, TriggerShape::Statement, options).await?;
    assert!(
        !report.triggers_installed && report.mapping_recorded,
        "{report:?}"
    );
    let waiting: i64 = c
        .query_one(
            "select count(*) from pg_locks where relation = 'public.customers'::regclass and not granted",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(waiting, 0, "no lock request on the customer table");
    holder.batch_execute("commit").await?;
    let after: String = c
        .query_one("select installed_at::text from chimpsync.installation", &[])
        .await?
        .get(0);
    assert_eq!(before, after, "the triggers were not reinstalled");

    // Triggers changed behind chimpsync's back no longer match: setup reinstalls them.
    c.batch_execute("alter table customers disable trigger chimpsync_enqueue_update")
        .await?;
    let report = store::setup(&mut c, &other_audience, TriggerShape::Statement).await?;
    assert!(report.triggers_installed, "{report:?}");
    c.batch_execute("drop trigger chimpsync_enqueue_insert on customers")
        .await?;
    let report = store::setup(&mut c, &other_audience, TriggerShape::Statement).await?;
    assert!(report.triggers_installed, "{report:?}");
    let report = store::setup(&mut c, &other_audience, TriggerShape::Statement).await?;
    assert!(report.changed_nothing(), "{report:?}");
    Scenario::new(
        "host",
        "setup_locks::a_setup_with_nothing_to_change_takes_no_lock_on_the_customer_table",
        "`setup` with nothing to change",
    )
    .tried(
        "another transaction holds ACCESS EXCLUSIVE on the customer table while `setup` runs \
         again with the installed mapping, then with a mapping that differs only in the audience; \
         then triggers are disabled or dropped by hand and setup runs again",
    )
    .asserted(
        "both setups finish in one attempt without requesting any lock on the customer table \
         (pg_locks shows none waiting) and reinstall nothing; triggers changed by hand are \
         noticed and reinstalled",
    )
    .save()?;
    db.finish().await
}

#[tokio::test]
async fn a_setup_that_cannot_get_the_lock_in_time_fails_clearly_and_changes_nothing() -> Result<()>
{
    let (db, mut c) = installed().await?;
    let before = installed_sql(&c).await?;
    let long = db.client().await?;
    let long_pid = long_read(&long).await?;
    let options = SetupOptions {
        lock_timeout: Duration::from_millis(200),
        deadline: Duration::from_secs(1),
        ..SetupOptions::default()
    };
    let started = Instant::now();
    let err = store::setup_with(
        &mut c,
        &changed_mapping()?,
        TriggerShape::Statement,
        options,
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    let message = err.to_string();
    println!("after {took:?}: {message}");
    assert!(matches!(err, store::Error::Blocked(_)), "{err:?}");
    for needle in [
        "table public.customers",
        &format!("pid {long_pid}"),
        "AccessShareLock",
        "idle in transaction",
        "Nothing was changed",
        "run setup again",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    assert!(
        took < options.deadline + options.lock_timeout + Duration::from_secs(1),
        "gave up within its bound ({took:?})"
    );
    long.batch_execute("commit").await?;
    assert_eq!(installed_sql(&c).await?, before);
    assert_eq!(notes_synced(&c).await?, serde_json::Value::Null);
    db.finish().await
}

#[tokio::test]
async fn print_sql_shows_the_lock_timeout_setup_runs_with() -> Result<()> {
    let db = TestDb::new().await?;
    let c = db.client().await?;
    c.batch_execute(CUSTOMERS).await?;
    let generated = store::Generated::for_mapping(&c, &Mapping::parse(MAPPING)?).await?;
    let sql = store::setup_sql(&generated, TriggerShape::Statement);
    let timeout = SetupOptions::default().lock_timeout.as_millis();
    let set = sql
        .find(&format!("set local lock_timeout = '{timeout}ms'"))
        .expect("--print-sql sets the lock timeout");
    let first_trigger = sql
        .find("drop trigger if exists")
        .expect("drops the old triggers");
    assert!(
        set < first_trigger,
        "the timeout applies to the trigger statements"
    );
    db.finish().await
}
