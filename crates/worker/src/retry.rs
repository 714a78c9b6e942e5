//! Every retry schedule of chimpsync, by name.
//!
//! Two kinds. A [`RetryPolicy`] spaces attempts that are recorded in the database and survive a
//! restart: queue rows ([`Settings::retry`](crate::Settings::retry)) and inbound events
//! ([`INBOUND_EVENTS`]). The backon builders retry one operation in place while its cause is
//! likely to pass within seconds: a database write or claim ([`database_write`], [`claim`]),
//! the run loop's pause while the database stays away ([`database_outage`]) and a Mailchimp
//! call outside the queue ([`mailchimp()`]).

use std::time::Duration;

use backon::ExponentialBuilder;
use rand::{Rng, RngExt};

/// A schedule of attempts recorded in the database: exponential, capped, with a last attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The backoff before the first retry (the exponent's base).
    pub base: Duration,
    /// The longest backoff.
    pub max: Duration,
    /// After this many attempts there is no other.
    pub max_attempts: i32,
}

impl RetryPolicy {
    /// Full-jitter exponential backoff: uniform in `[0, min(max, base * 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: i32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let millis = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rng.random_range(0..=millis))
    }

    /// The upper bound of the backoff after `attempt` attempts.
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
        self.base.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// The pause after `attempts` attempts (the last one just failed), without jitter; `None`
    /// once they are used up.
    pub fn next_delay(&self, attempts: i32) -> Option<Duration> {
        (attempts < self.max_attempts).then(|| self.ceiling(attempts))
    }
}

/// Inbound events whose `[inbound]` statement failed (a lock, a constraint): 5 s doubling up to
/// an hour, given up after 10 attempts.
pub const INBOUND_EVENTS: RetryPolicy = RetryPolicy {
    base: Duration::from_secs(5),
    max: Duration::from_secs(3600),
    max_attempts: 10,
};

/// [`INBOUND_EVENTS`] in the form `store::inbound::Inbound::apply` takes: the pause after
/// `attempts` attempts, `None` to give up.
pub fn inbound_event(attempts: i32) -> Option<Duration> {
    INBOUND_EVENTS.next_delay(attempts)
}

/// A write of a claim's results while the database is briefly away. If it stays away, the lease
/// lapses and the rows are sent again (every operation is idempotent).
pub fn database_write() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(10)
        .with_jitter()
}

/// A claim while the database is briefly away. Shorter than [`database_write`]: nothing is held
/// yet, and the run loop tries again after a pause of [`database_outage`].
pub fn claim() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(5)
        .with_jitter()
}

/// The run loop's pauses between claims that failed even after [`claim`]'s retries: growing to
/// 5 s, for as long as the database is away.
pub fn database_outage() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .with_jitter()
}

/// A Mailchimp call outside the queue (reconcile), while Mailchimp throttles or fails
/// transiently: four more tries. A throttled answer also pauses every call of the gate.
pub fn mailchimp() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(4)
        .with_jitter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        let policy = RetryPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(10),
            max_attempts: 99,
        };
        assert_eq!(policy.ceiling(1), Duration::from_millis(500));
        assert_eq!(policy.ceiling(2), Duration::from_secs(1));
        assert_eq!(policy.ceiling(5), Duration::from_secs(8));
        assert_eq!(policy.ceiling(6), Duration::from_secs(10));
        assert_eq!(policy.ceiling(60), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(1);
        let samples: Vec<Duration> = (0..2000).map(|_| policy.backoff(6, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_secs(10)));
        // Full jitter spreads over the whole range, low end included.
        assert!(samples.iter().any(|d| *d < Duration::from_secs(1)));
        assert!(samples.iter().any(|d| *d > Duration::from_secs(9)));
    }

    #[test]
    fn failed_events_back_off_and_are_given_up() {
        assert_eq!(inbound_event(1), Some(Duration::from_secs(5)));
        assert_eq!(inbound_event(3), Some(Duration::from_secs(20)));
        assert_eq!(inbound_event(9), Some(Duration::from_secs(1280)));
        assert_eq!(inbound_event(10), None);
    }
}
