//! The manager's settings (a `[manager]` table in the control plane's
//! config, or a TOML file of its own for the standalone binary).

use serde::Deserialize;

/// What the dynamic load value is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoadSource {
    /// Probe queue delay (mean processing time when no probe was measured).
    QueueDelay,
    /// Mean processing time of the interval's requests.
    ProcessingTime,
    /// Queue delay plus mean processing time: how long a new request would
    /// wait and then take.
    #[default]
    Sum,
}

/// Manager settings; every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    /// How often dynamic load values are computed, in milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Ping an agent not heard from for this long (ms).
    #[serde(default = "default_ping_after_ms")]
    pub ping_after_ms: u64,
    /// An agent not heard from for this long (ms) is silent: its servers
    /// count as failed.
    #[serde(default = "default_silent_after_ms")]
    pub silent_after_ms: u64,
    /// The delay (ms) that halves a server's dynamic load value.
    #[serde(default = "default_half_at_ms")]
    pub half_at_ms: f64,
    /// What the dynamic load value is computed from.
    #[serde(default)]
    pub load_source: LoadSource,
    /// Longest time (ms) the logging database collects writes before it
    /// commits them in one transaction.
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
    /// Rows older than this many hours are deleted from the logging database.
    #[serde(default = "default_retention_hours")]
    pub retention_hours: u64,
    /// An agent not connected for this long (seconds) is listed as `gone`
    /// (`GET /api/v1/agents`); `DELETE /api/v1/agents/{id}` then removes it.
    #[serde(default = "default_gone_after_s")]
    pub gone_after_s: u64,
    /// The window (seconds) of each server's long-term load value, the
    /// static default front doors age toward when the manager is away.
    #[serde(default = "default_long_term_window_s")]
    pub long_term_window_s: u64,
    /// How often (seconds) the long-term values are recomputed.
    #[serde(default = "default_long_term_every_s")]
    pub long_term_every_s: u64,
    /// How often (seconds) the predictive alerts look at the logged
    /// figures (docs/manager.md, "Predictive alerts"); 0 switches them off.
    #[serde(default = "default_forecast_every_s")]
    pub forecast_every_s: u64,
    /// The window (seconds) of logged figures a trend is fitted to.
    #[serde(default = "default_forecast_window_s")]
    pub forecast_window_s: u64,
    /// Farthest (seconds) a predicted crossing may lie to be told.
    #[serde(default = "default_forecast_horizon_s")]
    pub forecast_horizon_s: u64,
}

fn default_interval_ms() -> u64 {
    250
}
fn default_ping_after_ms() -> u64 {
    2000
}
fn default_silent_after_ms() -> u64 {
    5000
}
fn default_half_at_ms() -> f64 {
    5.0
}
fn default_flush_ms() -> u64 {
    100
}
fn default_retention_hours() -> u64 {
    24 * 7
}
fn default_gone_after_s() -> u64 {
    300
}
fn default_long_term_window_s() -> u64 {
    3600
}
fn default_long_term_every_s() -> u64 {
    60
}
fn default_forecast_every_s() -> u64 {
    30
}
fn default_forecast_window_s() -> u64 {
    600
}
fn default_forecast_horizon_s() -> u64 {
    3600
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            interval_ms: default_interval_ms(),
            ping_after_ms: default_ping_after_ms(),
            silent_after_ms: default_silent_after_ms(),
            half_at_ms: default_half_at_ms(),
            load_source: LoadSource::default(),
            flush_ms: default_flush_ms(),
            retention_hours: default_retention_hours(),
            gone_after_s: default_gone_after_s(),
            long_term_window_s: default_long_term_window_s(),
            long_term_every_s: default_long_term_every_s(),
            forecast_every_s: default_forecast_every_s(),
            forecast_window_s: default_forecast_window_s(),
            forecast_horizon_s: default_forecast_horizon_s(),
        }
    }
}

impl ManagerConfig {
    /// Checks the values; the error names the key.
    pub fn validate(self) -> Result<ManagerConfig, String> {
        if !(10..=60_000).contains(&self.interval_ms) {
            return Err("interval_ms: must be 10..=60000".into());
        }
        if self.ping_after_ms == 0 || self.silent_after_ms <= self.ping_after_ms {
            return Err("silent_after_ms: must be above ping_after_ms (> 0)".into());
        }
        if !self.half_at_ms.is_finite() || self.half_at_ms <= 0.0 {
            return Err("half_at_ms: must be a number above 0".into());
        }
        if !(1..=10_000).contains(&self.flush_ms) {
            return Err("flush_ms: must be 1..=10000".into());
        }
        if self.retention_hours == 0 {
            return Err("retention_hours: must be at least 1".into());
        }
        if self.gone_after_s == 0
            || self.gone_after_s > 365 * 86_400
            || self.gone_after_s.saturating_mul(1000) < self.silent_after_ms
        {
            return Err("gone_after_s: must be 1..=31536000 and at least silent_after_ms".into());
        }
        if !(60..=7 * 86_400).contains(&self.long_term_window_s) {
            return Err("long_term_window_s: must be 60..=604800".into());
        }
        if !(1..=3600).contains(&self.long_term_every_s) {
            return Err("long_term_every_s: must be 1..=3600".into());
        }
        if self.forecast_every_s > 3600 {
            return Err("forecast_every_s: must be 0..=3600".into());
        }
        if !(10..=86_400).contains(&self.forecast_window_s) {
            return Err("forecast_window_s: must be 10..=86400".into());
        }
        if !(10..=7 * 86_400).contains(&self.forecast_horizon_s) {
            return Err("forecast_horizon_s: must be 10..=604800".into());
        }
        Ok(self)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<ManagerConfig, String> {
        let cfg: ManagerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c = ManagerConfig::from_toml("").expect("defaults");
        assert_eq!(c.interval_ms, 250);
        assert_eq!(c.load_source, LoadSource::Sum);
        let c = ManagerConfig::from_toml("load_source = \"queue_delay\"").expect("src");
        assert_eq!(c.load_source, LoadSource::QueueDelay);
        assert!(ManagerConfig::from_toml("interval_ms = 0")
            .unwrap_err()
            .contains("interval_ms"));
        assert_eq!(c.gone_after_s, 300);
        assert!(ManagerConfig::from_toml("gone_after_s = 0")
            .unwrap_err()
            .contains("gone_after_s"));
        assert!(ManagerConfig::from_toml("gone_after_s = 2")
            .unwrap_err()
            .starts_with("gone_after_s:"));
        assert!(ManagerConfig::from_toml("bogus = 1")
            .unwrap_err()
            .contains("bogus"));
    }
}
