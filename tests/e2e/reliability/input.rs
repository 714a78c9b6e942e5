//! Bad input: odd addresses, odd values, odd keys, odd transactions, and bad settings. Each case
//! gets the documented behaviour and a clear message, and no good row is blocked or lost. (The
//! cases proven elsewhere are listed at the end of RELIABILITY.md.)

use std::time::Duration;

use anyhow::{Context, Result};
use chimpsync_tests::{url_with_db, Fixture, AUDIENCE, MAPPING};

use super::{count, doubled_contacts, Scenario};

/// Runs a `chimpsync` command to its end (killed after `limit`): exit code, stdout, stderr.
async fn run_to_end(
    cmd: std::process::Command,
    limit: Duration,
) -> Result<(Option<i32>, String, String)> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("chimpsync did not finish within {limit:?}"))??;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The last stderr line, which must be the one-line reason `chimpsync: ...`.
fn reason(stderr: &str) -> String {
    stderr.lines().last().unwrap_or_default().to_string()
}

/// Queue rows as (customer key, parked, last error).
async fn queue(f: &Fixture) -> Result<Vec<(String, bool, String)>> {
    Ok(f.queue_rows()
        .await?
        .into_iter()
        .map(|r| (r.1, r.2, r.3.unwrap_or_default()))
        .collect())
}

#[tokio::test]
async fn addresses_with_capitals_and_spaces_make_one_member_under_the_right_hash() -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::addresses_with_capitals_and_spaces_make_one_member_under_the_right_hash",
        "capitals and surrounding spaces in an address",
    )
    .tried(
        "a customer with '  Ana.Lima@PETS.test  '; then the same address rewritten as \
         'ana.lima@pets.test'; then a second customer with 'ANA.LIMA@pets.test '; then the first \
         customer moves to another address",
    )
    .asserted(
        "one member, stored trimmed ('Ana.Lima@PETS.test'), under md5('ana.lima@pets.test') = \
         0f216dcc18c4c2c32c63fdda1479dddb; the rewrite is an update of that member, not a new one; \
         the second customer is parked 'address already belongs to customer 1' (the owner check \
         compares trimmed addresses, so it cannot overwrite customer 1's member), and is \
         un-parked by itself and takes the member when customer 1 moves; audience = table at each \
         step",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec("insert into customers values (1, '  Ana.Lima@PETS.test  ', 'Ana', 'Lima', 'Berlin', 'groomer', true, null, null)")
        .await?;
    let first = f.drain(&w).await?;
    let members = f.emulator.members(AUDIENCE);
    assert_eq!(members.len(), 1, "{first:?} {:?}", f.queue_rows().await?);
    assert_eq!(members[0].id, "0f216dcc18c4c2c32c63fdda1479dddb");
    assert_eq!(members[0].email_address, "Ana.Lima@PETS.test");
    f.exec("update customers set email = 'ana.lima@pets.test' where id = 1")
        .await?;
    let queued = f.queue_rows().await?;
    let o = f.drain(&w).await?;
    assert_eq!(
        (o.acked, o.parked),
        (1, 0),
        "{queued:?} {:?} {:?}",
        f.queue_rows().await?,
        f.emulator.members(AUDIENCE)
    );
    assert_eq!(f.emulator.members(AUDIENCE).len(), 1, "still one member");
    f.assert_converged().await?;
    f.exec("insert into customers values (2, 'ANA.LIMA@pets.test ', 'Other', 'One', null, null, true, null, null)")
        .await?;
    let o = f.drain(&w).await?;
    assert_eq!(
        o.parked,
        1,
        "{o:?} {:?} {:?}",
        f.queue_rows().await?,
        f.emulator.members(AUDIENCE)
    );
    let rows = queue(&f).await?;
    assert!(
        rows[0]
            .2
            .starts_with("address already belongs to customer 1"),
        "{rows:?}"
    );
    assert_eq!(f.emulator.members(AUDIENCE).len(), 1);
    assert_eq!(
        f.member("ana.lima@pets.test").expect("member").merge_fields["FNAME"],
        "Ana"
    );
    f.assert_converged().await?;
    // Customer 1 gives the address up: customer 2's row (its address with a trailing space)
    // is un-parked by itself and takes the member.
    f.exec("update customers set email = 'ana.new@pets.test' where id = 1")
        .await?;
    let o = f.drain(&w).await?;
    assert_eq!(
        (o.acked, o.parked),
        (2, 0),
        "{o:?} {:?}",
        f.queue_rows().await?
    );
    assert_eq!(
        f.member("ana.lima@pets.test").expect("member").merge_fields["FNAME"],
        "Other"
    );
    f.assert_converged().await?;
    record.figure("members", f.emulator.members(AUDIENCE).len() as u64);
    record.figure("parked reason", rows[0].2.as_str());
    record.save()?;
    f.finish().await
}

