//! `chimpsync run`: the worker, and unless `--once` the HTTP endpoints and the webhook receiver,
//! until SIGTERM or Ctrl-C.

use std::time::Duration;

use anyhow::Result;
use store::inbound::Inbound;
use store::Mapping;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::Tuning;
use crate::config::{seconds, Config, Timeouts};
use crate::webhook::{self, Receiver};
use crate::{db, http};

/// The worker's settings for `audience_id` from the command line's limits.
fn settings(
    config: &Config,
    tuning: &Tuning,
    audience_id: String,
    mapping: &Mapping,
) -> Result<worker::Settings> {
    let mut s = worker::Settings::new(audience_id);
    s.audience = mapping.audience.clone();
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
    s.validate()?;
    Ok(s)
}

async fn build_worker(config: &Config, tuning: &Tuning) -> Result<(worker::Worker, Mapping)> {
    let mapping = config.mapping()?;
    let audience = config.audience_id(&mapping)?;
    let settings = settings(config, tuning, audience, &mapping)?;
    let timeouts = Timeouts::from_seconds(
        tuning.connect_timeout_seconds,
        tuning.request_timeout_seconds,
    )?;
    let client = config.client(&timeouts)?;
    let queue = db::queue(config, tuning.db_pool_size.max(2)).await?;
    let worker = worker::Worker::new(queue, client, settings)?;
    Ok((worker, mapping))
}

/// The webhook receiver, when `CHIMPSYNC_WEBHOOK_SECRET` is set.
async fn receiver(
    config: &Config,
    worker: &worker::Worker,
    mapping: &Mapping,
) -> Result<Option<Receiver>> {
    let Some(secret) = &config.webhook_secret else {
        return Ok(None);
    };
    let inbound = Inbound::new(worker.queue().pool().clone(), mapping).await?;
    let audience = config.audience_id(mapping)?;
    Ok(Some(Receiver::new(inbound, audience, secret.clone())?))
}

/// Runs the worker until a signal (or, with `once`, until nothing is due).
pub async fn run(config: &Config, once: bool, tuning: Tuning) -> Result<()> {
    let (worker, mapping) = build_worker(config, &tuning).await?;
    let shutdown = CancellationToken::new();
    let server = if once {
        None
    } else {
        let receiver = receiver(config, &worker, &mapping).await?;
        if let Some(receiver) = &receiver {
            info!("serving the Mailchimp webhook route");
            tokio::spawn(
                receiver
                    .clone()
                    .retry_loop(webhook::RETRY_INTERVAL, shutdown.clone()),
            );
        }
        let state = http::HttpState::new(worker.clone(), config)?.with_webhooks(receiver);
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
    }
    Ok(())
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
