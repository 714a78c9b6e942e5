//! Fault injection: scripted faults and seeded random failures for write requests.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A misbehaviour the emulator can be told to show on the next write requests
/// (`POST`, `PUT`, `PATCH`, `DELETE` under `/3.0`), see [`crate::Emulator::inject`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `503` problem document; nothing is applied.
    ServiceUnavailable,
    /// `429 Too Many Requests` problem document; nothing is applied.
    TooManyRequests,
    /// `403` with an empty body and no content type; nothing is applied.
    BareForbidden,
    /// `429` with an empty body and no content type; nothing is applied.
    BareTooManyRequests,
    /// The write **is applied**, then the answer is `200` with a body that is not JSON.
    GarbageJson,
    /// The write **is applied**, then the connection is closed without any answer.
    DropAfterApply,
    /// Sleep this long, then answer normally.
    Delay(Duration),
}

/// Rates, the seeded generator and the script of injected faults.
#[derive(Debug)]
pub(crate) struct FaultState {
    rng: StdRng,
    fail_rate: f64,
    drop_rate: f64,
    script: VecDeque<(Fault, usize)>,
}

impl FaultState {
    pub(crate) fn new(seed: u64, fail_rate: f64, drop_rate: f64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            fail_rate: clamp_rate(fail_rate),
            drop_rate: clamp_rate(drop_rate),
            script: VecDeque::new(),
        }
    }

    pub(crate) fn set_fail_rate(&mut self, rate: f64) {
        self.fail_rate = clamp_rate(rate);
    }

    pub(crate) fn set_drop_rate(&mut self, rate: f64) {
        self.drop_rate = clamp_rate(rate);
    }

    pub(crate) fn inject(&mut self, fault: Fault, times: usize) {
        if times > 0 {
            self.script.push_back((fault, times));
        }
    }

    /// The fault for the next write request: a scripted one first, else one random draw
    /// (only when a rate is set, so an idle generator keeps its sequence).
    pub(crate) fn next_for_write(&mut self) -> Option<Fault> {
        if let Some((fault, left)) = self.script.front_mut() {
            let fault = fault.clone();
            *left -= 1;
            if *left == 0 {
                self.script.pop_front();
            }
            return Some(fault);
        }
        if self.fail_rate <= 0.0 && self.drop_rate <= 0.0 {
            return None;
        }
        let draw: f64 = self.rng.random();
        if draw < self.fail_rate {
            Some(Fault::ServiceUnavailable)
        } else if draw < self.fail_rate + self.drop_rate {
            Some(Fault::DropAfterApply)
        } else {
            None
        }
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_faults_come_first_and_run_out() {
        let mut f = FaultState::new(0, 0.0, 0.0);
        f.inject(Fault::BareForbidden, 2);
        f.inject(Fault::GarbageJson, 1);
        assert_eq!(f.next_for_write(), Some(Fault::BareForbidden));
        assert_eq!(f.next_for_write(), Some(Fault::BareForbidden));
        assert_eq!(f.next_for_write(), Some(Fault::GarbageJson));
        assert_eq!(f.next_for_write(), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_random_faults() {
        let run = |seed| {
            let mut f = FaultState::new(seed, 0.3, 0.3);
            (0..64).map(|_| f.next_for_write()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn rates_are_clamped() {
        let mut f = FaultState::new(0, 5.0, -1.0);
        assert_eq!(f.next_for_write(), Some(Fault::ServiceUnavailable));
        f.set_fail_rate(f64::NAN);
        assert_eq!(f.next_for_write(), None);
    }
}
