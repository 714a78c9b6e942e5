//! Processing one claimed batch: plan each row once, send the upserts as one batch upsert (but
//! those an earlier attempt had acknowledged), then the tag changes and the single-member
//! operations, and record every row's fate.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use std::collections::BTreeMap;

use mailchimp::MemberPermission;
use store::{Claim, ClaimedRow, Operation, Queue};
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use crate::accounts::{self, Accounts, Sending, Unsendable};
use crate::gate::{CallError, Gate};
use crate::groups::Groups;
use crate::members::{Calls, Unfinished};
use crate::plan::{plan, Action, Progress, Upsert};
use crate::policy::Failure;
use crate::results::{DrainOutcome, Results};
use crate::settings::Settings;

/// Everything processing needs; shared by the tasks of the run loop.
pub(crate) struct Engine {
    pub(crate) queue: Queue,
    pub(crate) settings: Settings,
    /// The gate of the one account (with many accounts, each key has its own: `accounts`).
    pub(crate) gate: std::sync::Arc<Gate>,
    /// The one account's client; `None` with many accounts.
    pub(crate) client: Option<mailchimp::Client>,
    /// With many accounts: their clients and gates.
    pub(crate) accounts: Option<Accounts>,
    /// The audiences' interest categories and interests, when the mapping has `[[interests]]`.
    pub(crate) groups: Groups,
}

/// A row whose upsert Mailchimp acknowledged, with what its answer says of the member: the tag
/// and permission changes still to make follow from it.
struct NeedsTags<'a> {
    row: &'a ClaimedRow,
    upsert: &'a Upsert,
    /// The member's tags as the answer gave them.
    present: Vec<String>,
    /// The member's marketing permissions as the answer gave them (`None`: not known).
    permissions: Option<Vec<MemberPermission>>,
}

impl<'a> NeedsTags<'a> {
    fn new(row: &'a ClaimedRow, upsert: &'a Upsert, present: &[String]) -> NeedsTags<'a> {
        NeedsTags {
            row,
            upsert,
            present: present.to_vec(),
            permissions: None,
        }
    }
}

impl Engine {
    /// Sends a claim's rows and records what became of each. `cancel` cuts calls in flight off.
    /// A claim of many accounts is sent as one batch per account, all at once (each through its
    /// key's gate): a call never mixes accounts.
    pub(crate) async fn process(&self, claim: Claim, cancel: &CancellationToken) -> DrainOutcome {
        if self.accounts.is_none() {
            return self.process_account(claim, cancel).await;
        }
        let parts = claim.by_account();
        let outcomes = futures_util::future::join_all(
            parts
                .into_iter()
                .map(|part| self.process_account(part, cancel)),
        )
        .await;
        outcomes
            .iter()
            .fold(DrainOutcome::default(), |mut total, outcome| {
                total.add(outcome);
                total
            })
    }

