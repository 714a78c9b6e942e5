//! The pure half of reconcile: how a customer and its Mailchimp member differ, and how each
//! difference is fixed. No I/O.

use mailchimp::{Member, Status};
use serde::Serialize;
use serde_json::Map;
use serde_json::{json, Value};
use store::mapping::{Inbound as Statements, InterestCategoryMapping};
use store::reconcile::{Customer, Observed, ObservedMember};

use crate::groups::AudienceGroups;
use crate::plan::merge_values;

/// The kinds of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A customer that should be in the audience has no live member.
    Missing,
    /// A live member belongs to no customer that should be in the audience.
    Extra,
    /// The member lives under another address than the table's.
    Address,
    /// The member's status does not match the customer's consent.
    Status,
    /// A merge value differs.
    Merge,
    /// Tags chimpsync manages differ.
    Tags,
    /// Interests of a mapped category differ.
    Interests,
    /// A mapped marketing permission differs.
    Permissions,
}

impl Kind {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Address => "address",
            Kind::Status => "status",
            Kind::Merge => "merge",
            Kind::Tags => "tags",
            Kind::Interests => "interests",
            Kind::Permissions => "permissions",
        }
    }
}

/// How a difference is fixed with `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// Queue the customer again: the worker makes the member match the table.
    Queue,
    /// Run the mapping's `[inbound]` statement of this event type on the table.
    Inbound(&'static str),
    /// Remove the member from the audience (`remove_extra`).
    Remove,
    /// Nothing: reported only (an extra member without `remove_extra`).
    Keep,
}

impl Fix {
    /// `queue`, `inbound:<type>`, `remove` or `keep`.
    pub fn label(self) -> String {
        match self {
            Fix::Queue => "queue".into(),
            Fix::Inbound(t) => format!("inbound:{t}"),
            Fix::Remove => "remove".into(),
            Fix::Keep => "keep".into(),
        }
    }
}

impl Serialize for Fix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

/// One difference between the table and the audience.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// What differs.
    pub kind: Kind,
    /// The customer, if the member belongs to one.
    pub customer_key: Option<String>,
    /// The address concerned (the member's when there is one).
    pub email: String,
    /// In words.
    pub detail: String,
    /// What the table says.
    pub table: Value,
    /// What Mailchimp holds.
    pub mailchimp: Value,
    /// How `apply` fixes it.
    pub fix: Fix,
}

/// Whether the member is in the audience (not archived).
pub(super) fn live(m: &Member) -> bool {
    m.status != Status::Archived
}

/// Whether the member receives (or is about to receive) campaigns.
fn holds_consent(status: Status) -> bool {
    matches!(status, Status::Subscribed | Status::Pending)
}

fn has(list: &[String], name: &str) -> bool {
    list.iter().any(|t| t.eq_ignore_ascii_case(name))
}

fn merge_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

/// Whether Mailchimp's merge value `got` is what the worker would send as `want` (`""` and a
/// missing value are the same; numbers compare as numbers; address objects part by part).
fn same_merge_value(want: &Value, got: Option<&Value>) -> bool {
    let empty = Value::String(String::new());
    let got = got.unwrap_or(&empty);
    if let Value::Object(w) = want {
        let g = got.as_object();
        return w.iter().all(|(k, v)| {
            merge_text(v) == g.and_then(|g| g.get(k)).map(merge_text).unwrap_or_default()
        });
    }
    let (w, g) = (merge_text(want), merge_text(got));
    if w == g {
        return true;
    }
    matches!((w.parse::<f64>(), g.parse::<f64>()), (Ok(a), Ok(b)) if (a - b).abs() < 1e-9)
}

/// The tags chimpsync last set on the customer's member.
fn synced_tags(customer: &Customer) -> &[String] {
    customer
        .synced
        .as_ref()
        .map(|s| s.tags.as_slice())
        .unwrap_or_default()
}

/// The tags chimpsync manages for `customer` that the member has: wanted ones and ones it set.
fn managed_tags(customer: &Customer, member: &Member) -> Vec<String> {
    let wanted = customer.payload.tags();
    let synced = synced_tags(customer);
    member
        .tags
        .iter()
        .filter(|t| has(&wanted, t) || has(synced, t))
        .cloned()
        .collect()
}

/// What Mailchimp holds for a customer, for [`store::reconcile::Reconcile::requeue`].
pub(super) fn observed(customer: &Customer, member: Option<&Member>) -> Observed {
    Observed {
        customer_key: customer.customer_key.clone(),
        member: member.filter(|m| live(m)).map(|m| ObservedMember {
            email: m.email_address.clone(),
            consent: holds_consent(m.status),
            tags: managed_tags(customer, m),
        }),
    }
}

