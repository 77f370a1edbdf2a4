//! Weighted interval selection (the design's FIG. 12).
//!
//! Each available server owns an interval of `[0, 1)` whose width is its load
//! metric over the sum of all metrics; one uniform draw picks the interval
//! that holds it. The table is built once per weight change and then only
//! read: a pick is one binary search, no allocation, no lock.

/// Cumulative upper bounds of each candidate's interval, built once per
/// weight change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalTable {
    /// `bounds[i]` is the (unnormalised) upper end of candidate `i`'s interval.
    bounds: Vec<f64>,
    total: f64,
}

impl IntervalTable {
    /// Builds the table from one weight per candidate. Weights that are not
    /// finite or not positive get an empty interval, so they are never picked.
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut total = 0.0;
        let bounds = weights
            .into_iter()
            .map(|w| {
                if w.is_finite() && w > 0.0 {
                    total += w;
                }
                total
            })
            .collect();
        IntervalTable { bounds, total }
    }

    /// Number of candidates (including those with an empty interval).
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    /// True when the table has no candidates at all.
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Width of candidate `i`'s interval as a share of `[0, 1)`.
    pub fn share(&self, i: usize) -> f64 {
        if self.total <= 0.0 || i >= self.bounds.len() {
            return 0.0;
        }
        let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
        (self.bounds[i] - lower) / self.total
    }

    /// Picks the candidate whose interval holds `draw` (uniform in `[0, 1)`).
    /// Returns `None` when there is no candidate with a positive weight.
    pub fn pick(&self, draw: f64) -> Option<usize> {
        if self.total <= 0.0 || !draw.is_finite() {
            return None;
        }
        let point = draw.clamp(0.0, 1.0) * self.total;
        // First bound strictly above the point: that candidate's interval
        // [previous bound, bound) holds it. Empty intervals are skipped because
        // their bound equals the previous one.
        let i = self.bounds.partition_point(|&b| b <= point);
        if i < self.bounds.len() {
            Some(i)
        } else {
            // draw == 1.0 (or rounding): the last non-empty interval.
            (0..self.bounds.len()).rev().find(|&j| self.share(j) > 0.0)
        }
    }
}

/// One-shot helper: picks over `weights` with `draw`.
pub fn pick(weights: &[f64], draw: f64) -> Option<usize> {
    IntervalTable::new(weights.iter().copied()).pick(draw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// FIG. 12 of the design: metrics A..F and the 0.517 draw that picks C.
    ///
    /// The design prints the widths as metric/10000 (.150 .225 .325 .200
    /// .100 .100, which add up to 1.1); normalised over the sum (11000) they
    /// are 1500/11000 etc. Either way the draw 0.517 falls in C's interval.
    #[test]
    fn design_worked_example() {
        let metrics = [1500.0, 2250.0, 3250.0, 2000.0, 1000.0, 1000.0];
        let t = IntervalTable::new(metrics);
        for (i, m) in metrics.iter().enumerate() {
            assert!((t.share(i) - m / 11_000.0).abs() < 1e-12);
        }
        assert_eq!(t.pick(0.517), Some(2));
        assert_eq!(t.pick(0.0), Some(0));
        assert_eq!(t.pick(1500.0 / 11_000.0 - 1e-9), Some(0));
        assert_eq!(t.pick(1500.0 / 11_000.0 + 1e-9), Some(1));
        assert_eq!(t.pick(0.999_999), Some(5));
        assert_eq!(t.pick(1.0), Some(5));
    }

    #[test]
    fn empty_and_zero_give_none() {
        assert_eq!(pick(&[], 0.3), None);
        assert_eq!(pick(&[0.0, 0.0], 0.3), None);
        assert_eq!(pick(&[f64::NAN, -1.0], 0.3), None);
        assert_eq!(pick(&[1.0], f64::NAN), None);
    }

    /// 10,000 evenly spread draws land in proportion to the weights within
    /// 1.5 points; a seeded pseudo-random spread is checked the same way.
    #[test]
    fn spread_follows_weights() {
        let weights = [1500.0, 2250.0, 3250.0, 2000.0, 1000.0, 1000.0];
        let t = IntervalTable::new(weights);
        let mut counts = [0usize; 6];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            // xorshift64*: deterministic, good enough for a spread test.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            if let Some(i) = t.pick(r) {
                counts[i] += 1;
            }
        }
        let total: f64 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let got = counts[i] as f64 / 100.0;
            let want = w / total * 100.0;
            assert!((got - want).abs() <= 1.5, "server {i}: {got}% vs {want}%");
        }
    }

    proptest! {
        #[test]
        fn never_picks_zero_weight(weights in proptest::collection::vec(prop_oneof![Just(0.0), 0.0f64..10_000.0], 0..20), draw in 0.0f64..1.0) {
            match pick(&weights, draw) {
                Some(i) => prop_assert!(weights[i] > 0.0),
                None => prop_assert!(weights.iter().all(|w| *w <= 0.0)),
            }
        }
    }
}
