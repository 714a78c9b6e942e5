//! Interest groups: the `[[interests]]` of the mapping against the audience's interest
//! categories and interests. Mailchimp names interests by id in a member's `interests`; the
//! mapping and the table name them by title and name. [`AudienceGroups`] is what one audience
//! holds (read once, then kept), `Groups` keeps it per audience and creates on demand a
//! category or interest that a row needs and the audience lacks.
//!
//! Only what the mapping names is ever set: a `column` category owns all its interests (the
//! value's on, the others off), a `columns` category only the interests it lists. Interests of
//! other categories, set by the contact or another tool, are never in a body chimpsync sends.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use store::mapping::{InterestCategoryMapping, InterestKind};

use crate::gate::CallError;
use crate::members::Calls;

/// How long an audience's interests are trusted before they are read again: interests added in
/// Mailchimp's app to a category chimpsync owns are then turned off within this time.
const FRESH_FOR: Duration = Duration::from_secs(300);

/// One interest category of an audience, with its interests.
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    /// The category id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Interest id and name, in Mailchimp's order.
    pub interests: Vec<(String, String)>,
}

impl Category {
    fn interest(&self, name: &str) -> Option<&str> {
        self.interests
            .iter()
            .find(|(_, n)| same_name(n, name))
            .map(|(id, _)| id.as_str())
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Something the audience lacks that a row needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Missing {
    /// The category's title, as the mapping names it.
    pub category: String,
    /// The interest's name; `None` when the category itself is missing.
    pub interest: Option<String>,
}

/// The interest categories and interests one audience holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudienceGroups {
    /// Every category of the audience.
    pub categories: Vec<Category>,
}

/// What the mapping wants of one category, from a row's payload: interest name → on.
/// `owned` is set for a `column` category, whose unnamed interests are all off.
struct Wanted {
    on: BTreeMap<String, bool>,
    owned: bool,
}

fn wanted(entry: &InterestCategoryMapping, value: Option<&Value>) -> Wanted {
    let mut on = BTreeMap::new();
    match (&entry.column, value) {
        (Some(_), Some(Value::String(name))) if !name.trim().is_empty() => {
            on.insert(name.trim().to_string(), true);
        }
        (Some(_), _) => {}
        (None, Some(Value::Object(flags))) => {
            for (name, flag) in flags {
                on.insert(name.clone(), flag.as_bool().unwrap_or(false));
            }
        }
        (None, _) => {
            for name in entry.columns.iter().flat_map(|c| c.keys()) {
                on.insert(name.clone(), false);
            }
        }
    }
    Wanted {
        on,
        owned: entry.column.is_some(),
    }
}

impl AudienceGroups {
    /// The category titled `title` (ignoring case).
    pub fn category(&self, title: &str) -> Option<&Category> {
        self.categories.iter().find(|c| same_name(&c.title, title))
    }

