//! `chimpsync setup`: the migrations, then the change triggers generated from the mapping.
//!
//! Everything runs in one transaction under an advisory lock, so two replicas running setup at
//! once serialise, and a setup that fails (bad mapping, missing column) changes nothing.
//!
//! The customer table belongs to a running application. Dropping a trigger takes the table's
//! ACCESS EXCLUSIVE lock (creating one, SHARE ROW EXCLUSIVE), and while such a request waits for a
//! long transaction, every later statement on the table queues behind it. So every lock setup
//! takes is waited for at most [`SetupOptions::lock_timeout`]; a transaction that hits it is rolled
//! back and retried with backoff until [`SetupOptions::deadline`], and the application is held up
//! for at most one lock timeout at a time. When the triggers installed already match the
//! mapping (the same generated SQL, and the catalog still shows them as they were installed),
//! setup leaves them alone and takes no lock on the table at all.

use std::fmt;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_postgres::error::SqlState;
use tracing::{info, instrument};

use crate::accounts::{install_key_encryption, KeyEncryption, KeyInstall};
use crate::generated::{table_columns, Generated, TriggerShape};
use crate::mapping::{Mapping, TableName};
use crate::migrations;
use crate::sql::{queries, templates};
use crate::{Error, Result};

/// The backoff between attempts: from this, doubling (with jitter)...
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// ...up to this.
const RETRY_LONGEST: Duration = Duration::from_secs(15);

/// How long `setup` waits for locks, and what else it installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupOptions<'a> {
    /// The longest any one lock request waits (`lock_timeout`), and so the longest the
    /// application's statements queue behind one.
    pub lock_timeout: Duration,
    /// How long setup keeps retrying while a lock it needs stays taken, before it gives up.
    pub deadline: Duration,
    /// Whether to install the DDL guard (event triggers; a superuser's privilege). Without it,
    /// it is removed if present, and the capture guard alone keeps the application's writes
    /// working through a schema change.
    pub ddl_guard: bool,
    /// The key-encryption key's public half (from `CHIMPSYNC_SECRET_KEY`), installed when the
    /// mapping is multi-account; such a mapping is refused without it.
    pub key_encryption: Option<KeyEncryption<'a>>,
}

impl Default for SetupOptions<'_> {
    fn default() -> Self {
        SetupOptions {
            lock_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(300),
            ddl_guard: true,
            key_encryption: None,
        }
    }
}

/// The DDL guard's state after `setup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DdlGuard {
    /// Created by this run.
    Installed,
    /// It was there already.
    #[default]
    AlreadyInstalled,
    /// Removed by this run (`--no-ddl-guard`).
    Removed,
    /// Not installed, and why (e.g. setup is not run by a superuser).
    NotInstalled(String),
}

/// What `setup` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupReport {
    /// Migrations applied by this run (empty when the schema was current).
    pub applied_migrations: Vec<i32>,
    /// The table the change triggers are on.
    pub table: String,
    /// A table whose old triggers were removed because the mapping moved to another table.
    pub removed_from: Option<String>,
    /// Whether the change triggers were (re)installed; false when those installed already
    /// matched the mapping, in which case no lock was taken on the table.
    pub triggers_installed: bool,
    /// Whether the mapping recorded in `chimpsync.installation` changed.
    pub mapping_recorded: bool,
    /// The transactions it took: more than one when a lock was taken by another transaction.
    pub attempts: u32,
    /// The DDL guard.
    pub ddl_guard: DdlGuard,
    /// Changes the capture guard held while the table did not fit the mapping, now queued again
    /// (as `queued` customers).
    pub replayed: Option<Replayed>,
    /// The key-encryption key, for a multi-account mapping.
    pub key_encryption: Option<KeyInstall>,
}

/// The held changes a `setup` queued again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Rows read from `chimpsync.drifted_changes` (and deleted).
    pub held: i64,
    /// Customers queued (upserts and removals).
    pub queued: i64,
}

impl SetupReport {
    /// Whether the database was already as this setup would leave it.
    pub fn changed_nothing(&self) -> bool {
        self.applied_migrations.is_empty()
            && !self.triggers_installed
            && !self.mapping_recorded
            && !matches!(self.ddl_guard, DdlGuard::Installed | DdlGuard::Removed)
            && self.replayed.is_none()
            && matches!(
                self.key_encryption,
                None | Some(KeyInstall::AlreadyInstalled)
            )
    }
}

