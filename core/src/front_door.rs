//! The front door's per-application state: load metrics aged over time,
//! the interval table, the epsilon bump after each pick (redirect mode),
//! and what this door learned from its own proxied requests (proxy mode:
//! [`crate::steering`]).
//!
//! Each worker (nginx worker, Envoy worker VM, control-plane listener) keeps
//! its own `FrontDoor` per application and rebuilds it from every new
//! snapshot, carrying its learned feedback over ([`FrontDoor::carry_over`]);
//! between snapshots it only ages metrics (at most once a second) and
//! applies its own bumps and feedback, so no lock is shared on the request
//! path.

use crate::dynamic_load::DYNAMIC_LOAD_MAX;
use crate::load_metric::{bump, load_metric, scale_capacity};
use crate::model::AppMode;
use crate::selection::IntervalTable;
use crate::snapshot::AppView;
use crate::steering::{cheapest, cheapest_by_cost, Feedback, Outcome};

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
    /// The manager's long-term value as a fraction of full speed: what the
    /// dynamic value ages toward (`None`: the capacity).
    static_fraction: Option<f64>,
    /// Slow start left when the snapshot arrived, and its whole length.
    ramp_left_at_receipt: f64,
    ramp_secs: f64,
    /// Epsilon bumps applied since the snapshot arrived.
    bumps: f64,
}

/// Share of its weight a server in slow start gets at the start of the ramp.
pub const SLOW_START_FLOOR: f64 = 0.1;

/// Lowest long-term fraction a server ages toward, so a long-term value
/// near zero (a server that failed fast for an hour) never ages a whole
/// app down to no weight at all.
const STATIC_FRACTION_FLOOR: f64 = 0.01;

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
    /// The weights `table` was built from, by server.
    weights: Vec<f64>,
    built_at: f64,
    /// Proxy mode: what this door learned of each server, by server.
    feedback: Vec<Feedback>,
    /// Proxy mode: the cheapest server at the previous pick (a candidate
    /// of the next one).
    memory: Option<usize>,
}

