//! Turning a queue row into what Mailchimp must be asked: an upsert, a rename, a removal, or
//! nothing (park). Consent decides the status, tags are diffed against what was synced, what
//! attempts with lost answers may have applied is taken into account, and the steps Mailchimp
//! acknowledged in earlier attempts at the row's version are skipped ([`Progress`]). Pure: no I/O.

use mailchimp::{BatchMember, MemberUpsert, Status, TagChange};
use serde_json::{Map, Value};
use store::mapping::{AudienceSettings, NewStatus, OnRemove, Resubscribe};
use store::{ClaimedRow, DoneSteps, Operation, Untagged, Upserted};

/// What one row asks Mailchimp to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Goes into the batch upsert (`POST /lists/{id}`).
    Upsert(Upsert),
    /// The address changed: rename the member, which lives under one of `from` (the synced
    /// address first, then addresses of earlier attempts whose answers were lost).
    Rename {
        /// Where the member may live, most likely first.
        from: Vec<String>,
        /// The upsert of the new address (also the fallback).
        upsert: Upsert,
        /// Steps acknowledged earlier: candidates known to be gone are skipped.
        progress: Progress,
    },
    /// Remove the member from the audience per `[audience].on_remove`.
    Remove {
        /// The addresses to remove: the member's, then copies lost attempts may have created.
        emails: Vec<String>,
        /// Tags chimpsync set (or may have set) on the member: cleared first, so a customer who
        /// comes back does not find stale tags on the revived member.
        tags: Vec<String>,
        /// How.
        how: OnRemove,
        /// Steps acknowledged earlier: addresses already untagged or gone are skipped.
        progress: Progress,
    },
    /// Nothing can be sent; park with this reason.
    Park(String),
}

impl Action {
    /// The `operation` label of the row's metrics: what the row asks of Mailchimp.
    pub fn label(&self) -> &'static str {
        match self {
            Action::Rename { .. } => "rename",
            Action::Remove { .. } => "remove",
            Action::Upsert(_) | Action::Park(_) => "upsert",
        }
    }
}

/// An upsert of one member, and the tag changes that must follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsert {
    /// The batch item (also used for single PUT/PATCH).
    pub member: BatchMember,
    /// The consent being sent (recorded on acknowledgement).
    pub consent: bool,
    /// The tags that should be active afterwards.
    pub tags: Vec<String>,
    /// Tags chimpsync set (or may have set) that are no longer wanted.
    pub stale_tags: Vec<String>,
    /// Set when Mailchimp acknowledged this very upsert (same address, same body) in an earlier
    /// attempt at the row's version: the member's tags as that answer gave them. The upsert is
    /// not sent again; only the tag changes still missing are.
    pub applied: Option<Vec<String>>,
}

impl Upsert {
    /// What this upsert makes Mailchimp hold, as remembered when its outcome is unknown (a lost
    /// answer, an attempt cut off after it was sent).
    pub fn maybe_applied(&self) -> store::MaybeApplied {
        store::MaybeApplied {
            emails: vec![self.member.email_address.clone()],
            tags: self.tags.clone(),
            consent: Some(self.consent),
        }
    }

    /// The body as JSON, to compare with an acknowledged one.
    fn fingerprint(&self) -> Option<Value> {
        serde_json::to_value(self.single_body()).ok()
    }

    /// The single-member body (PUT) equivalent to the batch item.
    pub fn single_body(&self) -> MemberUpsert {
        MemberUpsert {
            email_address: Some(self.member.email_address.clone()),
            status_if_new: self.member.status_if_new,
            status: self.member.status,
            merge_fields: self.member.merge_fields.clone(),
            ..Default::default()
        }
    }

    /// Tag changes that bring a member whose tags are `present` to this upsert's tags: the
    /// wanted tags it lacks on, the stale ones it has off. Tags chimpsync never set are left alone.
    pub fn tags_missing_from(&self, present: &[String]) -> Vec<TagChange> {
        let has = |name: &str| present.iter().any(|p| p.eq_ignore_ascii_case(name));
        let mut changes: Vec<TagChange> = self
            .stale_tags
            .iter()
            .filter(|t| has(t))
            .map(|t| TagChange {
                name: t.clone(),
                active: false,
            })
            .collect();
        changes.extend(self.tags.iter().filter(|t| !has(t)).map(|t| TagChange {
            name: t.clone(),
            active: true,
        }));
        changes
    }
}