/// Sets `lock_timeout` for the rest of the transaction.
fn lock_timeout_sql(timeout: Duration) -> String {
    templates::fill(
        templates::LOCK_TIMEOUT,
        &[("milliseconds", &timeout.as_millis().to_string())],
    )
}

/// The SQL that `setup` would run for a fresh database, for `setup --print-sql`.
pub fn setup_sql(generated: &Generated, shape: TriggerShape) -> String {
    let mut out = String::new();
    out.push_str("begin;\n");
    out.push_str(&format!("{};\n", queries::MIGRATION_LOCK.trim_end()));
    out.push_str(&format!(
        "{};\n",
        lock_timeout_sql(SetupOptions::default().lock_timeout).trim_end()
    ));
    out.push_str(&migrations::script());
    out.push_str("\n-- change triggers\n");
    for statement in generated.install_triggers(shape) {
        out.push_str(statement.trim_end());
        out.push_str(";\n\n");
    }
    out.push_str("-- the DDL guard (needs a superuser; `setup` goes on without it otherwise)\n");
    out.push_str(queries::INSTALL_DDL_GUARD.trim_end());
    out.push_str(";\n");
    out.push_str("commit;\n");
    out
}

/// [`setup_with`] with the default [`SetupOptions`].
pub async fn setup(
    client: &mut tokio_postgres::Client,
    mapping: &Mapping,
    shape: TriggerShape,
) -> Result<SetupReport> {
    setup_with(client, mapping, shape, SetupOptions::default()).await
}

/// Creates or upgrades the schema and (re)installs the triggers unless those installed already
/// match, in one transaction under an advisory lock; retried while a lock it needs is taken (see
/// the module documentation). Idempotent.
#[instrument(skip_all, fields(table = %mapping.source.table, shape = shape.as_str()))]
pub async fn setup_with(
    client: &mut tokio_postgres::Client,
    mapping: &Mapping,
    shape: TriggerShape,
    options: SetupOptions<'_>,
) -> Result<SetupReport> {
    if mapping.multi_account() && options.key_encryption.is_none() {
        return Err(Error::Argument(
            "source.account: a multi-account mapping needs the key-encryption key that account \
             API keys are encrypted with: set CHIMPSYNC_SECRET_KEY (`chimpsync secret generate` \
             makes one)"
                .into(),
        ));
    }
    let started = Instant::now();
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(RETRY_FIRST)
        .with_max_delay(RETRY_LONGEST)
        .without_max_times()
        .with_jitter()
        .build();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut waiting_on = LockTarget::Schema;
        match attempt(client, mapping, shape, options, &mut waiting_on).await {
            Ok(mut report) => {
                report.attempts = attempts;
                info!(
                    migrations = ?report.applied_migrations,
                    triggers_installed = report.triggers_installed,
                    attempts,
                    "setup complete"
                );
                return Ok(report);
            }
            Err(Error::Database(e)) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {}
            Err(e) => return Err(e),
        }
        // The attempt's transaction is rolled back: nothing of it holds or waits for a lock.
        let holders = lock_holders(client, &waiting_on).await?;
        let remaining = options.deadline.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(Error::Blocked(format!(
                "setup gave up after {:.0?}: {waiting_on} stayed locked by another transaction \
                 ({holders}); each of {attempts} attempts waited {:?} (its lock timeout) for it. \
                 Nothing was changed. Let that transaction finish or end it \
                 (select pg_terminate_backend(pid)), then run setup again",
                started.elapsed(),
                options.lock_timeout,
            )));
        }
        let delay = delays.next().unwrap_or(RETRY_LONGEST).min(remaining);
        info!(
            attempt = attempts,
            retry_in = ?delay,
            "waiting for a lock on {waiting_on} held by another transaction ({holders}); \
             nothing of this attempt was kept, retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

/// What an attempt was waiting for when its lock timeout struck.
enum LockTarget {
    /// The tables of schema chimpsync (migrations, the installation record).
    Schema,
    /// A customer table (its triggers).
    Table(TableName),
}

impl fmt::Display for LockTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockTarget::Schema => write!(f, "the tables of schema chimpsync"),
            LockTarget::Table(table) => write!(f, "table {table}"),
        }
    }
}

