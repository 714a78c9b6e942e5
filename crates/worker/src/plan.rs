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
mod tests {
    use super::*;
    use serde_json::json;
    use store::{Payload, Synced};

    fn row(
        op: Operation,
        email: &str,
        consent: bool,
        tag: Option<&str>,
        synced: Option<Synced>,
    ) -> ClaimedRow {
        let mut merge = Map::new();
        merge.insert("FNAME".into(), json!("Ana"));
        merge.insert("LNAME".into(), Value::Null);
        let mut tag_columns = std::collections::BTreeMap::new();
        tag_columns.insert(
            "customer_type".to_string(),
            tag.map(|t| json!(t)).unwrap_or(Value::Null),
        );
        ClaimedRow {
            id: 1,
            customer_key: "1".into(),
            operation: op,
            email: Some(email.into()),
            previous_email: None,
            payload: Payload {
                merge_fields: merge,
                tag_columns,
                consent,
            },
            version: 1,
            attempts: 1,
            synced,
            address_owner: None,
            maybe_emails: Vec::new(),
            maybe_tags: Vec::new(),
            maybe_consents: Vec::new(),
            done_steps: None,
        }
    }

    fn synced(email: &str, consent: bool, tags: &[&str]) -> Option<Synced> {
        Some(Synced {
            email: email.into(),
            consent,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        })
    }

    fn upsert(action: Action) -> Upsert {
        match action {
            Action::Upsert(u) => u,
            other => panic!("expected an upsert, got {other:?}"),
        }
    }

    #[test]
    fn a_new_contact_with_consent_gets_the_new_status_and_its_tags() {
        let u = upsert(plan(
            &row(
                Operation::Upsert,
                "a@pets.test",
                true,
                Some("groomer"),
                None,
            ),
            &Default::default(),
        ));
        assert_eq!(u.member.status_if_new, Some(Status::Subscribed));
        assert_eq!(u.member.status, None);
        assert_eq!(u.member.tags, vec!["groomer"]);
        assert_eq!(
            u.member.merge_fields["LNAME"],
            json!(""),
            "NULL clears the merge field"
        );
        let pending = AudienceSettings {
            new_status: NewStatus::Pending,
            ..Default::default()
        };
        let u = upsert(plan(
            &row(Operation::Upsert, "a@pets.test", true, None, None),
            &pending,
        ));
        assert_eq!(u.member.status_if_new, Some(Status::Pending));
    }

    #[test]
    fn a_contact_without_consent_is_never_created_as_subscribed() {
        let u = upsert(plan(
            &row(Operation::Upsert, "a@pets.test", false, None, None),
            &Default::default(),
        ));
        assert_eq!(u.member.status_if_new, Some(Status::Unsubscribed));
        assert_eq!(u.member.status, None);
    }

    #[test]
    fn status_changes_only_when_consent_changed() {
        let a = AudienceSettings::default();
        let same = upsert(plan(
            &row(
                Operation::Upsert,
                "a@pets.test",
                true,
                None,
                synced("a@pets.test", true, &[]),
            ),
            &a,
        ));
        assert_eq!(same.member.status, None);
        let removed = upsert(plan(
            &row(
                Operation::Upsert,
                "a@pets.test",
                false,
                None,
                synced("a@pets.test", true, &[]),
            ),
            &a,
        ));
        assert_eq!(removed.member.status, Some(Status::Unsubscribed));
        let again = upsert(plan(
            &row(
                Operation::Upsert,
                "a@pets.test",
                true,
                None,
                synced("a@pets.test", false, &[]),
            ),
            &a,
        ));
        assert_eq!(again.member.status, Some(Status::Pending));
        let park = AudienceSettings {
            resubscribe: Resubscribe::Park,
            ..Default::default()
        };
        assert!(matches!(
            plan(
                &row(
                    Operation::Upsert,
                    "a@pets.test",
                    true,
                    None,
                    synced("a@pets.test", false, &[])
                ),
                &park
            ),
            Action::Park(_)
        ));
    }

    #[test]
    fn a_changed_tag_value_deactivates_the_old_tag_and_activates_the_new() {
        let u = upsert(plan(
            &row(
                Operation::Upsert,
                "a@pets.test",
                true,
                Some("vet"),
                synced("a@pets.test", true, &["groomer"]),
            ),
            &Default::default(),
        ));
        assert!(
            u.member.tags.is_empty(),
            "tags of existing members go through the tags endpoint"
        );
        // The member holds what was synced.
        assert_eq!(
            u.tags_missing_from(&["groomer".to_string()]),
            vec![
                TagChange {
                    name: "groomer".into(),
                    active: false
                },
                TagChange {
                    name: "vet".into(),
                    active: true
                }
            ]
        );
        let unchanged = upsert(plan(
            &row(
                Operation::Upsert,
                "a@pets.test",
                true,
                Some("Vet"),
                synced("a@pets.test", true, &["vet"]),
            ),
            &Default::default(),
        ));
        assert!(
            unchanged.tags_missing_from(&["vet".to_string()]).is_empty(),
            "tag names compare case-insensitively"
        );
    }

    #[test]
    fn an_email_change_renames_the_member_mailchimp_knows() {
        let action = plan(
            &row(
                Operation::Upsert,
                "new@pets.test",
                true,
                None,
                synced("Old@Pets.test", true, &[]),
            ),
            &Default::default(),
        );
        match action {
            Action::Rename { from, upsert, .. } => {
                assert_eq!(from, vec!["Old@Pets.test"]);
                assert_eq!(upsert.member.email_address, "new@pets.test");
            }
            other => panic!("{other:?}"),
        }
        // Only the case changed: same member, no rename.
        let action = plan(
            &row(
                Operation::Upsert,
                "old@pets.test",
                true,
                None,
                synced("Old@Pets.test", true, &[]),
            ),
            &Default::default(),
        );
        assert!(matches!(action, Action::Upsert(_)));
        // Never synced by us, but the trigger saw the old address.
        let mut r = row(Operation::Upsert, "new@pets.test", true, None, None);
        r.previous_email = Some("before@pets.test".into());
        assert!(matches!(
            plan(&r, &Default::default()),
            Action::Rename { .. }
        ));
    }

