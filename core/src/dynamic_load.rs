//! The dynamic load value `L`: a server's measured spare capacity, 0..10000.
//!
//! 10000 means requests start at once (no queue delay); the value halves when
//! the delay equals `half_at_us`, and tends to zero as the delay grows. The
//! curve is smooth, so a server twice as slow gets clearly less, and never
//! exactly zero: taking a server out of rotation is the job of the thresholds
//! and failure handling, not of this number.

/// The largest dynamic load value: no measurable delay.
pub const DYNAMIC_LOAD_MAX: u32 = 10_000;

/// Converts a measured delay (queue delay, or mean processing time when the
/// queue is not probed) into a dynamic load value.
///
/// * `delay_us` — the delay in microseconds;
/// * `half_at_us` — the delay that gives half of the maximum (e.g. 100 ms).
pub fn dynamic_load_from_delay(delay_us: u64, half_at_us: u64) -> u32 {
    let half = half_at_us.max(1) as f64;
    let value = f64::from(DYNAMIC_LOAD_MAX) * half / (half + delay_us as f64);
    // Keep 1 as the floor so a measured server is never confused with "off".
    (value.round() as u32).clamp(1, DYNAMIC_LOAD_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worked_values() {
        assert_eq!(dynamic_load_from_delay(0, 100_000), 10_000);
        assert_eq!(dynamic_load_from_delay(100_000, 100_000), 5_000);
        assert_eq!(dynamic_load_from_delay(300_000, 100_000), 2_500);
        assert_eq!(dynamic_load_from_delay(u64::MAX, 100_000), 1);
        assert_eq!(dynamic_load_from_delay(5, 0), 1_667);
    }

    proptest! {
        #[test]
        fn monotone_and_bounded(a in 0u64..10_000_000, b in 0u64..10_000_000, h in 1u64..1_000_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            let (vlo, vhi) = (dynamic_load_from_delay(lo, h), dynamic_load_from_delay(hi, h));
            prop_assert!(vlo >= vhi);
            prop_assert!((1..=DYNAMIC_LOAD_MAX).contains(&vlo));
        }
    }
}
