//! Predictive alerts: from a logged series, whether a figure is heading for
//! a limit and when it will reach it — a server's load toward its
//! heavily-loaded threshold, a disk toward full, an error ratio toward the
//! manager's error threshold, an agent's report interval toward "silent".
//!
//! The rule (why: `docs/manager.md`, "Predictive alerts"):
//!
//! 1. Fit a least-squares line to the samples of the window.
//! 2. Believe it only when it explains the series: at least
//!    [`TrendRule::min_samples`] samples spanning at least half the window,
//!    and a coefficient of determination r² of at least
//!    [`TrendRule::min_r2`]. Flat noise has an r² near 0 whatever its
//!    amplitude (the fitted slope is small against the scatter), so it
//!    never alerts; a trend rising through noise has an r² that grows with
//!    the trend's size against the noise.
//! 3. The line must head toward the limit (rising to a limit above the
//!    fitted present, falling to one below), and reach it within
//!    [`TrendRule::horizon_secs`]: the estimate is when the line crosses the
//!    limit, counted from the last sample.
//!
//! A figure already past its limit is not a prediction (the manager's own
//! thresholds act on it). Pure and allocation-free: the caller passes the
//! samples it read from the logging database.

/// One logged value: `t` in seconds (any origin, increasing), `value` in
/// the figure's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: f64,
    pub value: f64,
}

/// When a fitted trend is believed, and how far ahead it is worth telling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendRule {
    /// The window the samples cover, seconds (the caller reads this much).
    pub window_secs: f64,
    /// Fewest samples that make a trend.
    pub min_samples: usize,
    /// Least r² (share of the series' variance the line explains).
    pub min_r2: f64,
    /// Farthest crossing worth an alert, seconds from the last sample.
    pub horizon_secs: f64,
}

impl Default for TrendRule {
    /// Ten minutes of samples, at least 20 of them, r² ≥ 0.6, crossings
    /// within an hour. With 20 samples of pure noise an r² of 0.6 has a
    /// chance of about 6 in 100,000 (slope t-statistic 5.2 on 18 degrees
    /// of freedom); the manager samples every few seconds, so a window
    /// holds a hundred or more and the chance is nil.
    fn default() -> TrendRule {
        TrendRule {
            window_secs: 600.0,
            min_samples: 20,
            min_r2: 0.6,
            horizon_secs: 3600.0,
        }
    }
}

/// A trend heading for a limit: what was seen and when the limit comes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Change per second of the fitted line.
    pub slope_per_sec: f64,
    /// The fitted line's value at the last sample.
    pub fitted_now: f64,
    /// The limit it heads for.
    pub limit: f64,
    /// Seconds from the last sample until the line reaches the limit.
    pub eta_secs: f64,
    /// How well the line explains the series (0..1).
    pub r2: f64,
    /// Samples fitted and the time they span, seconds.
    pub samples: usize,
    pub span_secs: f64,
}

impl Forecast {
    /// One line for an event or an alert: the trend, its window, the fit,
    /// and the time to the limit.
    pub fn describe(&self, figure: &str) -> String {
        let per_min = self.slope_per_sec * 60.0;
        format!(
            "{figure} {} {:.3}/min over the last {:.0} s ({} samples, r² {:.2}): \
             now {:.3}, reaches {:.3} in about {:.0} s",
            if per_min >= 0.0 { "rising" } else { "falling" },
            per_min.abs(),
            self.span_secs,
            self.samples,
            self.r2,
            self.fitted_now,
            self.limit,
            self.eta_secs,
        )
    }
}

