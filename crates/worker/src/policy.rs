//! What to do with a failed attempt, decided once, as a pure function of the failure, the
//! attempt number and the policy: retry after a backoff, or park with the reason.

use std::time::Duration;

use mailchimp::Error as ApiError;
use rand::Rng;

use crate::retry::RetryPolicy;

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
        // Key, audience or method trouble is not the row's fault: retried with backoff (the
        // row parks after max_attempts with the reason, for `retry` later).
        match error.problem_kind() {
            Some(kind) if kind.is_permanent() => Failure::Permanent(error.to_string()),
            _ => Failure::Transient(error.to_string()),
        }
    }

    /// Classifies one member's entry in a batch response's `errors[]`.
    pub fn of_batch_error(error: &mailchimp::BatchError) -> Failure {
        let text = match (&error.field, &error.field_message) {
            (Some(field), Some(message)) => format!("{} ({field}: {message})", error.error),
            _ => error.error.clone(),
        };
        let text = format!("{}: {text}", error.error_code);
        if error.kind().is_permanent() {
            Failure::Permanent(text)
        } else {
            Failure::Transient(text)
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
