//! The demo's second part: many businesses from one installation. Each store of the pet table is
//! a business with its own Mailchimp account; one is synced, one is switched off (its changes
//! wait in the queue) and then switched on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mailchimp::{ApiKey, Client, ClientConfig};
use mailchimp_emulator::{Config as EmulatorConfig, Emulator};
use secrets::{KeyRing, SecretKey};
use store::accounts::KeyEncryption;
use store::{Mapping, Queue, SetupOptions, TriggerShape};
use tokio_util::sync::CancellationToken;

use crate::fixture::{self, MAPPING};
use crate::{say, server};

/// The database of this part.
const DEMO_DB: &str = "chimpsync_demo_accounts";

/// The two businesses: (store, API key, audience).
const PORTO: (&str, &str, &str) = (
    "Porto",
    "11111111111111111111111111111111-us7",
    "porto00001",
);
const LISBON: (&str, &str, &str) = (
    "Lisbon",
    "22222222222222222222222222222222-us8",
    "lisbon0001",
);

/// How long an account may take to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) async fn run(
    server: &str,
    admin: &tokio_postgres::Client,
    customers: i64,
) -> Result<()> {
    say("7. Many businesses from one installation: each store is a business with its own");
    say("   Mailchimp account (API key and audience), in chimpsync.accounts");
    server::recreate(admin, DEMO_DB).await?;
    let url = server::with_database(server, DEMO_DB)?;
    let mut db = store::connect(&url).await?;
    db.batch_execute(fixture::CUSTOMERS).await?;
    db.batch_execute(&fixture::sample(customers)).await?;
    let accounts = [PORTO, LISBON];
    let emulator = Emulator::start(
        "127.0.0.1:0".parse().expect("literal address"),
        EmulatorConfig {
            accounts: accounts
                .iter()
                .map(|(_, key, audience)| (key.to_string(), audience.to_string()))
                .collect(),
            ..Default::default()
        },
    )
    .await
    .context("starting the emulator")?;
    for (_, key, audience) in accounts {
        client(&emulator, key)?
            .create_merge_field(audience, &fixture::store_merge_field())
            .await?;
    }
    let mapping_text = MAPPING.replace(
        "filter  = \"deleted_at is null\"",
        "filter  = \"deleted_at is null\"\naccount = \"store\"",
    );
    say("   the mapping gains one line in [source]: account = \"store\"");
    say("   the worker's secret (CHIMPSYNC_SECRET_KEY; `chimpsync secret generate` makes one)");
    let secret = tokio::task::spawn_blocking(SecretKey::generate).await??;
    let (public_key, fingerprint) = (secret.public_key_armored(), secret.fingerprint());
    store::setup_with(
        &mut db,
        &Mapping::parse(&mapping_text)?,
        TriggerShape::Statement,
        SetupOptions {
            key_encryption: Some(KeyEncryption {
                public_key: &public_key,
                fingerprint: &fingerprint,
            }),
            ..SetupOptions::default()
        },
    )
    .await?;
    say(
        "   the settings page connects each business with SQL alone (the key is stored encrypted):",
    );
    say("     select chimpsync.connect_account('Porto', 'porto00001', '<its API key>');");
    say("     select chimpsync.connect_account('Lisbon', 'lisbon0001', '<its API key>', enabled => false);");
    db.execute(
        "select chimpsync.connect_account($1, $2, $3)",
        &[&PORTO.0, &PORTO.2, &PORTO.1],
    )
    .await?;
    db.execute(
        "select chimpsync.connect_account($1, $2, $3, enabled => false)",
        &[&LISBON.0, &LISBON.2, &LISBON.1],
    )
    .await?;
    let backfill = store::backfill::Backfill::new(&db, &Mapping::parse(&mapping_text)?).await?;
    let mut after: Option<String> = None;
    loop {
        let chunk = backfill.chunk(&db, after.as_deref(), 5000).await?;
        after = chunk.last_key;
        if after.is_none() {
            break;
        }
    }
    let pool = store::pool(&url, 8, Duration::from_secs(30))?;
    let mut settings = worker::Settings::new("(each account's own)");
    settings.poll_interval = Duration::from_millis(50);
    let opener = worker::KeyRingOpener::new(
        KeyRing::new(secret, None),
        Some(emulator.base_url()),
        Duration::from_secs(5),
        Duration::from_secs(30),
    );
    let worker =
        worker::Worker::for_accounts(Queue::for_accounts(pool), Arc::new(opener), settings)?;
    let stop = CancellationToken::new();
    let running = {
        let (worker, stop) = (worker.clone(), stop.clone());
        tokio::spawn(async move { worker.run(stop, false).await })
    };
    wait_drained(&db, PORTO.0).await?;
    db.batch_execute("update customers set last_name = last_name || '-Silva' where store = 'Lisbon' and id % 10 = 0")
        .await?;
    summary(
        &db,
        &emulator,
        "   after the initial sync, Lisbon switched off and some Lisbon customers edited:",
    )
    .await?;
    say("   Lisbon switches \"Mailchimp Sync\" on: select chimpsync.enable_account('Lisbon');");
    let started = Instant::now();
    db.execute("select chimpsync.enable_account($1)", &[&LISBON.0])
        .await?;
    wait_drained(&db, LISBON.0).await?;
    say(format!(
        "   Lisbon's waiting changes reached its audience in {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    summary(&db, &emulator, "   now:").await?;
    say("   (Braga and Faro have no account: their customers wait, counted as 'unknown')");
    stop.cancel();
    running.await??;
    let (lisbon_customers, lisbon_members) = (
        customers_of(&db, LISBON.0).await?,
        emulator.members_of(LISBON.1, LISBON.2).len() as i64,
    );
    emulator.shutdown().await;
    if lisbon_customers != lisbon_members {
        bail!("Lisbon's audience has {lisbon_members} members for {lisbon_customers} customers");
    }
    say(format!(
        "Each business's audience holds its own customers. psql -d {DEMO_DB} -c 'table chimpsync.account_summary'"
    ));
    Ok(())
}

fn client(emulator: &Emulator, key: &str) -> Result<Client> {
    let mut config = ClientConfig::new(ApiKey::parse(key)?);
    config.base_url = Some(emulator.base_url());
    Ok(Client::new(config)?)
}

async fn customers_of(db: &tokio_postgres::Client, store_name: &str) -> Result<i64> {
    Ok(db
        .query_one(
            "select count(*) from customers where store = $1 and deleted_at is null",
            &[&store_name],
        )
        .await?
        .get(0))
}

/// Prints `chimpsync.account_summary` and each account's audience size.
async fn summary(db: &tokio_postgres::Client, emulator: &Emulator, title: &str) -> Result<()> {
    say(title);
    for row in db
        .query(
            "select account, state, pending + in_flight + retrying, api_key_last4 from chimpsync.account_summary order by account",
            &[],
        )
        .await?
    {
        let account: String = row.get(0);
        let members = [PORTO, LISBON]
            .iter()
            .find(|(name, _, _)| *name == account)
            .map(|(_, key, audience)| emulator.members_of(key, audience).len().to_string())
            .unwrap_or_else(|| "-".into());
        say(format!(
            "     {account:<7} state={:<8} waiting={:<5} key=...{} audience members={members}",
            row.get::<_, String>(1),
            row.get::<_, i64>(2),
            row.get::<_, Option<String>>(3).unwrap_or_default(),
        ));
    }
    Ok(())
}

async fn wait_drained(db: &tokio_postgres::Client, account: &str) -> Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let waiting: i64 = db
            .query_one(
                "select coalesce(sum(pending + in_flight + retrying), 0)::bigint from chimpsync.account_summary where account = $1",
                &[&account],
            )
            .await?
            .get(0);
        if waiting == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{account}'s queue did not drain within {DRAIN_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
