//! chimpsync's Postgres side: the `chimpsync` schema and its migrations ([`setup`]), the SQL
//! generated from the mapping file ([`generated`]), and the queue operations the worker uses.
//!
//! This is the only crate that talks to Postgres, and all the SQL it runs comes from `sql/`
//! through [`sql`]. It knows nothing about Mailchimp.

pub mod account_state;
pub mod accounts;
pub mod admin;
pub mod backfill;
pub mod drift;
pub mod generated;
pub mod handshake;
pub mod inbound;
pub mod mapping;
mod migrations;
pub mod queue;
pub mod reconcile;
mod setup;
pub mod slots;
pub mod sql;
mod tls;

use std::time::Duration;

pub use deadpool_postgres::Pool;
pub use generated::{Generated, TriggerShape};
pub use handshake::{Mismatch, SchemaState, SCHEMA_VERSION};
pub use mapping::Mapping;
pub use queue::{
    Ack, Claim, ClaimedRow, DoneSteps, MaybeApplied, Operation, Payload, Queue, RemovalGuard,
    Retry, Summary, Synced, Untagged, Upserted, ACCOUNTS_PER_CLAIM,
};
pub use setup::{setup, setup_sql, setup_with, DdlGuard, Replayed, SetupOptions, SetupReport};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query failed or the connection broke. Shown with Postgres's own message and SQLSTATE
    /// (tokio-postgres's `Display` alone says only "db error"). The cause is folded into the
    /// text rather than kept as a `source`, so a one-line error does not repeat it.
    #[error("database: {}", describe(.0))]
    Database(tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("database connection: {0}")]
    Pool(String),
    /// The mapping does not fit the database (the message names the mapping key).
    #[error("{0}")]
    Mapping(String),
    /// `setup` could not take a lock it needs before its deadline; nothing was changed (the
    /// message names the table and what held it).
    #[error("{0}")]
    Blocked(String),
    /// A migration failed.
    #[error("migration {version:04} failed: {source}")]
    Migration {
        /// The migration's number.
        version: i32,
        /// What Postgres said.
        source: tokio_postgres::Error,
    },
    /// `DATABASE_URL` is not a usable connection string.
    #[error("DATABASE_URL: {0}")]
    Url(String),
    /// A command-line argument is unusable (the message names it).
    #[error("{0}")]
    Argument(String),
    /// The TLS settings of `DATABASE_URL` cannot be used (e.g. an unreadable `sslrootcert`).
    #[error("DATABASE_URL TLS: {0}")]
    Tls(String),
}

impl Error {
    /// Whether retrying later may succeed (connection trouble), as opposed to a bug or bad input.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Pool(_) => true,
            Error::Database(e) => {
                e.is_closed()
                    || e.code().is_none()
                    || e.code().is_some_and(|c| {
                        let s = c.code();
                        s.starts_with("08")
                            || s.starts_with("57")
                            || s == "40001"
                            || s == "40P01"
                            || s == "55P03"
                    })
            }
            _ => false,
        }
    }
}

impl Error {
    /// Whether the server refused the login: no such role, a wrong password, or a `pg_hba.conf`
    /// that does not let the role in (SQLSTATE class 28), as opposed to a server not reached.
    pub fn is_login_refused(&self) -> bool {
        matches!(self, Error::Database(e) if e.code().is_some_and(|c| c.code().starts_with("28")))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Database(e)
    }
}

