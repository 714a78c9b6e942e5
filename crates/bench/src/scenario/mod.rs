//! The scenarios of the performance goals (and the trigger-shape comparison), each adding rows
//! to the report.

pub mod accounts;
pub mod initial_sync;
pub mod latency;
pub mod mailchimp_bound;
pub mod queue;
pub mod triggers;

/// How big each scenario is: the full size the goals name, or a CI size that runs in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Scenario 1: customers of the initial sync.
    pub initial_customers: u64,
    /// Scenario 2: queued changes drained against 250 ms latency.
    pub bound_changes: u64,
    /// Scenarios 3 and 4: rows of the customer table (and of the bulk UPDATE).
    pub trigger_rows: u64,
    /// Scenario 3: seconds of each pgbench run.
    pub pgbench_seconds: u64,
    /// Scenario 3: rounds of (none, statement, row).
    pub pgbench_rounds: usize,
    /// Scenario 4: rounds of (none, statement, row).
    pub bulk_rounds: usize,
    /// Scenario 5: seconds of steady load.
    pub latency_seconds: u64,
    /// Scenario 6: rows our worker drains.
    pub queue_rows: u64,
    /// Scenario 6: seconds the naive loop runs (it is stopped then; its rate is what it did).
    pub naive_seconds: u64,
    /// M1: accounts of the initial sync at scale...
    pub accounts: u64,
    /// ...and customers of each.
    pub account_customers: u64,
    /// M2: customers of the account running Sync Contacts.
    pub fair_big: u64,
    /// M2: accounts making live changes...
    pub fair_live_accounts: u64,
    /// ...and their changes per second, in all...
    pub fair_rate: u64,
    /// ...for as long as the Sync Contacts runs, at most this many seconds.
    pub fair_seconds: u64,
    /// M3: enabled accounts, 10 of them with due rows.
    pub idle_accounts: u64,
    /// M3: timed claims per phase.
    pub idle_claims: usize,
}

impl Sizes {
    /// The sizes the goals are stated for.
    pub const FULL: Sizes = Sizes {
        initial_customers: 1_000_000,
        bound_changes: 200_000,
        trigger_rows: 100_000,
        pgbench_seconds: 15,
        pgbench_rounds: 2,
        bulk_rounds: 3,
        latency_seconds: 30,
        queue_rows: 100_000,
        naive_seconds: 10,
        accounts: 1_000,
        account_customers: 1_000,
        fair_big: 1_000_000,
        fair_live_accounts: 200,
        fair_rate: 200,
        fair_seconds: 120,
        idle_accounts: 10_000,
        idle_claims: 300,
    };

    /// CI sizes.
    pub const SMALL: Sizes = Sizes {
        initial_customers: 20_000,
        bound_changes: 20_000,
        trigger_rows: 10_000,
        pgbench_seconds: 3,
        pgbench_rounds: 1,
        bulk_rounds: 1,
        latency_seconds: 5,
        queue_rows: 5_000,
        naive_seconds: 2,
        accounts: 20,
        account_customers: 250,
        fair_big: 10_000,
        fair_live_accounts: 20,
        fair_rate: 50,
        fair_seconds: 20,
        idle_accounts: 1_000,
        idle_claims: 30,
    };
}

impl Sizes {
    /// These sizes with every row count multiplied by `factor` (for quick experiments).
    pub fn scaled(self, factor: f64) -> Sizes {
        let n = |v: u64| ((v as f64 * factor).round() as u64).max(100);
        Sizes {
            initial_customers: n(self.initial_customers),
            bound_changes: n(self.bound_changes),
            trigger_rows: n(self.trigger_rows),
            queue_rows: n(self.queue_rows),
            account_customers: n(self.account_customers),
            fair_big: n(self.fair_big),
            ..self
        }
    }
}

/// `12.3 k/s`-style rate.
pub fn per_second(n: f64) -> String {
    if n >= 10_000.0 {
        format!("{:.1}k/s", n / 1000.0)
    } else {
        format!("{n:.0}/s")
    }
}

/// MiB from KiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
