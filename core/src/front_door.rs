//! The front door's per-application state: load metrics aged over time,
//! the interval table, and the epsilon bump after each pick.
//!
//! Each worker (nginx worker, Envoy worker VM, control-plane listener) keeps
//! its own `FrontDoor` per application and rebuilds it from every new
//! snapshot; between snapshots it only ages metrics (at most once a second)
//! and applies its own epsilon bumps, so no lock is shared on the request path.

use crate::load_metric::{bump, load_metric, scale_capacity};
use crate::model::AppMode;
use crate::selection::IntervalTable;
use crate::snapshot::AppView;

/// How often the aging of dynamic values is folded into the table.
const REBUILD_EVERY_SECS: f64 = 1.0;

/// One candidate server of a front door.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontDoorServer {
    pub name: String,
    pub url: String,
    capacity: f64,
    dynamic: Option<f64>,
    /// Age of `dynamic` at `received_at`.
    age_at_receipt: f64,
    available: bool,
    /// Epsilon bumps applied since the snapshot arrived.
    bumps: f64,
}

/// What the front door should do with a new user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Send the user to `servers()[i]`.
    Server(usize),
    /// The application is disabled: sorry page.
    Disabled,
    /// No server is available: sorry page or 503.
    NoServer,
}

/// Per-application front-door state.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    pub name: String,
    pub enabled: bool,
    pub mode: AppMode,
    pub sorry_page: Option<String>,
    epsilon: f64,
    obsolescence_secs: f64,
    servers: Vec<FrontDoorServer>,
    received_at: f64,
    table: IntervalTable,
    built_at: f64,
}

impl FrontDoor {
    /// Builds the state from a snapshot's view of one app, received at `now`
    /// (seconds on the host's own monotonic clock).
    pub fn new(view: &AppView, now: f64) -> Self {
        let servers = view
            .servers
            .iter()
            .map(|s| FrontDoorServer {
                name: s.name.clone(),
                url: s.url.clone(),
                capacity: scale_capacity(s.capacity.min(255) as u8),
                dynamic: s.dynamic_load.map(f64::from),
                age_at_receipt: s.load_age_secs,
                available: s.available,
                bumps: 0.0,
            })
            .collect();
        let mut door = FrontDoor {
            name: view.name.clone(),
            enabled: view.enabled,
            mode: view.mode,
            sorry_page: view.sorry_page.clone(),
            epsilon: view.epsilon,
            obsolescence_secs: view.obsolescence_secs,
            servers,
            received_at: now,
            table: IntervalTable::default(),
            built_at: f64::NEG_INFINITY,
        };
        door.rebuild(now);
        door
    }

    /// The candidate servers, in snapshot order.
    pub fn servers(&self) -> &[FrontDoorServer] {
        &self.servers
    }

    /// Current load metric of every server (0 for unavailable ones).
    pub fn metrics(&self, now: f64) -> Vec<f64> {
        self.servers
            .iter()
            .map(|s| self.metric_of(s, now))
            .collect()
    }

    /// Share of new users each server gets right now (sums to 1 or 0).
    pub fn shares(&self) -> Vec<f64> {
        (0..self.servers.len())
            .map(|i| self.table.share(i))
            .collect()
    }

    fn metric_of(&self, s: &FrontDoorServer, now: f64) -> f64 {
        if !s.available {
            return 0.0;
        }
        let age = s.age_at_receipt + (now - self.received_at).max(0.0);
        let lm = load_metric(s.capacity, s.dynamic, age, self.obsolescence_secs);
        bump(lm, s.bumps * self.epsilon)
    }

    fn rebuild(&mut self, now: f64) {
        let mut metrics = self.metrics(now);
        if metrics.iter().all(|m| *m <= 0.0) && self.servers.iter().any(|s| s.bumps > 0.0) {
            // Bumps alone emptied every interval: forget them rather than
            // turn users away; the next snapshot brings measured values.
            for s in &mut self.servers {
                s.bumps = 0.0;
            }
            metrics = self.metrics(now);
        }
        self.table = IntervalTable::new(metrics);
        self.built_at = now;
    }

    /// Decides where a new user goes. `now` is the host's monotonic clock in
    /// seconds, `draw` a uniform random number in `[0, 1)`.
    pub fn pick(&mut self, now: f64, draw: f64) -> Pick {
        if !self.enabled {
            return Pick::Disabled;
        }
        if now - self.built_at >= REBUILD_EVERY_SECS {
            self.rebuild(now);
        }
        let Some(i) = self.table.pick(draw) else {
            return Pick::NoServer;
        };
        if self.epsilon > 0.0 {
            self.servers[i].bumps += 1.0;
            self.rebuild(now);
        }
        Pick::Server(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ServerView;

    fn view(loads: &[u32], epsilon: f64) -> AppView {
        AppView {
            name: "shop".into(),
            enabled: true,
            mode: AppMode::Redirect,
            epsilon,
            obsolescence_secs: 1200.0,
            sorry_page: None,
            servers: loads
                .iter()
                .enumerate()
                .map(|(i, l)| ServerView {
                    name: format!("s{i}"),
                    url: format!("http://127.0.0.1:{}", 9000 + i),
                    capacity: 5,
                    dynamic_load: Some(*l),
                    load_age_secs: 0.0,
                    available: true,
                })
                .collect(),
        }
    }

    #[test]
    fn picks_by_design_example() {
        let mut d = FrontDoor::new(&view(&[1500, 2250, 3250, 2000, 1000, 1000], 0.0), 0.0);
        assert_eq!(d.pick(0.0, 0.517), Pick::Server(2));
    }

    #[test]
    fn ages_toward_capacity() {
        let d = FrontDoor::new(&view(&[1000], 0.0), 100.0);
        assert_eq!(d.metrics(100.0 + 600.0), vec![3000.0]);
        assert_eq!(d.metrics(100.0 + 1200.0), vec![5000.0]);
    }

    #[test]
    fn disabled_and_unavailable() {
        let mut v = view(&[1000, 1000], 0.0);
        v.enabled = false;
        assert_eq!(FrontDoor::new(&v, 0.0).pick(0.0, 0.5), Pick::Disabled);
        v.enabled = true;
        v.servers.iter_mut().for_each(|s| s.available = false);
        assert_eq!(FrontDoor::new(&v, 0.0).pick(0.0, 0.5), Pick::NoServer);
        v.servers[1].available = true;
        assert_eq!(FrontDoor::new(&v, 0.0).pick(0.0, 0.01), Pick::Server(1));
    }

    #[test]
    fn epsilon_spreads_a_burst() {
        let mut d = FrontDoor::new(&view(&[1000, 1000], 100.0), 0.0);
        // The same draw picks s0 first, then s0 is busier and s1 wins.
        assert_eq!(d.pick(0.0, 0.49), Pick::Server(0));
        assert_eq!(d.pick(0.0, 0.49), Pick::Server(1));
        // A burst that would empty every interval resets the bumps.
        for _ in 0..100 {
            assert!(matches!(d.pick(0.0, 0.3), Pick::Server(_)));
        }
    }
}