    /// Sends the rows of one account's claim and records what became of each.
    #[instrument(skip_all, fields(batch.size = claim.rows.len()))]
    async fn process_account(&self, claim: Claim, cancel: &CancellationToken) -> DrainOutcome {
        let started = Instant::now();
        let s = &self.settings;
        let sending = match self.sending(&claim).await {
            Ok(sending) => sending,
            Err(unsendable) => return self.unsendable(&claim, unsendable, started).await,
        };
        let calls = Calls {
            client: &sending.client,
            gate: &sending.gate,
            audience_id: &sending.audience_id,
            cancel,
            // Stop starting calls early enough that the last one ends before the lease does.
            deadline: tokio::time::Instant::now() + s.request_window(),
        };
        let mut results = Results::new(s.retry);
        if sending.account.is_some() {
            results = results.of_account();
        }
        let groups = if s.interests.is_empty() {
            None
        } else {
            let payloads = claim
                .rows
                .iter()
                .filter(|r| r.operation == Operation::Upsert)
                .map(|r| &r.payload.interests);
            Some(self.groups.ready(&calls, &s.interests, payloads).await)
        };
        let mut batch: Vec<(&ClaimedRow, Upsert)> = Vec::new();
        // Upserts an earlier attempt had acknowledged: only their tags are left.
        let mut upserted: Vec<(&ClaimedRow, Upsert)> = Vec::new();
        let mut singles: Vec<(&ClaimedRow, Action)> = Vec::new();
        let mut addresses: HashSet<String> = HashSet::new();
        for row in &claim.rows {
            let interests = match (&groups, row.operation) {
                (Some(Ok(groups)), Operation::Upsert) => {
                    match groups.resolve(&s.interests, &row.payload.interests) {
                        Ok(body) => body,
                        Err(missing) => {
                            let failure = Failure::Transient(format!(
                                "the audience lacks {missing:?}, which could not be created"
                            ));
                            results.fail(row, &failure, None);
                            continue;
                        }
                    }
                }
                (Some(Err(e)), Operation::Upsert) => {
                    match e {
                        CallError::Api(e) => {
                            let failure = match Failure::of(e) {
                                Failure::Permanent(m) => Failure::Permanent(format!(
                                    "could not create the interests the row needs: {m}"
                                )),
                                Failure::Transient(m) => Failure::Transient(format!(
                                    "could not read or create the audience's interests: {m}"
                                )),
                            };
                            results.fail(row, &failure, None)
                        }
                        _ => results.release(row),
                    }
                    continue;
                }
                _ => BTreeMap::new(),
            };
            let action = plan(row, &s.audience, interests);
            results.label(row, action.label());
            let address = match &action {
                Action::Upsert(u) | Action::Rename { upsert: u, .. } => {
                    Some(u.member.email_address.to_lowercase())
                }
                Action::Remove { emails, .. } => emails.first().map(|e| e.to_lowercase()),
                Action::Park(_) => None,
            };
            // Two customers with one address in one batch: the first goes now; the other
            // waits and is then parked as a duplicate (the address has an owner by then).
            if address.is_some_and(|a| !addresses.insert(a)) {
                results.same_address(row);
                continue;
            }
            match action {
                Action::Park(reason) => results.park(row, reason),
                Action::Upsert(u) if u.applied.is_some() => upserted.push((row, u)),
                Action::Upsert(u) => batch.push((row, u)),
                other => singles.push((row, other)),
            }
        }

        let mut needs_tags = self.send_batch(&calls, &batch, &mut results).await;
        needs_tags.extend(
            upserted
                .iter()
                .map(|(row, u)| NeedsTags::new(row, u, u.applied.as_deref().unwrap_or_default())),
        );
        for needs in needs_tags {
            let finished = calls
                .finish_upsert(needs.upsert, &needs.present, needs.permissions.as_deref())
                .await;
            match finished {
                Ok(()) => results.ack_upsert(needs.row, needs.upsert),
                Err(Unfinished::Park(reason)) => results.park(needs.row, reason),
                // The upsert is applied already: the next attempt sends the rest only.
                Err(Unfinished::Call(e)) => {
                    let mut progress = Progress::of(needs.row);
                    progress.upserted(needs.upsert, &needs.present);
                    results.progress(needs.row, progress);
                    results.call_failed_after(needs.row, e, needs.upsert)
                }
            }
        }

        for (row, action) in singles {
            match action {
                Action::Rename {
                    from,
                    upsert,
                    progress,
                } => {
                    calls
                        .rename(
                            row,
                            &from,
                            &upsert,
                            progress,
                            s.audience.on_remove,
                            &mut results,
                        )
                        .await
                }
                Action::Remove {
                    emails,
                    tags,
                    how,
                    progress,
                } => {
                    calls
                        .remove_row(row, &emails, &tags, how, progress, &mut results)
                        .await
                }
                Action::Upsert(_) | Action::Park(_) => unreachable!("planned into the batch"),
            }
        }

        // The account is marked before its rows are given back: marked after, another claim could
        // take them in between and send them with the refused key again.
        if let (Some(seen), Some(reason)) = (&sending.account, results.refusal()) {
            accounts::needs_attention(self.queue.pool(), &claim.account, reason, seen.updated_at)
                .await;
        }
        let outcome = results.record(&self.queue, &claim, started).await;
        if let Some(seen) = &sending.account {
            // Mailchimp throttled this key: the other replicas pause its accounts too.
            if let Some(pause) = sending.gate.pause_remaining().filter(|_| outcome.throttled) {
                if let Err(e) =
                    store::account_state::pause_key_group(self.queue.pool(), seen.key_group, pause)
                        .await
                {
                    tracing::warn!(error = %e, "could not record the key's throttle pause");
                }
            }
        }
        outcome
    }