    #[test]
    fn addresses_and_tags_of_lost_attempts_are_accounted_for() {
        let mut r = row(
            Operation::Upsert,
            "r3@pets.test",
            true,
            Some("t3"),
            synced("r1@pets.test", true, &["t1"]),
        );
        r.maybe_emails = vec!["r2@pets.test".into(), "r3@pets.test".into()];
        r.maybe_tags = vec!["t2".into(), "t3".into()];
        match plan(&r, &Default::default()) {
            Action::Rename { from, upsert, .. } => {
                assert_eq!(
                    from,
                    vec!["r1@pets.test", "r2@pets.test"],
                    "the target itself is no candidate"
                );
                assert_eq!(upsert.stale_tags, vec!["t1", "t2"]);
                let present = vec!["t2".to_string(), "vip".to_string()];
                assert_eq!(
                    upsert.tags_missing_from(&present),
                    vec![
                        TagChange {
                            name: "t2".into(),
                            active: false
                        },
                        TagChange {
                            name: "t3".into(),
                            active: true
                        }
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_removal_removes_the_address_mailchimp_knows() {
        let remove = AudienceSettings {
            on_remove: OnRemove::DeletePermanent,
            ..Default::default()
        };
        let r = row(
            Operation::Remove,
            "now@pets.test",
            true,
            None,
            synced("synced@pets.test", true, &[]),
        );
        let action = plan(&r, &remove);
        assert_eq!(
            action,
            Action::Remove {
                emails: vec!["synced@pets.test".into()],
                tags: vec![],
                how: OnRemove::DeletePermanent,
                progress: Progress::of(&r),
            }
        );
    }

    #[test]
    fn an_address_owned_by_another_customer_is_parked() {
        let mut r = row(Operation::Upsert, "shared@pets.test", true, None, None);
        r.address_owner = Some("42".into());
        match plan(&r, &Default::default()) {
            Action::Park(reason) => {
                assert!(reason.starts_with("address already belongs to customer 42"))
            }
            other => panic!("{other:?}"),
        }
    }

    /// A rename row and its planned upsert, with `done` as the row's record.
    fn renamed(done: Option<DoneSteps>, first_name: &str) -> (ClaimedRow, Upsert) {
        let mut r = row(
            Operation::Upsert,
            "new@pets.test",
            true,
            Some("vet"),
            synced("old@pets.test", true, &["groomer"]),
        );
        r.payload
            .merge_fields
            .insert("FNAME".into(), json!(first_name));
        r.done_steps = done;
        match plan(&r, &Default::default()) {
            Action::Rename { upsert, .. } => (r, upsert),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_acknowledged_upsert_is_skipped_only_for_the_same_body_and_version() {
        let (r, u) = renamed(None, "Ana");
        assert_eq!(u.applied, None, "nothing acknowledged yet");
        let mut progress = Progress::of(&r);
        progress.upserted(&u, &["groomer".to_string()]);
        let done = progress.record();
        let (_, again) = renamed(done.clone(), "Ana");
        assert_eq!(
            again.applied,
            Some(vec!["groomer".to_string()]),
            "the same upsert at the same version is not sent again"
        );
        assert_eq!(
            again.tags_missing_from(again.applied.as_deref().unwrap_or_default()),
            vec![
                TagChange {
                    name: "groomer".into(),
                    active: false
                },
                TagChange {
                    name: "vet".into(),
                    active: true
                }
            ],
            "the tags follow from the acknowledged answer"
        );
        let (_, changed) = renamed(done.clone(), "Bea");
        assert_eq!(changed.applied, None, "another body is sent");
        let mut older = done.expect("a record");
        older.version -= 1;
        let (_, newer_version) = renamed(Some(older), "Ana");
        assert_eq!(
            newer_version.applied, None,
            "steps of another version of the row are ignored"
        );
    }

    #[test]
    fn a_removal_skips_the_addresses_already_untagged_or_gone() {
        let mut r = row(
            Operation::Remove,
            "a@pets.test",
            false,
            None,
            synced("a@pets.test", true, &["vet"]),
        );
        r.maybe_emails = vec!["b@pets.test".into()];
        let tags = vec!["vet".to_string()];
        let mut progress = Progress::of(&r);
        assert_eq!(progress.clone().record(), None, "no step, no record");
        progress.untagged("A@pets.test", &tags);
        progress.gone("a@pets.test");
        progress.untagged("b@pets.test", &tags);
        r.done_steps = progress.record();
        match plan(&r, &Default::default()) {
            Action::Remove {
                emails, progress, ..
            } => {
                assert_eq!(emails, vec!["a@pets.test", "b@pets.test"]);
                assert!(progress.is_gone("a@pets.test") && !progress.is_gone("b@pets.test"));
                assert!(progress.is_untagged("b@pets.test", &tags));
                assert!(
                    !progress.is_untagged("b@pets.test", &["vet".into(), "vip".into()]),
                    "a tag not cleared then is cleared now"
                );
            }
            other => panic!("{other:?}"),
        }
        r.version += 1;
        match plan(&r, &Default::default()) {
            Action::Remove { progress, .. } => assert!(
                !progress.is_gone("a@pets.test") && !progress.is_untagged("b@pets.test", &tags),
                "a newer version of the row skips nothing"
            ),
            other => panic!("{other:?}"),
        }
    }
}
