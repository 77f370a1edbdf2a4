//! Predictive alerts: every `forecast_every_s` the manager fits a trend to
//! the last `forecast_window_s` of logged figures and tells, as an event,
//! which ones are heading for the limit where the manager (or the disk)
//! will have to act, and in how long (`usher_core::trend` holds the rule).
//!
//! Watched, per configured server (limits from its app's policy):
//! processing + queue time toward `heavy_ms`, probe queue length toward
//! `heavy_queue`, share of 5xx answers toward `restart_error_pct`. Per host
//! (each agent the manager knows): CPU busy toward the lowest
//! `heavy_cpu_pct` below 100, memory used toward the lowest `heavy_mem_pct`,
//! each disk's free bytes toward 0 (the time until full), and the agent's
//! report interval toward `silent_after_ms`.
//!
//! A forecast raises `trend_predicted` once when it appears and
//! `trend_over` when the trend no longer heads for its limit in time.

use std::collections::BTreeMap;
use std::time::Duration;

use usher_core::channel::event_type;
use usher_core::trend::{heading_for, Forecast, Sample, TrendRule};

use super::Policy;
use crate::manager::logdb::now_us;
use crate::manager::Manager;
use crate::model::Fleet;
use crate::store::Store;

/// One figure of one component, its samples and its limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    /// Server name, or agent id for a host figure (the event's origin).
    pub origin: String,
    /// What the figure is, in words, with its unit.
    pub figure: String,
    /// What reaching the limit means.
    pub limit_name: String,
    pub limit: f64,
    pub samples: Vec<Sample>,
}

/// A change to tell: a forecast that appeared, or one that ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Predicted { origin: String, text: String },
    Over { origin: String, text: String },
}

/// The forecasts standing after the last look, by (origin, figure).
#[derive(Debug, Default)]
pub struct Forecasts {
    standing: BTreeMap<(String, String), Forecast>,
}

impl Forecasts {
    /// Fits every watched figure and returns what changed since the last
    /// look (pure: the caller reads the figures and logs the changes).
    pub fn look(&mut self, watched: &[Watched], rule: &TrendRule) -> Vec<Change> {
        let mut now: BTreeMap<(String, String), Forecast> = BTreeMap::new();
        let mut changes = Vec::new();
        for w in watched {
            let key = (w.origin.clone(), w.figure.clone());
            if let Some(f) = heading_for(&w.samples, w.limit, rule) {
                if !self.standing.contains_key(&key) {
                    changes.push(Change::Predicted {
                        origin: w.origin.clone(),
                        text: format!("{} ({})", f.describe(&w.figure), w.limit_name),
                    });
                }
                now.insert(key, f);
            }
        }
        for (origin, figure) in self.standing.keys() {
            if !now.contains_key(&(origin.clone(), figure.clone())) {
                changes.push(Change::Over {
                    origin: origin.clone(),
                    text: format!("{figure}: no longer heading for its limit"),
                });
            }
        }
        self.standing = now;
        changes
    }

    /// The standing forecasts (origin, figure, forecast).
    pub fn standing(&self) -> impl Iterator<Item = (&str, &str, &Forecast)> {
        self.standing
            .iter()
            .map(|((o, f), fc)| (o.as_str(), f.as_str(), fc))
    }
}

/// Samples of one logged series as seconds and values.
fn samples(series: &[(u64, f64)]) -> Vec<Sample> {
    series
        .iter()
        .map(|(t, v)| Sample {
            t: *t as f64 / 1e6,
            value: *v,
        })
        .collect()
}

/// `a ∘ b` over the samples both series have at the same interval end
/// (the figures of one report share it).
fn joined(a: &[(u64, f64)], b: &[(u64, f64)], f: impl Fn(f64, f64) -> Option<f64>) -> Vec<Sample> {
    let b: BTreeMap<u64, f64> = b.iter().copied().collect();
    a.iter()
        .filter_map(|(t, x)| {
            let y = b.get(t)?;
            f(*x, *y).map(|value| Sample {
                t: *t as f64 / 1e6,
                value,
            })
        })
        .collect()
}

/// Per server: the (component, metric) series it needs, in this order.
const SERVER_METRICS: [&str; 5] = [
    "mean_us",
    "queue_delay_us",
    "queue_length",
    "errors_5xx",
    "requests",
];

/// Per host: the series it needs, in this order (disks come after, one per
/// mount).
const HOST_METRICS: [&str; 3] = ["cpu.idle", "memory.used", "memory.total"];

