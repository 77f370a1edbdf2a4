//! The thresholds and timings the manager acts on, per application
//! (`[apps.policy]` in usher.toml, `policy` in an app's API body,
//! `PUT /api/v1/apps/{name}/policy`). Every key has a default, so an empty
//! table is the documented behaviour (docs/manager.md, "The manager acts").

use serde::{Deserialize, Serialize};
use usher_core::model::ModelError;

/// Where a server at maximum load sends new stateless users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OffloadTo {
    /// The app's front door, which places the user anew (the default).
    #[default]
    FrontDoor,
    /// Straight to the app's lightest server in rotation.
    Lightest,
}

/// What new users get while their application is swamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SwampedAction {
    /// Served as usual by every available server (the default).
    #[default]
    Serve,
    /// The sorry page (503).
    Sorry,
}

/// One application's thresholds and timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Heavily loaded above this mean processing + queue time (ms) over
    /// the last report: no new users.
    pub heavy_ms: f64,
    /// Heavily loaded above this probe queue length.
    pub heavy_queue: u32,
    /// Heavily loaded above this host CPU use (percent busy). 100 (the
    /// default) switches it off: CPU is a host-wide figure, and a busy
    /// host (measured: 99–100 % on a 2-core machine under tests) would
    /// mark every server on it heavy at once, however fast each answers.
    pub heavy_cpu_pct: f64,
    /// Heavily loaded above this host memory use (percent).
    pub heavy_mem_pct: f64,
    /// Maximum load above this mean processing + queue time (ms): the
    /// server's WSI redirects new stateless users away.
    pub max_ms: f64,
    /// Maximum load above this probe queue length.
    pub max_queue: u32,
    /// The lower mark, percent of each threshold: a state is left only
    /// after every figure stayed below it for `recover_ms`.
    pub recover_pct: f64,
    /// How long figures must stay below the lower mark (ms).
    pub recover_ms: u64,
    /// Where offloaded users go.
    pub offload_to: OffloadTo,
    /// More entries into offload than this within `thrash_window_s`
    /// (the same server moved in and out) make the app swamped.
    pub thrash_flips: u32,
    pub thrash_window_s: f64,
    /// A swamped app is left after its load has been normal this long (s).
    pub unswamp_s: f64,
    pub swamped_action: SwampedAction,
    /// Quiet period of a drain when the operator gives none (s).
    pub drain_quiet_s: f64,
    /// Restart a server whose share of 5xx/429 answers is above this…
    pub restart_error_pct: f64,
    /// …for this long (s), or whose probe fails this long while its
    /// process lives.
    pub restart_after_s: f64,
    /// At most this many automatic restarts per server per hour; the next
    /// is refused and the server stays out of rotation.
    pub restart_max_per_hour: u32,
    /// Quiet period of the drain before an automatic restart (s); the
    /// restart happens at the latest after ten times this.
    pub restart_quiet_s: f64,
    /// Ramp of a server entering rotation, from 10 % of its weight to
    /// all of it (s); 0 switches slow start off.
    pub slow_start_s: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            heavy_ms: 500.0,
            heavy_queue: 64,
            heavy_cpu_pct: 100.0,
            heavy_mem_pct: 95.0,
            max_ms: 2000.0,
            max_queue: 256,
            recover_pct: 80.0,
            recover_ms: 2000,
            offload_to: OffloadTo::FrontDoor,
            thrash_flips: 2,
            thrash_window_s: 30.0,
            unswamp_s: 10.0,
            swamped_action: SwampedAction::Serve,
            drain_quiet_s: 600.0,
            restart_error_pct: 50.0,
            restart_after_s: 10.0,
            restart_max_per_hour: 3,
            restart_quiet_s: 2.0,
            slow_start_s: 30.0,
        }
    }
}

impl Policy {
    /// Checks every value; the error names the key under `prefix`
    /// (`apps[0].policy.` in the config file, `policy.` in the API).
    pub fn validate(&self, prefix: &str) -> Result<(), ModelError> {
        let at = |k: &str| format!("{prefix}{k}");
        let positive = [
            ("heavy_ms", self.heavy_ms),
            ("max_ms", self.max_ms),
            ("thrash_window_s", self.thrash_window_s),
        ];
        for (k, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(ModelError::invalid(at(k), "must be a number above 0"));
            }
        }
        let non_negative = [
            ("unswamp_s", self.unswamp_s),
            ("drain_quiet_s", self.drain_quiet_s),
            ("restart_after_s", self.restart_after_s),
            ("restart_quiet_s", self.restart_quiet_s),
            ("slow_start_s", self.slow_start_s),
        ];
        for (k, v) in non_negative {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return Err(ModelError::invalid(at(k), "must be 0..86400 seconds"));
            }
        }
        let percent = [
            ("heavy_cpu_pct", self.heavy_cpu_pct),
            ("heavy_mem_pct", self.heavy_mem_pct),
            ("recover_pct", self.recover_pct),
            ("restart_error_pct", self.restart_error_pct),
        ];
        for (k, v) in percent {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                return Err(ModelError::invalid(at(k), "must be 0..100"));
            }
        }
        if self.max_ms < self.heavy_ms {
            return Err(ModelError::invalid(
                at("max_ms"),
                format!("must be at least heavy_ms ({})", self.heavy_ms),
            ));
        }
        if self.max_queue < self.heavy_queue {
            return Err(ModelError::invalid(
                at("max_queue"),
                format!("must be at least heavy_queue ({})", self.heavy_queue),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_and_bad_values_name_the_key() {
        let p: Policy = toml::from_str("").expect("empty table");
        assert_eq!(p, Policy::default());
        p.validate("policy.").expect("defaults are valid");
        let p: Policy = toml::from_str("heavy_ms = 50\nmax_ms = 20").expect("parses");
        let e = p.validate("apps[0].policy.").unwrap_err();
        assert_eq!(e.field(), "apps[0].policy.max_ms");
        let p: Policy = toml::from_str("recover_pct = 120").expect("parses");
        assert_eq!(p.validate("").unwrap_err().field(), "recover_pct");
        assert!(toml::from_str::<Policy>("bogus = 1").is_err());
        let p: Policy = toml::from_str("offload_to = \"lightest\"\nswamped_action = \"sorry\"")
            .expect("parses");
        assert_eq!(
            (p.offload_to, p.swamped_action),
            (OffloadTo::Lightest, SwampedAction::Sorry)
        );
    }
}