#[tokio::test]
async fn unicode_invalid_and_fake_addresses_are_parked_with_the_reason_and_block_nothing(
) -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::unicode_invalid_and_fake_addresses_are_parked_with_the_reason_and_block_nothing",
        "unicode, invalid and fake addresses; unicode names",
    )
    .tried(
        "one batch mixing 13 addresses Mailchimp refuses (unicode local parts, an IDN domain, \
         '@@', '..', a leading dot, no dot in the domain, a numeric TLD, a space, fake domains in \
         any case) with 7 it takes (punycode domain, subdomain of example.com, apostrophe, plus \
         tag, and names in Chinese, with diacritics and an emoji)",
    )
    .asserted(
        "each refused address is parked with Mailchimp's reason ('valid email address' or 'looks \
         fake'); the 7 others are acknowledged in the same batch with their names exactly as \
         written; audience = table",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    let refused = [
        ("josé@pets.test", "valid email address"),
        ("李@pets.test", "valid email address"),
        ("ana@bücher.de", "valid email address"),
        ("ana@@pets.test", "valid email address"),
        ("ana..lima@pets.test", "valid email address"),
        (".ana@pets.test", "valid email address"),
        ("ana@pets", "valid email address"),
        ("ana@pets.123", "valid email address"),
        ("ana lima@pets.test", "valid email address"),
        ("not-an-address", "valid email address"),
        ("test@example.org", "looks fake"),
        ("someone@test.com", "looks fake"),
        ("Ana@Example.COM", "looks fake"),
    ];
    let taken = [
        ("ana@xn--bcher-kva.de", "Ana"),
        ("ana@sub.example.com", "Ana"),
        ("o'brien@pets.test", "Seán"),
        ("ana+pets@pets.test", "Zoë"),
        ("li@pets.test", "李雷"),
        ("rex@pets.test", "🐶 Rex"),
        ("mueller@pets.test", "Müller-Lüdenscheidt"),
    ];
    let client = &f.sql;
    for (i, (email, _)) in refused.iter().enumerate() {
        client
            .execute(
                "insert into customers (id, email, first_name, consent_contact) values ($1, $2, 'X', true)",
                &[&(i as i64 + 1), email],
            )
            .await?;
    }
    for (i, (email, name)) in taken.iter().enumerate() {
        client
            .execute(
                "insert into customers (id, email, first_name, consent_contact) values ($1, $2, $3, true)",
                &[&(i as i64 + 100), email, name],
            )
            .await?;
    }
    let o = w.drain_once().await?;
    assert_eq!(
        (o.acked, o.parked, o.retried),
        (taken.len(), refused.len(), 0),
        "{o:?}"
    );
    let rows = queue(&f).await?;
    for (i, (email, expected)) in refused.iter().enumerate() {
        let key = (i + 1).to_string();
        let row = rows
            .iter()
            .find(|r| r.0 == key)
            .with_context(|| format!("{email} is queued"))?;
        assert!(
            row.1 && row.2.contains(expected),
            "{email}: parked with {expected:?}: {row:?}"
        );
        record.figure(email, row.2.trim_start_matches("ERROR_GENERIC: "));
    }
    for (email, name) in taken {
        let m = f
            .member(email)
            .with_context(|| format!("{email} is a member"))?;
        assert_eq!(m.merge_fields["FNAME"], name, "{email}");
    }
    f.assert_converged().await?;
    record.figure("acknowledged in the same batch", taken.len() as u64);
    record.save()?;
    f.finish().await
}