/// Reads the window of every watched figure from the logging database.
async fn read_watched(fleet: &Fleet, manager: &Manager, window: Duration) -> Vec<Watched> {
    let since = now_us().saturating_sub(window.as_micros() as u64);
    let policies: BTreeMap<&str, &Policy> = fleet
        .apps
        .iter()
        .map(|a| (a.name.as_str(), &a.policy))
        .collect();
    let hosts = manager.logged_agents().await.unwrap_or_default();
    let mut disks: Vec<Vec<String>> = Vec::new();
    for h in &hosts {
        let names = manager
            .metric_names(format!("host:{h}"), "disk:".into(), since)
            .await
            .unwrap_or_default();
        disks.push(
            names
                .into_iter()
                .filter(|n| n.ends_with(".available_bytes"))
                .collect(),
        );
    }
    let mut keys = Vec::new();
    for s in &fleet.servers {
        for m in SERVER_METRICS {
            keys.push((format!("server:{}", s.name), m.to_string()));
        }
    }
    for (h, d) in hosts.iter().zip(&disks) {
        for m in HOST_METRICS
            .iter()
            .map(|m| m.to_string())
            .chain(d.iter().cloned())
        {
            keys.push((format!("host:{h}"), m));
        }
    }
    let series = match manager.series(keys, since).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("predictive alerts: figures not read: {e}");
            return Vec::new();
        }
    };
    let mut series = series.into_iter();
    let mut out = Vec::new();
    for s in &fleet.servers {
        let got: Vec<Vec<(u64, f64)>> = series.by_ref().take(SERVER_METRICS.len()).collect();
        let Some(p) = policies.get(s.app.as_str()) else {
            continue;
        };
        let [mean, queue_delay, queue_length, errors, requests] = got.as_slice() else {
            continue;
        };
        let delay: Vec<Sample> = if queue_delay.is_empty() {
            samples(mean)
                .into_iter()
                .map(|mut x| {
                    x.value /= 1000.0;
                    x
                })
                .collect()
        } else {
            joined(mean, queue_delay, |m, q| Some((m + q) / 1000.0))
        };
        let watch = |figure: &str, limit_name: String, limit: f64, samples: Vec<Sample>| Watched {
            origin: s.name.clone(),
            figure: figure.to_string(),
            limit_name,
            limit,
            samples,
        };
        out.push(watch(
            "processing + queue time (ms)",
            format!("heavily loaded at heavy_ms = {}", p.heavy_ms),
            p.heavy_ms,
            delay,
        ));
        out.push(watch(
            "probe queue length",
            format!("heavily loaded at heavy_queue = {}", p.heavy_queue),
            f64::from(p.heavy_queue),
            samples(queue_length),
        ));
        out.push(watch(
            "5xx answers (%)",
            format!("restarted at restart_error_pct = {}", p.restart_error_pct),
            p.restart_error_pct,
            joined(errors, requests, |e, r| (r > 0.0).then_some(100.0 * e / r)),
        ));
    }
    let cpu_limit = fleet
        .apps
        .iter()
        .map(|a| a.policy.heavy_cpu_pct)
        .fold(f64::INFINITY, f64::min);
    let mem_limit = fleet
        .apps
        .iter()
        .map(|a| a.policy.heavy_mem_pct)
        .fold(f64::INFINITY, f64::min);
    let silent_s = manager.config().silent_after_ms as f64 / 1000.0;
    for (h, d) in hosts.iter().zip(&disks) {
        let got: Vec<Vec<(u64, f64)>> =
            series.by_ref().take(HOST_METRICS.len() + d.len()).collect();
        let [idle, used, total, disk_series @ ..] = got.as_slice() else {
            continue;
        };
        let watch =
            |figure: String, limit_name: String, limit: f64, samples: Vec<Sample>| Watched {
                origin: h.clone(),
                figure,
                limit_name,
                limit,
                samples,
            };
        if cpu_limit < 100.0 {
            out.push(watch(
                "CPU busy (%)".into(),
                format!("servers heavily loaded at heavy_cpu_pct = {cpu_limit}"),
                cpu_limit,
                samples(idle)
                    .into_iter()
                    .map(|mut x| {
                        x.value = 100.0 - x.value;
                        x
                    })
                    .collect(),
            ));
        }
        if mem_limit.is_finite() {
            out.push(watch(
                "memory used (%)".into(),
                format!("servers heavily loaded at heavy_mem_pct = {mem_limit}"),
                mem_limit,
                joined(used, total, |u, t| (t > 0.0).then_some(100.0 * u / t)),
            ));
        }
        for (name, free) in d.iter().zip(disk_series) {
            let mount = name
                .strip_prefix("disk:")
                .and_then(|n| n.strip_suffix(".available_bytes"))
                .unwrap_or(name);
            out.push(watch(
                format!("free bytes on {mount}"),
                "the disk is full".into(),
                0.0,
                samples(free),
            ));
        }
        // The report interval: the time between consecutive reports.
        let intervals: Vec<Sample> = idle
            .windows(2)
            .map(|w| Sample {
                t: w[1].0 as f64 / 1e6,
                value: w[1].0.saturating_sub(w[0].0) as f64 / 1e6,
            })
            .collect();
        out.push(watch(
            "report interval (s)".into(),
            format!(
                "the agent counts as silent at silent_after_ms = {}",
                manager.config().silent_after_ms
            ),
            silent_s,
            intervals,
        ));
    }
    out
}

/// Starts the task unless `forecast_every_s` is 0; it runs for the life of
/// the process.
pub fn start(store: &Store, manager: &Manager) {
    let cfg = manager.config();
    if cfg.forecast_every_s == 0 {
        return;
    }
    let every = Duration::from_secs(cfg.forecast_every_s);
    let window = Duration::from_secs(cfg.forecast_window_s);
    let rule = TrendRule {
        window_secs: cfg.forecast_window_s as f64,
        horizon_secs: cfg.forecast_horizon_s as f64,
        ..TrendRule::default()
    };
    let (store, manager) = (store.clone(), manager.clone());
    tokio::spawn(async move {
        let mut forecasts = Forecasts::default();
        loop {
            tokio::time::sleep(every).await;
            look_once(&store.fleet(), &manager, window, &rule, &mut forecasts).await;
        }
    });
}

/// One look over `fleet`: read, fit, log the changes as events.
pub async fn look_once(
    fleet: &Fleet,
    manager: &Manager,
    window: Duration,
    rule: &TrendRule,
    forecasts: &mut Forecasts,
) {
    let watched = read_watched(fleet, manager, window).await;
    for change in forecasts.look(&watched, rule) {
        match change {
            Change::Predicted { origin, text } => {
                manager
                    .raise_event(&origin, event_type::TREND_PREDICTED, text)
                    .await
            }
            Change::Over { origin, text } => {
                manager
                    .raise_event(&origin, event_type::TREND_OVER, text)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests;