/// Least-squares fit: (slope, intercept at the mean time, mean time, r²,
/// span); `None` with fewer than two distinct times or non-finite input.
fn fit(samples: &[Sample]) -> Option<(f64, f64, f64, f64, f64)> {
    let n = samples.len() as f64;
    if samples.len() < 2
        || samples
            .iter()
            .any(|s| !s.t.is_finite() || !s.value.is_finite())
    {
        return None;
    }
    let mean_t = samples.iter().map(|s| s.t).sum::<f64>() / n;
    let mean_v = samples.iter().map(|s| s.value).sum::<f64>() / n;
    let (mut stt, mut stv, mut svv) = (0.0, 0.0, 0.0);
    for s in samples {
        let (dt, dv) = (s.t - mean_t, s.value - mean_v);
        stt += dt * dt;
        stv += dt * dv;
        svv += dv * dv;
    }
    if stt <= 0.0 {
        return None;
    }
    let slope = stv / stt;
    // A perfectly flat series is explained by any flat line: r² 0, no trend.
    let r2 = if svv > 0.0 {
        (stv * stv / (stt * svv)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (first, last) = samples
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| {
            (a.min(s.t), b.max(s.t))
        });
    Some((slope, mean_v, mean_t, r2, last - first))
}

/// Whether `samples` head for `limit` under `rule`, and when they reach it.
/// `None`: too few samples, too short a span, a poor fit, heading away, a
/// limit already passed, or a crossing beyond the horizon.
pub fn heading_for(samples: &[Sample], limit: f64, rule: &TrendRule) -> Option<Forecast> {
    if samples.len() < rule.min_samples.max(2) || !limit.is_finite() {
        return None;
    }
    let (slope, mean_v, mean_t, r2, span) = fit(samples)?;
    if span < rule.window_secs / 2.0 || r2 < rule.min_r2 || slope == 0.0 {
        return None;
    }
    let last_t = samples
        .iter()
        .map(|s| s.t)
        .fold(f64::NEG_INFINITY, f64::max);
    let fitted_now = mean_v + slope * (last_t - mean_t);
    let eta_secs = (limit - fitted_now) / slope;
    if !(eta_secs > 0.0 && eta_secs <= rule.horizon_secs) {
        return None;
    }
    Some(Forecast {
        slope_per_sec: slope,
        fitted_now,
        limit,
        eta_secs,
        r2,
        samples: samples.len(),
        span_secs: span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic noise in [-1, 1) (xorshift64*), so each series is the
    /// same on every run.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
            (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
    }

    /// `n` samples every `every` seconds from t = 1000: `truth(t)` plus
    /// noise of amplitude `noise`.
    fn series(
        n: usize,
        every: f64,
        seed: u64,
        noise: f64,
        truth: impl Fn(f64) -> f64,
    ) -> Vec<Sample> {
        let mut rng = Noise(seed.max(1));
        (0..n)
            .map(|i| {
                let t = 1000.0 + every * i as f64;
                Sample {
                    t,
                    value: truth(t) + noise * rng.next(),
                }
            })
            .collect()
    }

    /// The forecast for `n` samples every `every` seconds of the line
    /// `a + b·t` with noise of amplitude `noise`, checked against the
    /// noiseless line's true crossing of `limit` (within 20 %).
    fn forecast_of_line(
        n: usize,
        every: f64,
        seed: u64,
        noise: f64,
        (a, b): (f64, f64),
        limit: f64,
    ) -> Forecast {
        let s = series(n, every, seed, noise, |t| a + b * t);
        let last = s.last().map_or(0.0, |x| x.t);
        let f = heading_for(&s, limit, &TrendRule::default()).expect("a forecast");
        let truth = (limit - a) / b - last;
        assert!(
            (f.eta_secs - truth).abs() <= 0.2 * truth,
            "{f:?} vs {truth}"
        );
        f
    }

    /// A server's load value falling toward its heavily-loaded threshold
    /// (usher's load is spare capacity: lower is busier): 10 min of
    /// samples every 5 s, noise ±400 on a fall of 3000.
    #[test]
    fn falling_load_toward_the_heavy_threshold() {
        let f = forecast_of_line(120, 5.0, 7, 400.0, (8000.0 + 5.0 * 1000.0, -5.0), 2000.0);
        assert!(
            f.describe("load").contains("falling"),
            "{}",
            f.describe("load")
        );
    }

    /// A disk filling: used bytes rising 2 MB/s toward a 10 GB disk,
    /// sampled every 10 s with ±50 MB of churn.
    #[test]
    fn disk_filling_gives_the_time_until_full() {
        forecast_of_line(60, 10.0, 11, 5.0e7, (4.0e9 - 2.0e6 * 1000.0, 2.0e6), 1.0e10);
    }

    /// An error ratio rising from 0.5 % toward the manager's 5 % threshold,
    /// noisy (±0.4 points) as small windows are.
    #[test]
    fn rising_errors() {
        forecast_of_line(
            120,
            5.0,
            23,
            0.004,
            (0.005 - 0.00002 * 1000.0, 0.00002),
            0.05,
        );
    }

    /// An agent's report interval stretching from 1 s toward the 30 s
    /// after which it counts as silent.
    #[test]
    fn report_interval_stretching() {
        forecast_of_line(100, 6.0, 5, 0.5, (1.0 - 0.03 * 1000.0, 0.03), 30.0);
    }

    /// Heading away, already past, beyond the horizon, too few samples or
    /// too short a span: no forecast.
    #[test]
    fn no_forecast_without_a_crossing_ahead() {
        let rule = TrendRule::default();
        let rising = series(120, 5.0, 3, 1.0, |t| 100.0 + t);
        assert_eq!(heading_for(&rising, 50.0, &rule), None, "limit behind");
        assert_eq!(
            heading_for(&rising, 1.0e6, &rule),
            None,
            "beyond the horizon"
        );
        assert_eq!(heading_for(&rising[..15], 2000.0, &rule), None, "too few");
        assert_eq!(
            heading_for(&rising[..20], 2000.0, &rule),
            None,
            "too short a span"
        );
        assert!(heading_for(&rising, 2000.0, &rule).is_some());
        assert_eq!(heading_for(&[], 1.0, &rule), None);
        let flat = series(120, 5.0, 3, 0.0, |_| 42.0);
        assert_eq!(heading_for(&flat, 50.0, &rule), None, "perfectly flat");
        let mut bad = rising.clone();
        bad[3].value = f64::NAN;
        assert_eq!(heading_for(&bad, 2000.0, &rule), None, "not finite");
    }

    proptest! {
        /// Flat noise of any amplitude, whatever the seed and wherever the
        /// limit just above or below it, never alerts.
        #[test]
        fn flat_noise_never_alerts(
            seed in 1u64..u64::MAX,
            level in 0.0f64..10_000.0,
            amplitude in 0.0f64..5_000.0,
            gap in 0.0f64..2.0,
        ) {
            let s = series(120, 5.0, seed, amplitude, |_| level);
            for limit in [level + amplitude * (1.0 + gap), level - amplitude * (1.0 + gap)] {
                prop_assert_eq!(heading_for(&s, limit, &TrendRule::default()), None);
            }
        }

        /// Never panics, and a forecast always lies ahead within the
        /// horizon and heads toward its limit.
        #[test]
        fn forecasts_are_sane(
            values in proptest::collection::vec(prop_oneof![Just(f64::NAN), -1e9f64..1e9], 0..40),
            limit in -1e9f64..1e9,
        ) {
            let s: Vec<Sample> = values
                .iter()
                .enumerate()
                .map(|(i, v)| Sample { t: 30.0 * i as f64, value: *v })
                .collect();
            let rule = TrendRule::default();
            if let Some(f) = heading_for(&s, limit, &rule) {
                prop_assert!(f.eta_secs > 0.0 && f.eta_secs <= rule.horizon_secs);
                prop_assert!((f.limit - f.fitted_now) * f.slope_per_sec > 0.0);
            }
        }
    }
}
