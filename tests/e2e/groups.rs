//! Interest groups and marketing permissions end to end: the mapping's `[[interests]]` and
//! `[marketing_permissions]` through the triggers, the queue and the worker into a GDPR audience
//! of the emulator, read back with the real client; `setup --mailchimp`, `check` and
//! `reconcile` over them with the real binary.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chimpsync_demo::fixture::INTEREST_GROUPS;
use chimpsync_tests::{Fixture, AUDIENCE, MAPPING};
use mailchimp::{Member, MemberUpsert, NewInterestCategory};
use mailchimp_emulator::Config;
use serde_json::Value;

/// The pet type and newsletter groups, and the email permission from the consent column.
fn mapping() -> String {
    format!(
        "{MAPPING}{INTEREST_GROUPS}\n[marketing_permissions]\n\"Email\" = \"consent_contact\"\n"
    )
}

/// An emulator whose audience has GDPR fields (marketing permissions).
fn gdpr() -> Config {
    Config {
        gdpr_audiences: vec![AUDIENCE.into()],
        ..Config::default()
    }
}

async fn fixture() -> Result<Fixture> {
    Fixture::with(&mapping(), gdpr()).await
}

async fn member(f: &Fixture, email: &str) -> Result<Member> {
    Ok(f.mailchimp.get_member(AUDIENCE, email).await?)
}

/// Every interest of the audience as "category/name" → id.
async fn interest_ids(f: &Fixture) -> Result<BTreeMap<String, String>> {
    let mut ids = BTreeMap::new();
    for c in f.mailchimp.interest_categories(AUDIENCE).await? {
        for i in f.mailchimp.interests(AUDIENCE, &c.id).await? {
            ids.insert(format!("{}/{}", c.title, i.name), i.id);
        }
    }
    Ok(ids)
}

/// The member's interests that are on, as "category/name", sorted.
async fn interests_on(f: &Fixture, email: &str) -> Result<Vec<String>> {
    let ids = interest_ids(f).await?;
    let m = member(f, email).await?;
    let mut on: Vec<String> = ids
        .iter()
        .filter(|(_, id)| m.interests.get(*id).copied().unwrap_or(false))
        .map(|(name, _)| name.clone())
        .collect();
    on.sort();
    Ok(on)
}

/// The member's marketing permission of this text.
async fn permission(f: &Fixture, email: &str, text: &str) -> Result<bool> {
    let m = member(f, email).await?;
    m.marketing_permissions
        .iter()
        .find(|p| p.text == text)
        .map(|p| p.enabled)
        .with_context(|| format!("no permission {text:?} on the member"))
}