/// Merge values as Mailchimp takes them: NULL clears (`""`), booleans become text.
pub fn merge_values(merge_fields: &Map<String, Value>) -> Map<String, Value> {
    merge_fields
        .iter()
        .map(|(tag, value)| {
            let value = match value {
                Value::Null => Value::String(String::new()),
                Value::Bool(b) => Value::String(b.to_string()),
                Value::Array(_) => Value::String(value.to_string()),
                other => other.clone(),
            };
            (tag.clone(), value)
        })
        .collect()
}

fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The steps of a row's operation that Mailchimp acknowledged at the row's version: what an
/// attempt skips, and, as it goes on, what it adds (kept with the row by the reschedule). A lost
/// answer is never a step (see `maybe_applied`).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress(DoneSteps);

impl Progress {
    /// The row's record if it was made for the row's version; otherwise an empty one: steps
    /// taken for an older state of the customer say nothing about what the current one needs.
    pub fn of(row: &ClaimedRow) -> Progress {
        match &row.done_steps {
            Some(done) if done.version == row.version => Progress(done.clone()),
            _ => Progress(DoneSteps {
                version: row.version,
                ..DoneSteps::default()
            }),
        }
    }

    /// Whether no member of the customer lives under `email` any more.
    pub fn is_gone(&self, email: &str) -> bool {
        self.0.gone.iter().any(|g| same_address(g, email))
    }

    /// Whether every one of `tags` was cleared from the member at `email`.
    pub fn is_untagged(&self, email: &str, tags: &[String]) -> bool {
        self.0.untagged.iter().any(|u| {
            same_address(&u.email, email)
                && tags
                    .iter()
                    .all(|t| u.tags.iter().any(|c| c.eq_ignore_ascii_case(t)))
        })
    }

    /// Mailchimp acknowledged that no member of the customer lives under `email`.
    pub fn gone(&mut self, email: &str) {
        if !self.is_gone(email) {
            self.0.gone.push(email.to_string());
        }
    }

    /// Mailchimp acknowledged that `tags` are off the member at `email`.
    pub fn untagged(&mut self, email: &str, tags: &[String]) {
        self.0.untagged.retain(|u| !same_address(&u.email, email));
        self.0.untagged.push(Untagged {
            email: email.to_string(),
            tags: tags.to_vec(),
        });
    }

    /// Mailchimp acknowledged `upsert`; its answer gave the member these `tags`.
    pub fn upserted(&mut self, upsert: &Upsert, tags: &[String]) {
        self.0.upserted = upsert.fingerprint().map(|body| Upserted {
            email: upsert.member.email_address.clone(),
            body,
            tags: tags.to_vec(),
        });
    }

    /// The member's tags, if Mailchimp acknowledged this very upsert.
    fn applied(&self, upsert: &Upsert) -> Option<Vec<String>> {
        let body = upsert.fingerprint()?;
        self.0
            .upserted
            .as_ref()
            .filter(|u| same_address(&u.email, &upsert.member.email_address) && u.body == body)
            .map(|u| u.tags.clone())
    }

    /// What to keep with the row: `None` when no step was acknowledged.
    pub fn record(self) -> Option<DoneSteps> {
        let done = self.0;
        (!done.gone.is_empty() || !done.untagged.is_empty() || done.upserted.is_some())
            .then_some(done)
    }
}