    /// The member `interests` body for a row's payload interests: every interest the mapping
    /// owns, on or off. `Err` lists what the audience lacks for it (an interest that should be
    /// off and does not exist is not missing).
    pub fn resolve(
        &self,
        mapping: &[InterestCategoryMapping],
        payload: &BTreeMap<String, Value>,
    ) -> Result<BTreeMap<String, bool>, Vec<Missing>> {
        let mut body = BTreeMap::new();
        let mut missing = Vec::new();
        for entry in mapping {
            let want = wanted(entry, payload.get(&entry.category));
            let Some(category) = self.category(&entry.category) else {
                if want.on.values().any(|on| *on) {
                    missing.push(Missing {
                        category: entry.category.clone(),
                        interest: None,
                    });
                }
                continue;
            };
            if want.owned {
                for (id, _) in &category.interests {
                    body.insert(id.clone(), false);
                }
            }
            for (name, on) in &want.on {
                match category.interest(name) {
                    Some(id) => {
                        body.insert(id.to_string(), *on);
                    }
                    None if *on => missing.push(Missing {
                        category: entry.category.clone(),
                        interest: Some(name.clone()),
                    }),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            Ok(body)
        } else {
            missing.sort();
            missing.dedup();
            Err(missing)
        }
    }
}

/// The mapping's type as Mailchimp's.
pub fn kind(kind: InterestKind) -> mailchimp::InterestCategoryType {
    match kind {
        InterestKind::Checkboxes => mailchimp::InterestCategoryType::Checkboxes,
        InterestKind::Dropdown => mailchimp::InterestCategoryType::Dropdown,
        InterestKind::Radio => mailchimp::InterestCategoryType::Radio,
        InterestKind::Hidden => mailchimp::InterestCategoryType::Hidden,
    }
}

/// Reads every interest category of `list_id` and its interests.
pub async fn read(
    client: &mailchimp::Client,
    list_id: &str,
) -> Result<AudienceGroups, mailchimp::Error> {
    let mut categories = Vec::new();
    for c in client.interest_categories(list_id).await? {
        let interests = client
            .interests(list_id, &c.id)
            .await?
            .into_iter()
            .map(|i| (i.id, i.name))
            .collect();
        categories.push(Category {
            id: c.id,
            title: c.title,
            interests,
        });
    }
    Ok(AudienceGroups { categories })
}

/// Creates what `missing` names in `list_id` (categories with the mapping's type), recording
/// each in `groups` as it goes. Returns what it created, in words.
pub async fn create(
    client: &mailchimp::Client,
    list_id: &str,
    mapping: &[InterestCategoryMapping],
    groups: &mut AudienceGroups,
    missing: &[Missing],
) -> Result<Vec<String>, mailchimp::Error> {
    let mut created = Vec::new();
    for m in missing {
        let category_id = match groups.category(&m.category) {
            Some(c) => c.id.clone(),
            None => {
                let entry = mapping.iter().find(|e| same_name(&e.category, &m.category));
                let new = mailchimp::NewInterestCategory {
                    title: m.category.clone(),
                    kind: kind(entry.map_or(InterestKind::Checkboxes, |e| e.kind)),
                };
                let c = client.create_interest_category(list_id, &new).await?;
                created.push(format!("interest category {:?}", c.title));
                groups.categories.push(Category {
                    id: c.id.clone(),
                    title: c.title,
                    interests: Vec::new(),
                });
                c.id
            }
        };
        let Some(name) = &m.interest else { continue };
        let category = groups
            .categories
            .iter_mut()
            .find(|c| c.id == category_id)
            .expect("the category was just found or created");
        if category.interest(name).is_some() {
            continue;
        }
        let i = client
            .create_interest(list_id, &category_id, name.trim())
            .await?;
        created.push(format!("interest {:?} in {:?}", i.name, category.title));
        category.interests.push((i.id, i.name));
    }
    Ok(created)
}

/// The audiences' interests, kept between claims, for the worker.
#[derive(Default)]
pub(crate) struct Groups {
    known: Mutex<HashMap<String, (Instant, Arc<AudienceGroups>)>>,
    /// Per audience, held while it is read or added to, so two batches that need the same new
    /// interest create it once (and other audiences' batches do not wait).
    changing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Groups {
    fn fresh(&self, list_id: &str) -> Option<Arc<AudienceGroups>> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .get(list_id)
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, g)| g.clone())
    }

    fn keep(&self, list_id: &str, groups: AudienceGroups) -> Arc<AudienceGroups> {
        let groups = Arc::new(groups);
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(list_id.to_string(), (Instant::now(), groups.clone()));
        groups
    }

    /// Forgets what is known of `list_id` (Mailchimp refused an interest id it held).
    pub(crate) fn forget(&self, list_id: &str) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.remove(list_id);
    }

