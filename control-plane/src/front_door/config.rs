//! `[front_door]`: how long the built-in front doors (proxy mode) wait for
//! a server, and when they take a misbehaving server out of rotation
//! (passive health, as Envoy's outlier detection). One table for every app.

use std::time::Duration;

use serde::Deserialize;

/// The `[front_door]` table; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontDoorConfig {
    /// Longest wait (ms) for a server's answer head, connect included; then
    /// the user gets 504 and the server is ejected.
    #[serde(default = "default_upstream_timeout_ms")]
    pub upstream_timeout_ms: u64,
    /// Longest wait (ms) for a new connection to a server; at most
    /// `upstream_timeout_ms`.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// This many 5xx answers in a row from one server eject it (0: 5xx
    /// answers never eject).
    #[serde(default = "default_eject_after_5xx")]
    pub eject_after_5xx: u32,
    /// How long (ms) an ejected server stays out of a door's rotation the
    /// first time; each further ejection without a good answer in between
    /// adds as much again. 0 switches ejection off.
    #[serde(default = "default_eject_ms")]
    pub eject_ms: u64,
    /// Upper bound (ms) of one ejection, however often it repeats.
    #[serde(default = "default_max_eject_ms")]
    pub max_eject_ms: u64,
}

fn default_upstream_timeout_ms() -> u64 {
    3000
}
fn default_connect_timeout_ms() -> u64 {
    1000
}
fn default_eject_after_5xx() -> u32 {
    5
}
fn default_eject_ms() -> u64 {
    10_000
}
fn default_max_eject_ms() -> u64 {
    300_000
}

impl Default for FrontDoorConfig {
    fn default() -> Self {
        FrontDoorConfig {
            upstream_timeout_ms: default_upstream_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            eject_after_5xx: default_eject_after_5xx(),
            eject_ms: default_eject_ms(),
            max_eject_ms: default_max_eject_ms(),
        }
    }
}

/// Longest wait or ejection accepted: one hour.
const MAX_MS: u64 = 3_600_000;

impl FrontDoorConfig {
    /// Checks the values; the error is `key: problem`.
    pub fn validate(self) -> Result<FrontDoorConfig, String> {
        if !(1..=MAX_MS).contains(&self.upstream_timeout_ms) {
            return Err(format!("upstream_timeout_ms: must be 1..={MAX_MS}"));
        }
        if !(1..=self.upstream_timeout_ms).contains(&self.connect_timeout_ms) {
            return Err("connect_timeout_ms: must be 1..=upstream_timeout_ms".into());
        }
        if self.eject_after_5xx > 10_000 {
            return Err("eject_after_5xx: must be 0..=10000".into());
        }
        if self.eject_ms > MAX_MS {
            return Err(format!("eject_ms: must be 0..={MAX_MS}"));
        }
        if !(self.eject_ms..=MAX_MS).contains(&self.max_eject_ms) {
            return Err(format!(
                "max_eject_ms: must be eject_ms ({})..={MAX_MS}, got {}",
                self.eject_ms, self.max_eject_ms
            ));
        }
        Ok(self)
    }

    /// The bound on a server's answer head.
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }

    /// The bound on a new connection.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FrontDoorConfig, String> {
        let c: FrontDoorConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()
    }

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c = parse("").expect("defaults");
        assert_eq!(c, FrontDoorConfig::default());
        assert_eq!(c.upstream_timeout(), Duration::from_secs(3));
        assert_eq!(c.connect_timeout(), Duration::from_secs(1));
        assert_eq!((c.eject_after_5xx, c.eject_ms), (5, 10_000));
        let e = parse("upstream_timeout_ms = 0").unwrap_err();
        assert!(e.starts_with("upstream_timeout_ms: "), "{e}");
        let e = parse("upstream_timeout_ms = 500").unwrap_err();
        assert!(e.starts_with("connect_timeout_ms: "), "{e}");
        let e = parse("eject_ms = 400000").unwrap_err();
        assert!(e.starts_with("max_eject_ms: "), "{e}");
        let c = parse("eject_ms = 0\neject_after_5xx = 0").expect("ejection off");
        assert_eq!(c.eject_ms, 0);
        assert!(parse("bogus = 1").unwrap_err().contains("bogus"));
    }
}