/// The sessions holding locks on `target`, oldest transaction first, in one phrase.
async fn lock_holders(client: &tokio_postgres::Client, target: &LockTarget) -> Result<String> {
    let (schema, table) = match target {
        LockTarget::Schema => ("chimpsync", None),
        LockTarget::Table(t) => (t.schema.as_str(), Some(t.name.as_str())),
    };
    let rows = client
        .query(queries::LOCK_HOLDERS, &[&schema, &table])
        .await?;
    if rows.is_empty() {
        return Ok("which has let go since".into());
    }
    let holders: Vec<String> = rows
        .iter()
        .map(|r| {
            let pid: i32 = r.get(0);
            let application: String = r.get(1);
            let state: String = r.get(2);
            let open: f64 = r.get(3);
            let modes: String = r.get(4);
            let application = if application.is_empty() {
                String::new()
            } else {
                format!(" ({application})")
            };
            format!("pid {pid}{application}, {state}, transaction open {open:.0} s, holds {modes}")
        })
        .collect();
    Ok(holders.join("; "))
}

/// A hash of chimpsync's triggers on `table` and their functions as the catalog shows them
/// (`None` when there are none). Reads the catalog only.
async fn installed_triggers(
    tx: &tokio_postgres::Transaction<'_>,
    table: &TableName,
) -> Result<Option<String>> {
    Ok(tx
        .query_one(queries::INSTALLED_TRIGGERS, &[&table.schema, &table.name])
        .await?
        .get(0))
}

/// One transaction of [`setup_with`]. `waiting_on` follows what its statements lock, so that a
/// lock timeout can say what it waited for.
async fn attempt(
    client: &mut tokio_postgres::Client,
    mapping: &Mapping,
    shape: TriggerShape,
    options: SetupOptions<'_>,
    waiting_on: &mut LockTarget,
) -> Result<SetupReport> {
    let tx = client.transaction().await?;
    // Concurrent setups wait for each other here, before the lock timeout applies: they do not
    // hold up the application while they wait.
    tx.execute(queries::MIGRATION_LOCK, &[]).await?;
    tx.batch_execute(&lock_timeout_sql(options.lock_timeout))
        .await?;
    tx.batch_execute(queries::ALLOW_DDL).await?;
    let mut report = SetupReport {
        applied_migrations: migrations::migrate(&tx).await?,
        ..SetupReport::default()
    };
    if let Some(key) = options.key_encryption.filter(|_| mapping.multi_account()) {
        report.key_encryption = Some(install_key_encryption(&tx, key).await?);
    }
    let generated = Generated::for_mapping(&tx, mapping).await?;
    let table = generated.table();
    report.table = table.to_string();
    let statements = generated.install_triggers(shape);
    let trigger_sql = statements.join(";\n");
    let mapping_json = serde_json::to_value(mapping).map_err(|e| Error::Mapping(e.to_string()))?;
    let installed = tx
        .query_opt(queries::INSTALLATION, &[&mapping_json])
        .await?;
    report.mapping_recorded = !installed.as_ref().is_some_and(|row| row.get::<_, bool>(3));
    let catalog = installed_triggers(&tx, table).await?;
    let unchanged = installed.as_ref().is_some_and(|row| {
        catalog.is_some()
            && row.get::<_, Option<String>>(1).as_ref() == Some(&trigger_sql)
            && row.get::<_, Option<String>>(2) == catalog
    });
    if unchanged {
        *waiting_on = LockTarget::Table(table.clone());
        report.replayed = replay(&tx, &generated).await?;
        *waiting_on = LockTarget::Schema;
        if report.mapping_recorded {
            tx.execute(queries::RECORD_MAPPING, &[&mapping_json])
                .await?;
        }
        return finish(tx, &generated, options, report).await;
    }
    if let Some(row) = &installed {
        let previous: String = row.get(0);
        if previous != table.quoted() {
            // The mapping moved to another table: the old table must stop enqueueing.
            // `previous` was written by `TableName::quoted`, which this parse reverses.
            if let Ok(old) = TableName::parse(&previous) {
                if !table_columns(&tx, &old).await?.is_empty() {
                    *waiting_on = LockTarget::Table(old.clone());
                    for statement in Generated::drop_triggers(&old) {
                        tx.batch_execute(&statement).await?;
                    }
                }
                report.removed_from = Some(old.to_string());
            }
        }
    }
    *waiting_on = LockTarget::Table(table.clone());
    if let Err(e) = tx.batch_execute(&generated.filter_check()).await {
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            return Err(e.into());
        }
        return Err(Error::Mapping(format!(
            "source.filter: cannot be evaluated on table {table}: {}",
            e.as_db_error()
                .map(|d| d.message())
                .unwrap_or("unknown error")
        )));
    }
    for statement in &statements {
        tx.batch_execute(statement).await?;
    }
    report.replayed = replay(&tx, &generated).await?;
    *waiting_on = LockTarget::Schema;
    let catalog = installed_triggers(&tx, table).await?;
    tx.execute(
        queries::RECORD_INSTALLATION,
        &[
            &table.quoted(),
            &shape.as_str(),
            &mapping_json,
            &trigger_sql,
            &catalog,
        ],
    )
    .await?;
    report.triggers_installed = true;
    finish(tx, &generated, options, report).await
}

