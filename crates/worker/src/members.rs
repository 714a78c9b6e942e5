//! The single-member operations that cannot go into a batch upsert: tag changes, renames and
//! removals, each call through the [`Gate`] within the claim's request window. Each step
//! Mailchimp acknowledges is noted in the row's [`Progress`], so that a retry resumes after it.

use std::future::Future;

use mailchimp::{Client, MemberPermission, ProblemKind, Status, TagChange};
use store::mapping::OnRemove;
use store::ClaimedRow;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::gate::{CallError, Gate};
use crate::plan::{Progress, Upsert};
use crate::results::Results;

/// Why an upsert's follow-up changes did not all go through.
pub(crate) enum Unfinished {
    /// A call failed.
    Call(CallError),
    /// The change cannot be made as mapped (a permission the audience lacks): park the row.
    Park(String),
}

/// Mailchimp calls for the rows of one claim.
pub(crate) struct Calls<'a> {
    pub(crate) client: &'a Client,
    pub(crate) gate: &'a Gate,
    pub(crate) audience_id: &'a str,
    /// Shutdown past its deadline: calls in flight are cut off.
    pub(crate) cancel: &'a CancellationToken,
    /// No call starts after this (see `settings::LEASE_MARGIN`).
    pub(crate) deadline: Instant,
}

