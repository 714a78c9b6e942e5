//! The change triggers and `setup`: what each kind of change enqueues.

use anyhow::Result;
use chimpsync_tests::{TestDb, CUSTOMERS, MAPPING};
use serde_json::json;
use store::{Mapping, TriggerShape};
use tokio_postgres::Client;

#[derive(Debug)]
struct QueueRow {
    key: String,
    operation: String,
    email: Option<String>,
    previous_email: Option<String>,
    payload: serde_json::Value,
    version: i64,
}

async fn queue(client: &Client) -> Result<Vec<QueueRow>> {
    Ok(client
        .query(
            "select customer_key, operation, email, previous_email, payload, version from chimpsync.sync_queue order by customer_key",
            &[],
        )
        .await?
        .iter()
        .map(|r| QueueRow {
            key: r.get(0),
            operation: r.get(1),
            email: r.get(2),
            previous_email: r.get(3),
            payload: r.get(4),
            version: r.get(5),
        })
        .collect())
}

async fn fresh(shape: TriggerShape) -> Result<(TestDb, Client)> {
    let db = TestDb::new().await?;
    let mut client = db.client().await?;
    client.batch_execute(CUSTOMERS).await?;
    store::setup(&mut client, &Mapping::parse(MAPPING)?, shape).await?;
    Ok((db, client))
}

async fn for_each_shape<F, Fut>(f: F) -> Result<()>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for shape in [TriggerShape::Statement, TriggerShape::Row] {
        let (db, client) = fresh(shape).await?;
        f(client)
            .await
            .map_err(|e| e.context(format!("trigger shape {shape:?}")))?;
        db.finish().await?;
    }
    Ok(())
}

const INSERT_ANA: &str = "insert into customers values (1, 'Ana@Pets.test', 'Ana', 'Lima', 'Berlin', 'groomer', true, null, null)";

#[tokio::test]
async fn an_insert_enqueues_an_upsert_with_the_mapped_columns() -> Result<()> {
    for_each_shape(|c| async move {
        c.batch_execute(INSERT_ANA).await?;
        let rows = queue(&c).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key, "1");
        assert_eq!(rows[0].operation, "upsert");
        assert_eq!(rows[0].email.as_deref(), Some("Ana@Pets.test"));
        assert_eq!(rows[0].previous_email, None);
        assert_eq!(
            rows[0].payload,
            json!({"merge_fields": {"FNAME": "Ana", "LNAME": "Lima", "STORE": "Berlin"},
                   "tags": {"customer_type": "groomer"}, "consent": true})
        );
        Ok(())
    })
    .await
}

async fn synced_ana(c: &Client) -> Result<()> {
    c.batch_execute(INSERT_ANA).await?;
    // Pretend the worker delivered it.
    c.batch_execute("delete from chimpsync.sync_queue").await?;
    Ok(())
}