/// The mapped interest categories and what the audience holds of them, for [`compare`].
#[derive(Clone, Copy)]
pub(super) struct Groups<'a> {
    pub(super) mapping: &'a [InterestCategoryMapping],
    pub(super) audience: &'a AudienceGroups,
}

/// Compares a customer that should be in the audience with its member (`None`: none found).
pub(super) fn compare(
    customer: &Customer,
    member: Option<&Member>,
    inbound: &Statements,
    groups: Option<Groups<'_>>,
) -> Vec<Difference> {
    let key = Some(customer.customer_key.clone());
    let table_email = customer.email.clone().unwrap_or_default();
    let diff =
        |kind, email: &str, detail: String, table: Value, mailchimp: Value, fix| Difference {
            kind,
            customer_key: key.clone(),
            email: email.to_owned(),
            detail,
            table,
            mailchimp,
            fix,
        };
    let Some(m) = member.filter(|m| live(m)) else {
        let archived = member.is_some();
        return vec![diff(
            Kind::Missing,
            &table_email,
            if archived {
                "the member is archived".into()
            } else {
                "no member in the audience".into()
            },
            json!({"email": table_email}),
            if archived {
                json!({"status": "archived"})
            } else {
                Value::Null
            },
            Fix::Queue,
        )];
    };
    let email = m.email_address.as_str();
    let mut out = Vec::new();
    if !table_email.trim().eq_ignore_ascii_case(email.trim()) {
        out.push(diff(
            Kind::Address,
            email,
            format!("the member's address is {email}, the table's {table_email}"),
            json!({"email": table_email}),
            json!({"email": email}),
            Fix::Queue,
        ));
    }
    let consent = customer.payload.consent;
    if consent != holds_consent(m.status) {
        let inbound_type = match m.status {
            Status::Unsubscribed if inbound.unsubscribe.is_some() => Some("unsubscribe"),
            Status::Cleaned if inbound.cleaned.is_some() => Some("cleaned"),
            Status::Subscribed if inbound.subscribe.is_some() => Some("subscribe"),
            _ => None,
        };
        out.push(diff(
            Kind::Status,
            email,
            format!("consent {consent}, status {}", m.status),
            json!({"consent": consent}),
            json!({"status": m.status.as_str()}),
            inbound_type.map_or(Fix::Queue, Fix::Inbound),
        ));
    }
    let profile_fix = if inbound.profile.is_some() {
        Fix::Inbound("profile")
    } else {
        Fix::Queue
    };
    for (tag, want) in merge_values(&customer.payload.merge_fields) {
        let got = m.merge_fields.get(&tag);
        if !same_merge_value(&want, got) {
            let got = got.cloned().unwrap_or(Value::Null);
            out.push(diff(
                Kind::Merge,
                email,
                format!("{tag}: table {want}, Mailchimp {got}"),
                json!({ tag.clone(): want }),
                json!({ tag: got }),
                profile_fix,
            ));
        }
    }
    let wanted = customer.payload.tags();
    let synced = synced_tags(customer);
    let missing: Vec<String> = wanted
        .iter()
        .filter(|t| !has(&m.tags, t))
        .cloned()
        .collect();
    let stale: Vec<String> = m
        .tags
        .iter()
        .filter(|t| has(synced, t) && !has(&wanted, t))
        .cloned()
        .collect();
    if !missing.is_empty() || !stale.is_empty() {
        out.push(diff(
            Kind::Tags,
            email,
            format!("missing {missing:?}, stale {stale:?}"),
            json!({"tags": wanted}),
            json!({"tags": m.tags, "missing": missing, "stale": stale}),
            Fix::Queue,
        ));
    }
    if let Some(groups) = groups {
        match groups
            .audience
            .resolve(groups.mapping, &customer.payload.interests)
        {
            Ok(body) => {
                let differ: Vec<(&String, bool)> = body
                    .iter()
                    .filter(|(id, on)| m.interests.get(*id).copied().unwrap_or(false) != **on)
                    .map(|(id, on)| (id, *on))
                    .collect();
                if !differ.is_empty() {
                    let got: Map<String, Value> = differ
                        .iter()
                        .map(|(id, _)| ((*id).clone(), json!(m.interests.get(*id))))
                        .collect();
                    let want: Map<String, Value> = differ
                        .iter()
                        .map(|(id, on)| ((*id).clone(), json!(on)))
                        .collect();
                    out.push(diff(
                        Kind::Interests,
                        email,
                        format!(
                            "interests {}: table {want:?}, Mailchimp {got:?}",
                            interest_names(groups.audience, &want)
                        ),
                        json!({ "interests": customer.payload.interests }),
                        json!({ "interests": got }),
                        Fix::Queue,
                    ));
                }
            }
            Err(lacking) => out.push(diff(
                Kind::Interests,
                email,
                format!("the audience lacks {lacking:?} (the worker creates them)"),
                json!({ "interests": customer.payload.interests }),
                Value::Null,
                Fix::Queue,
            )),
        }
    }
    for (text, on) in &customer.payload.permissions {
        let got = m
            .marketing_permissions
            .iter()
            .find(|p| p.text.trim().eq_ignore_ascii_case(text.trim()));
        match got {
            Some(p) if p.enabled == *on => {}
            Some(p) => out.push(diff(
                Kind::Permissions,
                email,
                format!("{text}: table {on}, Mailchimp {}", p.enabled),
                json!({ text.clone(): on }),
                json!({ text.clone(): p.enabled }),
                Fix::Queue,
            )),
            // Queued, the row would park: reported for a human (see `check`).
            None => out.push(diff(
                Kind::Permissions,
                email,
                format!("the audience has no marketing permission {text:?}"),
                json!({ text.clone(): on }),
                Value::Null,
                Fix::Keep,
            )),
        }
    }
    out
}

