//! What to do with a failed attempt, decided once, as a pure function of the failure, the
//! attempt number and the policy: retry after a backoff, or park with the reason.

use std::time::Duration;

use mailchimp::{Error as ApiError, ProblemKind};
use rand::Rng;

/// The retry schedule. Defaults: first retry within 1 s, doubling, capped at 10 minutes,
/// parked after 12 attempts (about an hour of trying in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The backoff before the first retry (the exponent's base).
    pub base: Duration,
    /// The longest backoff.
    pub max: Duration,
    /// After this many attempts a transient failure parks the row instead.
    pub max_attempts: i32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
            max_attempts: 12,
        }
    }
}

impl RetryPolicy {
    /// Full-jitter exponential backoff: uniform in `[0, min(max, base * 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: i32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        let millis = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rng.gen_range(0..=millis))
    }

    /// The upper bound of the backoff after `attempt` attempts.
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
        self.base.saturating_mul(1u32 << exponent).min(self.max)
    }
}

/// How a failure is classed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// May succeed later: transport, timeout, 5xx, throttling, a garbled answer.
    Transient(String),
    /// Will not succeed without a change to the data or a human decision.
    Permanent(String),
}

impl Failure {
    /// Classifies an error of a whole Mailchimp call.
    pub fn of(error: &ApiError) -> Failure {
        if error.is_retryable() {
            return Failure::Transient(error.to_string());
        }
        match error.problem_kind() {
            Some(
                ProblemKind::ComplianceState
                | ProblemKind::ForgottenEmail
                | ProblemKind::InvalidEmail
                | ProblemKind::MergeFieldsInvalid
                | ProblemKind::InvalidResource
                | ProblemKind::MemberExists,
            ) => Failure::Permanent(error.to_string()),
            // Key, audience or method trouble is not the row's fault: keep retrying with
            // backoff (the row parks after max_attempts with the reason, for `retry` later).
            _ => Failure::Transient(error.to_string()),
        }
    }

    /// Classifies one member's entry in a batch response's `errors[]`.
    pub fn of_batch_error(error: &mailchimp::BatchError) -> Failure {
        let text = match (&error.field, &error.field_message) {
            (Some(field), Some(message)) => format!("{} ({field}: {message})", error.error),
            _ => error.error.clone(),
        };
        match error.kind() {
            ProblemKind::ComplianceState
            | ProblemKind::ForgottenEmail
            | ProblemKind::InvalidEmail
            | ProblemKind::MergeFieldsInvalid
            | ProblemKind::InvalidResource => {
                Failure::Permanent(format!("{}: {text}", error.error_code))
            }
            _ => Failure::Transient(format!("{}: {text}", error.error_code)),
        }
    }
}

/// What happens to a row after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Try again after this long, keeping the error.
    Retry {
        /// The backoff.
        after: Duration,
        /// Why.
        error: String,
    },
    /// Stop trying; keep the row with the reason.
    Park {
        /// Why.
        reason: String,
    },
}

/// Decides a failed attempt's fate.
pub fn disposition(
    failure: &Failure,
    attempt: i32,
    policy: &RetryPolicy,
    rng: &mut impl Rng,
) -> Disposition {
    match failure {
        Failure::Permanent(reason) => Disposition::Park {
            reason: reason.clone(),
        },
        Failure::Transient(error) if attempt >= policy.max_attempts => Disposition::Park {
            reason: format!("gave up after {attempt} attempts: {error}"),
        },
        Failure::Transient(error) => Disposition::Retry {
            after: policy.backoff(attempt, rng),
            error: error.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn dispositions_follow_the_table() {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_attempts: 5,
        };
        let t = || Failure::Transient("HTTP 503".into());
        let p = || Failure::Permanent("Member In Compliance State".into());
        let cases: &[(Failure, i32, &str)] = &[
            (t(), 1, "retry"),
            (t(), 4, "retry"),
            (t(), 5, "park"),
            (t(), 9, "park"),
            (p(), 1, "park"),
            (p(), 5, "park"),
        ];
        let mut rng = StdRng::seed_from_u64(7);
        for (failure, attempt, expected) in cases {
            let got = match disposition(failure, *attempt, &policy, &mut rng) {
                Disposition::Retry { after, .. } => {
                    assert!(after <= policy.ceiling(*attempt));
                    "retry"
                }
                Disposition::Park { reason } => {
                    assert!(!reason.is_empty());
                    "park"
                }
            };
            assert_eq!(got, *expected, "{failure:?} at attempt {attempt}");
        }
    }

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
    fn throttling_and_server_errors_are_transient_and_refusals_permanent() {
        let throttled = ApiError::Throttled { status: 429 };
        assert!(matches!(Failure::of(&throttled), Failure::Transient(_)));
        let server = ApiError::Server {
            status: 503,
            detail: String::new(),
        };
        assert!(matches!(Failure::of(&server), Failure::Transient(_)));
        let batch = mailchimp::BatchError {
            email_address: "x@pets.test".into(),
            error: "x@pets.test is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.".into(),
            error_code: "ERROR_GENERIC".into(),
            field: None,
            field_message: None,
        };
        assert!(matches!(
            Failure::of_batch_error(&batch),
            Failure::Permanent(_)
        ));
    }
}