#[tokio::test]
async fn a_null_empty_or_blank_address_sends_nothing_and_losing_the_address_removes_the_member(
) -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::a_null_empty_or_blank_address_sends_nothing_and_losing_the_address_removes_the_member",
        "NULL, empty and blank addresses",
    )
    .tried(
        "customers inserted with NULL, '' and '   ' as address beside 3 good ones; then the 3 \
         synced customers lose their address (NULL, '', '  '); then one gets it back",
    )
    .asserted(
        "no address: nothing queued, nothing sent (3 member writes for the 3 good customers); \
         losing the address is a removal (archived per on_remove, the customer forgotten in \
         synced_contacts); getting it back revives the member (subscribed again); audience = table",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(
        "insert into customers (id, email, first_name, consent_contact) values
            (1, null, 'Null', true), (2, '', 'Empty', true), (3, '   ', 'Blank', true),
            (4, 'c4@pets.test', 'Four', true), (5, 'c5@pets.test', 'Five', true),
            (6, 'c6@pets.test', 'Six', true)",
    )
    .await?;
    assert_eq!(
        count(&f, "select count(*) from chimpsync.sync_queue").await?,
        3
    );
    f.drain(&w).await?;
    assert_eq!(f.emulator.stats().member_writes, 3, "nothing sent for 1-3");
    f.exec(
        "update customers set email = null where id = 4;
         update customers set email = '' where id = 5;
         update customers set email = '  ' where id = 6",
    )
    .await?;
    let o = f.drain(&w).await?;
    assert_eq!((o.acked, o.parked), (3, 0));
    for id in 4..=6 {
        assert_eq!(
            f.member(&format!("c{id}@pets.test")).map(|m| m.status),
            Some("archived".to_string())
        );
    }
    assert_eq!(
        count(&f, "select count(*) from chimpsync.synced_contacts").await?,
        0
    );
    f.assert_converged().await?;
    f.exec("update customers set email = 'c4@pets.test' where id = 4")
        .await?;
    f.drain(&w).await?;
    assert_eq!(
        f.member("c4@pets.test").map(|m| m.status),
        Some("subscribed".to_string())
    );
    f.assert_converged().await?;
    record.figure("member writes for 3 address-less + 3 good customers", 3);
    record.figure("removals when the address went", o.acked as u64);
    record.save()?;
    f.finish().await
}

#[tokio::test]
async fn merge_values_over_mailchimps_limit_are_parked_naming_the_field() -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::merge_values_over_mailchimps_limit_are_parked_naming_the_field",
        "merge values longer than Mailchimp accepts",
    )
    .tried(
        "FNAME of 255 ASCII characters, FNAME of 255 two-byte characters ('é'), FNAME of 256, \
         STORE of 300, beside a good customer; then the 256 one is shortened",
    )
    .asserted(
        "255 characters pass whatever their bytes; 256 and 300 are parked with Mailchimp's field \
         error naming the merge tag ('FNAME: Value must be 255 characters or fewer'); the good \
         row goes through; the shortened one is un-parked by its change and synced; audience = \
         table",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec(
        "insert into customers (id, email, first_name, store, consent_contact) values
            (1, 'a255@pets.test', repeat('x', 255), null, true),
            (2, 'e255@pets.test', repeat('é', 255), null, true),
            (3, 'a256@pets.test', repeat('x', 256), null, true),
            (4, 's300@pets.test', 'S', repeat('s', 300), true),
            (5, 'good@pets.test', 'Good', 'Berlin', true)",
    )
    .await?;
    let o = w.drain_once().await?;
    assert_eq!((o.acked, o.parked), (3, 2), "{o:?}");
    let rows = queue(&f).await?;
    let reason_of = |key: &str| {
        rows.iter()
            .find(|r| r.0 == key)
            .map(|r| r.2.clone())
            .unwrap_or_default()
    };
    assert!(reason_of("3").contains("FNAME: Value must be 255 characters or fewer"));
    assert!(reason_of("4").contains("STORE: Value must be 255 characters or fewer"));
    assert_eq!(
        f.member("e255@pets.test").expect("member").merge_fields["FNAME"]
            .as_str()
            .map(|s| s.chars().count()),
        Some(255)
    );
    f.exec("update customers set first_name = repeat('x', 255) where id = 3")
        .await?;
    let o = f.drain(&w).await?;
    assert_eq!((o.acked, o.parked), (1, 0));
    f.assert_converged().await?;
    record.figure(
        "FNAME of 256",
        reason_of("3").trim_start_matches("ERROR_GENERIC: "),
    );
    record.figure(
        "STORE of 300",
        reason_of("4").trim_start_matches("ERROR_GENERIC: "),
    );
    record.save()?;
    f.finish().await
}

