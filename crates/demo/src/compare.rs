//! The demo's last step: the customer table against the audience, read through the Mailchimp
//! API, customer by customer.

use std::collections::BTreeMap;

use anyhow::Result;
use mailchimp::{Client, ListMembers, Member, Status};
use worker::groups::AudienceGroups;

use crate::fixture::{queries, AUDIENCE};

/// Members read per page.
const PAGE: u32 = 1000;

/// Rows of the side-by-side sample shown, its header included.
const SAMPLE_ROWS: usize = 6;

/// What the comparison found.
pub(crate) struct Report {
    /// Customers that should be members.
    pub customers: usize,
    /// Those whose member matches exactly.
    pub matching: usize,
    /// Those whose row is parked (not compared).
    pub parked: usize,
    /// One line per customer whose member differs or is missing.
    pub differing: Vec<String>,
    /// A few customers next to their members, with a header line.
    pub sample: Vec<String>,
}

fn sample_line(
    key: &str,
    email: &str,
    consent: &str,
    kind: &str,
    status: &str,
    tags: &str,
) -> String {
    format!("{key:<8} {email:<36} {consent:<8} {kind:<12} | {status:<12} {tags:<12}")
}

async fn members(client: &Client) -> Result<BTreeMap<String, Member>> {
    let mut members = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = client
            .list_members(
                AUDIENCE,
                &ListMembers {
                    count: PAGE,
                    offset,
                    ..Default::default()
                },
            )
            .await?;
        let n = page.members.len() as u32;
        for m in page.members {
            members.insert(m.email_address.to_lowercase(), m);
        }
        if n < PAGE {
            return Ok(members);
        }
        offset += n;
    }
}

/// The names of the member's interests that are on, "category/name", sorted.
pub(crate) fn interests_on(groups: &AudienceGroups, m: &Member) -> Vec<String> {
    let mut on: Vec<String> = groups
        .categories
        .iter()
        .flat_map(|c| {
            c.interests
                .iter()
                .filter(|(id, _)| m.interests.get(id).copied().unwrap_or(false))
                .map(move |(_, name)| format!("{}/{name}", c.title))
        })
        .collect();
    on.sort();
    on
}

/// Whether the member gives the marketing permission of this text (`None`: it has none such).
pub(crate) fn permission(m: &Member, text: &str) -> Option<bool> {
    m.marketing_permissions
        .iter()
        .find(|p| p.text == text)
        .map(|p| p.enabled)
}

/// Compares every customer that should be a member with its member.
pub(crate) async fn compare(db: &tokio_postgres::Client, client: &Client) -> Result<Report> {
    let rows = db.query(queries::COMPARE, &[]).await?;
    let members = members(client).await?;
    let groups = worker::groups::read(client, AUDIENCE).await?;
    let mut report = Report {
        customers: rows.len(),
        matching: 0,
        parked: 0,
        differing: Vec::new(),
        sample: vec![sample_line(
            "key", "email", "consent", "type", "status", "tags",
        )],
    };
    for row in &rows {
        let key: String = row.get(0);
        let email: String = row.get(1);
        let (first, last, store): (String, String, String) = (row.get(2), row.get(3), row.get(4));
        let kind: Option<String> = row.get(5);
        let consent: bool = row.get(6);
        if row.get::<_, bool>(7) {
            report.parked += 1;
            continue;
        }
        let Some(m) = members.get(&email) else {
            report.differing.push(format!("customer {key}: no member"));
            continue;
        };
        let want_status = if consent {
            Status::Subscribed
        } else {
            Status::Unsubscribed
        };
        let field = |t: &str| {
            m.merge_fields
                .get(t)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let tags_ok = match &kind {
            Some(k) => m.tags.iter().any(|t| t.eq_ignore_ascii_case(k)) && m.tags.len() == 1,
            None => m.tags.is_empty(),
        };
        let pet: Option<String> = row.get(8);
        let want_interests: Vec<String> = pet.iter().map(|p| format!("Pet type/{p}")).collect();
        if m.status == want_status
            && field("FNAME") == first
            && field("LNAME") == last
            && field("STORE") == store
            && tags_ok
            && interests_on(&groups, m) == want_interests
            && permission(m, "Email") == Some(consent)
        {
            report.matching += 1;
        } else {
            report.differing.push(format!(
                "customer {key}: member status={} tags={:?} interests={:?} Email permission={:?}",
                m.status.as_str(),
                m.tags,
                interests_on(&groups, m),
                permission(m, "Email")
            ));
        }
        if report.sample.len() < SAMPLE_ROWS {
            report.sample.push(sample_line(
                &key,
                &email,
                &consent.to_string(),
                kind.as_deref().unwrap_or_default(),
                m.status.as_str(),
                &m.tags.join(","),
            ));
        }
    }
    Ok(report)
}
