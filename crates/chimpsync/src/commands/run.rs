//! `chimpsync run`: the worker, and unless `--once` the HTTP endpoints and the webhook receiver,
//! until SIGTERM or Ctrl-C.

use std::time::Duration;

use anyhow::{bail, Result};
use store::inbound::Inbound;
use store::{Mapping, Pool};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cli::Tuning;
use crate::commands::backfill;
use crate::config::{seconds, Config, Timeouts};
use crate::exit::Failure;
use crate::handshake::Handshake;
use crate::webhook::{self, Receiver};
use crate::{db, defaults, http};

/// How often applied webhook events past their retention are deleted...
const PRUNE_EVERY: Duration = Duration::from_secs(15);

/// ...and how many at most each time: a short statement on a table the receiver writes to, and
/// still 4,000 a minute, more than an audience's webhook traffic.
const PRUNE_BATCH: i64 = 1000;

/// What `run` does besides the worker's limits.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Drain what is due, then exit.
    pub once: bool,
    /// Wait for a fitting schema instead of refusing to start.
    pub wait_for_schema: bool,
    /// Days applied webhook events are kept (0: forever).
    pub inbound_retention_days: f64,
}

/// The worker's settings for `audience_id` from the command line's limits.
fn settings(
    config: &Config,
    tuning: &Tuning,
    audience_id: String,
    mapping: &Mapping,
) -> Result<worker::Settings> {
    let mut s = worker::Settings::new(audience_id);
    s.audience = mapping.audience.clone();
    s.interests = mapping.interests.clone();
    s.batch_size = tuning.batch_size;
    s.concurrency = tuning.concurrency;
    s.lease = seconds("lease", tuning.lease_seconds)?;
    s.request_timeout = seconds("request timeout", tuning.request_timeout_seconds)?;
    s.retry = worker::retry::RetryPolicy {
        base: seconds("backoff base", tuning.backoff_base_seconds)?,
        max: seconds("backoff max", tuning.backoff_max_seconds)?,
        max_attempts: tuning.max_attempts,
    };
    s.poll_interval = Duration::from_millis(tuning.poll_interval_ms);
    s.shutdown_deadline = seconds("shutdown deadline", tuning.shutdown_deadline_seconds)?;
    s.owner = config.worker_owner();
    s.removal_guard = store::RemovalGuard {
        share: tuning.hold_removals_percent / 100.0,
        min_rows: tuning.hold_removals_min_rows,
        window: seconds("hold-removals window", tuning.hold_removals_window_seconds)?,
    };
    s.liveness_timeout = seconds("liveness timeout", tuning.liveness_timeout_seconds)?;
    s.validate()?;
    Ok(s)
}

async fn build_worker(config: &Config, tuning: &Tuning) -> Result<(worker::Worker, Mapping)> {
    let mapping = config.mapping()?;
    let timeouts = Timeouts::from_seconds(
        tuning.connect_timeout_seconds,
        tuning.request_timeout_seconds,
    )?;
    if mapping.multi_account() {
        // Each account's audience and key come from chimpsync.accounts.
        let settings = settings(config, tuning, MANY_ACCOUNTS.into(), &mapping)?;
        let opener = worker::KeyRingOpener::new(
            config.key_ring()?,
            config.base_url.clone(),
            timeouts.connect,
            timeouts.request,
        );
        let pool = db::queue(config, tuning.db_pool_size.max(2))
            .await?
            .pool()
            .clone();
        let queue = store::Queue::for_accounts(pool);
        let worker = worker::Worker::for_accounts(queue, std::sync::Arc::new(opener), settings)?;
        return Ok((worker, mapping));
    }
    let audience = config.audience_id(&mapping)?;
    let settings = settings(config, tuning, audience, &mapping)?;
    let client = config.client(&timeouts)?;
    let queue = db::queue(config, tuning.db_pool_size.max(2)).await?;
    let worker = worker::Worker::new(queue, client, settings)?;
    Ok((worker, mapping))
}

/// The worker's audience with many accounts: each account has its own.
const MANY_ACCOUNTS: &str = "(each account's own)";

/// The webhook receiver: with many accounts always (each account's URL and secret), else when
/// `CHIMPSYNC_WEBHOOK_SECRET` is set.
async fn receiver(
    config: &Config,
    worker: &worker::Worker,
    mapping: &Mapping,
) -> Result<Option<Receiver>> {
    let pool = worker.queue().pool().clone();
    if mapping.multi_account() {
        if config.webhook_secret.is_some() {
            warn!("CHIMPSYNC_WEBHOOK_SECRET is ignored with many accounts: each account's webhook has its own secret");
        }
        let inbound = Inbound::new(pool.clone(), mapping).await?;
        return Ok(Some(Receiver::for_accounts(inbound, pool)));
    }
    let Some(secret) = &config.webhook_secret else {
        return Ok(None);
    };
    let inbound = Inbound::new(pool, mapping).await?;
    let audience = config.audience_id(mapping)?;
    Ok(Some(Receiver::new(inbound, audience, secret.clone())?))
}

