//! A page's answer time drawn per request (`--latency uniform:MAX_MS`), so
//! one process can stand for a backend whose answers vary as real ones do:
//! `make bench-lb` runs ten of them, from 1 ms to 1000 ms, to see whether a
//! front door keeps users off the slow ones.
//!
//! Only the draw lives here; the caller passes the random number in, so
//! the rule is tested without sleeping or seeding a global generator.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Longest `MAX_MS` accepted: an hour, far beyond any front door's wait.
const MAX_MS_LIMIT: u64 = 3_600_000;

/// How long each page's answer takes on top of `--service-ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Nothing added (the default): `--service-ms` alone.
    Fixed,
    /// Uniform over 0..`max_ms`, drawn anew for every request.
    Uniform { max_ms: u64 },
}

impl Latency {
    /// The added time for a draw `r` in 0..1 (clamped, so a generator
    /// that returns exactly 1.0 or a NaN cannot give more than the max).
    pub fn draw(self, r: f64) -> Duration {
        match self {
            Latency::Fixed => Duration::ZERO,
            Latency::Uniform { max_ms } => {
                let r = if r.is_nan() { 0.0 } else { r.clamp(0.0, 1.0) };
                // Microseconds, so a 1 ms maximum still spreads.
                Duration::from_micros((max_ms as f64 * 1000.0 * r) as u64)
            }
        }
    }
}

/// Why a `--latency` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyError(String);

impl fmt::Display for LatencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LatencyError {}

impl FromStr for Latency {
    type Err = LatencyError;

    /// `fixed`, or `uniform:MAX_MS` with MAX_MS a whole number of
    /// milliseconds, 1..=3600000.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "fixed" {
            return Ok(Latency::Fixed);
        }
        let bad = || {
            LatencyError(format!(
                "{s:?}: expected `fixed` or `uniform:MAX_MS` (MAX_MS a whole number of milliseconds, 1..={MAX_MS_LIMIT})"
            ))
        };
        let max = s.strip_prefix("uniform:").ok_or_else(bad)?;
        let max_ms: u64 = max.parse().map_err(|_| bad())?;
        if !(1..=MAX_MS_LIMIT).contains(&max_ms) {
            return Err(bad());
        }
        Ok(Latency::Uniform { max_ms })
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::Fixed => f.write_str("fixed"),
            Latency::Uniform { max_ms } => write!(f, "uniform:{max_ms}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_forms_and_refuses_the_rest() {
        assert_eq!("fixed".parse(), Ok(Latency::Fixed));
        assert_eq!("uniform:1".parse(), Ok(Latency::Uniform { max_ms: 1 }));
        assert_eq!(
            "uniform:1000".parse(),
            Ok(Latency::Uniform { max_ms: 1000 })
        );
        for bad in [
            "",
            "uniform",
            "uniform:",
            "uniform:0",
            "uniform:-5",
            "uniform:1.5",
            "uniform:3600001",
            "normal:10",
            "Uniform:10",
        ] {
            let e = bad.parse::<Latency>().expect_err(bad);
            assert!(e.to_string().contains("uniform:MAX_MS"), "{bad}: {e}");
        }
        for l in [Latency::Fixed, Latency::Uniform { max_ms: 42 }] {
            assert_eq!(l.to_string().parse(), Ok(l), "round trip");
        }
    }

    #[test]
    fn draw_spans_zero_to_max_and_never_beyond() {
        let u = Latency::Uniform { max_ms: 10 };
        assert_eq!(u.draw(0.0), Duration::ZERO);
        assert_eq!(u.draw(0.5), Duration::from_millis(5));
        assert_eq!(u.draw(1.0), Duration::from_millis(10));
        assert_eq!(u.draw(7.0), Duration::from_millis(10), "clamped");
        assert_eq!(u.draw(-1.0), Duration::ZERO, "clamped");
        assert_eq!(u.draw(f64::NAN), Duration::ZERO);
        // Sub-millisecond draws survive for a 1 ms maximum.
        let one = Latency::Uniform { max_ms: 1 };
        assert_eq!(one.draw(0.25), Duration::from_micros(250));
        assert_eq!(Latency::Fixed.draw(0.9), Duration::ZERO);
    }

    #[test]
    fn many_draws_have_the_uniform_mean() {
        // 10,000 evenly spaced draws: the mean is max/2 within 1 %.
        let u = Latency::Uniform { max_ms: 100 };
        let n = 10_000;
        let total: Duration = (0..n).map(|i| u.draw((i as f64 + 0.5) / n as f64)).sum();
        let mean_ms = total.as_secs_f64() * 1000.0 / n as f64;
        assert!((mean_ms - 50.0).abs() < 0.5, "mean {mean_ms} ms");
    }
}