/// Queues the customers whose changes the capture guard held, if any (see
/// `sql/templates/drift_replay.sql`). Reads the catalog and chimpsync's tables only when none
/// are held, so a setup with nothing to do takes no lock on the customer table.
async fn replay(
    tx: &tokio_postgres::Transaction<'_>,
    generated: &Generated,
) -> Result<Option<Replayed>> {
    let held: i64 = tx.query_one(queries::DRIFT, &[]).await?.get("held");
    if held == 0 {
        return Ok(None);
    }
    let row = tx.query_one(&generated.drift_replay(), &[]).await?;
    let replayed = Replayed {
        held: row.get("held"),
        queued: row.get("enqueued"),
    };
    info!(
        held = replayed.held,
        queued = replayed.queued,
        "queued the customers changed while the table did not fit the mapping"
    );
    Ok(Some(replayed))
}

/// Records what the drift checks compare with, installs (or removes) the DDL guard, commits.
async fn finish(
    mut tx: tokio_postgres::Transaction<'_>,
    generated: &Generated,
    options: SetupOptions<'_>,
    mut report: SetupReport,
) -> Result<SetupReport> {
    tx.execute(
        queries::RECORD_DRIFT_CHECK,
        &[&generated.table().quoted(), generated.expected_columns()],
    )
    .await?;
    if generated.multi_account() {
        tx.batch_execute(queries::ACCOUNT_INDEXES).await?;
    }
    report.ddl_guard = ddl_guard(&mut tx, options.ddl_guard).await?;
    tx.commit().await?;
    Ok(report)
}

/// Installs the DDL guard unless it is there (or removes it when not `wanted`). Event triggers
/// need a superuser on PostgreSQL 15: without that privilege the guard is reported as not
/// installed and setup goes on.
async fn ddl_guard(tx: &mut tokio_postgres::Transaction<'_>, wanted: bool) -> Result<DdlGuard> {
    let present: i64 = tx
        .query_one(queries::DDL_GUARD_INSTALLED, &[])
        .await?
        .get(0);
    let (statements, done) = match (wanted, present) {
        (true, 2) => return Ok(DdlGuard::AlreadyInstalled),
        (false, 0) => return Ok(DdlGuard::NotInstalled("setup --no-ddl-guard".into())),
        (true, _) => (queries::INSTALL_DDL_GUARD, DdlGuard::Installed),
        (false, _) => (queries::DROP_DDL_GUARD, DdlGuard::Removed),
    };
    let savepoint = tx.savepoint("ddl_guard").await?;
    match savepoint.batch_execute(statements).await {
        Ok(()) => {
            savepoint.commit().await?;
            Ok(done)
        }
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            savepoint.rollback().await?;
            let reason = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default();
            Ok(DdlGuard::NotInstalled(format!(
                "event triggers need a superuser ({reason})"
            )))
        }
        Err(e) => Err(e.into()),
    }
}
