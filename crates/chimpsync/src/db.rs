//! Connections to the database at `DATABASE_URL`, failing early with a message that names it and
//! says whether the server was not reached or refused the login.

use std::time::Duration;

use anyhow::Result;
use store::Queue;

use crate::config::Config;
use crate::exit::Failure;

/// How long a pooled connection may take to open.
const POOL_TIMEOUT: Duration = Duration::from_secs(60);

/// One connection.
pub async fn connect(config: &Config) -> Result<tokio_postgres::Client> {
    store::connect(config.database_url()?)
        .await
        .map_err(not_connected)
}

/// The queue over a pool of `size` connections, one of them opened now.
pub async fn queue(config: &Config, size: usize) -> Result<Queue> {
    let pool = store::pool(config.database_url()?, size, POOL_TIMEOUT)?;
    // Fail now, with a clear message, rather than on the first query.
    let _probe = pool
        .get()
        .await
        .map_err(|e| not_connected(store::Error::from(e)))?;
    Ok(Queue::new(pool))
}

/// Why no connection was had, in one line: the server refused the login (a role that does not
/// exist, a wrong password, `pg_hba.conf`), or it was not reached. A malformed `DATABASE_URL`
/// stays a configuration error.
fn not_connected(e: store::Error) -> anyhow::Error {
    let message = match &e {
        store::Error::Url(_) | store::Error::Tls(_) => return e.into(),
        e if e.is_login_refused() => {
            "the database at DATABASE_URL refused the login (check the user name and password)"
        }
        _ => "cannot reach the database at DATABASE_URL",
    };
    anyhow::Error::new(e).context(Failure::Database.error(message))
}