    /// Where the claim's rows go: the one account, or the claimed account of many.
    async fn sending(&self, claim: &Claim) -> Result<Sending, Unsendable> {
        match (&self.accounts, &self.client) {
            (Some(accounts), _) => accounts.sending(self.queue.pool(), &claim.account).await,
            (None, Some(client)) => Ok(Sending {
                client: client.clone(),
                gate: self.gate.clone(),
                audience_id: self.settings.audience_id.clone(),
                account: None,
            }),
            (None, None) => unreachable!("a worker has one account or many"),
        }
    }

    /// Gives the claim back untried: its account cannot be sent to now.
    async fn unsendable(&self, claim: &Claim, why: Unsendable, started: Instant) -> DrainOutcome {
        let mut results = Results::new(self.settings.retry).of_account();
        let reason = match &why {
            Unsendable::Gone => "the account was removed or has no audience".to_string(),
            Unsendable::Key(reason, _) => reason.clone(),
            Unsendable::Database(e) => format!("could not read the account: {e}"),
        };
        if let Unsendable::Key(_, seen) = why {
            accounts::needs_attention(self.queue.pool(), &claim.account, &reason, seen).await;
        }
        results.release_all(claim, reason);
        results.record(&self.queue, claim, started).await
    }

    /// Sends the batch upsert and records the rows it settled; returns those whose tags may
    /// still have to change.
    async fn send_batch<'a>(
        &self,
        calls: &Calls<'_>,
        batch: &'a [(&'a ClaimedRow, Upsert)],
        results: &mut Results,
    ) -> Vec<NeedsTags<'a>> {
        if batch.is_empty() {
            return Vec::new();
        }
        metrics::histogram!("chimpsync_batch_size").record(batch.len() as f64);
        let members: Vec<mailchimp::BatchMember> =
            batch.iter().map(|(_, u)| u.member.clone()).collect();
        let client = calls.client;
        // Written before and decoded after the slot is held: a slot is one of the connections
        // Mailchimp allows, and it is busy only while the request is out.
        let sent = match client.prepare_batch_upsert(calls.audience_id, &members) {
            Ok(prepared) => calls
                .call("batch_upsert", || client.send_batch(prepared))
                .await
                .and_then(|answer| answer.decode().map_err(CallError::Api)),
            Err(e) => Err(CallError::Api(e)),
        };
        let answer = match sent {
            Ok(answer) => answer,
            Err(error) => {
                results.batch_failed(batch, error);
                return Vec::new();
            }
        };
        // Every member the batch created or updated, with its tags as Mailchimp now holds
        // them: the tag changes still needed follow from those.
        let members: HashMap<String, &mailchimp::MemberRef> = answer
            .created
            .iter()
            .chain(answer.updated.iter())
            .map(|m| (m.email_address.to_lowercase(), m))
            .collect();
        let errors: HashMap<String, &mailchimp::BatchError> = answer
            .errors
            .iter()
            .map(|e| (e.email_address.to_lowercase(), e))
            .collect();
        let mut needs_tags = Vec::new();
        for (row, upsert) in batch {
            let address = upsert.member.email_address.to_lowercase();
            if let Some(error) = errors.get(&address) {
                if error.error.to_lowercase().contains("interest") {
                    // An interest was deleted in Mailchimp since it was read: read them again.
                    self.groups.forget(calls.audience_id);
                    let failure = Failure::Transient(format!(
                        "Mailchimp refused the member's interests: {}",
                        error.error
                    ));
                    results.fail(row, &failure, None);
                } else {
                    results.fail(row, &Failure::of_batch_error(error), None);
                }
            } else if let Some(member) = members.get(&address) {
                let mut needs = NeedsTags::new(row, upsert, &member.tags);
                needs.permissions = Some(member.marketing_permissions.clone());
                needs_tags.push(needs);
            } else {
                let failure =
                    Failure::Transient("the batch response did not mention this member".into());
                results.fail(row, &failure, Some(upsert));
            }
        }
        needs_tags
    }
}