#[tokio::test]
async fn nulls_in_every_mapped_column_sync_as_empty_values_and_no_consent() -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::nulls_in_every_mapped_column_sync_as_empty_values_and_no_consent",
        "NULL in every mapped column",
    )
    .tried(
        "a customer with an address and NULL in every other mapped column (names, store, tag \
         column, consent); then every column set; then every column NULL again",
    )
    .asserted(
        "NULL consent is no consent: created unsubscribed, never subscribed; NULL merge values \
         are empty, a NULL tag column sets no tag; setting them fills the member (consent given: \
         pending confirmation); NULL again clears the values, takes chimpsync's tag off and \
         unsubscribes; audience = table at each step",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec("insert into customers (id, email) values (1, 'ana@pets.test')")
        .await?;
    f.drain(&w).await?;
    let m = f.member("ana@pets.test").expect("member");
    assert_eq!(m.status, "unsubscribed");
    assert!(m.merge_fields.is_empty() && m.tags.is_empty(), "{m:?}");
    f.assert_converged().await?;
    f.exec("update customers set first_name = 'Ana', last_name = 'Lima', store = 'Berlin', customer_type = 'groomer', consent_contact = true")
        .await?;
    f.drain(&w).await?;
    let m = f.member("ana@pets.test").expect("member");
    assert_eq!(
        (m.status.as_str(), m.tags.clone()),
        ("pending", vec!["groomer".to_string()])
    );
    f.assert_converged().await?;
    f.exec("update customers set first_name = null, last_name = null, store = null, customer_type = null, consent_contact = null")
        .await?;
    f.drain(&w).await?;
    let m = f.member("ana@pets.test").expect("member");
    assert_eq!(m.status, "unsubscribed");
    assert!(m.merge_fields.is_empty() && m.tags.is_empty(), "{m:?}");
    f.assert_converged().await?;
    record.figure("status with NULL consent", "unsubscribed");
    record.figure("merge fields and tags with NULLs", "none");
    record.save()?;
    f.finish().await
}

#[tokio::test]
async fn uuid_and_text_keys_sync_like_integer_keys() -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::uuid_and_text_keys_sync_like_integer_keys",
        "a key column of type uuid, and of type text",
    )
    .tried(
        "the customer table re-created with `id uuid default gen_random_uuid()`, and again with \
         `id text` holding 'CUST-0001', a quote, 'ü/ß', ' spaced ', '42', 'A' and 'a', 300 \
         characters; 40 customers each, then field changes, address changes and deletes",
    )
    .asserted(
        "each key type syncs like an integer key: every customer reaches Mailchimp, renames \
         rename, deletes archive, synced_contacts holds the keys as text, nothing parked; \
         audience = table",
    );
    for key in ["uuid default gen_random_uuid()", "text"] {
        let mut f = Fixture::new().await?;
        f.exec(&format!(
            "set chimpsync.allow_ddl = on;
             drop table customers;
             create table public.customers (
                 id {key} primary key, email text, first_name text, last_name text, store text,
                 customer_type text, consent_contact boolean, notes text, deleted_at timestamptz)"
        ))
        .await?;
        store::setup(&mut f.sql, &f.mapping, store::TriggerShape::Statement).await?;
        if key == "text" {
            f.exec(
                "insert into customers (id, email, first_name, consent_contact) values
                    ('CUST-0001', 'k1@pets.test', 'K', true), ('o''brien', 'k2@pets.test', 'K', true),
                    ('ü/ß', 'k3@pets.test', 'K', true), (' spaced ', 'k4@pets.test', 'K', true),
                    ('42', 'k5@pets.test', 'K', true), ('A', 'k6@pets.test', 'K', true),
                    ('a', 'k7@pets.test', 'K', true), (repeat('k', 300), 'k8@pets.test', 'K', true);
                 insert into customers (id, email, first_name, consent_contact)
                 select 'T' || g, 't' || g || '@pets.test', 'T', true from generate_series(9, 40) g",
            )
            .await?;
        } else {
            f.exec(
                "insert into customers (email, first_name, customer_type, consent_contact)
                 select 'u' || g || '@pets.test', 'U' || g, 'groomer', g % 3 <> 0 from generate_series(1, 40) g",
            )
            .await?;
        }
        let w = f.worker(|_| {})?;
        let o = f.drain(&w).await?;
        assert_eq!((o.acked, o.parked), (40, 0), "{key}");
        f.assert_converged().await?;
        f.exec(
            "update customers set last_name = 'Changed' where email like '%1%@pets.test';
             update customers set email = 'moved.' || email where email like '%2@pets.test' and consent_contact;
             delete from customers where email like '%3@pets.test'",
        )
        .await?;
        let o = f.drain(&w).await?;
        assert_eq!(o.parked, 0, "{key}");
        f.assert_converged().await?;
        let doubled = doubled_contacts(&f).await?;
        assert!(doubled.is_empty(), "{key}: {doubled:?}");
        let keys_match = count(
            &f,
            "select count(*) from chimpsync.synced_contacts s join customers c on c.id::text = s.customer_key",
        )
        .await?;
        assert_eq!(
            keys_match,
            count(&f, "select count(*) from customers").await?,
            "{key}"
        );
        let kind = key.split_whitespace().next().unwrap_or(key);
        record.figure(&format!("{kind} key: customers synced"), keys_match);
        record.figure(
            &format!("{kind} key: changes after the first sync"),
            o.acked as u64,
        );
        f.finish().await?;
    }
    record.save()
}

