//! A stateful, in-memory stand-in for the Mailchimp Marketing API v3, with fault injection.
//!
//! This crate owns the *emulated* side of chimpsync's Mailchimp traffic: audiences, merge
//! fields, members, tags, batch subscribe, and the refusals real Mailchimp answers with
//! (docs/mailchimp-api.md §2.5). Tests and benchmarks start it in-process with
//! [`Emulator::start`]; the `mailchimp-emulator` binary serves the same thing on a port.
//!
//! It must not share code with the client crate (`crates/mailchimp`): its wire types are its
//! own, so a wire-format bug in the client cannot be "confirmed" by the same code. It is not a
//! general Mailchimp mock either: only the endpoints chimpsync uses are served, everything else
//! answers `404 Resource Not Found`.
//!
//! Faults (latency, a cap on requests in flight, random `503`s and dropped connections, scripted
//! faults) are set through [`Config`] at start and changed at runtime through [`Emulator`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod cli;
mod email;
mod faults;
mod model;
mod problem;
mod server;
mod state;
mod webhooks;

pub use cli::{main_cli, Args};
pub use email::subscriber_hash;
pub use faults::Fault;
pub use webhooks::WebhookDelivery;

use model::{Now, Status};
use server::{lock, Shared};

/// How the emulator starts. `Default` is: any API key accepted, no audiences, no latency,
/// unlimited requests in flight, no faults, seed 0.
#[derive(Clone, Default)]
pub struct Config {
    /// When set, every other key is refused with `401 API Key Invalid`.
    pub api_key: Option<String>,
    /// Audiences that exist at start, with the default merge fields.
    pub audiences: Vec<String>,
    /// Added to every response (asynchronously; it does not block other requests).
    pub latency: Duration,
    /// Requests in flight at once beyond this get `429 Too Many Requests`; `None` = unlimited.
    pub max_connections: Option<usize>,
    /// Fraction of write requests answered `503` without applying them (0.0..=1.0).
    pub fail_rate: f64,
    /// Fraction of write requests applied and then answered by closing the connection.
    pub drop_rate: f64,
    /// Seed of the fault generator: the same seed gives the same fault sequence.
    pub seed: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("audiences", &self.audiences)
            .field("latency", &self.latency)
            .field("max_connections", &self.max_connections)
            .field("fail_rate", &self.fail_rate)
            .field("drop_rate", &self.drop_rate)
            .field("seed", &self.seed)
            .finish()
    }
}

/// A member as the emulator holds it, for assertions in tests.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// The subscriber hash (md5 of the lower-cased address).
    pub id: String,
    /// The address as stored.
    pub email_address: String,
    /// `subscribed`, `unsubscribed`, `cleaned`, `pending`, `transactional` or `archived`.
    pub status: String,
    /// The merge values that are set (unset fields are absent here, `""` on the wire).
    pub merge_fields: BTreeMap<String, serde_json::Value>,
    /// Tag names, sorted.
    pub tags: Vec<String>,
    /// The contact unsubscribed themselves (see [`Emulator::simulate_unsubscribe`]); such a
    /// contact can only come back through `pending`.
    pub unsubscribed_by_contact: bool,
    /// When the member last changed (`2024-01-31T12:00:00+00:00`).
    pub last_changed: String,
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests under `/3.0` received (the `/_emulator` routes are not counted).
    pub requests: u64,
    /// `429` answers because more requests than `max_connections` were in flight.
    pub throttled: u64,
    /// Injected failures answered (503, injected 429/403, garbage bodies).
    pub failed: u64,
    /// Connections closed without an answer after applying the write.
    pub dropped: u64,
    /// The most requests admitted at once (never above `max_connections` when it is set).
    pub max_in_flight: u64,
    /// The most requests being answered at once, including ones refused with 429 (while they
    /// wait out the latency): the client's concurrency as the emulator saw it.
    pub max_concurrent: u64,
    /// Member-level changes applied: create, update, status change, rename, archive,
    /// permanent delete, tag update (each member of a batch counts once).
    pub member_writes: u64,
    /// Of `member_writes`, the ones that left the member exactly as it was (same address,
    /// status, merge values and tags): a state Mailchimp already held, sent again (after a lost
    /// answer, a lapsed lease, a crash). Duplicated writes, in a word.
    pub unchanged_member_writes: u64,
    /// Time spent parsing bodies, applying them and serializing answers (the synchronous,
    /// CPU-bound part of handling; excludes latency, faults and socket I/O), summed.
    pub busy_nanos: u64,
    /// Webhook deliveries answered with a 2xx (after retries).
    pub webhooks_delivered: u64,
    /// Webhook deliveries given up after every attempt failed.
    pub webhooks_failed: u64,
    /// Webhook deliveries queued or being attempted.
    pub webhooks_pending: u64,
}