impl Calls<'_> {
    /// One request through the gate.
    pub(crate) async fn call<T, F, Fut>(&self, endpoint: &'static str, f: F) -> Result<T, CallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, mailchimp::Error>>,
    {
        self.gate
            .call(endpoint, self.cancel, Some(self.deadline), f)
            .await
    }

    /// Sets tags on or off on the member at `email`.
    pub(crate) async fn tags(&self, email: &str, changes: &[TagChange]) -> Result<(), CallError> {
        self.call("update_tags", || {
            self.client.update_tags(self.audience_id, email, changes)
        })
        .await
    }

    /// What must follow an applied upsert: the tag changes and the marketing permission changes
    /// that bring the member to the upsert's, given its tags and permissions as Mailchimp
    /// answered them (`permissions`: `None` when not known, then read if any is mapped).
    pub(crate) async fn finish_upsert(
        &self,
        upsert: &Upsert,
        tags: &[String],
        permissions: Option<&[MemberPermission]>,
    ) -> Result<(), Unfinished> {
        let email = upsert.member.email_address.as_str();
        let changes = upsert.tags_missing_from(tags);
        if !changes.is_empty() {
            self.tags(email, &changes).await.map_err(Unfinished::Call)?;
        }
        if upsert.permissions.is_empty() {
            return Ok(());
        }
        let read;
        let present = match permissions {
            Some(p) => p,
            None => {
                read = self
                    .call("get_member", || {
                        self.client.get_member(self.audience_id, email)
                    })
                    .await
                    .map_err(Unfinished::Call)?
                    .marketing_permissions;
                &read
            }
        };
        let changes = upsert
            .permissions_missing_from(present)
            .map_err(Unfinished::Park)?;
        if !changes.is_empty() {
            self.call("set_member_permissions", || {
                self.client
                    .set_member_permissions(self.audience_id, email, &changes)
            })
            .await
            .map_err(Unfinished::Call)?;
        }
        Ok(())
    }

    /// Removes the member of a removal row from every address it may live under (the first is
    /// the one chimpsync synced) but those an earlier attempt removed, and records the row's fate.
    pub(crate) async fn remove_row(
        &self,
        row: &ClaimedRow,
        emails: &[String],
        tags: &[String],
        how: OnRemove,
        mut progress: Progress,
        results: &mut Results,
    ) {
        let mut removed = Ok(());
        // Whether a removal call went out (one may have changed the status).
        let mut began = false;
        for email in emails {
            if progress.is_gone(email) {
                continue;
            }
            removed = self.clear_and_remove(email, tags, how, &mut progress).await;
            began |= !matches!(removed, Err(CallError::Cancelled | CallError::NoSlot(_)));
            if removed.is_err() {
                break;
            }
            progress.gone(email);
        }
        match removed {
            Ok(()) => {
                results.free(emails.iter().skip(1).cloned());
                results.ack_removal(row, &emails[0]);
            }
            // Nothing but (maybe) the tags went out: untried, as far as the status goes (the
            // tags are cleared again by the next attempt).
            Err(CallError::Cancelled | CallError::NoSlot(_)) if !began => results.release(row),
            Err(e) => {
                results.progress(row, progress);
                results.removal_failed(row, e)
            }
        }
    }

    /// Takes chimpsync's `tags` off the member at `email`, then removes it per `how`. Every
    /// address a removal touches gets its tags cleared, not only the first: an archived member
    /// keeps its tags, and when it comes back (the customer returns, or takes that address
    /// again) it would carry tags chimpsync no longer knows it set.
    /// Tags an earlier attempt cleared are not cleared again.
    async fn clear_and_remove(
        &self,
        email: &str,
        tags: &[String],
        how: OnRemove,
        progress: &mut Progress,
    ) -> Result<(), CallError> {
        if how != OnRemove::DeletePermanent
            && !tags.is_empty()
            && !progress.is_untagged(email, tags)
        {
            let off: Vec<TagChange> = tags
                .iter()
                .map(|t| TagChange {
                    name: t.clone(),
                    active: false,
                })
                .collect();
            match self.tags(email, &off).await {
                Err(CallError::Api(e)) if e.problem_kind() == Some(ProblemKind::NotFound) => {}
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            progress.untagged(email, tags);
        }
        self.remove(email, how).await
    }

    /// Renames the member of a customer whose address changed from one of `from` to the
    /// upsert's, and records the row's fate. A member found under an earlier candidate makes any
    /// other copy one that an attempt with a lost answer created: it is removed (per
    /// `on_remove`), so no duplicate is left. Steps in `progress` are not taken again: a
    /// candidate known to be gone is skipped, and an acknowledged upsert (`Upsert::applied`)
    /// counts as the member found.
    pub(crate) async fn rename(
        &self,
        row: &ClaimedRow,
        from: &[String],
        upsert: &Upsert,
        mut progress: Progress,
        on_remove: OnRemove,
        results: &mut Results,
    ) {
        let to = upsert.member.email_address.as_str();
        let body = upsert.single_body();
        // The tags chimpsync set or may have set: cleared from a member it removes.
        let ours: Vec<String> = upsert
            .tags
            .iter()
            .chain(upsert.stale_tags.iter())
            .cloned()
            .collect();
        // The member's tags, once it is known to live under the new address.
        let mut member: Option<Vec<String>> = upsert.applied.clone();
        // Its marketing permissions, when an answer in this attempt gave them.
        let mut permissions: Option<Vec<MemberPermission>> = None;
        // Whether Mailchimp holds part of this change already (a failure after that is not an
        // untried attempt, see `Results::call_failed_after`).
        let mut applied = member.is_some();
        let failed = |results: &mut Results, progress: Progress, e: CallError, applied: bool| {
            results.progress(row, progress);
            if applied {
                results.call_failed_after(row, e, upsert)
            } else {
                results.call_failed(row, e, Some(upsert))
            }
        };
        for old in from {
            if progress.is_gone(old) {
                continue;
            }
            if member.is_some() {
                if let Err(e) = self
                    .clear_and_remove(old, &ours, on_remove, &mut progress)
                    .await
                {
                    return failed(results, progress, e, true);
                }
                progress.gone(old);
                continue;
            }
            // PATCH, not PUT: a candidate that does not exist answers 404 instead of creating
            // the new address beside the member that lives under another candidate.
            let renamed = self
                .call("rename_member", || {
                    self.client
                        .rename_existing_member(self.audience_id, old, to, &body)
                })
                .await;
            match renamed {
                Ok(m) => {
                    info!(customer.key = %row.customer_key, "email change: renamed the member");
                    progress.upserted(upsert, &m.tags);
                    member = Some(m.tags);
                    permissions = Some(m.marketing_permissions);
                    applied = true;
                }
                Err(CallError::Api(e)) if e.problem_kind() == Some(ProblemKind::NotFound) => {
                    progress.gone(old)
                }
                Err(CallError::Api(e))
                    if matches!(
                        e.problem_kind(),
                        Some(ProblemKind::InvalidResource | ProblemKind::MemberExists)
                    ) =>
                {
                    // The new address is taken, or the old member is not subscribed: remove the
                    // old member and upsert the new address, so no silent duplicate is left.
                    info!(customer.key = %row.customer_key, reason = %e, "email change: rename refused; removing the old address and upserting the new one");
                    if let Err(e) = self
                        .clear_and_remove(old, &ours, on_remove, &mut progress)
                        .await
                    {
                        return failed(results, progress, e, applied);
                    }
                    progress.gone(old);
                    applied = true;
                }
                Err(e) => return failed(results, progress, e, applied),
            }
        }
        let present = match member {
            Some(tags) => tags,
            None => match self
                .call("upsert_member", || {
                    self.client.upsert_member(self.audience_id, to, &body)
                })
                .await
            {
                Ok(m) => {
                    info!(customer.key = %row.customer_key, "email change: upserted the new address");
                    progress.upserted(upsert, &m.tags);
                    permissions = Some(m.marketing_permissions);
                    m.tags
                }
                Err(e) => return failed(results, progress, e, applied),
            },
        };
        results.free(from.iter().cloned());
        // Whether renamed, created or found, the member's own tags and permissions say what is
        // still missing.
        match self
            .finish_upsert(upsert, &present, permissions.as_deref())
            .await
        {
            Ok(()) => results.ack_upsert(row, upsert),
            Err(Unfinished::Park(reason)) => results.park(row, reason),
            // The member lives under the new address now.
            Err(Unfinished::Call(e)) => failed(results, progress, e, true),
        }
    }

    /// Removes the member at `email` per `how`. A member that is not an active contact already
    /// (gone, archived, not archivable, forgotten) counts as removed.
    async fn remove(&self, email: &str, how: OnRemove) -> Result<(), CallError> {
        let (client, list) = (self.client, self.audience_id);
        let result = match how {
            OnRemove::Archive => match self
                .call("archive_member", || client.archive_member(list, email))
                .await
            {
                // Mailchimp will not archive a pending, cleaned or archived contact (one 405
                // for all three). A pending one could still confirm and start receiving
                // campaigns, so it is unsubscribed first and archived then. Cleaned and
                // archived ones are inactive already, and must be left alone: a status
                // change brings an archived contact back, live (and if the archive that
                // should follow fails, an attempt that no longer looks at that address
                // leaves it behind). So the member is read first.
                Err(CallError::Api(e))
                    if e.problem_kind() == Some(ProblemKind::MethodNotAllowed) =>
                {
                    self.archive_pending(email).await
                }
                other => other,
            },
            OnRemove::Unsubscribe => self
                .call("set_status", || {
                    client.set_status(list, email, Status::Unsubscribed)
                })
                .await
                .map(|_| ()),
            OnRemove::DeletePermanent => {
                self.call("delete_member_permanently", || {
                    client.delete_member_permanently(list, email)
                })
                .await
            }
        };
        match result {
            Err(CallError::Api(e))
                if matches!(
                    e.problem_kind(),
                    Some(
                        ProblemKind::NotFound
                            | ProblemKind::MethodNotAllowed
                            | ProblemKind::ForgottenEmail
                    )
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// The archive of the member at `email` was refused: a pending member is unsubscribed, then
    /// archived; any other is left as it is.
    async fn archive_pending(&self, email: &str) -> Result<(), CallError> {
        let (client, list) = (self.client, self.audience_id);
        let member = self
            .call("get_member", || client.get_member(list, email))
            .await?;
        if member.status != Status::Pending {
            return Ok(());
        }
        let unsubscribed = self
            .call("set_status", || {
                client.set_status(list, email, Status::Unsubscribed)
            })
            .await;
        match unsubscribed {
            // Unsubscribed now: a cut-off archive is not "untried".
            Ok(_) => self
                .call("archive_member", || client.archive_member(list, email))
                .await
                .map_err(|e| match e {
                    CallError::Cancelled | CallError::NoSlot(_) => CallError::Abandoned,
                    e => e,
                }),
            Err(CallError::Api(e)) if !e.is_retryable() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
