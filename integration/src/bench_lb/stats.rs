//! The figures of a run, computed from every request's latency: nearest-
//! rank percentiles (no interpolation, so p99.9 of 20,000 requests is the
//! 20th-longest one a user really waited) and the median over rounds.

/// The `q`-quantile (0..=1) of `sorted` by nearest rank; 0 for no sample.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values` (the mean of the two middle ones for an even
/// count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=20_000).collect();
        assert_eq!(percentile(&v, 0.5), 10_000);
        assert_eq!(percentile(&v, 0.99), 19_800);
        assert_eq!(percentile(&v, 0.999), 19_980, "the 20th longest");
        assert_eq!(percentile(&v, 1.0), 20_000);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 0.999), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn median_of_odd_even_and_none() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0, f64::NAN]), 5.0);
        assert!(median(&[]).is_nan());
    }
}