pub(crate) fn stats_of(shared: &Shared) -> Stats {
    let (member_writes, unchanged_member_writes) = {
        let state = lock(&shared.state);
        (state.member_writes, state.unchanged_member_writes)
    };
    Stats {
        requests: shared.requests.load(Ordering::Relaxed),
        throttled: shared.throttled.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        dropped: shared.dropped.load(Ordering::Relaxed),
        max_in_flight: shared.max_in_flight.load(Ordering::Relaxed),
        max_concurrent: shared.max_concurrent.load(Ordering::Relaxed),
        member_writes,
        unchanged_member_writes,
        busy_nanos: shared.busy_nanos.load(Ordering::Relaxed),
        webhooks_delivered: shared.outbound.log.delivered.load(Ordering::SeqCst),
        webhooks_failed: shared.outbound.log.failed.load(Ordering::SeqCst),
        webhooks_pending: shared.outbound.log.queued.load(Ordering::SeqCst),
    }
}

/// A running emulator. Dropping it stops the server too; [`Emulator::shutdown`] waits for it.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish()
    }
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and serves until shut down.
    #[tracing::instrument(skip_all, fields(listen = %listen))]
    pub async fn start(listen: SocketAddr, config: Config) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let now = Now::current();
        let mut state = state::State::new(config.seed);
        for id in &config.audiences {
            state.ensure_audience(id, &now);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            faults: Mutex::new(faults::FaultState::new(
                config.seed,
                config.fail_rate,
                config.drop_rate,
            )),
            api_key: config.api_key.clone(),
            latency_micros: AtomicU64::new(duration_micros(config.latency)),
            max_connections: AtomicUsize::new(config.max_connections.unwrap_or(usize::MAX)),
            in_flight: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            max_concurrent: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            outbound: webhooks::Outbound::start(),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, shared.clone(), stopped));
        tracing::info!(address = %addr, "mailchimp emulator listening");
        Ok(Emulator {
            shared,
            addr,
            stop,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/3.0` (a wildcard bind is reached through loopback).
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}/3.0")
    }

    /// Creates an audience with the default merge fields (no-op if it exists), like `--audience`.
    pub fn create_audience(&self, id: &str) {
        lock(&self.shared.state).ensure_audience(id, &Now::current());
    }

    /// Every member of the audience in creation order, archived ones included (permanently
    /// deleted ones are gone). Empty for an unknown audience.
    pub fn members(&self, list_id: &str) -> Vec<MemberView> {
        let state = lock(&self.shared.state);
        let Some(aud) = state.audiences.get(list_id) else {
            return Vec::new();
        };
        aud.order
            .values()
            .filter_map(|h| aud.members.get(h))
            .map(view)
            .collect()
    }

    /// The member with this address (or subscriber hash), archived ones included.
    pub fn member(&self, list_id: &str, email: &str) -> Option<MemberView> {
        let state = lock(&self.shared.state);
        state
            .audiences
            .get(list_id)?
            .members
            .get(&email::path_key(email))
            .map(view)
    }

    /// Whether the address was permanently deleted from the audience (and cannot come back).
    pub fn is_forgotten(&self, list_id: &str, email: &str) -> bool {
        let state = lock(&self.shared.state);
        state
            .audiences
            .get(list_id)
            .is_some_and(|a| a.forgotten.contains(&email::path_key(email)))
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        stats_of(&self.shared)
    }

    /// Changes the latency added to every response.
    pub fn set_latency(&self, d: Duration) {
        self.shared
            .latency_micros
            .store(duration_micros(d), Ordering::Relaxed);
    }

    /// Changes the fraction of writes answered `503` (clamped to 0.0..=1.0).
    pub fn set_fail_rate(&self, f: f64) {
        lock(&self.shared.faults).set_fail_rate(f);
    }

    /// Changes the fraction of writes applied and then dropped (clamped to 0.0..=1.0).
    pub fn set_drop_rate(&self, f: f64) {
        lock(&self.shared.faults).set_drop_rate(f);
    }

    /// Changes the cap on requests in flight (`None` = unlimited).
    pub fn set_max_connections(&self, n: Option<usize>) {
        self.shared
            .max_connections
            .store(n.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// The next `times` write requests (`POST`/`PUT`/`PATCH`/`DELETE` under `/3.0`, after
    /// authentication) get `fault`. Injected faults queue up in call order and take precedence
    /// over the random rates.
    pub fn inject(&self, fault: Fault, times: usize) {
        lock(&self.shared.faults).inject(fault, times);
    }

    /// The contact unsubscribed themselves: status `unsubscribed`, and re-subscribing them
    /// through the API is refused (`Member In Compliance State`) until they confirm a `pending`
    /// re-subscription ([`Emulator::simulate_confirm`]). False if there is no such live member.
    pub fn simulate_unsubscribe(&self, list_id: &str, email: &str) -> bool {
        let done = lock(&self.shared.state).simulate_unsubscribe(list_id, email, &Now::current());
        self.shared.flush_webhooks();
        done
    }

    /// The address hard-bounced: status `cleaned` (a compliance state). False if there is no
    /// such live member.
    pub fn simulate_bounce(&self, list_id: &str, email: &str) -> bool {
        let done = lock(&self.shared.state).simulate_bounce(list_id, email, &Now::current());
        self.shared.flush_webhooks();
        done
    }

    /// A `pending` contact clicked the confirmation link: `subscribed`, compliance state lifted.
    /// False if the member is not pending.
    pub fn simulate_confirm(&self, list_id: &str, email: &str) -> bool {
        let done = lock(&self.shared.state).simulate_confirm(list_id, email, &Now::current());
        self.shared.flush_webhooks();
        done
    }

    /// The contact changed their address on their profile page (source `user`): the member is
    /// renamed (new hash, same identity) and an `upemail` event goes out. Like an API rename, only
    /// a subscribed contact can, and only to a valid, not fake address that is not in the list
    /// (archived and permanently deleted addresses included). False otherwise.
    pub fn simulate_email_change(&self, list_id: &str, email: &str, new_email: &str) -> bool {
        let done = lock(&self.shared.state).simulate_email_change(
            list_id,
            email,
            new_email,
            &Now::current(),
        );
        self.shared.flush_webhooks();
        done
    }

    /// The contact edited merge values on their profile page (source `user`): unknown tags are
    /// ignored, `""` clears a field, a `profile` event goes out. False if there is no such live
    /// member or a value is refused (e.g. text in a number field).
    pub fn simulate_profile_update(
        &self,
        list_id: &str,
        email: &str,
        merges: &[(&str, serde_json::Value)],
    ) -> bool {
        let merges: serde_json::Map<String, serde_json::Value> = merges
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let done = lock(&self.shared.state).simulate_profile_update(
            list_id,
            email,
            &merges,
            &Now::current(),
        );
        self.shared.flush_webhooks();
        done
    }

    /// Webhook deliveries that finished (delivered, or given up after every attempt), in order.
    /// Deliveries still queued or being retried are counted in [`Stats::webhooks_pending`].
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        lock(&self.shared.outbound.log.finished).clone()
    }

    /// Stops accepting, lets open connections finish (up to 5 s) and waits for the server.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn view(m: &model::Member) -> MemberView {
    let mut tags: Vec<String> = m.tags.iter().map(|t| t.name.clone()).collect();
    tags.sort();
    MemberView {
        id: m.id.clone(),
        email_address: m.email.clone(),
        status: m.status.as_str().to_owned(),
        merge_fields: m.merge.clone(),
        tags,
        unsubscribed_by_contact: m.unsubscribed_by_contact && m.status != Status::Subscribed,
        last_changed: m.last_changed.clone(),
    }
}
