//! The harness of the end-to-end tests: a fresh database per test, the emulator in-process,
//! helpers to read the queue and compare the audience with the table.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::{Client, NoTls};

/// The server the tests use: `DATABASE_URL`, else the local default.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database made for one test. Call [`TestDb::finish`] at the end of a passing test to drop it;
/// a failing test leaves it behind for inspection.
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// Its connection URL.
    pub url: String,
    admin: Client,
}

async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| "connecting to Postgres (set DATABASE_URL)".to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Replaces the database name in a URL.
pub fn url_with_db(url: &str, db: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("DATABASE_URL is a URL");
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

impl TestDb {
    /// Creates a fresh, empty database.
    pub async fn new() -> Result<TestDb> {
        let server = server_url();
        let admin = connect(&server).await?;
        let name = format!("chimpsync_test_{}", uuid::Uuid::new_v4().simple());
        admin.batch_execute(&format!("create database {name}")).await?;
        let url = url_with_db(&server, &name);
        Ok(TestDb { name, url, admin })
    }

    /// A new connection to the test database.
    pub async fn client(&self) -> Result<Client> {
        connect(&self.url).await
    }

    /// Drops the database (call when the test passed).
    pub async fn finish(self) -> Result<()> {
        self.admin
            .batch_execute(&format!("drop database if exists {} with (force)", self.name))
            .await?;
        Ok(())
    }
}

/// Waits until `check` returns true, polling; fails after `timeout`. Used to wait on an
/// observable condition instead of sleeping a fixed time.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
