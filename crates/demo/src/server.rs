//! The Postgres server a demonstration or a test runs on, and the URLs of its databases.

use anyhow::{anyhow, Context, Result};

/// The server used when `DATABASE_URL` is not set: a local Postgres that trusts `postgres`.
pub const LOCAL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> Result<String> {
    let mut url = url::Url::parse(url).map_err(|e| anyhow!("DATABASE_URL is not a URL: {e}"))?;
    url.set_path(&format!("/{database}"));
    Ok(url.to_string())
}

/// Creates the database `name` on the server `admin` is connected to, dropping an old one of
/// that name first.
pub async fn recreate(admin: &tokio_postgres::Client, name: &str) -> Result<()> {
    // Two statements: a multi-statement string runs as one transaction, which DROP DATABASE
    // refuses.
    drop_database(admin, name)
        .await
        .with_context(|| format!("creating database {name}"))?;
    admin
        .batch_execute(&format!("create database {name}"))
        .await
        .with_context(|| format!("creating database {name}"))?;
    Ok(())
}

/// Drops the database `name` if it exists, closing its connections.
pub async fn drop_database(admin: &tokio_postgres::Client, name: &str) -> Result<()> {
    admin
        .batch_execute(&format!("drop database if exists {name} with (force)"))
        .await?;
    Ok(())
}

/// `url` fit to be shown: its password replaced by `***` (all of it, when it is not a URL).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "DATABASE_URL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        let url = "postgres://app:hunter2@db.internal:5432/shop";
        assert_eq!(redact(url), "postgres://app:***@db.internal:5432/shop");
        assert_eq!(redact("host=db password=hunter2"), "DATABASE_URL");
        assert_eq!(
            with_database(url, "other").unwrap(),
            "postgres://app:hunter2@db.internal:5432/other"
        );
    }
}
