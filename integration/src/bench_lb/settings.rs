//! What a `make bench-lb` run may be told through its environment: rounds,
//! a scale on the request counts, the wall-clock cap per front door, the
//! warm-up and which scenarios run. Read through a lookup function, so the
//! tests pass a map and never touch the process environment.

use std::time::Duration;

/// A run's settings; [`Settings::default`] is the full benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Rounds per scenario; each figure is the median over them
    /// (`BENCH_LB_ROUNDS`, default 3).
    pub rounds: usize,
    /// Multiplies every scenario's request count (`BENCH_LB_SCALE`,
    /// default 1; e.g. 0.1 for a quick look).
    pub scale: f64,
    /// Longest one front door's measured run may take; then it stops and
    /// reports what was done (`BENCH_LB_CAP_S`, default 120).
    pub cap: Duration,
    /// Requests sent through a front door before each measured run, not
    /// counted (`BENCH_LB_WARMUP`, default 500).
    pub warmup: u64,
    /// Scenarios to run, by number (`BENCH_LB_SCENARIOS`, default `1,2`).
    pub scenarios: Vec<u8>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rounds: 3,
            scale: 1.0,
            cap: Duration::from_secs(120),
            warmup: 500,
            scenarios: vec![1, 2],
        }
    }
}

impl Settings {
    /// Reads the `BENCH_LB_*` variables through `get`; a bad value is an
    /// error naming the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let mut s = Settings::default();
        if let Some(v) = get("BENCH_LB_ROUNDS") {
            s.rounds = parse(&v, "BENCH_LB_ROUNDS", 1..=99)?;
        }
        if let Some(v) = get("BENCH_LB_SCALE") {
            s.scale = v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0 && *x <= 100.0)
                .ok_or_else(|| format!("BENCH_LB_SCALE={v:?}: a number above 0, at most 100"))?;
        }
        if let Some(v) = get("BENCH_LB_CAP_S") {
            s.cap = Duration::from_secs(parse(&v, "BENCH_LB_CAP_S", 1..=3600)?);
        }
        if let Some(v) = get("BENCH_LB_WARMUP") {
            s.warmup = parse(&v, "BENCH_LB_WARMUP", 0..=1_000_000)?;
        }
        if let Some(v) = get("BENCH_LB_SCENARIOS") {
            s.scenarios = v
                .split(',')
                .map(|p| match p.trim() {
                    "1" => Ok(1),
                    "2" => Ok(2),
                    _ => Err(format!("BENCH_LB_SCENARIOS={v:?}: a list of 1 and 2")),
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(s)
    }

    /// `n` requests scaled, at least 1.
    pub fn scaled(&self, n: u64) -> u64 {
        ((n as f64 * self.scale).round() as u64).max(1)
    }
}

fn parse<T>(v: &str, name: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    v.trim()
        .parse::<T>()
        .ok()
        .filter(|x| range.contains(x))
        .ok_or_else(|| {
            format!(
                "{name}={v:?}: a whole number, {}..={}",
                range.start(),
                range.end()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_is_the_full_benchmark() {
        assert_eq!(with(&[]), Ok(Settings::default()));
        assert_eq!(Settings::default().scaled(20_000), 20_000);
    }

    #[test]
    fn each_variable_is_read_and_checked() {
        let s = with(&[
            ("BENCH_LB_ROUNDS", "1"),
            ("BENCH_LB_SCALE", "0.1"),
            ("BENCH_LB_CAP_S", "30"),
            ("BENCH_LB_WARMUP", "0"),
            ("BENCH_LB_SCENARIOS", "2"),
        ])
        .expect("valid");
        assert_eq!(s.rounds, 1);
        assert_eq!(s.scaled(20_000), 2_000);
        assert_eq!(s.scaled(1), 1, "never 0");
        assert_eq!(s.cap, Duration::from_secs(30));
        assert_eq!((s.warmup, s.scenarios), (0, vec![2]));
        for (k, v) in [
            ("BENCH_LB_ROUNDS", "0"),
            ("BENCH_LB_ROUNDS", "x"),
            ("BENCH_LB_SCALE", "0"),
            ("BENCH_LB_SCALE", "NaN"),
            ("BENCH_LB_CAP_S", "-1"),
            ("BENCH_LB_SCENARIOS", "1,3"),
        ] {
            let e = with(&[(k, v)]).expect_err(k);
            assert!(e.starts_with(k), "{e}");
        }
    }
}
