//! The `mailchimp-emulator` command line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::emulator::{Config, Emulator};

/// `mailchimp-emulator --listen 127.0.0.1:4100 [--api-key KEY] [--audience ID]...
/// [--gdpr-audience ID]... [--account KEY=AUDIENCE]... …`
#[derive(Parser)]
#[command(
    name = "mailchimp-emulator",
    version,
    about = "A stateful, in-memory stand-in for the Mailchimp Marketing API v3 with fault injection."
)]
pub struct Args {
    /// Address to serve on; the API is under /3.0.
    #[arg(long, default_value = "127.0.0.1:4100")]
    pub listen: SocketAddr,
    /// Only this API key (and those of --account) is accepted; any key when neither is given.
    #[arg(long)]
    pub api_key: Option<String>,
    /// An audience (list id) that exists at start, of the --api-key account (or of the one
    /// account any key reaches); repeatable.
    #[arg(long = "audience", value_name = "ID")]
    pub audiences: Vec<String>,
    /// A GDPR audience (marketing permissions on: Email, Direct Mail, Customized Online
    /// Advertising) that exists at start, like --audience; an id also given to --audience or
    /// --account makes that audience a GDPR one; repeatable.
    #[arg(long = "gdpr-audience", value_name = "ID")]
    pub gdpr_audiences: Vec<String>,
    /// A Mailchimp account: the API KEY is accepted, and AUDIENCE exists at start in its account;
    /// repeatable (a key given twice is one account with both audiences).
    #[arg(long = "account", value_name = "KEY=AUDIENCE", value_parser = account)]
    pub accounts: Vec<(String, String)>,
    /// Milliseconds added to every response.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub latency_ms: u64,
    /// Requests in flight at once beyond N get 429 Too Many Requests (unlimited when absent).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Fraction (0..1) of write requests answered 503 without applying them.
    #[arg(long, default_value_t = 0.0, value_name = "F", value_parser = rate)]
    pub fail_rate: f64,
    /// Fraction (0..1) of write requests applied, then answered by closing the connection.
    #[arg(long, default_value_t = 0.0, value_name = "F", value_parser = rate)]
    pub drop_rate: f64,
    /// Seed of the fault generator (same seed, same fault sequence).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
}

fn rate(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("`{s}` is not between 0 and 1"))
    }
}

impl std::fmt::Debug for Args {
    /// The keys redacted, as in `Config`'s.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("config", &self.config())
            .finish()
    }
}

/// `KEY=AUDIENCE`, split at the last `=` (audience ids have none).
fn account(s: &str) -> Result<(String, String), String> {
    match s.rsplit_once('=') {
        Some((key, audience)) if !key.is_empty() && !audience.is_empty() => {
            Ok((key.to_owned(), audience.to_owned()))
        }
        _ => Err("expected KEY=AUDIENCE".to_owned()),
    }
}

impl Args {
    /// The emulator configuration these arguments describe.
    pub fn config(&self) -> Config {
        Config {
            api_key: self.api_key.clone(),
            audiences: self.audiences.clone(),
            gdpr_audiences: self.gdpr_audiences.clone(),
            accounts: self.accounts.clone(),
            latency: Duration::from_millis(self.latency_ms),
            max_connections: self.max_connections,
            fail_rate: self.fail_rate,
            drop_rate: self.drop_rate,
            seed: self.seed,
        }
    }
}

/// Parses the command line, serves until SIGINT/SIGTERM, then shuts down cleanly.
pub async fn main_cli() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let emulator = Emulator::start(args.listen, args.config()).await?;
    tracing::info!(
        base_url = %emulator.base_url(),
        audiences = ?args.audiences,
        gdpr_audiences = ?args.gdpr_audiences,
        accounts = args.accounts.len(),
        "serving the Mailchimp Marketing API"
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}
