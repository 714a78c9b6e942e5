//! Exit statuses: each kind of failure has its own, so that a script, a Job or a person can tell
//! a wrong setting from a database that is away or Mailchimp refusing (`docs/interface.md`).
//!
//! An error says which it is by a [`Coded`] message in its chain (added where the cause is
//! known, e.g. connecting to the database); otherwise [`status`] looks at the types of its causes.

use std::fmt;
use std::process::ExitCode;

/// Why a command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Anything not named below, e.g. a schema that does not fit this build.
    Other,
    /// The command line is wrong (clap's own status for its errors, kept for ours).
    Usage,
    /// A setting or the mapping file is missing or wrong.
    Config,
    /// The database cannot be reached or refuses the login.
    Database,
    /// Mailchimp refused (the key, the audience) or could not be reached.
    Mailchimp,
    /// Some of the work was done and some failed (the output says which), e.g. `run --once`
    /// leaving rows it claimed parked, waiting for a retry or unsent.
    Partial,
}

impl Failure {
    /// The process's exit status.
    pub fn code(self) -> u8 {
        match self {
            Failure::Other => 1,
            Failure::Usage => 2,
            Failure::Config => 3,
            Failure::Database => 4,
            Failure::Mailchimp => 5,
            Failure::Partial => 6,
        }
    }

    /// An error with this status and `message`.
    pub fn error(self, message: impl Into<String>) -> Coded {
        Coded {
            failure: self,
            message: message.into(),
        }
    }
}

impl From<Failure> for ExitCode {
    fn from(failure: Failure) -> ExitCode {
        ExitCode::from(failure.code())
    }
}

/// A message that carries its failure's status (as an error or as an error's context).
#[derive(Debug)]
pub struct Coded {
    failure: Failure,
    message: String,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// The failure `error` stands for: the outermost [`Coded`] in its chain, else the kind of its
/// causes (a Mailchimp error, a database that is away, a setting out of range), else
/// [`Failure::Other`].
pub fn status(error: &anyhow::Error) -> Failure {
    // anyhow's own downcast sees the outermost context first, which a walk of the chain
    // (where a context and its error are one link) would not.
    if let Some(coded) = error
        .downcast_ref::<Coded>()
        .or_else(|| error.chain().find_map(|e| e.downcast_ref::<Coded>()))
    {
        return coded.failure;
    }
    for cause in error.chain() {
        if cause.downcast_ref::<mailchimp::Error>().is_some() {
            return Failure::Mailchimp;
        }
        if let Some(e) = cause.downcast_ref::<store::Error>() {
            return store_failure(e);
        }
        match cause.downcast_ref::<worker::Error>() {
            Some(worker::Error::Settings(_)) => return Failure::Config,
            Some(worker::Error::Store(e)) => return store_failure(e),
            None => {}
        }
    }
    Failure::Other
}

/// The failure a store error stands for.
fn store_failure(e: &store::Error) -> Failure {
    match e {
        store::Error::Url(_)
        | store::Error::Tls(_)
        | store::Error::Argument(_)
        | store::Error::Mapping(_) => Failure::Config,
        store::Error::Pool(_) => Failure::Database,
        e if e.is_login_refused() || e.is_transient() => Failure::Database,
        _ => Failure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn each_failure_has_its_own_status() {
        let codes: Vec<u8> = [
            Failure::Other,
            Failure::Usage,
            Failure::Config,
            Failure::Database,
            Failure::Mailchimp,
            Failure::Partial,
        ]
        .iter()
        .map(|f| f.code())
        .collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn the_outermost_coded_message_decides_else_the_cause() {
        let inner: anyhow::Result<()> = Err(Failure::Config.error("bad setting").into());
        let outer = inner
            .context(Failure::Partial.error("some failed"))
            .unwrap_err();
        assert_eq!(status(&outer), Failure::Partial);
        let refused =
            anyhow::Error::new(mailchimp::Error::Throttled { status: 429 }).context("audience a1");
        assert_eq!(status(&refused), Failure::Mailchimp);
        let pool = anyhow::Error::new(store::Error::Pool("timed out".into()));
        assert_eq!(status(&pool), Failure::Database);
        let settings = anyhow::Error::new(worker::Error::Settings("batch size".into()));
        assert_eq!(status(&settings), Failure::Config);
        assert_eq!(status(&anyhow::anyhow!("something")), Failure::Other);
    }
}