#[tokio::test]
async fn an_update_of_a_mapped_column_enqueues_the_new_state() -> Result<()> {
    for_each_shape(|c| async move {
        synced_ana(&c).await?;
        c.batch_execute("update customers set last_name = 'Souza' where id = 1")
            .await?;
        let rows = queue(&c).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].operation, "upsert");
        assert_eq!(rows[0].payload["merge_fields"]["LNAME"], "Souza");
        assert_eq!(rows[0].previous_email, None);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_update_of_an_unmapped_column_enqueues_nothing() -> Result<()> {
    for_each_shape(|c| async move {
        synced_ana(&c).await?;
        c.batch_execute("update customers set notes = 'likes cats' where id = 1")
            .await?;
        c.batch_execute("update customers set last_name = last_name where id = 1")
            .await?;
        assert!(queue(&c).await?.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_consent_change_enqueues_the_new_consent() -> Result<()> {
    for_each_shape(|c| async move {
        synced_ana(&c).await?;
        c.batch_execute("update customers set consent_contact = false where id = 1").await?;
        let rows = queue(&c).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].payload["consent"], false);
        c.batch_execute("delete from chimpsync.sync_queue; update customers set consent_contact = null where id = 1")
            .await?;
        // false -> null: both mean "no consent", nothing to send.
        assert!(queue(&c).await?.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_email_change_keeps_the_previous_address() -> Result<()> {
    for_each_shape(|c| async move {
        synced_ana(&c).await?;
        c.batch_execute("update customers set email = 'ana.lima@pets.test' where id = 1")
            .await?;
        c.batch_execute("update customers set email = 'ana3@pets.test' where id = 1")
            .await?;
        let rows = queue(&c).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].email.as_deref(), Some("ana3@pets.test"));
        assert_eq!(
            rows[0].previous_email.as_deref(),
            Some("Ana@Pets.test"),
            "the address Mailchimp knows"
        );
        // Changing back to the synced address leaves nothing to rename.
        c.batch_execute("update customers set email = 'ana@pets.test' where id = 1")
            .await?;
        assert_eq!(queue(&c).await?[0].previous_email, None);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_delete_enqueues_a_removal_of_the_address() -> Result<()> {
    for_each_shape(|c| async move {
        synced_ana(&c).await?;
        c.batch_execute("delete from customers where id = 1")
            .await?;
        let rows = queue(&c).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].operation, "remove");
        assert_eq!(rows[0].email.as_deref(), Some("Ana@Pets.test"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_row_leaving_the_filter_is_a_removal_and_coming_back_an_upsert() -> Result<()> {
    for_each_shape(|c| async move {
        synced_ana(&c).await?;
        c.batch_execute("update customers set deleted_at = now() where id = 1")
            .await?;
        let rows = queue(&c).await?;
        assert_eq!(rows[0].operation, "remove");
        c.batch_execute("update customers set notes = 'x' where id = 1")
            .await?;
        assert_eq!(
            queue(&c).await?[0].version,
            1,
            "changes outside the filter are not changes"
        );
        c.batch_execute("update customers set deleted_at = null where id = 1")
            .await?;
        let rows = queue(&c).await?;
        assert_eq!(rows[0].operation, "upsert");
        assert_eq!(rows[0].version, 2);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn rows_outside_the_filter_or_without_an_address_enqueue_nothing() -> Result<()> {
    for_each_shape(|c| async move {
        c.batch_execute(
            "insert into customers (id, email, deleted_at) values (2, 'gone@pets.test', now());
             insert into customers (id, email) values (3, null), (4, '   ');",
        )
        .await?;
        assert!(queue(&c).await?.is_empty());
        c.batch_execute("update customers set email = 'now@pets.test' where id = 3")
            .await?;
        assert_eq!(queue(&c).await?.len(), 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_burst_of_updates_leaves_one_row_with_the_latest_state() -> Result<()> {
    for_each_shape(|c| async move {
        synced_ana(&c).await?;
        for i in 1..=5 {
            c.batch_execute(&format!(
                "update customers set store = 'Store {i}' where id = 1"
            ))
            .await?;
        }
        let rows = queue(&c).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].payload["merge_fields"]["STORE"], "Store 5");
        assert_eq!(rows[0].version, 5);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_delete_and_reinsert_of_one_key_in_a_transaction_is_an_upsert() -> Result<()> {
    for_each_shape(|c| async move {
        synced_ana(&c).await?;
        c.batch_execute(
            "begin; delete from customers where id = 1;
             insert into customers values (1, 'new@pets.test', 'Ana', 'Lima', 'Berlin', 'vet', true, null, null); commit;",
        )
        .await?;
        let rows = queue(&c).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].operation, "upsert");
        assert_eq!(rows[0].email.as_deref(), Some("new@pets.test"));
        assert_eq!(rows[0].payload["tags"]["customer_type"], "vet");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_bulk_update_enqueues_each_changed_customer_once() -> Result<()> {
    for_each_shape(|c| async move {
        c.batch_execute(
            "insert into customers (id, email, first_name, consent_contact)
             select g, 'c' || g || '@pets.test', 'N' || g, true from generate_series(1, 2000) g;
             delete from chimpsync.sync_queue;
             update customers set first_name = 'M' || id where id % 2 = 0;
             update customers set notes = 'unmapped';",
        )
        .await?;
        let n: i64 = c
            .query_one("select count(*) from chimpsync.sync_queue", &[])
            .await?
            .get(0);
        assert_eq!(n, 1000);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_parked_row_is_unparked_by_a_new_change() -> Result<()> {
    for_each_shape(|c| async move {
        c.batch_execute(INSERT_ANA).await?;
        c.batch_execute("update chimpsync.sync_queue set parked_at = now(), last_error = 'Invalid Resource', attempts = 3")
            .await?;
        c.batch_execute("update customers set email = 'fixed@pets.test' where id = 1").await?;
        let row = c
            .query_one("select parked_at is null, last_error, attempts from chimpsync.sync_queue", &[])
            .await?;
        assert!(row.get::<_, bool>(0));
        assert_eq!(row.get::<_, Option<String>>(1), None);
        assert_eq!(row.get::<_, i32>(2), 0);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn changes_marked_as_coming_from_mailchimp_are_not_echoed() -> Result<()> {
    for_each_shape(|c| async move {
        synced_ana(&c).await?;
        c.batch_execute(
            "begin; set local chimpsync.origin = 'mailchimp';
             update customers set consent_contact = false where id = 1; commit;",
        )
        .await?;
        assert!(queue(&c).await?.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn names_with_capitals_spaces_and_quotes_work() -> Result<()> {
    let db = TestDb::new().await?;
    let mut c = db.client().await?;
    c.batch_execute(
        r#"create schema "Pet Shop";
           create table "Pet Shop"."Customer List" ("Customer ID" uuid primary key, "E-mail" text,
               "First ""Name""" text, "Type" text, "Opt In" boolean)"#,
    )
    .await?;
    let mapping = Mapping::parse(
        r#"
[source]
table = '"Pet Shop"."Customer List"'
key = "Customer ID"
email = "E-mail"
consent = "Opt In"
[merge_fields]
FNAME = 'First "Name"'
[tags]
columns = ["Type"]
"#,
    )?;
    for shape in [TriggerShape::Row, TriggerShape::Statement] {
        store::setup(&mut c, &mapping, shape).await?;
        c.batch_execute(
            r#"delete from chimpsync.sync_queue;
               insert into "Pet Shop"."Customer List" values ('6f1c9a4e-7d1b-4f55-9a43-0c1f2e3d4b5a', 'q@pets.test', 'Q', 'vip', true)
               on conflict ("Customer ID") do update set "E-mail" = 'q2@pets.test'"#,
        )
        .await?;
        let rows = queue(&c).await?;
        assert_eq!(rows.len(), 1, "{shape:?}");
        assert_eq!(rows[0].key, "6f1c9a4e-7d1b-4f55-9a43-0c1f2e3d4b5a");
        assert_eq!(rows[0].payload["merge_fields"]["FNAME"], "Q");
        assert_eq!(rows[0].payload["tags"]["Type"], "vip");
    }
    db.finish().await
}

#[tokio::test]
async fn setup_is_idempotent_and_reinstalls_after_a_mapping_change() -> Result<()> {
    let (db, mut c) = fresh(TriggerShape::Statement).await?;
    let again = store::setup(&mut c, &Mapping::parse(MAPPING)?, TriggerShape::Statement).await?;
    assert!(again.applied_migrations.is_empty());
    let triggers: i64 = c
        .query_one("select count(*) from pg_trigger where tgrelid = 'public.customers'::regclass and not tgisinternal", &[])
        .await?
        .get(0);
    assert_eq!(triggers, 4, "insert, update, delete and truncate");
    // Map a new column: re-running setup must make it a synced column.
    let changed = MAPPING.replace("STORE = \"store\"", "STORE = \"store\"\nNOTES = \"notes\"");
    store::setup(&mut c, &Mapping::parse(&changed)?, TriggerShape::Statement).await?;
    c.batch_execute(INSERT_ANA).await?;
    c.batch_execute("delete from chimpsync.sync_queue; update customers set notes = 'now mapped'")
        .await?;
    assert_eq!(
        queue(&c).await?[0].payload["merge_fields"]["NOTES"],
        "now mapped"
    );
    db.finish().await
}

#[tokio::test]
async fn setup_moves_the_triggers_when_the_mapping_names_another_table() -> Result<()> {
    let (db, mut c) = fresh(TriggerShape::Statement).await?;
    c.batch_execute("create table public.clients (id int primary key, mail text)")
        .await?;
    let other = Mapping::parse("[source]\ntable='clients'\nkey='id'\nemail='mail'\n")?;
    let report = store::setup(&mut c, &other, TriggerShape::Statement).await?;
    assert_eq!(report.removed_from.as_deref(), Some("public.customers"));
    c.batch_execute(INSERT_ANA).await?;
    c.batch_execute("insert into clients values (7, 'c7@pets.test')")
        .await?;
    let rows = queue(&c).await?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, "7");
    db.finish().await
}

#[tokio::test]
async fn a_mapping_naming_a_missing_column_is_refused_and_changes_nothing() -> Result<()> {
    let db = TestDb::new().await?;
    let mut c = db.client().await?;
    c.batch_execute(CUSTOMERS).await?;
    let bad = MAPPING.replace("LNAME = \"last_name\"", "LNAME = \"surname\"");
    let err = store::setup(&mut c, &Mapping::parse(&bad)?, TriggerShape::Statement)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("merge_fields.LNAME") && err.contains("surname"),
        "{err}"
    );
    let schema: bool = c
        .query_one(
            "select exists (select 1 from pg_namespace where nspname = 'chimpsync')",
            &[],
        )
        .await?
        .get(0);
    assert!(!schema, "a failed setup must leave no schema behind");
    db.finish().await
}

#[tokio::test]
async fn two_setups_at_once_both_succeed() -> Result<()> {
    let db = TestDb::new().await?;
    db.client().await?.batch_execute(CUSTOMERS).await?;
    let mapping = Mapping::parse(MAPPING)?;
    let mut a = db.client().await?;
    let mut b = db.client().await?;
    let (ra, rb) = tokio::join!(
        store::setup(&mut a, &mapping, TriggerShape::Statement),
        store::setup(&mut b, &mapping, TriggerShape::Statement)
    );
    let (ra, rb) = (ra?, rb?);
    assert_eq!(
        ra.applied_migrations.len() + rb.applied_migrations.len(),
        store::sql::MIGRATIONS.len()
    );
    db.finish().await
}

#[tokio::test]
async fn every_named_query_prepares_against_the_migrated_schema() -> Result<()> {
    let (db, c) = fresh(TriggerShape::Statement).await?;
    for (name, sql) in store::sql::queries::PREPARED {
        c.prepare(sql)
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    let mapping = Mapping::parse(MAPPING)?;
    let generated = store::Generated::for_mapping(&c, &mapping).await?;
    c.prepare(&generated.backfill_chunk()).await?;
    c.prepare(&generated.count_rows()).await?;
    for (name, sql) in [
        ("inbound_applied", generated.inbound_applied()),
        ("reconcile_customers", generated.reconcile_customers()),
        ("reconcile_wanted", generated.reconcile_wanted()),
        ("reconcile_requeue", generated.reconcile_requeue()),
    ] {
        c.prepare(&sql)
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    db.finish().await
}

#[tokio::test]
async fn print_sql_output_applies_cleanly_to_a_fresh_database() -> Result<()> {
    let db = TestDb::new().await?;
    let c = db.client().await?;
    c.batch_execute(CUSTOMERS).await?;
    let mapping = Mapping::parse(MAPPING)?;
    let generated = store::Generated::for_mapping(&c, &mapping).await?;
    let sql = store::setup_sql(&generated, TriggerShape::Statement);
    c.batch_execute(&sql).await?;
    c.batch_execute(INSERT_ANA).await?;
    assert_eq!(queue(&c).await?.len(), 1);
    db.finish().await
}