#[tokio::test]
async fn a_delete_and_reinsert_of_one_key_in_one_transaction_updates_the_member() -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::a_delete_and_reinsert_of_one_key_in_one_transaction_updates_the_member",
        "a customer deleted and re-inserted with the same key in one transaction",
    )
    .tried(
        "a synced customer deleted and re-inserted (same key, same address, new last name) in one \
         transaction; then again with a new address",
    )
    .asserted(
        "the queue holds one upsert, not a removal: the member is updated in place (one member \
         write, never archived); with a new address the member is renamed (one member in all, no \
         doubled contact); audience = table",
    );
    let f = Fixture::new().await?;
    let w = f.worker(|_| {})?;
    f.exec("insert into customers values (1, 'ana@pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', true, null, null)")
        .await?;
    f.drain(&w).await?;
    let writes = f.emulator.stats().member_writes;
    f.exec(
        "begin;
         delete from customers where id = 1;
         insert into customers values (1, 'ana@pets.test', 'Ana', 'Souza', 'Berlin', 'groomer', true, null, null);
         commit;",
    )
    .await?;
    f.drain(&w).await?;
    let m = f.member("ana@pets.test").expect("member");
    assert_eq!(
        (m.status.as_str(), &m.merge_fields["LNAME"]),
        ("subscribed", &serde_json::json!("Souza"))
    );
    assert_eq!(
        f.emulator.stats().member_writes - writes,
        1,
        "one update, no archive"
    );
    f.exec(
        "begin;
         delete from customers where id = 1;
         insert into customers values (1, 'ana.new@pets.test', 'Ana', 'Souza', 'Berlin', 'groomer', true, null, null);
         commit;",
    )
    .await?;
    f.drain(&w).await?;
    assert_eq!(
        f.emulator.members(AUDIENCE).len(),
        1,
        "renamed, not doubled"
    );
    assert!(f.member("ana.new@pets.test").is_some());
    f.assert_converged().await?;
    record.figure("member writes for the same-address re-insert", 1);
    record.figure("members after the new-address re-insert", 1);
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_bad_mapping_file_exits_with_the_reason_and_touches_no_row() -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::run_with_a_bad_mapping_file_exits_with_the_reason_and_touches_no_row",
        "`run` with a bad or truncated mapping file",
    )
    .tried(
        "5 rows queued; `chimpsync run --once` with a truncated mapping file, one with an unknown \
         key, one whose merge tag is malformed, and a path that does not exist",
    )
    .asserted(
        "each exits non-zero with one line naming the file or the key; the queue is untouched \
         (5 rows, no attempt counted); afterwards the good mapping syncs all 5",
    );
    let f = Fixture::new().await?;
    f.insert_customers(5, 1).await?;
    let cases = [
        ("truncated", MAPPING[..60].to_string(), "mapping file"),
        (
            "unknown key",
            MAPPING.replace("[tags]", "[tags]\ncolour = \"blue\""),
            "colour",
        ),
        (
            "malformed merge tag",
            MAPPING.replace("STORE = ", "STORE_NAME_TOO_LONG = "),
            "STORE_NAME_TOO_LONG",
        ),
    ];
    for (what, text, names) in &cases {
        let path = f.mapping_file(text)?;
        let mut cmd = f.command(&["run", "--once"])?;
        cmd.env("CHIMPSYNC_CONFIG", &path);
        let (code, _, err) = run_to_end(cmd, Duration::from_secs(30)).await?;
        let line = reason(&err);
        assert!(
            code != Some(0) && line.starts_with("chimpsync: ") && line.contains(names),
            "{what}: {code:?} {err}"
        );
        record.figure(what, line.replace(&path.display().to_string(), "FILE"));
    }
    let mut cmd = f.command(&["run", "--once"])?;
    cmd.env("CHIMPSYNC_CONFIG", "/nonexistent/chimpsync.toml");
    let (code, _, err) = run_to_end(cmd, Duration::from_secs(30)).await?;
    assert!(
        code != Some(0) && reason(&err).contains("/nonexistent/chimpsync.toml"),
        "{err}"
    );
    record.figure("missing file", reason(&err).as_str());
    assert_eq!(
        count(
            &f,
            "select count(*) from chimpsync.sync_queue where attempts = 0"
        )
        .await?,
        5,
        "no row touched"
    );
    let (code, out, err) =
        run_to_end(f.command(&["run", "--once"])?, Duration::from_secs(60)).await?;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("5 acknowledged"), "{out}");
    f.assert_converged().await?;
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_wrong_key_or_an_unknown_audience_keeps_every_row_with_the_reason() -> Result<()>
{
    let mut record = Scenario::new(
        "input",
        "reliability::input::run_with_a_wrong_key_or_an_unknown_audience_keeps_every_row_with_the_reason",
        "`run` with a wrong API key, and with an unknown audience",
    )
    .tried(
        "5 rows queued; `chimpsync run --once` with a well-formed key the emulator refuses; then \
         with MAILCHIMP_AUDIENCE_ID naming no audience; then with the right settings",
    )
    .asserted(
        "nothing is sent, deleted or parked: every row stays queued, retrying, with the reason \
         in last_error ('401 API Key Invalid', '404 Resource Not Found'), and the run says '5 \
         retrying' and exits 6 (partly done); the key never appears in the output; the right \
         settings then sync all 5",
    );
    let f = Fixture::new().await?;
    f.insert_customers(5, 1).await?;
    let wrong_key = "ffffffffffffffffffffffffffffffff-us6";
    for (variable, value, why) in [
        ("MAILCHIMP_API_KEY", wrong_key, "HTTP 401 API Key Invalid"),
        (
            "MAILCHIMP_AUDIENCE_ID",
            "0000000000",
            "HTTP 404 Resource Not Found",
        ),
    ] {
        let mut cmd = f.command(&["run", "--once"])?;
        cmd.env(variable, value);
        let (code, out, err) = run_to_end(cmd, Duration::from_secs(30)).await?;
        let rows = queue(&f).await?;
        assert!(
            rows.len() == 5 && rows.iter().all(|r| !r.1 && r.2.contains(why)),
            "{variable}: every row kept with {why:?}: {rows:?}"
        );
        assert!(f.emulator.members(AUDIENCE).is_empty());
        assert!(
            out.contains("0 acknowledged") && out.contains("retrying"),
            "{variable}: {out}"
        );
        assert_eq!(code, Some(6), "{variable}: rows left retrying: {err}");
        assert!(
            reason(&err).contains("5 waiting for a retry"),
            "{variable}: {err}"
        );
        assert!(!out.contains(&wrong_key[..32]) && !err.contains(&wrong_key[..32]));
        record.figure(
            &format!("{variable} wrong: exit"),
            code.map(i64::from).unwrap_or(-1),
        );
        record.figure(&format!("{variable} wrong: said"), out.trim());
        record.figure(&format!("{variable} wrong: last_error"), rows[0].2.as_str());
        // Due again at once, for the next case.
        f.exec("update chimpsync.sync_queue set next_attempt_at = now()")
            .await?;
    }
    let (code, out, err) =
        run_to_end(f.command(&["run", "--once"])?, Duration::from_secs(60)).await?;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("5 acknowledged"), "{out}");
    f.assert_converged().await?;
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_wrong_database_url_exits_with_a_one_line_reason() -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::run_with_a_wrong_database_url_exits_with_a_one_line_reason",
        "`run` with a wrong DATABASE_URL",
    )
    .tried(
        "`chimpsync run` with DATABASE_URL pointing at a closed port (with a password in it), at \
         a database that does not exist, and with a string that is not a URL",
    )
    .asserted(
        "each exits non-zero within seconds with one line that says why (connection refused; \
         the database does not exist, with Postgres's message and SQLSTATE 3D000; the URL is \
         malformed), and the password is never printed",
    );
    let f = Fixture::new().await?;
    let missing_db = url_with_db(&f.db.url, "chimpsync_no_such_database");
    for (what, url, says) in [
        (
            "closed port",
            "postgres://postgres:hunter2secret@127.0.0.1:1/none".to_string(),
            "cannot reach the database",
        ),
        (
            "no such database",
            missing_db,
            "does not exist (SQLSTATE 3D000)",
        ),
        ("not a URL", "not a url".to_string(), "DATABASE_URL"),
    ] {
        let mut cmd = f.command(&["run"])?;
        cmd.env("DATABASE_URL", &url);
        let (code, out, err) = run_to_end(cmd, Duration::from_secs(30)).await?;
        let line = reason(&err);
        assert!(
            code != Some(0) && line.starts_with("chimpsync: ") && line.contains(says),
            "{what}: {code:?} {err}"
        );
        assert!(!out.contains("hunter2secret") && !err.contains("hunter2secret"));
        record.figure(what, line.as_str());
    }
    record.save()?;
    f.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_with_no_room_for_a_request_is_refused_at_start() -> Result<()> {
    let mut record = Scenario::new(
        "input",
        "reliability::input::a_lease_with_no_room_for_a_request_is_refused_at_start",
        "a lease that leaves no time to send",
    )
    .tried(
        "`chimpsync run --once` with CHIMPSYNC_LEASE_SECONDS=3 and \
         CHIMPSYNC_REQUEST_TIMEOUT_SECONDS=2 (the lease exceeds the timeout, but a batch starts \
         requests only until lease - timeout - 1 s after its claim)",
    )
    .asserted(
        "refused at start with one line naming the lease, the timeout and the margin; no row \
         touched. (Before the fix the setting was accepted and the worker claimed and released \
         the same rows in a hot loop, never sending one, and `run --once` never returned.)",
    );
    let f = Fixture::new().await?;
    f.insert_customers(5, 1).await?;
    let mut cmd = f.command(&["run", "--once"])?;
    cmd.env("CHIMPSYNC_LEASE_SECONDS", "3")
        .env("CHIMPSYNC_REQUEST_TIMEOUT_SECONDS", "2");
    let (code, _, err) = run_to_end(cmd, Duration::from_secs(30)).await?;
    let line = reason(&err);
    assert!(
        code != Some(0) && line.contains("lease") && line.contains("plus 1s"),
        "{code:?} {err}"
    );
    assert_eq!(
        count(
            &f,
            "select count(*) from chimpsync.sync_queue where attempts = 0"
        )
        .await?,
        5
    );
    // The smallest lease that leaves room works.
    let mut cmd = f.command(&["run", "--once"])?;
    cmd.env("CHIMPSYNC_LEASE_SECONDS", "3.5")
        .env("CHIMPSYNC_REQUEST_TIMEOUT_SECONDS", "2");
    let (code, out, err) = run_to_end(cmd, Duration::from_secs(30)).await?;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("5 acknowledged"), "{out}");
    record.figure("said", line.as_str());
    record.save()?;
    f.finish().await
}
