//! What `setup --mailchimp` and `check` do for `[[interests]]` and `[marketing_permissions]`:
//! create the interest categories and the interests known in advance, and check that the
//! audience has the mapped marketing permissions.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use store::Mapping;
use worker::groups::{self, Missing};

/// How many interests of a `column` category `setup --mailchimp` creates from the table's
/// values; Mailchimp allows 60 interests per audience, and the rest are created as rows need
/// them.
pub(crate) const KNOWN_VALUES: usize = 60;

/// Creates the mapped interest categories the audience lacks (with the mapped types), and the
/// interests it lacks: a `columns` category's names, and the `known` values of a `column`
/// category (title → values). Reports each line with `prefix`; running it again creates nothing.
pub(crate) async fn create(
    client: &mailchimp::Client,
    audience: &str,
    mapping: &Mapping,
    known: &BTreeMap<String, Vec<String>>,
    prefix: &str,
) -> Result<()> {
    if mapping.interests.is_empty() {
        return Ok(());
    }
    let mut held = groups::read(client, audience)
        .await
        .with_context(|| format!("reading the interest categories of audience {audience}"))?;
    let mut wanted: Vec<Missing> = Vec::new();
    for entry in &mapping.interests {
        let names: Vec<String> = match &entry.columns {
            Some(columns) => columns.keys().cloned().collect(),
            None => known.get(&entry.category).cloned().unwrap_or_default(),
        };
        wanted.push(Missing {
            category: entry.category.clone(),
            interest: None,
        });
        wanted.extend(names.into_iter().map(|name| Missing {
            category: entry.category.clone(),
            interest: Some(name),
        }));
    }
    let lacking: Vec<Missing> = wanted
        .iter()
        .filter(|m| match (held.category(&m.category), &m.interest) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(c), Some(name)) => !c
                .interests
                .iter()
                .any(|(_, n)| n.trim().eq_ignore_ascii_case(name.trim())),
        })
        .cloned()
        .collect();
    let created = groups::create(client, audience, &mapping.interests, &mut held, &lacking)
        .await
        .with_context(|| format!("creating interests in audience {audience}"))?;
    for what in &created {
        println!("{prefix}created {what}");
    }
    for entry in &mapping.interests {
        if let Some(c) = held.category(&entry.category) {
            if c.title != entry.category {
                println!(
                    "{prefix}  note: interests[{:?}] matches the audience's category {:?}",
                    entry.category, c.title
                );
            }
        }
    }
    println!(
        "{prefix}interests of audience {audience}: {} created, {} already there",
        created.len(),
        wanted.len() - lacking.len()
    );
    Ok(())
}

/// Whether the audience has every mapped marketing permission: `Ok` with a line to report,
/// `Err` with the problem, naming the mapping key. `None` when none is mapped.
pub(crate) async fn permissions(
    client: &mailchimp::Client,
    audience: &mailchimp::Audience,
    mapping: &Mapping,
) -> Option<Result<String, String>> {
    let (first, _) = mapping.marketing_permissions.first_key_value()?;
    let id = &audience.id;
    if !audience.marketing_permissions {
        return Some(Err(format!(
            "marketing_permissions.{first:?}: audience {id} has no marketing permissions (its \
             GDPR fields are off); turn them on in the audience's settings, or remove \
             [marketing_permissions] from the mapping"
        )));
    }
    let held = match client.marketing_permissions(id).await {
        Ok(held) => held,
        Err(e) => {
            return Some(Err(format!(
                "reading the marketing permissions of {id}: {e}"
            )))
        }
    };
    if held.is_empty() {
        // Mailchimp shows an audience's permissions only on its members.
        return Some(Ok(format!(
            "audience {id} has marketing permissions; which ones is known once it has a member \
             (checked again by the first sync)"
        )));
    }
    for text in mapping.marketing_permissions.keys() {
        if !held
            .iter()
            .any(|p| p.text.trim().eq_ignore_ascii_case(text.trim()))
        {
            let texts: Vec<&str> = held.iter().map(|p| p.text.as_str()).collect();
            return Some(Err(format!(
                "marketing_permissions.{text:?}: audience {id} has no such permission (it has {texts:?})"
            )));
        }
    }
    let texts: Vec<&String> = mapping.marketing_permissions.keys().collect();
    Some(Ok(format!(
        "audience {id} has the marketing permissions {texts:?}"
    )))
}

/// The problems of the mapped interest categories in the audience, for `check`: a category it
/// lacks (interests it lacks are created as rows need them). `Ok` lines for those present.
pub(crate) async fn check(
    client: &mailchimp::Client,
    audience: &str,
    mapping: &Mapping,
) -> Vec<Result<String, String>> {
    if mapping.interests.is_empty() {
        return Vec::new();
    }
    let held = match groups::read(client, audience).await {
        Ok(held) => held,
        Err(e) => return vec![Err(format!("reading the interest categories: {e}"))],
    };
    mapping
        .interests
        .iter()
        .map(|entry| match held.category(&entry.category) {
            Some(c) => Ok(format!(
                "interest category {:?} exists ({} interests)",
                c.title,
                c.interests.len()
            )),
            None => Err(format!(
                "{}: the audience has no interest category {:?}; `chimpsync setup --mailchimp` creates it",
                entry.key(),
                entry.category
            )),
        })
        .collect()
}