/// Plans one row.
pub fn plan(row: &ClaimedRow, audience: &AudienceSettings) -> Action {
    let email = row.email.as_deref().map(str::trim).unwrap_or_default();
    if row.operation == Operation::Remove {
        // Remove the member this customer owns (if never synced, the address in the row), and
        // any copy an attempt whose answer was lost may have created.
        let mut emails: Vec<String> = Vec::new();
        let known = row
            .synced
            .as_ref()
            .map(|s| s.email.clone())
            .unwrap_or_else(|| email.to_string());
        for address in std::iter::once(known).chain(row.maybe_emails.iter().cloned()) {
            if !address.trim().is_empty() && !emails.iter().any(|e| same_address(e, &address)) {
                emails.push(address);
            }
        }
        let mut tags: Vec<String> = Vec::new();
        let synced_tags = row.synced.iter().flat_map(|s| s.tags.iter());
        for tag in synced_tags.chain(row.maybe_tags.iter()) {
            if !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
                tags.push(tag.clone());
            }
        }
        return Action::Remove {
            emails,
            tags,
            how: audience.on_remove,
            progress: Progress::of(row),
        };
    }
    if email.is_empty() {
        return Action::Park("the customer has no email address".into());
    }
    if let Some(owner) = &row.address_owner {
        return Action::Park(format!(
            "address already belongs to customer {owner}: one address can belong to one customer; \
             this row is retried when that customer gives the address up"
        ));
    }
    let consent = row.payload.consent;
    let status_if_new = if consent {
        Some(match audience.new_status {
            NewStatus::Subscribed => Status::Subscribed,
            NewStatus::Pending => Status::Pending,
        })
    } else {
        Some(Status::Unsubscribed)
    };
    // The member's status changes only when the consent changed since the last sync (or an
    // attempt whose answer was lost may have sent another consent).
    let consent_changed = row
        .synced
        .as_ref()
        .is_some_and(|synced| synced.consent != consent)
        || row.maybe_consents.iter().any(|sent| *sent != consent);
    let status = match consent_changed {
        true => {
            if consent {
                match audience.resubscribe {
                    Resubscribe::Pending => Some(Status::Pending),
                    Resubscribe::Park => {
                        return Action::Park(
                            "the customer consented again after opting out; [audience].resubscribe = \"park\" \
                             leaves the decision to a human (set it to \"pending\" to send a confirmation mail)"
                                .into(),
                        )
                    }
                }
            } else {
                Some(Status::Unsubscribed)
            }
        }
        false => None,
    };
    let tags = row.payload.tags();
    let wanted = |t: &String| tags.iter().any(|w| w.eq_ignore_ascii_case(t));
    let synced_tags: &[String] = row
        .synced
        .as_ref()
        .map(|s| s.tags.as_slice())
        .unwrap_or_default();
    let mut stale_tags: Vec<String> = Vec::new();
    for t in synced_tags.iter().chain(row.maybe_tags.iter()) {
        if !wanted(t) && !stale_tags.iter().any(|s| s.eq_ignore_ascii_case(t)) {
            stale_tags.push(t.clone());
        }
    }
    // Mailchimp applies a batch item's tags only to a member it creates; the tags of a member
    // that exists follow from its answer (`Upsert::tags_missing_from`).
    let first_sync = row.synced.is_none();
    let member = BatchMember {
        email_address: email.to_string(),
        status_if_new,
        status,
        merge_fields: merge_values(&row.payload.merge_fields),
        tags: if first_sync { tags.clone() } else { Vec::new() },
        ..Default::default()
    };
    let mut upsert = Upsert {
        member,
        consent,
        tags,
        stale_tags,
        applied: None,
    };
    let progress = Progress::of(row);
    upsert.applied = progress.applied(&upsert);
    // Where the member may live: the address chimpsync synced (or, never synced, the one the
    // trigger saw before the change), then addresses of attempts whose answers were lost.
    let mut from: Vec<String> = Vec::new();
    let known = row
        .synced
        .as_ref()
        .map(|s| s.email.clone())
        .or(row.previous_email.clone());
    for old in known.into_iter().chain(row.maybe_emails.iter().cloned()) {
        if !old.trim().is_empty()
            && !same_address(&old, email)
            && !from.iter().any(|f| same_address(f, &old))
        {
            from.push(old);
        }
    }
    if from.is_empty() {
        Action::Upsert(upsert)
    } else {
        Action::Rename {
            from,
            upsert,
            progress,
        }
    }
}

#[cfg(test)]
mod tests;
