//! The scenarios of the performance goals (and the trigger-shape comparison), each adding rows
//! to the report.

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