/// The names of the interests `ids` (for a difference's detail).
fn interest_names(audience: &AudienceGroups, ids: &Map<String, Value>) -> String {
    let names: Vec<String> = ids
        .keys()
        .map(|id| {
            audience
                .categories
                .iter()
                .flat_map(|c| c.interests.iter().map(move |(i, n)| (i, c, n)))
                .find(|(i, _, _)| *i == id)
                .map(|(_, c, n)| format!("{}/{}", c.title, n))
                .unwrap_or_else(|| id.clone())
        })
        .collect();
    names.join(", ")
}

/// A live member that belongs to no customer that should be in the audience. `customer` is
/// the one it belongs to by address, if any (then the customer is queued and the worker removes
/// the member per `[audience].on_remove`).
pub(super) fn extra(
    member: &Member,
    customer: Option<&Customer>,
    inbound: &Statements,
    remove_extra: bool,
) -> Difference {
    let (detail, fix) = match customer {
        Some(c) => (
            format!(
                "the member ({}) belongs to customer {}, who should not be in the audience",
                member.status, c.customer_key
            ),
            Fix::Queue,
        ),
        None if member.status == Status::Subscribed && inbound.subscribe.is_some() => (
            format!("the member ({}) belongs to no customer", member.status),
            Fix::Inbound("subscribe"),
        ),
        None => (
            format!("the member ({}) belongs to no customer", member.status),
            if remove_extra { Fix::Remove } else { Fix::Keep },
        ),
    };
    Difference {
        kind: Kind::Extra,
        customer_key: customer.map(|c| c.customer_key.clone()),
        email: member.email_address.clone(),
        detail,
        table: Value::Null,
        mailchimp: json!({"status": member.status.as_str()}),
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use store::{Payload, Synced};

    fn customer(consent: bool, fname: &str, tag: Option<&str>, synced_tags: &[&str]) -> Customer {
        let mut merge = Map::new();
        merge.insert("FNAME".into(), json!(fname));
        merge.insert("LTV".into(), json!(15.5));
        let mut tag_columns = std::collections::BTreeMap::new();
        tag_columns.insert(
            "kind".to_string(),
            tag.map(|t| json!(t)).unwrap_or(Value::Null),
        );
        Customer {
            customer_key: "7".into(),
            email: Some("ana@pets.test".into()),
            payload: Payload {
                merge_fields: merge,
                tag_columns,
                consent,
                ..Payload::default()
            },
            wanted: true,
            synced: Some(Synced {
                email: "ana@pets.test".into(),
                consent,
                tags: synced_tags.iter().map(|t| t.to_string()).collect(),
            }),
            queued: false,
        }
    }

    fn member(status: Status, fname: &str, tags: &[&str]) -> Member {
        serde_json::from_value(json!({
            "id": "x", "email_address": "Ana@Pets.test", "status": status.as_str(),
            "merge_fields": {"FNAME": fname, "LTV": "15.50", "LNAME": ""},
            "tags": tags.iter().enumerate().map(|(i, t)| json!({"id": i, "name": t})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    fn kinds(d: &[Difference]) -> Vec<(Kind, String)> {
        d.iter().map(|d| (d.kind, d.fix.label())).collect()
    }

    #[test]
    fn a_matching_member_has_no_differences() {
        let c = customer(true, "Ana", Some("groomer"), &["groomer"]);
        let m = member(Status::Subscribed, "Ana", &["Groomer", "vip"]);
        assert_eq!(
            compare(&c, Some(&m), &Statements::default(), None),
            vec![],
            "case of address and tag, numbers as text, foreign tags: all the same"
        );
    }

    #[test]
    fn a_missing_or_archived_member_is_missing() {
        let c = customer(true, "Ana", None, &[]);
        let d = compare(&c, None, &Statements::default(), None);
        assert_eq!(kinds(&d), vec![(Kind::Missing, "queue".into())]);
        let d = compare(
            &c,
            Some(&member(Status::Archived, "Ana", &[])),
            &Statements::default(),
            None,
        );
        assert_eq!(d[0].detail, "the member is archived");
        assert_eq!(
            observed(&c, Some(&member(Status::Archived, "Ana", &[]))).member,
            None
        );
    }

    #[test]
    fn status_differences_go_inbound_only_when_the_mapping_says_how() {
        let c = customer(true, "Ana", None, &[]);
        let m = member(Status::Unsubscribed, "Ana", &[]);
        assert_eq!(
            kinds(&compare(&c, Some(&m), &Statements::default(), None)),
            vec![(Kind::Status, "queue".into())]
        );
        let inbound = Statements {
            unsubscribe: Some("update t set c = false where e = $1".into()),
            ..Default::default()
        };
        assert_eq!(
            kinds(&compare(&c, Some(&m), &inbound, None)),
            vec![(Kind::Status, "inbound:unsubscribe".into())]
        );
        let no_consent = customer(false, "Ana", None, &[]);
        let subscribed = member(Status::Subscribed, "Ana", &[]);
        assert_eq!(
            kinds(&compare(&no_consent, Some(&subscribed), &inbound, None)),
            vec![(Kind::Status, "queue".into())],
            "no [inbound].subscribe: the table wins"
        );
        let pending = member(Status::Pending, "Ana", &[]);
        assert!(compare(&c, Some(&pending), &inbound, None).is_empty());
    }

    #[test]
    fn merge_values_and_managed_tags_are_compared() {
        let c = customer(true, "Ana", Some("vet"), &["groomer"]);
        let m = member(Status::Subscribed, "Anna", &["groomer", "vip"]);
        let d = compare(&c, Some(&m), &Statements::default(), None);
        assert_eq!(
            kinds(&d),
            vec![(Kind::Merge, "queue".into()), (Kind::Tags, "queue".into())]
        );
        assert_eq!(d[1].mailchimp["missing"], json!(["vet"]));
        assert_eq!(
            d[1].mailchimp["stale"],
            json!(["groomer"]),
            "vip is not chimpsync's"
        );
        let o = observed(&c, Some(&m)).member.unwrap();
        assert_eq!(o.tags, vec!["groomer"]);
        assert!(o.consent);
    }

    #[test]
    fn extra_members_are_removed_only_when_asked() {
        let m = member(Status::Subscribed, "X", &[]);
        assert_eq!(
            extra(&m, None, &Statements::default(), false).fix,
            Fix::Keep
        );
        assert_eq!(
            extra(&m, None, &Statements::default(), true).fix,
            Fix::Remove
        );
        let inbound = Statements {
            subscribe: Some("insert into t values ($1)".into()),
            ..Default::default()
        };
        assert_eq!(
            extra(&m, None, &inbound, true).fix,
            Fix::Inbound("subscribe")
        );
        let c = customer(true, "Ana", None, &[]);
        assert_eq!(extra(&m, Some(&c), &inbound, false).fix, Fix::Queue);
    }

    #[test]
    fn merge_values_compare_like_mailchimp_stores_them() {
        assert!(same_merge_value(&json!(""), None));
        assert!(same_merge_value(&json!(3), Some(&json!("3.0"))));
        assert!(!same_merge_value(&json!("a"), Some(&json!("A"))));
        assert!(same_merge_value(
            &json!({"addr1": "1 Main", "city": "X"}),
            Some(&json!({"addr1": "1 Main", "city": "X", "country": "US"}))
        ));
    }
}