    /// The audience's interests, with everything `payloads` need: read when not known or
    /// stale, read again and then created when something is missing. Calls go through the
    /// claim's gate.
    pub(crate) async fn ready<'p>(
        &self,
        calls: &Calls<'_>,
        mapping: &[InterestCategoryMapping],
        payloads: impl Iterator<Item = &'p BTreeMap<String, Value>> + Clone,
    ) -> Result<Arc<AudienceGroups>, CallError> {
        let list_id = calls.audience_id;
        let lacking = |g: &AudienceGroups| -> Vec<Missing> {
            let mut all: Vec<Missing> = payloads
                .clone()
                .filter_map(|p| g.resolve(mapping, p).err())
                .flatten()
                .collect();
            all.sort();
            all.dedup();
            all
        };
        if let Some(g) = self.fresh(list_id) {
            if lacking(&g).is_empty() {
                return Ok(g);
            }
        }
        let lock = {
            let mut locks = self.changing.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(list_id.to_string()).or_default().clone()
        };
        let _changing = lock.lock().await;
        // Another batch may have read or created it meanwhile.
        if let Some(g) = self.fresh(list_id) {
            if lacking(&g).is_empty() {
                return Ok(g);
            }
        }
        let mut groups = calls
            .call("interests", || read(calls.client, list_id))
            .await?;
        // A missing category is created first, its interests in the next round.
        for _ in 0..2 {
            let missing = lacking(&groups);
            if missing.is_empty() {
                break;
            }
            let created = calls
                .call("create_interest", || {
                    create(calls.client, list_id, mapping, &mut groups, &missing)
                })
                .await;
            match created {
                Ok(created) => {
                    for what in created {
                        tracing::info!(audience = %list_id, "created {what}");
                    }
                }
                Err(e) => {
                    self.forget(list_id);
                    return Err(e);
                }
            }
        }
        Ok(self.keep(list_id, groups))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> Vec<InterestCategoryMapping> {
        vec![
            InterestCategoryMapping {
                category: "Pet type".into(),
                kind: InterestKind::Dropdown,
                column: Some("pet_type".into()),
                columns: None,
            },
            InterestCategoryMapping {
                category: "Newsletters".into(),
                kind: InterestKind::Checkboxes,
                column: None,
                columns: Some(BTreeMap::from([
                    ("Monthly news".into(), "wants_news".into()),
                    ("Offers".into(), "wants_offers".into()),
                ])),
            },
        ]
    }

    fn audience() -> AudienceGroups {
        let category = |id: &str, title: &str, interests: &[(&str, &str)]| Category {
            id: id.into(),
            title: title.into(),
            interests: interests
                .iter()
                .map(|(i, n)| (i.to_string(), n.to_string()))
                .collect(),
        };
        AudienceGroups {
            categories: vec![
                category("c1", "Pet type", &[("dog", "Dog"), ("cat", "Cat")]),
                category(
                    "c2",
                    "Newsletters",
                    &[
                        ("news", "Monthly news"),
                        ("offers", "Offers"),
                        ("other", "Events"),
                    ],
                ),
                category("c3", "Someone else's", &[("x", "X")]),
            ],
        }
    }

    fn payload(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_column_category_turns_its_value_on_and_its_others_off_and_leaves_other_categories() {
        let body = audience()
            .resolve(
                &mapping(),
                &payload(json!({"Pet type": "cat", "Newsletters": {"Monthly news": true, "Offers": false}})),
            )
            .unwrap();
        assert_eq!(
            body,
            BTreeMap::from([
                ("dog".into(), false),
                ("cat".into(), true),
                ("news".into(), true),
                ("offers".into(), false),
            ])
        );
    }

    #[test]
    fn null_turns_every_interest_of_a_column_category_off() {
        let body = audience()
            .resolve(
                &mapping(),
                &payload(json!({"Pet type": null, "Newsletters": {"Monthly news": false, "Offers": false}})),
            )
            .unwrap();
        assert!(!body["dog"]);
        assert!(!body["cat"]);
    }

    #[test]
    fn unknown_values_and_categories_are_missing_only_when_they_must_be_on() {
        let mut groups = audience();
        let missing = groups
            .resolve(&mapping(), &payload(json!({"Pet type": "Parrot"})))
            .unwrap_err();
        assert_eq!(
            missing,
            vec![Missing {
                category: "Pet type".into(),
                interest: Some("Parrot".into())
            }]
        );
        groups.categories.remove(1);
        let off = payload(json!({"Pet type": "Dog", "Newsletters": {"Monthly news": false}}));
        assert!(groups.resolve(&mapping(), &off).is_ok());
        let on = payload(json!({"Pet type": "Dog", "Newsletters": {"Offers": true}}));
        assert_eq!(
            groups.resolve(&mapping(), &on).unwrap_err(),
            vec![Missing {
                category: "Newsletters".into(),
                interest: None
            }]
        );
    }
}