/// A server error as Postgres words it, with its SQLSTATE (not its `detail`, which may quote row
/// values); any other error with its cause (e.g. the I/O error behind "error connecting").
fn describe(e: &tokio_postgres::Error) -> String {
    let text = e.to_string();
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        (None, Some(cause)) if !text.contains(&cause.to_string()) => format!("{text}: {cause}"),
        _ => text,
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => Error::Database(e),
            other => Error::Pool(other.to_string()),
        }
    }
}

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Opens one connection (for setup and one-off commands). `url` is a libpq connection string
/// (URL or key-value form); TLS follows its `sslmode` and `sslrootcert` as libpq does. Errors
/// never echo the password.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let options = tls::ConnectOptions::parse(url)?;
    let client = match options.connector()? {
        tls::Connector::Plain => {
            let (client, connection) = options.config.connect(tokio_postgres::NoTls).await?;
            spawn_connection(connection);
            client
        }
        tls::Connector::Rustls(tls) => {
            let (client, connection) = options.config.connect(tls).await?;
            spawn_connection(connection);
            client
        }
    };
    Ok(client)
}

fn spawn_connection<S, T>(
    connection: tokio_postgres::Connection<S, T>,
) -> tokio::task::JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = drive(connection).await {
            tracing::debug!(error = %e, "database connection closed");
        }
    })
}

/// Drives a connection until it closes. The server's notices (`... already exists, skipping`)
/// are logged at debug: tokio-postgres would log each at info, where they are noise.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
) -> Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(tokio_postgres::AsyncMessage::Notice(notice))) => tracing::debug!(
                severity = notice.severity(),
                notice = notice.message(),
                "database notice"
            ),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
            None => return Ok(()),
        }
    }
}

/// How the pool opens a connection: as deadpool-postgres does, but driven by [`drive`].
struct Connect<T> {
    tls: T,
}

type Connected = std::result::Result<
    (tokio_postgres::Client, tokio::task::JoinHandle<()>),
    tokio_postgres::Error,
>;

impl<T> deadpool_postgres::Connect for Connect<T>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Connected> + Send + '_>> {
        let (tls, config) = (self.tls.clone(), config.clone());
        Box::pin(async move {
            let (client, connection) = config.connect(tls).await?;
            Ok((client, spawn_connection(connection)))
        })
    }
}

/// How long a pooled connection waits for a row lock before its statement fails (and is retried).
const LOCK_TIMEOUT: Duration = Duration::from_millis(200);

/// The planner's `random_page_cost` on pooled connections (see [`pool`]): the usual value for
/// data that is cached or on SSD.
const RANDOM_PAGE_COST: f64 = 1.1;

/// A connection pool of `size` connections; each statement is bounded by `statement_timeout`.
/// TLS as for [`connect`].
pub fn pool(url: &str, size: usize, statement_timeout: Duration) -> Result<Pool> {
    let options = tls::ConnectOptions::parse(url)?;
    let connector = options.connector()?;
    let mut config = options.config;
    // lock_timeout: the worker never waits long on a row lock. A customer transaction that
    // holds queue rows (through the trigger) and then waits for one the worker holds would
    // otherwise deadlock with it, and Postgres might abort the customer's transaction. With a
    // lock timeout far below deadlock_timeout (1 s), the worker's statement gives up first and
    // is retried.
    // random_page_cost: the queue and synced_contacts are small and hot, so an index probe costs
    // about what a sequential page read does. At the default (4), a claim during an initial sync
    // joins its rows to synced_contacts by hashing a sequential scan of the whole table; with
    // index probes a 100k drain takes about a quarter less time (scenario 1 in BENCHMARKS.md).
    config.options(format!(
        "-c statement_timeout={} -c lock_timeout={} -c random_page_cost={}",
        statement_timeout.as_millis(),
        LOCK_TIMEOUT.as_millis(),
        RANDOM_PAGE_COST
    ));
    config.connect_timeout(Duration::from_secs(10));
    config.application_name("chimpsync");
    let manager_config = deadpool_postgres::ManagerConfig {
        recycling_method: deadpool_postgres::RecyclingMethod::Fast,
    };
    let manager = match connector {
        tls::Connector::Plain => deadpool_postgres::Manager::from_connect(
            config,
            Connect {
                tls: tokio_postgres::NoTls,
            },
            manager_config,
        ),
        tls::Connector::Rustls(tls) => {
            deadpool_postgres::Manager::from_connect(config, Connect { tls }, manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Pool(e.to_string()))
}
