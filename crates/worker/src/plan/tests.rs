//! Unit tests of the planner.

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
        account: String::new(),
        customer_key: "1".into(),
        operation: op,
        email: Some(email.into()),
        previous_email: None,
        payload: Payload {
            merge_fields: merge,
            tag_columns,
            consent,
            ..Payload::default()
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

/// Plans without interests (they are resolved before planning, see `groups`).
fn plan(row: &ClaimedRow, audience: &AudienceSettings) -> Action {
    super::plan(row, audience, std::collections::BTreeMap::new())
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
    let present = vec!["groomer".to_string()];
    assert_eq!(
        again.tags_missing_from(again.applied.as_deref().unwrap_or_default()),
        u.tags_missing_from(&present),
        "the tags follow from the acknowledged answer"
    );
    assert_eq!(again.tags_missing_from(&present).len(), 2);
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

#[test]
fn interests_enter_the_batch_item_and_the_single_body() {
    let r = row(Operation::Upsert, "a@pets.test", true, None, None);
    let interests =
        std::collections::BTreeMap::from([("dog".to_string(), true), ("cat".to_string(), false)]);
    let u = upsert(super::plan(&r, &Default::default(), interests.clone()));
    assert_eq!(u.member.interests, interests);
    assert_eq!(u.single_body().interests, interests);
}

#[test]
fn permissions_change_only_where_the_member_differs_and_a_missing_one_is_named() {
    let mut r = row(Operation::Upsert, "a@pets.test", true, None, None);
    r.payload.permissions = std::collections::BTreeMap::from([
        ("Email".to_string(), true),
        ("Direct Mail".to_string(), false),
    ]);
    let u = upsert(plan(&r, &Default::default()));
    let held = |email: bool, mail: bool| {
        vec![
            MemberPermission {
                id: "p1".into(),
                text: "Email".into(),
                enabled: email,
            },
            MemberPermission {
                id: "p2".into(),
                text: "Direct Mail".into(),
                enabled: mail,
            },
        ]
    };
    assert_eq!(u.permissions_missing_from(&held(true, false)), Ok(vec![]));
    assert_eq!(
        u.permissions_missing_from(&held(false, true)),
        Ok(vec![
            MarketingPermissionChange {
                marketing_permission_id: "p2".into(),
                enabled: false
            },
            MarketingPermissionChange {
                marketing_permission_id: "p1".into(),
                enabled: true
            },
        ])
    );
    let none = u.permissions_missing_from(&[]).unwrap_err();
    assert!(
        none.contains("marketing_permissions.\"Email\"")
            || none.contains("marketing_permissions.\"Direct Mail\""),
        "{none}"
    );
    assert!(none.contains("GDPR"), "{none}");
    let other = u
        .permissions_missing_from(&held(true, true)[..1])
        .unwrap_err();
    assert!(other.contains("no such permission"), "{other}");
}