const ANA: &str = "ana@pets.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pet_type_change_turns_the_old_interest_off_and_the_new_on_and_leaves_others_alone(
) -> Result<()> {
    let f = fixture().await?;
    let w = f.worker(|_| {})?;
    f.exec(
        "insert into customers (id, email, first_name, consent_contact, pet_type)
         values (1, 'ana@pets.test', 'Ana', true, 'Dog')",
    )
    .await?;
    f.drain(&w).await?;
    // Neither the category nor the interest existed: created as the row needed them.
    assert_eq!(interests_on(&f, ANA).await?, vec!["Pet type/Dog"]);

    // Someone else sets an interest of a category chimpsync does not map, and one of a mapped
    // category that the mapping does not name.
    let visits = f
        .mailchimp
        .create_interest_category(
            AUDIENCE,
            &NewInterestCategory {
                title: "Visits".into(),
                kind: mailchimp::InterestCategoryType::Checkboxes,
            },
        )
        .await?;
    let grooming = f
        .mailchimp
        .create_interest(AUDIENCE, &visits.id, "Grooming")
        .await?;
    let ids = interest_ids(&f).await?;
    let news_category = f
        .mailchimp
        .interest_categories(AUDIENCE)
        .await?
        .into_iter()
        .find(|c| c.title == "Newsletters");
    let events = match news_category {
        Some(c) => {
            f.mailchimp
                .create_interest(AUDIENCE, &c.id, "Events")
                .await?
        }
        None => {
            let c = f
                .mailchimp
                .create_interest_category(
                    AUDIENCE,
                    &NewInterestCategory {
                        title: "Newsletters".into(),
                        kind: mailchimp::InterestCategoryType::Checkboxes,
                    },
                )
                .await?;
            f.mailchimp
                .create_interest(AUDIENCE, &c.id, "Events")
                .await?
        }
    };
    let mut theirs = MemberUpsert::default();
    theirs.interests.insert(grooming.id.clone(), true);
    theirs.interests.insert(events.id.clone(), true);
    f.mailchimp.upsert_member(AUDIENCE, ANA, &theirs).await?;
    assert!(ids.contains_key("Pet type/Dog"));

    f.exec("update customers set pet_type = 'Cat' where id = 1")
        .await?;
    assert_eq!(
        f.queue_rows().await?.len(),
        1,
        "a mapped group column enqueues"
    );
    f.drain(&w).await?;
    assert_eq!(
        interests_on(&f, ANA).await?,
        vec!["Newsletters/Events", "Pet type/Cat", "Visits/Grooming"],
        "Dog off, Cat on; the interests someone else set are unchanged"
    );

    f.exec("update customers set notes = 'likes treats' where id = 1")
        .await?;
    assert!(
        f.queue_rows().await?.is_empty(),
        "an unrelated column does not enqueue"
    );

    f.exec("update customers set pet_type = null where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(
        interests_on(&f, ANA).await?,
        vec!["Newsletters/Events", "Visits/Grooming"],
        "NULL: no pet type interest is on"
    );
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newsletter_flag_is_set_and_cleared() -> Result<()> {
    let f = fixture().await?;
    let w = f.worker(|_| {})?;
    f.exec(
        "insert into customers (id, email, first_name, consent_contact, wants_news, wants_offers)
         values (1, 'ana@pets.test', 'Ana', true, false, true)",
    )
    .await?;
    f.drain(&w).await?;
    assert_eq!(interests_on(&f, ANA).await?, vec!["Newsletters/Offers"]);
    f.exec("update customers set wants_news = true where id = 1")
        .await?;
    assert_eq!(f.queue_rows().await?.len(), 1);
    f.drain(&w).await?;
    assert_eq!(
        interests_on(&f, ANA).await?,
        vec!["Newsletters/Monthly news", "Newsletters/Offers"]
    );
    f.exec("update customers set wants_news = false, wants_offers = null where id = 1")
        .await?;
    f.drain(&w).await?;
    assert_eq!(interests_on(&f, ANA).await?, Vec::<String>::new());
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_given_and_withdrawn_moves_both_the_permission_and_the_status() -> Result<()> {
    let f = fixture().await?;
    let w = f.worker(|_| {})?;
    f.exec(
        "insert into customers (id, email, first_name, consent_contact)
         values (1, 'ana@pets.test', 'Ana', false),
                (2, 'bo@pets.test', 'Bo', true)",
    )
    .await?;
    f.drain(&w).await?;
    assert_eq!(
        member(&f, ANA).await?.status,
        mailchimp::Status::Unsubscribed
    );
    assert!(!permission(&f, ANA, "Email").await?);
    assert_eq!(
        member(&f, "bo@pets.test").await?.status,
        mailchimp::Status::Subscribed
    );
    assert!(permission(&f, "bo@pets.test", "Email").await?);
    assert!(
        !permission(&f, "bo@pets.test", "Direct Mail").await?,
        "an unmapped permission is left alone"
    );

    f.exec("update customers set consent_contact = true where id = 1")
        .await?;
    f.drain(&w).await?;
    assert!(permission(&f, ANA, "Email").await?, "consent given");
    assert_eq!(
        member(&f, ANA).await?.status,
        mailchimp::Status::Pending,
        "a contact who opted out is asked to confirm ([audience].resubscribe)"
    );

    f.exec("update customers set consent_contact = false where id in (1, 2)")
        .await?;
    f.drain(&w).await?;
    for email in [ANA, "bo@pets.test"] {
        assert!(!permission(&f, email, "Email").await?, "withdrawn: {email}");
        assert_eq!(
            member(&f, email).await?.status,
            mailchimp::Status::Unsubscribed
        );
    }
    f.finish().await
}

/// Runs the binary with the groups mapping; returns its exit code and stdout.
async fn chimpsync(f: &Fixture, mapping: &str, args: &[&str]) -> Result<(i32, String, String)> {
    let mut cmd = f.command(args)?;
    cmd.env("CHIMPSYNC_CONFIG", f.mapping_file(mapping)?);
    let out = tokio::process::Command::from(cmd).output().await?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_a_planted_drift_in_a_group_and_fixes_it() -> Result<()> {
    let f = fixture().await?;
    let w = f.worker(|_| {})?;
    f.exec(
        "insert into customers (id, email, first_name, consent_contact, pet_type, wants_news)
         values (1, 'ana@pets.test', 'Ana', true, 'Dog', true),
                (2, 'bo@pets.test', 'Bo', true, 'Cat', false)",
    )
    .await?;
    f.drain(&w).await?;
    // Planted in Mailchimp: Ana's pet type flipped to Cat, her newsletter off; Bo's email
    // permission withdrawn.
    let ids = interest_ids(&f).await?;
    let mut drift = MemberUpsert::default();
    drift.interests.insert(ids["Pet type/Dog"].clone(), false);
    drift.interests.insert(ids["Pet type/Cat"].clone(), true);
    drift
        .interests
        .insert(ids["Newsletters/Monthly news"].clone(), false);
    f.mailchimp.upsert_member(AUDIENCE, ANA, &drift).await?;
    let bo = member(&f, "bo@pets.test").await?;
    let email = bo
        .marketing_permissions
        .iter()
        .find(|p| p.text == "Email")
        .context("Bo's email permission")?;
    f.mailchimp
        .set_member_permissions(
            AUDIENCE,
            "bo@pets.test",
            &[mailchimp::MarketingPermissionChange {
                marketing_permission_id: email.id.clone(),
                enabled: false,
            }],
        )
        .await?;

    let (code, out, err) = chimpsync(&f, &mapping(), &["reconcile", "--json", "--full"]).await?;
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out)?;
    let kinds: Vec<(String, String)> = report["differences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or("").to_owned(),
                d["customer_key"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("interests".to_owned(), "1".to_owned()),
            ("permissions".to_owned(), "2".to_owned())
        ],
        "{report:#}"
    );
    let detail = report["differences"][0]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("Pet type/Dog"), "{detail}");

    let (code, _, err) = chimpsync(&f, &mapping(), &["reconcile", "--apply", "--full"]).await?;
    assert_eq!(code, 0, "{err}");
    f.drain(&w).await?;
    assert_eq!(
        interests_on(&f, ANA).await?,
        vec!["Newsletters/Monthly news", "Pet type/Dog"]
    );
    assert!(permission(&f, "bo@pets.test", "Email").await?);
    let (_, out, _) = chimpsync(&f, &mapping(), &["reconcile", "--json", "--full"]).await?;
    let report: Value = serde_json::from_str(&out)?;
    assert_eq!(report["differences"], serde_json::json!([]), "{report:#}");
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_mailchimp_creates_the_groups_once_and_check_names_a_missing_gdpr_audience(
) -> Result<()> {
    let f = fixture().await?;
    f.exec(
        "insert into customers (id, email, consent_contact, pet_type)
         values (1, 'a@pets.test', true, 'Dog'), (2, 'b@pets.test', true, ' Cat '),
                (3, 'c@pets.test', true, null), (4, 'd@pets.test', true, 'Dog')",
    )
    .await?;
    let (code, out, err) = chimpsync(&f, &mapping(), &["setup", "--mailchimp"]).await?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("created interest category \"Pet type\""),
        "{out}"
    );
    assert!(
        out.contains("created interest \"Cat\" in \"Pet type\""),
        "{out}"
    );
    assert!(
        out.contains("created interest \"Offers\" in \"Newsletters\""),
        "{out}"
    );
    assert!(out.contains("6 created, 0 already there"), "{out}");
    let ids = interest_ids(&f).await?;
    assert_eq!(
        ids.keys().cloned().collect::<Vec<_>>(),
        vec![
            "Newsletters/Monthly news",
            "Newsletters/Offers",
            "Pet type/Cat",
            "Pet type/Dog"
        ]
    );
    let types: BTreeMap<String, String> = f
        .mailchimp
        .interest_categories(AUDIENCE)
        .await?
        .into_iter()
        .map(|c| (c.title, format!("{:?}", c.kind)))
        .collect();
    assert_eq!(types["Pet type"], "Dropdown");
    assert_eq!(types["Newsletters"], "Checkboxes");

    let (code, out, err) = chimpsync(&f, &mapping(), &["setup", "--mailchimp"]).await?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("interests of audience a1b2c3d4e5: 0 created"),
        "{out}"
    );
    assert_eq!(
        interest_ids(&f).await?,
        ids,
        "running it twice changes nothing"
    );

    let (code, out, _) = chimpsync(&f, &mapping(), &["check"]).await?;
    assert!(
        out.contains("interest category \"Pet type\" exists"),
        "{out}"
    );
    assert_eq!(code, 0, "{out}");

    // The same mapping against an audience without GDPR fields.
    let plain = Fixture::with(&mapping(), Config::default()).await?;
    let (code, out, err) = chimpsync(&plain, &mapping(), &["check"]).await?;
    assert_eq!(code, 3, "a configuration problem: {out}{err}");
    assert!(
        out.contains(
            "marketing_permissions.\"Email\": audience a1b2c3d4e5 has no marketing permissions"
        ),
        "{out}"
    );
    let (code, out, err) = chimpsync(&plain, &mapping(), &["setup", "--mailchimp"]).await?;
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("marketing_permissions.\"Email\""), "{err}");
    plain.finish().await?;
    f.finish().await
}