impl FrontDoor {
    /// Builds the state from a snapshot's view of one app, received at `now`
    /// (seconds on the host's own monotonic clock).
    pub fn new(view: &AppView, now: f64) -> Self {
        let servers: Vec<FrontDoorServer> = view
            .servers
            .iter()
            .map(|s| FrontDoorServer {
                name: s.name.clone(),
                url: s.url.clone(),
                capacity: scale_capacity(s.capacity.min(255) as u8),
                dynamic: s.dynamic_load.map(f64::from),
                age_at_receipt: s.load_age_secs,
                available: s.available,
                static_fraction: s.static_load.map(|l| {
                    (f64::from(l) / f64::from(DYNAMIC_LOAD_MAX)).clamp(STATIC_FRACTION_FLOOR, 1.0)
                }),
                ramp_left_at_receipt: s.slow_start_left_secs,
                ramp_secs: s.slow_start_secs,
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
            feedback: vec![Feedback::default(); servers.len()],
            servers,
            received_at: now,
            table: IntervalTable::default(),
            weights: Vec::new(),
            built_at: f64::NEG_INFINITY,
            memory: None,
        };
        door.rebuild(now);
        door
    }

    /// The candidate servers, in snapshot order.
    pub fn servers(&self) -> &[FrontDoorServer] {
        &self.servers
    }

    /// Current load metric of every server (0 for unavailable ones), by
    /// the one-scale rule:
    ///
    /// * a measured server weighs `C·(P + (1−P)·L/10000)`: its capacity `C`
    ///   times the fraction of full speed its dynamic value `L` stands for,
    ///   sliding back to plain `C` as the value ages (`P` = age / `T`);
    /// * a server nobody measures weighs `min(C·f_min, w_min)`, where
    ///   `f_min` is the lowest fraction and `w_min` the lowest weight among
    ///   the available measured servers with spare capacity (weight above
    ///   0): it never outranks such a server and never gets more than its
    ///   capacity share among them; with none of them, it weighs its capacity.
    ///
    /// Equally fast servers therefore split by capacity, a slower one loses
    /// share, and a server added on a dead port cannot draw a crowd.
    pub fn metrics(&self, now: f64) -> Vec<f64> {
        let weights: Vec<Option<f64>> = self
            .servers
            .iter()
            .map(|s| {
                if s.available {
                    self.measured_weight(s, now)
                } else {
                    None
                }
            })
            .collect();
        let mut lowest_fraction = f64::INFINITY;
        let mut lowest_weight = f64::INFINITY;
        for (s, w) in self.servers.iter().zip(&weights) {
            // A measured server with no spare capacity (weight 0) sets no
            // floor: it is full, not a yardstick.
            if let Some(w) = w.filter(|w| *w > 0.0 && s.capacity > 0.0) {
                lowest_fraction = lowest_fraction.min(w / s.capacity);
                lowest_weight = lowest_weight.min(w);
            }
        }
        self.servers
            .iter()
            .zip(weights)
            .map(|(s, w)| {
                if !s.available {
                    return 0.0;
                }
                let weight = w.unwrap_or_else(|| {
                    if lowest_weight.is_finite() {
                        (s.capacity * lowest_fraction).min(lowest_weight)
                    } else {
                        s.capacity
                    }
                });
                bump(weight * self.ramp(s, now), s.bumps * self.epsilon)
            })
            .collect()
    }

    /// Slow start: the part of its weight a server that just entered
    /// rotation gets at `now`, rising linearly from [`SLOW_START_FLOOR`]
    /// to 1 over the ramp; 1 outside a ramp.
    fn ramp(&self, s: &FrontDoorServer, now: f64) -> f64 {
        if s.ramp_secs <= 0.0 || s.ramp_left_at_receipt <= 0.0 {
            return 1.0;
        }
        let left = s.ramp_left_at_receipt - (now - self.received_at).max(0.0);
        if left <= 0.0 {
            return 1.0;
        }
        let done = (1.0 - left / s.ramp_secs).clamp(0.0, 1.0);
        SLOW_START_FLOOR + (1.0 - SLOW_START_FLOOR) * done
    }

    /// Share of new users each server gets right now (sums to 1 or 0).
    pub fn shares(&self) -> Vec<f64> {
        (0..self.servers.len())
            .map(|i| self.table.share(i))
            .collect()
    }

    /// The weight of a measured server, in capacity units; `None` when it
    /// was never measured and has no long-term value either.
    ///
    /// A measured value ages toward the server's long-term value when the
    /// manager sent one (the extended-window mean), else toward the bare
    /// capacity; a server with only a long-term value weighs that.
    fn measured_weight(&self, s: &FrontDoorServer, now: f64) -> Option<f64> {
        let long_term = s.static_fraction.map(|f| s.capacity * f);
        let Some(l) = s.dynamic else {
            return long_term;
        };
        let fraction = (l / f64::from(DYNAMIC_LOAD_MAX)).clamp(0.0, 1.0);
        let age = s.age_at_receipt + (now - self.received_at).max(0.0);
        Some(load_metric(
            long_term.unwrap_or(s.capacity),
            Some(s.capacity * fraction),
            age,
            self.obsolescence_secs,
        ))
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
        self.table = IntervalTable::new(metrics.iter().copied());
        self.weights = metrics;
        self.built_at = now;
    }

    /// Decides where a new user goes. `now` is the host's monotonic clock in
    /// seconds, `draws` two uniform random numbers in `[0, 1)`.
    ///
    /// Redirect mode: the weighted choice (one draw), then the epsilon bump.
    /// Proxy mode: the steering rule of [`crate::steering`]; the pick counts
    /// as in flight until the caller reports it with [`FrontDoor::finished`].
    pub fn pick(&mut self, now: f64, draws: [f64; 2]) -> Pick {
        self.pick_among(now, draws, None)
    }

    /// [`FrontDoor::pick`] among the servers `allowed` marks (by index;
    /// `None`: all). When no allowed server has a weight, the answer is
    /// [`Pick::NoServer`].
    pub fn pick_among(&mut self, now: f64, draws: [f64; 2], allowed: Option<&[bool]>) -> Pick {
        if !self.enabled {
            return Pick::Disabled;
        }
        if now - self.built_at >= REBUILD_EVERY_SECS {
            self.rebuild(now);
        }
        let masked_weights: Vec<f64>;
        let masked_table;
        let (table, weights) = match allowed {
            None => (&self.table, &self.weights),
            Some(allowed) => {
                masked_weights = self
                    .weights
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        if allowed.get(i).copied().unwrap_or(false) {
                            *w
                        } else {
                            0.0
                        }
                    })
                    .collect();
                masked_table = IntervalTable::new(masked_weights.iter().copied());
                (&masked_table, &masked_weights)
            }
        };
        let Some(first) = table.pick(draws[0]) else {
            return Pick::NoServer;
        };
        if self.mode == AppMode::Redirect {
            if self.epsilon > 0.0 {
                self.servers[first].bumps += 1.0;
                self.rebuild(now);
            }
            return Pick::Server(first);
        }
        let second = table.pick(draws[1]).unwrap_or(first);
        let remembered = self
            .memory
            .filter(|&m| table.share(m) > 0.0)
            .unwrap_or(first);
        // Steering compares weights only by ratio, so the table's own
        // weights serve (no per-pick vector of shares).
        let candidates = [first, second, remembered];
        let chosen = cheapest(&candidates, &self.feedback, weights, now).unwrap_or(first);
        self.feedback[chosen].started(now);
        self.memory = cheapest_by_cost(&candidates, &self.feedback, weights, now);
        Pick::Server(chosen)
    }

    /// Reports how a proxied request to the server named `server` ended:
    /// it was picked `took` seconds before `now`. A server the door no
    /// longer has (a new snapshot dropped it) is ignored.
    pub fn finished(&mut self, server: &str, now: f64, took: f64, outcome: Outcome) {
        if let Some(i) = self.servers.iter().position(|s| s.name == server) {
            self.feedback[i].finished(now, took, outcome);
        }
    }

    /// Takes over what `old` (this app's door before a new snapshot)
    /// learned, for every server it shares by name and URL: requests in
    /// flight stay counted and come back to this door.
    pub fn carry_over(&mut self, old: &FrontDoor) {
        for (s, f) in self.servers.iter().zip(self.feedback.iter_mut()) {
            if let Some(j) = old
                .servers
                .iter()
                .position(|o| o.name == s.name && o.url == s.url)
            {
                *f = old.feedback[j].clone();
            }
        }
    }

    /// This door's requests in flight, all servers together.
    pub fn in_flight(&self) -> u64 {
        self.feedback.iter().map(|f| u64::from(f.in_flight)).sum()
    }

    /// What this door learned of each server (by server).
    pub fn feedback(&self) -> &[Feedback] {
        &self.feedback
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ServerView;

    fn view(loads: &[u32], epsilon: f64) -> AppView {
        let caps = vec![5; loads.len()];
        let loads: Vec<Option<u32>> = loads.iter().map(|l| Some(*l)).collect();
        view_with(&caps, &loads, epsilon)
    }

    fn view_with(caps: &[u32], loads: &[Option<u32>], epsilon: f64) -> AppView {
        AppView {
            name: "shop".into(),
            enabled: true,
            mode: AppMode::Redirect,
            epsilon,
            obsolescence_secs: 1200.0,
            sorry_page: None,
            servers: loads
                .iter()
                .zip(caps)
                .enumerate()
                .map(|(i, (l, c))| ServerView {
                    name: format!("s{i}"),
                    url: format!("http://127.0.0.1:{}", 9000 + i),
                    capacity: *c,
                    dynamic_load: *l,
                    load_age_secs: 0.0,
                    available: true,
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// The long-term value replaces the capacity as the aging target: a
    /// server measured at L = 1000 whose hour-long mean is 4000 slides to
    /// C·0.4, not to C, and one with only a long-term value weighs it.
    #[test]
    fn ages_toward_the_long_term_value() {
        let mut v = view(&[1000], 0.0);
        v.servers[0].static_load = Some(4000);
        let d = FrontDoor::new(&v, 100.0);
        assert_eq!(d.metrics(100.0), vec![500.0]);
        assert_eq!(d.metrics(100.0 + 600.0), vec![0.5 * 2000.0 + 0.5 * 500.0]);
        assert_eq!(d.metrics(100.0 + 1200.0), vec![2000.0]);
        assert_eq!(d.metrics(100.0 + 99_999.0), vec![2000.0]);
        v.servers[0].dynamic_load = None;
        assert_eq!(FrontDoor::new(&v, 0.0).metrics(0.0), vec![2000.0]);
        // A long-term value of 0 still leaves a little weight.
        v.servers[0].static_load = Some(0);
        assert_eq!(FrontDoor::new(&v, 0.0).metrics(0.0), vec![50.0]);
    }

    /// Slow start: 10 % of the weight at the start, rising linearly to all
    /// of it at the end of the ramp, counted from the snapshot's receipt.
    #[test]
    fn slow_start_ramps_from_a_tenth() {
        let mut v = view(&[2000, 2000], 0.0);
        v.obsolescence_secs = 0.0; // no aging: only the ramp moves
        v.servers[1].slow_start_secs = 30.0;
        v.servers[1].slow_start_left_secs = 30.0;
        let d = FrontDoor::new(&v, 10.0);
        let at = |t: f64| d.metrics(t)[1];
        assert!((at(10.0) - 100.0).abs() < 1e-9);
        assert!((at(25.0) - 550.0).abs() < 1e-9);
        assert!((at(40.0) - 1000.0).abs() < 1e-9);
        assert!((at(100.0) - 1000.0).abs() < 1e-9);
        assert_eq!(d.metrics(10.0)[0], 1000.0);
        // Received with 10 s left of 30: two thirds done.
        v.servers[1].slow_start_left_secs = 10.0;
        let d = FrontDoor::new(&v, 0.0);
        assert!((d.metrics(0.0)[1] - 1000.0 * (0.1 + 0.9 * 2.0 / 3.0)).abs() < 1e-9);
    }

    #[test]
    fn picks_by_design_example() {
        let mut d = FrontDoor::new(&view(&[1500, 2250, 3250, 2000, 1000, 1000], 0.0), 0.0);
        assert_eq!(d.pick(0.0, [0.517, 0.0]), Pick::Server(2));
    }

    #[test]
    fn ages_toward_capacity() {
        // C = 5 (5000), L = 1000 (a tenth of full speed): fresh 500, then
        // halfway through T 0.5·5000 + 0.5·500, then the capacity.
        let d = FrontDoor::new(&view(&[1000], 0.0), 100.0);
        assert_eq!(d.metrics(100.0), vec![500.0]);
        assert_eq!(d.metrics(100.0 + 600.0), vec![2750.0]);
        assert_eq!(d.metrics(100.0 + 1200.0), vec![5000.0]);
    }

    /// The docs' worked example: capacities 2, 5, 8, equally fast (L = 2000
    /// each, a fifth of full speed) split 2:5:8; a server added with
    /// capacity 10 that nobody measures weighs as the lightest measured one.
    #[test]
    fn one_scale_worked_example() {
        let d = FrontDoor::new(
            &view_with(&[2, 5, 8], &[Some(2000), Some(2000), Some(2000)], 0.0),
            0.0,
        );
        assert_eq!(d.metrics(0.0), vec![400.0, 1000.0, 1600.0]);
        let shares = d.shares();
        for (got, want) in shares.iter().zip([2.0 / 15.0, 5.0 / 15.0, 8.0 / 15.0]) {
            assert!((got - want).abs() < 1e-9, "{shares:?}");
        }
        let d = FrontDoor::new(
            &view_with(
                &[2, 5, 8, 10],
                &[Some(2000), Some(2000), Some(2000), None],
                0.0,
            ),
            0.0,
        );
        assert_eq!(d.metrics(0.0), vec![400.0, 1000.0, 1600.0, 400.0]);
        // A slower server (c at half the speed of the others) loses share.
        let d = FrontDoor::new(
            &view_with(&[2, 5, 8], &[Some(2000), Some(2000), Some(1000)], 0.0),
            0.0,
        );
        assert_eq!(d.metrics(0.0), vec![400.0, 1000.0, 800.0]);
        // Nothing measured: the capacities.
        let d = FrontDoor::new(&view_with(&[2, 5], &[None, None], 0.0), 0.0);
        assert_eq!(d.metrics(0.0), vec![2000.0, 5000.0]);
        // A measured server with no spare capacity sets no floor.
        let d = FrontDoor::new(&view_with(&[2, 5], &[Some(0), None], 0.0), 0.0);
        assert_eq!(d.metrics(0.0), vec![0.0, 5000.0]);
    }

    proptest::proptest! {
        /// An unmeasured server never gets more than its capacity share and
        /// never outweighs every measured server.
        #[test]
        fn unmeasured_never_outranks(
            caps in proptest::collection::vec(1u32..=10, 1..6),
            loads in proptest::collection::vec(1u32..=10_000, 6),
            unmeasured_cap in 1u32..=10,
        ) {
            let mut c = caps.clone();
            c.push(unmeasured_cap);
            let mut l: Vec<Option<u32>> = loads[..caps.len()].iter().map(|v| Some(*v)).collect();
            l.push(None);
            let d = FrontDoor::new(&view_with(&c, &l, 0.0), 0.0);
            let m = d.metrics(0.0);
            let total: f64 = m.iter().sum();
            let cap_total: f64 = c.iter().map(|v| f64::from(*v)).sum();
            let last = m[m.len() - 1];
            proptest::prop_assert!(last / total <= f64::from(unmeasured_cap) / cap_total + 1e-9);
            proptest::prop_assert!(m[..m.len() - 1].iter().any(|w| *w >= last - 1e-9));
        }
    }

    #[test]
    fn disabled_and_unavailable() {
        let mut v = view(&[1000, 1000], 0.0);
        v.enabled = false;
        assert_eq!(
            FrontDoor::new(&v, 0.0).pick(0.0, [0.5, 0.0]),
            Pick::Disabled
        );
        v.enabled = true;
        v.servers.iter_mut().for_each(|s| s.available = false);
        assert_eq!(
            FrontDoor::new(&v, 0.0).pick(0.0, [0.5, 0.0]),
            Pick::NoServer
        );
        v.servers[1].available = true;
        assert_eq!(
            FrontDoor::new(&v, 0.0).pick(0.0, [0.01, 0.0]),
            Pick::Server(1)
        );
    }

    #[test]
    fn epsilon_spreads_a_burst() {
        let mut d = FrontDoor::new(&view(&[1000, 1000], 100.0), 0.0);
        // The same draw picks s0 first, then s0 is busier and s1 wins.
        assert_eq!(d.pick(0.0, [0.49, 0.0]), Pick::Server(0));
        assert_eq!(d.pick(0.0, [0.49, 0.0]), Pick::Server(1));
        // A burst that would empty every interval resets the bumps.
        for _ in 0..100 {
            assert!(matches!(d.pick(0.0, [0.3, 0.0]), Pick::Server(_)));
        }
    }
    fn proxy(loads: &[u32]) -> FrontDoor {
        let mut v = view(loads, 0.0);
        v.mode = AppMode::Proxy;
        FrontDoor::new(&v, 0.0)
    }

    fn picked(p: Pick) -> usize {
        match p {
            Pick::Server(i) => i,
            other => panic!("{other:?}"),
        }
    }

    /// Deterministic uniform draws for simulations (a 64-bit LCG).
    struct Draws(u64);
    impl Draws {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn two(&mut self) -> [f64; 2] {
            [self.next(), self.next()]
        }
    }

    /// Worked example (the first scenario, reduced): three servers
    /// the manager rates alike answer in 1 ms, 10 ms and 1 s. After each
    /// answered once, 1,000 picks with 8 requests kept in flight (each
    /// answered after its server's time) put almost all on the fast one and
    /// none on the 1 s one.
    #[test]
    fn proxy_mode_steers_to_the_fastest() {
        let mut d = proxy(&[10_000, 10_000, 10_000]);
        let took = [0.001, 0.010, 1.0];
        for (i, t) in took.iter().enumerate() {
            d.feedback[i].started(0.0);
            d.finished(&format!("s{i}"), *t, *t, Outcome::Answered);
        }
        let mut draws = Draws(7);
        let mut now: f64 = 1.0;
        let mut pending: Vec<(f64, usize)> = Vec::new();
        let mut count = [0u32; 3];
        for _ in 0..1000 {
            while pending.len() >= 8 {
                pending.sort_by(|a, b| b.0.total_cmp(&a.0));
                let (end, i) = pending.pop().unwrap();
                now = now.max(end);
                d.finished(&format!("s{i}"), now, took[i], Outcome::Answered);
            }
            let i = picked(d.pick(now, draws.two()));
            count[i] += 1;
            pending.push((now + took[i], i));
        }
        assert!(count[0] >= 900, "{count:?}");
        assert_eq!(count[2], 0, "{count:?}");
        for (end, i) in pending {
            d.finished(&format!("s{i}"), end, took[i], Outcome::Answered);
        }
        assert_eq!(d.in_flight(), 0);
    }

    /// Learned feedback survives a new snapshot for the servers it still
    /// names (by name and URL); a dropped server's finishes are ignored.
    #[test]
    fn feedback_carries_over_a_new_snapshot() {
        let mut old = proxy(&[10_000, 10_000]);
        let a = picked(old.pick(0.0, [0.1, 0.9]));
        let mut v = view(&[5_000], 0.0);
        v.mode = AppMode::Proxy;
        v.servers[0].name = format!("s{a}");
        v.servers[0].url = format!("http://127.0.0.1:{}", 9000 + a);
        let mut new = FrontDoor::new(&v, 1.0);
        new.carry_over(&old);
        assert_eq!(new.in_flight(), 1);
        new.finished(&format!("s{a}"), 1.5, 1.5, Outcome::Answered);
        new.finished("gone", 1.5, 1.0, Outcome::Failed);
        assert_eq!(new.in_flight(), 0);
        assert_eq!(new.feedback()[0].learned(), Some(1.5));
    }

    proptest::proptest! {
        /// Proxy mode never picks a server that is unavailable (failed,
        /// disabled, heavily loaded) or has no weight, never panics on any
        /// input, and only answers NoServer when no server has a weight.
        #[test]
        fn proxy_never_picks_an_unavailable_server(
            loads in proptest::collection::vec(proptest::option::of(0u32..=10_000), 0..7),
            available in proptest::collection::vec(proptest::bool::ANY, 7),
            caps in proptest::collection::vec(0u32..=12, 7),
            ops in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0, 0u8..4, 0.0f64..3.0), 1..60),
        ) {
            let caps = &caps[..loads.len()];
            let mut v = view_with(caps, &loads, 0.0);
            v.mode = AppMode::Proxy;
            for (s, a) in v.servers.iter_mut().zip(&available) {
                s.available = *a;
            }
            let mut d = FrontDoor::new(&v, 0.0);
            let mut now = 0.0;
            let mut out: Vec<(usize, f64)> = Vec::new();
            for (a, b, finish, dt) in ops {
                now += dt;
                let weights = d.metrics(now);
                match d.pick(now, [a, b]) {
                    Pick::Server(i) => {
                        proptest::prop_assert!(v.servers[i].available && weights[i] > 0.0);
                        out.push((i, now));
                    }
                    Pick::NoServer => proptest::prop_assert!(weights.iter().all(|w| *w <= 0.0)),
                    Pick::Disabled => proptest::prop_assert!(false),
                }
                if finish > 0 && !out.is_empty() {
                    let (i, at) = out.remove(0);
                    let o = [Outcome::Answered, Outcome::Failed, Outcome::Abandoned][usize::from(finish - 1)];
                    d.finished(&format!("s{i}"), now, now - at, o);
                }
            }
            for (i, at) in out {
                d.finished(&format!("s{i}"), now, now - at, Outcome::Abandoned);
            }
            proptest::prop_assert_eq!(d.in_flight(), 0);
        }
    }

    /// With nothing learned and nothing in flight, proxy mode spreads by
    /// weight: servers weighted 1:2:5 get 1/8, 2/8, 5/8 of 40,000 picks
    /// (each answered at once), within 0.01.
    #[test]
    fn proxy_spreads_by_weight_when_nothing_is_known() {
        let mut d = proxy(&[1000, 2000, 5000]);
        let mut draws = Draws(42);
        let mut count = [0u32; 3];
        for _ in 0..40_000 {
            let i = picked(d.pick(0.0, draws.two()));
            count[i] += 1;
            d.finished(&format!("s{i}"), 0.0, 0.0, Outcome::Abandoned);
        }
        for (c, expected) in count.iter().zip([1.0 / 8.0, 2.0 / 8.0, 5.0 / 8.0]) {
            let share = f64::from(*c) / 40_000.0;
            assert!((share - expected).abs() < 0.01, "{count:?}");
        }
    }

    /// Servers that answer alike keep the manager's shares even when the
    /// door has learned them and holds requests in flight (slow start and
    /// long-term loads depend on it): weights 1:3, both 2 ms ± 50 %, from 1
    /// to 32 in flight.
    #[test]
    fn equally_fast_servers_keep_their_weight_shares() {
        for concurrency in [1, 2, 3, 8, 32] {
            let mut d = proxy(&[2500, 7500]);
            let mut draws = Draws(9);
            let mut now: f64 = 0.0;
            let mut pending: Vec<(f64, usize, f64)> = Vec::new();
            let mut count = [0u32; 2];
            for _ in 0..40_000 {
                while pending.len() >= concurrency {
                    pending.sort_by(|a, b| b.0.total_cmp(&a.0));
                    let (end, i, took) = pending.pop().unwrap();
                    now = now.max(end);
                    d.finished(&format!("s{i}"), now, took, Outcome::Answered);
                }
                let i = picked(d.pick(now, draws.two()));
                count[i] += 1;
                // 2 ms ± 50 %: jitter of the kind real answers have.
                let took = 0.002 * (0.5 + draws.two()[0]);
                pending.push((now + took, i, took));
            }
            let share = f64::from(count[0]) / 40_000.0;
            assert!(
                (share - 0.25).abs() < 0.02,
                "{concurrency} in flight: {count:?}"
            );
        }
    }
}
