//! The restart back-off rule: how long to wait before starting a failed
//! process again.
//!
//! One rule for every place usher restarts something (`usher watch` today;
//! the agent's restart of a web server is meant to follow it too), so that
//! a component that cannot start does not spin the host's CPU, and one that
//! failed once after a long healthy run comes back quickly.
//!
//! The rule counts *failures in a row*: each failure adds one, and a run
//! that lasted at least `healthy_after` starts the count again (the failure
//! that ends a healthy run is the first of a new row). With `n` failures in
//! a row the wait is
//!
//! * `0` for `n = 0` (nothing failed yet: start at once);
//! * `initial × 2^(n−1)`, never above `max`, for `1 ≤ n ≤ max_attempts`;
//! * `max` for `n > max_attempts`.
//!
//! Worked example (`initial` 1 s, `max` 30 s, `max_attempts` 4): the waits
//! after the 1st, 2nd, 3rd, 4th failure in a row are 1, 2, 4 and 8 s; after
//! the 5th and every later one, 30 s. A run of at least `healthy_after`
//! then a failure: 1 s again.
//!
//! Time is passed in (how long the process ran); nothing here reads a clock.

use core::time::Duration;

/// The back-off parameters. Every combination is accepted: an `initial`
/// above `max` is capped at `max`, `max_attempts` 0 means "always `max`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure in a row.
    pub initial: Duration,
    /// The constant wait once `max_attempts` failures in a row are used up,
    /// and the ceiling of every wait.
    pub max: Duration,
    /// How many failures in a row get a growing wait (A_max).
    pub max_attempts: u32,
    /// A run at least this long counts as healthy: the row starts again.
    pub healthy_after: Duration,
}

impl Backoff {
    /// The wait before the next start after `failures` failures in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        if failures > self.max_attempts {
            return self.max;
        }
        // 2^(n−1) overflows u32 from n = 33; the wait is then `max` anyway.
        let grown = 2u32
            .checked_pow(failures - 1)
            .and_then(|factor| self.initial.checked_mul(factor))
            .unwrap_or(self.max);
        grown.min(self.max)
    }

    /// Failures in a row after one more failure of a process that ran for
    /// `ran`: one more when it ran less than `healthy_after`, else 1 (a new
    /// row begins with this failure).
    pub fn failures_after(&self, failures: u32, ran: Duration) -> u32 {
        if ran >= self.healthy_after {
            1
        } else {
            failures.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn rule(initial: f64, max: f64, max_attempts: u32) -> Backoff {
        Backoff {
            initial: secs(initial),
            max: secs(max),
            max_attempts,
            healthy_after: secs(10.0),
        }
    }

    /// The module's worked example: 1, 2, 4, 8 s, then 30 s for good.
    #[test]
    fn worked_example() {
        let b = rule(1.0, 30.0, 4);
        let waits: Vec<u64> = (0..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(waits, [0, 1, 2, 4, 8, 30, 30, 30]);
    }

    /// `usher watch`'s defaults (1 s, 60 s, 5 attempts): 1, 2, 4, 8, 16, then 60.
    #[test]
    fn watch_defaults() {
        let b = rule(1.0, 60.0, 5);
        let waits: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 60, 60]);
    }

    /// The doubling is capped at `max` before `max_attempts` runs out.
    #[test]
    fn growth_is_capped_at_max() {
        let b = rule(0.2, 1.0, 5);
        let waits: Vec<Duration> = (1..=6).map(|n| b.delay(n)).collect();
        assert_eq!(
            waits,
            [
                secs(0.2),
                secs(0.4),
                secs(0.8),
                secs(1.0),
                secs(1.0),
                secs(1.0)
            ]
        );
    }

    #[test]
    fn edge_parameters_do_not_panic() {
        // initial above max: capped.
        assert_eq!(rule(5.0, 1.0, 3).delay(1), secs(1.0));
        // No growing phase at all.
        assert_eq!(rule(1.0, 9.0, 0).delay(1), secs(9.0));
        // Doubling that would overflow u32 and Duration.
        let huge = Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
            max_attempts: u32::MAX,
            healthy_after: Duration::ZERO,
        };
        assert_eq!(huge.delay(u32::MAX), Duration::MAX);
        assert_eq!(rule(1.0, 30.0, u32::MAX).delay(40), secs(30.0));
    }

    #[test]
    fn a_healthy_run_starts_a_new_row() {
        let b = rule(1.0, 30.0, 4);
        assert_eq!(b.failures_after(0, secs(0.1)), 1);
        assert_eq!(b.failures_after(3, secs(9.9)), 4);
        assert_eq!(b.failures_after(3, secs(10.0)), 1, "exactly healthy_after");
        assert_eq!(b.failures_after(7, secs(3600.0)), 1);
        assert_eq!(b.failures_after(u32::MAX, Duration::ZERO), u32::MAX);
        assert_eq!(b.delay(b.failures_after(6, secs(60.0))), secs(1.0));
    }

    fn any_rule() -> impl Strategy<Value = Backoff> {
        (0u64..100_000, 0u64..100_000, 0u32..64, 0u64..100_000).prop_map(
            |(initial, max, max_attempts, healthy)| Backoff {
                initial: Duration::from_millis(initial),
                max: Duration::from_millis(max),
                max_attempts,
                healthy_after: Duration::from_millis(healthy),
            },
        )
    }

    proptest! {
        /// Never above `max`, for any count (and never a panic).
        #[test]
        fn never_above_max(b in any_rule(), n in any::<u32>()) {
            prop_assert!(b.delay(n) <= b.max);
        }

        /// Non-decreasing while the row grows, up to `max_attempts` and beyond.
        #[test]
        fn monotone_non_decreasing(b in any_rule(), n in 0u32..80) {
            prop_assert!(b.delay(n) <= b.delay(n + 1), "{:?} then {:?}", b.delay(n), b.delay(n + 1));
        }

        /// Constant `max` once `max_attempts` failures in a row are used up.
        #[test]
        fn constant_max_after_max_attempts(b in any_rule(), extra in 1u32..1_000) {
            prop_assert_eq!(b.delay(b.max_attempts.saturating_add(extra)), b.max);
        }

        /// Inside the growing phase, each wait is double the previous one
        /// until it reaches `max`.
        #[test]
        fn doubles_until_capped(b in any_rule(), n in 1u32..40) {
            prop_assume!(n < b.max_attempts);
            let next_ms = b.initial.as_millis() << n;
            prop_assert_eq!(b.delay(n + 1).as_millis(), next_ms.min(b.max.as_millis()));
        }

        /// The count only grows by one, or starts again at one.
        #[test]
        fn failures_grow_by_one_or_restart(b in any_rule(), n in any::<u32>(), ran in 0u64..200_000) {
            let after = b.failures_after(n, Duration::from_millis(ran));
            prop_assert!(after == 1 || after == n.saturating_add(1));
            prop_assert_eq!(after == 1, n == 0 || Duration::from_millis(ran) >= b.healthy_after);
        }
    }
}