/// Deletes applied webhook events older than `retention`, [`PRUNE_BATCH`] every
/// [`PRUNE_EVERY`], while the schema fits, until `shutdown`.
async fn prune_inbound(
    pool: Pool,
    retention: Duration,
    hold: worker::Hold,
    shutdown: CancellationToken,
) {
    loop {
        if hold.borrow().is_none() {
            match store::inbound::prune(&pool, retention, PRUNE_BATCH).await {
                Ok(0) => {}
                Ok(deleted) => debug!(
                    deleted,
                    "deleted applied inbound events past their retention"
                ),
                Err(e) => warn!(error = %e, "cannot delete old inbound events"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// How often Mailchimp's `/ping` refreshes `chimpsync_mailchimp_up` (between the worker's own
/// requests, which refresh it too): two requests a minute per replica, nothing against the
/// API's limits, and an idle worker still knows whether Mailchimp would answer.
const PING_EVERY: Duration = Duration::from_secs(30);

/// With one account, until `shutdown`: pings Mailchimp every [`PING_EVERY`] and sets
/// `chimpsync_mailchimp_up`; logs when Mailchimp stops or starts answering.
async fn ping_mailchimp(client: mailchimp::Client, shutdown: CancellationToken) {
    let mut was_up = None;
    loop {
        let answer = tokio::select! {
            _ = shutdown.cancelled() => return,
            answer = client.ping() => answer,
        };
        worker::gate::note_mailchimp_health(&answer, true);
        let up = worker::gate::mailchimp_up(&answer, true);
        match (&answer, up) {
            (Err(e), Some(false)) if was_up != Some(false) => {
                warn!(error = %e, "Mailchimp does not answer /ping")
            }
            (Ok(()), Some(true)) if was_up == Some(false) => info!("Mailchimp answers /ping again"),
            _ => {}
        }
        was_up = up.or(was_up);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PING_EVERY) => {}
        }
    }
}

/// How often the accounts are looked at (state changes, Sync Contacts requests).
const ACCOUNTS_EVERY: Duration = Duration::from_secs(5);

/// The states an account gauge is kept for (a state never seen reads 0, not absent).
const ACCOUNT_STATES: [&str; 4] = ["active", "disabled", "needs_attention", "unknown"];

/// With many accounts, while the schema fits, until `shutdown`: logs and counts every change of
/// an account's state (whoever made it: the settings page's SQL, a command, a worker), keeps the
/// gauge of accounts by state, and serves each Sync Contacts request (`chimpsync.sync_contacts`,
/// `account add --sync-contacts`) by queueing the account's customers, with progress in the log.
async fn tend_accounts(
    pool: Pool,
    mapping: Mapping,
    chunk_size: i64,
    hold: worker::Hold,
    shutdown: CancellationToken,
) {
    let mut backfill = None;
    let mut seen: Option<i64> = None;
    loop {
        if hold.borrow().is_none() {
            if let Err(e) = account_changes(&pool, &mut seen).await {
                warn!(error = %e, "cannot read the accounts' state changes");
            }
            if let Err(e) = sync_requested(&pool, &mapping, &mut backfill, chunk_size).await {
                warn!(error = %e, "cannot serve Sync Contacts requests");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(ACCOUNTS_EVERY) => {}
        }
    }
}

async fn account_changes(pool: &Pool, seen: &mut Option<i64>) -> Result<()> {
    let (events, last) = store::account_state::events_since(pool, *seen).await?;
    for event in events {
        metrics::counter!("chimpsync_account_state_changes_total", "state" => state_label(&event.state))
            .increment(1);
        info!(
            account = event.account,
            state = event.state,
            reason = event.reason.as_deref().unwrap_or(""),
            "account state changed"
        );
    }
    *seen = Some(last);
    let counts = store::account_state::count_by_state(pool).await?;
    for state in ACCOUNT_STATES {
        let n = counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("chimpsync_accounts", "state" => state).set(n as f64);
    }
    Ok(())
}

/// The metric label of an account event's state: one of a few words, never free text.
fn state_label(state: &str) -> &'static str {
    match state {
        s if s.starts_with("connected") => "connected",
        "active" => "active",
        "disabled" => "disabled",
        "needs_attention" => "needs_attention",
        "removed" => "removed",
        _ => "other",
    }
}

async fn sync_requested(
    pool: &Pool,
    mapping: &Mapping,
    backfill: &mut Option<store::backfill::Backfill>,
    chunk_size: i64,
) -> Result<()> {
    let requests = store::backfill::requested(pool).await?;
    if requests.is_empty() {
        return Ok(());
    }
    let client = pool.get().await?;
    if backfill.is_none() {
        *backfill = Some(store::backfill::Backfill::new(&**client, mapping).await?);
    }
    let backfill = backfill.as_ref().expect("just set");
    for (account, at) in requests {
        let total = backfill.total_of(&**client, Some(&account)).await?;
        info!(
            account,
            total, "Sync Contacts: queueing the account's customers"
        );
        let done = backfill::fill(
            &**client,
            backfill,
            Some(&account),
            chunk_size,
            |done, chunks| {
                if chunks % 20 == 0 {
                    info!(
                        account,
                        scanned = done.scanned,
                        enqueued = done.enqueued,
                        total,
                        "Sync Contacts progress"
                    );
                }
            },
        )
        .await?;
        store::backfill::request_served(pool, &account, at).await?;
        info!(
            account,
            scanned = done.scanned,
            enqueued = done.enqueued,
            "Sync Contacts: the account's customers are queued"
        );
    }
    Ok(())
}

/// Runs the worker until a signal (or, with `once`, until nothing is due). Refuses to start
/// against a schema or installed triggers that do not fit, unless told to wait for them.
pub async fn run(config: &Config, options: Options, tuning: Tuning) -> Result<()> {
    let once = options.once;
    let days = options.inbound_retention_days;
    let retention = if days == 0.0 {
        None
    } else {
        Some(seconds("inbound retention", days * 86_400.0)?)
    };
    // The recorder first, so that nothing recorded from the start is lost.
    let _ = crate::series::handle();
    let (worker, mapping) = build_worker(config, &tuning).await?;
    let pool = worker.queue().pool().clone();
    let handshake = Handshake::new(pool.clone(), mapping.clone()).await?;
    if let Some(reason) = handshake.reason() {
        if !options.wait_for_schema {
            bail!("{reason}");
        }
        info!("waiting until the schema fits: {reason}");
    }
    let shutdown = CancellationToken::new();
    // `--once` alone checked at start; a run that stays watches, and holds while it fails.
    let worker = if once && !options.wait_for_schema {
        worker
    } else {
        tokio::spawn(handshake.clone().watch(shutdown.clone()));
        worker.with_hold(handshake.hold())
    };
    let server = if once {
        None
    } else {
        if mapping.multi_account() {
            tokio::spawn(tend_accounts(
                pool.clone(),
                mapping.clone(),
                defaults::BACKFILL_CHUNK,
                handshake.hold(),
                shutdown.clone(),
            ));
        }
        if let Some(retention) = retention {
            tokio::spawn(prune_inbound(
                pool,
                retention,
                handshake.hold(),
                shutdown.clone(),
            ));
        }
        let receiver = receiver(config, &worker, &mapping)
            .await?
            .map(|r| r.with_hold(handshake.hold()));
        if let Some(receiver) = &receiver {
            info!("serving the Mailchimp webhook route");
            tokio::spawn(
                receiver
                    .clone()
                    .retry_loop(webhook::RETRY_INTERVAL, shutdown.clone()),
            );
        }
        // With many accounts there is no one key to ping: their requests set the gauge.
        if !mapping.multi_account() {
            tokio::spawn(ping_mailchimp(
                config.client(&Timeouts::default())?,
                shutdown.clone(),
            ));
        }
        let state = http::HttpState::new(worker.clone(), config)?
            .with_webhooks(receiver)
            .with_hold(handshake.hold());
        Some(http::serve(state, shutdown.clone()).await?)
    };
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received: shutting down");
            shutdown.cancel();
        });
    }
    let outcome = worker.run(shutdown.clone(), once).await?;
    shutdown.cancel();
    if let Some(server) = server {
        let _ = server.await;
    }
    if once {
        println!(
            "run --once: {} acknowledged, {} retrying, {} parked",
            outcome.acked, outcome.retried, outcome.parked
        );
        unfinished(&outcome)?;
    }
    Ok(())
}

/// `run --once` is partly done (exit 6) when a row it claimed is still queued because its last
/// attempt in this run was not acknowledged: parked, waiting for a retry, or given back unsent.
/// Rows it never claimed (parked or not yet due before it started) do not count.
fn unfinished(outcome: &worker::DrainOutcome) -> Result<()> {
    if outcome.unfinished.is_empty() {
        return Ok(());
    }
    let n = |fate| outcome.unfinished_with(fate);
    Err(Failure::Partial
        .error(format!(
            "run --once left {} of the rows it claimed queued: {} waiting for a retry, {} parked, \
             {} given back unsent (chimpsync status; parked rows: chimpsync retry)",
            outcome.unfinished.len(),
            n(worker::Fate::Retrying),
            n(worker::Fate::Parked),
            n(worker::Fate::Released),
        ))
        .into())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
