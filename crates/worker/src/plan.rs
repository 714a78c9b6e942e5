//! Turning a queue row into what Mailchimp must be asked: an upsert, a rename, a removal, or
//! nothing (park). Consent decides the status, tags are diffed against what was synced, and what
//! attempts with lost answers may have applied is taken into account. Pure: no I/O.

use mailchimp::{BatchMember, MemberUpsert, Status, TagChange};
use serde_json::{Map, Value};
use store::mapping::{AudienceSettings, NewStatus, OnRemove, Resubscribe};
use store::{ClaimedRow, Operation};

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
    let upsert = Upsert {
        member,
        consent,
        tags,
        stale_tags,
    };
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
        Action::Rename { from, upsert }
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
            Action::Rename { from, upsert } => {
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
            Action::Rename { from, upsert } => {
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
        let action = plan(
            &row(
                Operation::Remove,
                "now@pets.test",
                true,
                None,
                synced("synced@pets.test", true, &[]),
            ),
            &remove,
        );
        assert_eq!(
            action,
            Action::Remove {
                emails: vec!["synced@pets.test".into()],
                tags: vec![],
                how: OnRemove::DeletePermanent
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
}
