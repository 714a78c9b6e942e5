//! The handle tests and benchmarks hold: [`Emulator`] starts the server in-process, inspects
//! the members and steers faults and the contacts' own actions at runtime.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accounts::{AccountStats, Accounts, DEFAULT_ACCOUNT};
use crate::email::path_key;
use crate::faults::{Fault, FaultState};
use crate::lock::lock;
use crate::model::{Member, Now, Status};
use crate::outbound::WebhookDelivery;
use crate::server;
use crate::shared::{duration_micros, Shared, Stats};
use crate::state::State;

/// How the emulator starts. `Default` is: any API key accepted, no audiences, no latency,
/// unlimited requests in flight, no faults, seed 0.
///
/// Accounts: with neither `api_key` nor `accounts`, any key is accepted and every key is the
/// same, one account. Otherwise only the configured keys are accepted (others get
/// `401 API Key Invalid`), each distinct key being its own account; `api_key` with `audiences`
/// is the same as `accounts` pairs of that key with each audience.
#[derive(Clone, Default)]
pub struct Config {
    /// When set, every key but this one and those of `accounts` is refused with
    /// `401 API Key Invalid`. Its account owns `audiences`.
    pub api_key: Option<String>,
    /// Audiences that exist at start, with the default merge fields: `api_key`'s, or, without
    /// it, the one account's that accepts any key (then `accounts` must be empty).
    pub audiences: Vec<String>,
    /// GDPR audiences ("marketing permissions" on) that exist at start, with Mailchimp's three
    /// default permissions (Email, Direct Mail, Customized Online Advertising). An id also in
    /// `audiences` or `accounts` makes that audience a GDPR one; any other is created like an
    /// entry of `audiences`.
    pub gdpr_audiences: Vec<String>,
    /// `(API key, audience id)`: the audience exists at start in the key's account. A key may
    /// appear several times; an audience id only in one account.
    pub accounts: Vec<(String, String)>,
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
            .field("gdpr_audiences", &self.gdpr_audiences)
            .field(
                "accounts",
                &self
                    .accounts
                    .iter()
                    .map(|(_, audience)| ("<redacted>", audience))
                    .collect::<Vec<_>>(),
            )
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
    /// The ids of the audience's interests the member has on, sorted.
    pub interests: Vec<String>,
    /// The ids of the marketing permissions the member has enabled, sorted (GDPR audiences).
    pub marketing_permissions: Vec<String>,
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

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and serves until shut down. A configuration
    /// that gives an audience to two accounts, or `audiences` without `api_key` next to
    /// `accounts`, is an `InvalidInput` error.
    #[tracing::instrument(skip_all, fields(listen = %listen))]
    pub async fn start(listen: SocketAddr, config: Config) -> std::io::Result<Emulator> {
        let mut plain = config.audiences.clone();
        for id in &config.gdpr_audiences {
            let named = plain.contains(id) || config.accounts.iter().any(|(_, a)| a == id);
            if !named {
                plain.push(id.clone());
            }
        }
        let (accounts, audiences) =
            Accounts::from_config(config.api_key.as_deref(), &plain, &config.accounts)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let now = Now::current();
        let mut state = State::new(config.seed);
        for (account, id) in &audiences {
            state.ensure_audience(id, *account, &now);
        }
        for id in &config.gdpr_audiences {
            if let Some(aud) = state.audiences.get_mut(id) {
                aud.enable_marketing_permissions();
            }
        }
        let faults = FaultState::new(config.seed, config.fail_rate, config.drop_rate);
        let shared = Arc::new(Shared::new(
            state,
            faults,
            accounts,
            config.latency,
            config.max_connections,
        ));
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

    /// Creates an audience with the default merge fields (no-op if it exists), like `--audience`:
    /// in the `api_key` account, else the one account that accepts any key, else the first of
    /// `accounts`. Nothing happens if another account has this audience id.
    pub fn create_audience(&self, id: &str) {
        lock(&self.shared.state).ensure_audience(id, DEFAULT_ACCOUNT, &Now::current());
    }

    /// Creates an audience in the account of `api_key` (no-op if it is that account's already).
    /// False if the key is not accepted or another account has this audience id.
    pub fn create_audience_for(&self, api_key: &str, list_id: &str) -> bool {
        self.shared
            .accounts
            .account_of(api_key)
            .is_some_and(|account| {
                lock(&self.shared.state).ensure_audience(list_id, account, &Now::current())
            })
    }

    /// Deletes the audience of `api_key`'s account with everything in it (its members, merge
    /// fields, webhooks); afterwards its id is `404 Resource Not Found`. False if the key's
    /// account has no such audience.
    pub fn delete_audience(&self, api_key: &str, list_id: &str) -> bool {
        let Some(account) = self.shared.accounts.account_of(api_key) else {
            return false;
        };
        let mut state = lock(&self.shared.state);
        state.owner(list_id) == Some(account) && state.remove_audience(list_id)
    }

    /// The ids of the audiences of `api_key`'s account, in creation order (empty if the key is
    /// not accepted).
    pub fn audiences_of(&self, api_key: &str) -> Vec<String> {
        let Some(account) = self.shared.accounts.account_of(api_key) else {
            return Vec::new();
        };
        let state = lock(&self.shared.state);
        state.audiences_of(account).map(|a| a.id.clone()).collect()
    }

    /// Like [`Emulator::members`], but empty unless the audience is `api_key`'s account's.
    pub fn members_of(&self, api_key: &str, list_id: &str) -> Vec<MemberView> {
        if self.owns(api_key, list_id) {
            self.members(list_id)
        } else {
            Vec::new()
        }
    }

    /// Like [`Emulator::member`], but `None` unless the audience is `api_key`'s account's.
    pub fn member_of(&self, api_key: &str, list_id: &str, email: &str) -> Option<MemberView> {
        self.owns(api_key, list_id)
            .then(|| self.member(list_id, email))
            .flatten()
    }

    fn owns(&self, api_key: &str, list_id: &str) -> bool {
        let account = self.shared.accounts.account_of(api_key);
        account.is_some() && lock(&self.shared.state).owner(list_id) == account
    }

    /// Revokes the key: from now on every request with it gets `401 API Key Invalid`, as
    /// Mailchimp answers for a disabled key. Its account and audiences stay.
    pub fn revoke_key(&self, api_key: &str) {
        self.shared.accounts.revoke(api_key);
    }

    /// Accepts a revoked key again.
    pub fn restore_key(&self, api_key: &str) {
        self.shared.accounts.restore(api_key);
    }

    /// The counters of `api_key`'s account (`None` if the key is not accepted). When any key is
    /// accepted, every key shares one account and these counters.
    pub fn account_stats(&self, api_key: &str) -> Option<AccountStats> {
        let account = self.shared.accounts.account_of(api_key)?;
        Some(self.shared.accounts.stats(account))
    }

    /// Every member of the audience in creation order, archived ones included (permanently
    /// deleted ones are gone). Empty for an unknown audience. Audience ids are unique across
    /// accounts, so this works for any account's audience.
    pub fn members(&self, list_id: &str) -> Vec<MemberView> {
        let state = lock(&self.shared.state);
        let Some(aud) = state.audiences.get(list_id) else {
            return Vec::new();
        };
        aud.order
            .values()
            .filter_map(|h| aud.members.get(h))
            .map(|m| view(m))
            .collect()
    }

    /// The member with this address (or subscriber hash), archived ones included.
    pub fn member(&self, list_id: &str, email: &str) -> Option<MemberView> {
        let state = lock(&self.shared.state);
        state
            .audiences
            .get(list_id)?
            .members
            .get(&path_key(email))
            .map(|m| view(m))
    }

    /// Whether the address was permanently deleted from the audience (and cannot come back).
    pub fn is_forgotten(&self, list_id: &str, email: &str) -> bool {
        let state = lock(&self.shared.state);
        state
            .audiences
            .get(list_id)
            .is_some_and(|a| a.forgotten.contains(&path_key(email)))
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
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

    /// Changes the cap on requests in flight of each account (`None` = unlimited).
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

fn view(m: &Member) -> MemberView {
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
        interests: m.interests.iter().cloned().collect(),
        marketing_permissions: m.permissions.iter().cloned().collect(),
    }
}
