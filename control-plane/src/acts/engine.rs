//! The manager's decisions, as a pure state machine: given each server's
//! latest figures and the time, which servers are heavily loaded, which
//! offload, which applications are swamped, how drains and automatic
//! restarts proceed, and who is in slow start.
//!
//! Nothing here does I/O: [`super::task`] feeds figures in every interval,
//! publishes [`Engine::picture`] into the live view, logs the events and
//! carries the actions out through the agents. Every state is left only
//! after its figures stayed below a lower mark for a while (hysteresis), so
//! a server near a threshold does not flap.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use usher_core::channel::event_type;

use super::policy::Policy;

/// Reports older than this do not move any state (a silent agent's last
/// figures are not news).
const FRESH_SECS: f64 = 5.0;
/// An error share is judged only over reports with at least this many
/// requests.
const MIN_REQUESTS_FOR_ERRORS: u64 = 5;
/// Automatic restarts are counted over this window.
const RESTART_WINDOW_SECS: f64 = 3600.0;

/// One server's figures and verdicts at one interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub server: String,
    pub app: String,
    /// Enabled by the operator.
    pub enabled: bool,
    /// Out of rotation on the manager's verdict (probe failed).
    pub failed: bool,
    /// The agent knows the server's process (it has a PID): a failing
    /// probe then means a sick process, worth a restart.
    pub process_known: bool,
    /// Mean processing + queue time over the latest report (ms).
    pub delay_ms: Option<f64>,
    pub queue_length: Option<u32>,
    pub cpu_pct: Option<f64>,
    pub mem_pct: Option<f64>,
    /// Requests other than probes in the latest report, and how many of
    /// them answered 5xx or 429.
    pub requests: u64,
    pub errors: u64,
    /// When the latest report was measured (unix seconds).
    pub report_at: Option<f64>,
}

/// What an operator (or the manager itself) does with a drained server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Then {
    /// Nothing: it stays drained until undrained.
    #[default]
    Nothing,
    Stop,
    Restart,
}

/// A drain in progress (or done).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drain {
    pub since_unix: f64,
    pub quiet_s: f64,
    pub then: Then,
    /// Started by the manager for an automatic restart.
    pub automatic: bool,
    /// When the quiet period was reached.
    pub drained_at_unix: Option<f64>,
}

/// Something to carry out through a server's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Stop,
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub server: String,
    pub kind: ActionKind,
}

/// An event to log (origin: a server, an app, or `manager`).
#[derive(Debug, Clone, PartialEq)]
pub struct ActEvent {
    pub origin: String,
    pub kind: (u32, &'static str),
    pub text: String,
}

/// What the manager decided about one server, as the live view shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerActs {
    /// Heavily loaded: no new users (unless its app is swamped).
    pub heavy: bool,
    /// At maximum load: its WSI redirects new stateless users away.
    pub offloading: bool,
    pub drain: Option<Drain>,
    /// Being restarted through its agent.
    pub restarting: bool,
    /// Kept out of rotation after a refused restart (why).
    pub held_out: Option<String>,
    /// Slow start: when the ramp ends (unix seconds) and its length.
    pub slow_start_until_unix: Option<f64>,
    pub slow_start_secs: f64,
}

impl ServerActs {
    /// Out of rotation by the manager's decision (drain, restart, refusal);
    /// heavy load is judged with the app's swamped state in [`crate::views`].
    pub fn held_back(&self) -> bool {
        self.drain.is_some() || self.restarting || self.held_out.is_some()
    }

    /// One word for tables: the most important state.
    pub fn state(&self) -> &'static str {
        if self.held_out.is_some() {
            "held-out"
        } else if self.restarting {
            "restarting"
        } else if let Some(d) = &self.drain {
            if d.drained_at_unix.is_some() {
                "drained"
            } else {
                "draining"
            }
        } else if self.offloading {
            "offloading"
        } else if self.heavy {
            "heavy"
        } else if self.slow_start_until_unix.is_some() {
            "slow-start"
        } else {
            "ok"
        }
    }
}

#[derive(Debug, Default)]
struct Track {
    acts: ServerActs,
    below_heavy_since: Option<f64>,
    below_max_since: Option<f64>,
    /// Times the server entered offload, within the thrash window.
    offload_entries: VecDeque<f64>,
    last_report_at: Option<f64>,
    last_request_at: Option<f64>,
    sick_since: Option<f64>,
    /// The sick spell comes from a failing probe (it ends when the probe
    /// passes), not from errors.
    sick_by_probe: bool,
    /// Times of automatic restarts within the last hour.
    restarts: VecDeque<f64>,
    in_rotation: bool,
}

#[derive(Debug, Default)]
struct AppTrack {
    swamped: Option<String>,
    normal_since: Option<f64>,
    /// Set during a tick when a server would have thrashed.
    thrashing: Option<String>,
}

/// The state machine (one per control plane).
#[derive(Debug, Default)]
pub struct Engine {
    servers: BTreeMap<String, Track>,
    apps: BTreeMap<String, AppTrack>,
    system_swamped: bool,
    ticked: bool,
    pending: Vec<ActEvent>,
}

/// Why an operator order cannot be carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("server {0} is not draining")]
    NotDraining(String),
}

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn figures_text(f: &Figures) -> String {
    format!(
        "delay {} ms, queue {}, cpu {} %, memory {} %",
        fmt_opt(f.delay_ms.map(|d| (d * 10.0).round() / 10.0)),
        fmt_opt(f.queue_length),
        fmt_opt(f.cpu_pct.map(|v| v.round())),
        fmt_opt(f.mem_pct.map(|v| v.round())),
    )
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// The published picture: per server, per app (swamped: why), and
    /// whether the whole system is swamped.
    pub fn picture(&self) -> (BTreeMap<String, ServerActs>, BTreeMap<String, String>, bool) {
        let servers = self
            .servers
            .iter()
            .map(|(k, t)| (k.clone(), t.acts.clone()))
            .collect();
        let apps = self
            .apps
            .iter()
            .filter_map(|(k, a)| a.swamped.clone().map(|why| (k.clone(), why)))
            .collect();
        (servers, apps, self.system_swamped)
    }

    fn event(&mut self, origin: &str, kind: (u32, &'static str), text: String) {
        self.pending.push(ActEvent {
            origin: origin.to_string(),
            kind,
            text,
        });
    }

    /// Operator: drain `server` (again: new settings).
    pub fn drain(&mut self, server: &str, quiet_s: f64, then: Then, now: f64) {
        let t = self.servers.entry(server.to_string()).or_default();
        t.acts.drain = Some(Drain {
            since_unix: now,
            quiet_s,
            then,
            automatic: false,
            drained_at_unix: None,
        });
        self.event(
            server,
            event_type::SERVER_DRAINING,
            format!(
                "server {server} draining (quiet {quiet_s} s, then {then:?}) on operator's order"
            ),
        );
    }

    /// Operator: end a drain (and a refusal to restart); the server comes
    /// back through slow start.
    pub fn undrain(&mut self, server: &str) -> Result<(), OrderError> {
        let t = self.servers.entry(server.to_string()).or_default();
        if t.acts.drain.is_none() && t.acts.held_out.is_none() {
            return Err(OrderError::NotDraining(server.to_string()));
        }
        t.acts.drain = None;
        t.acts.held_out = None;
        t.sick_since = None;
        self.event(
            server,
            event_type::SERVER_UNDRAINED,
            format!("server {server} undrained on operator's order"),
        );
        Ok(())
    }

    /// An action's result came back from the agent.
    pub fn action_done(&mut self, server: &str, kind: ActionKind, result: Result<(), String>) {
        let t = self.servers.entry(server.to_string()).or_default();
        match kind {
            ActionKind::Restart => {
                t.acts.restarting = false;
                t.sick_since = None;
                match result {
                    // Restarted: back into rotation (through slow start).
                    Ok(()) => t.acts.drain = None,
                    // Not restarted: it stays drained, out of rotation,
                    // until an operator undrains it (as after a failed stop).
                    Err(e) => self.event(
                        server,
                        event_type::RESTART_FAILED,
                        format!(
                            "server {server}: restart through its agent failed: {e}; it stays drained until undrained"
                        ),
                    ),
                }
            }
            ActionKind::Stop => {
                if let Err(e) = result {
                    self.event(
                        server,
                        event_type::RESTART_FAILED,
                        format!("server {server}: stop through its agent failed: {e}"),
                    );
                }
            }
        }
    }

    /// One interval: every configured server's figures (the servers of
    /// `apps`), at `now` (unix seconds). Returns the events raised since the
    /// last tick and the actions to carry out.
    pub fn tick(
        &mut self,
        now: f64,
        apps: &BTreeMap<String, Policy>,
        figures: &[Figures],
    ) -> (Vec<ActEvent>, Vec<Action>) {
        let mut actions = Vec::new();
        self.servers
            .retain(|k, _| figures.iter().any(|f| &f.server == k));
        self.apps.retain(|k, _| apps.contains_key(k));
        for app in apps.keys() {
            self.apps.entry(app.clone()).or_default().thrashing = None;
        }
        let default_policy = Policy::default();
        for f in figures {
            let policy = apps.get(&f.app).unwrap_or(&default_policy);
            let swamped = self.apps.get(&f.app).is_some_and(|a| a.swamped.is_some());
            let first_sight = !self.servers.contains_key(&f.server);
            let mut events = Vec::new();
            let t = self.servers.entry(f.server.clone()).or_default();
            let fresh = f.report_at.is_some_and(|at| now - at <= FRESH_SECS);
            let new_report = f.report_at.is_some() && f.report_at != t.last_report_at;
            if new_report {
                t.last_report_at = f.report_at;
                if f.requests > 0 {
                    t.last_request_at = f.report_at;
                }
            }
            let mut thrash = None;
            if fresh {
                judge_load(t, f, policy, now, swamped, &mut events, &mut thrash);
                if new_report {
                    judge_errors(t, f, policy);
                }
            }
            if f.failed && f.process_known {
                if t.sick_since.is_none() {
                    t.sick_since = Some(now);
                    t.sick_by_probe = true;
                }
            } else if t.sick_by_probe {
                t.sick_since = None;
                t.sick_by_probe = false;
            }
            restart_if_sick(t, f, policy, now, &mut events);
            drain_progress(t, f, now, &mut events, &mut actions);
            let sight = match (first_sight, self.ticked) {
                (false, _) => Sight::Known,
                (true, true) => Sight::Added,
                (true, false) => Sight::AtStart,
            };
            rotation(t, f, policy, now, sight, &mut events);
            self.pending.extend(events);
            if let Some(why) = thrash {
                if let Some(a) = self.apps.get_mut(&f.app) {
                    a.thrashing = Some(why);
                }
            }
        }
        self.judge_apps(now, apps, figures);
        self.ticked = true;
        (std::mem::take(&mut self.pending), actions)
    }

    fn judge_apps(&mut self, now: f64, apps: &BTreeMap<String, Policy>, figures: &[Figures]) {
        for (name, policy) in apps {
            let mine: Vec<&Figures> = figures.iter().filter(|f| &f.app == name).collect();
            let total = mine.len();
            let available: Vec<&Figures> = mine
                .iter()
                .copied()
                .filter(|f| {
                    f.enabled
                        && !f.failed
                        && !self
                            .servers
                            .get(&f.server)
                            .is_some_and(|t| t.acts.held_back())
                })
                .collect();
            let heavy = |f: &Figures| self.servers.get(&f.server).is_some_and(|t| t.acts.heavy);
            let out = mine.iter().filter(|f| !f.enabled || f.failed).count();
            let peak = !available.is_empty() && available.iter().all(|f| heavy(f));
            let third = total > 0 && out * 3 > total;
            let normal = !available.iter().any(|f| heavy(f)) && !third;
            let track = self.apps.entry(name.clone()).or_default();
            let reason = if peak {
                Some(format!(
                    "all {} available servers are heavily loaded",
                    available.len()
                ))
            } else if third {
                Some(format!("{out} of {total} servers are out of rotation"))
            } else {
                track.thrashing.clone()
            };
            let mut events = Vec::new();
            match (&track.swamped, reason) {
                (None, Some(why)) => {
                    track.swamped = Some(why.clone());
                    track.normal_since = None;
                    events.push(ActEvent {
                        origin: name.clone(),
                        kind: event_type::APP_SWAMPED,
                        text: format!(
                            "app {name} swamped: {why}; every available server back in rotation, offload lifted, no redirection ({:?} new users)",
                            policy.swamped_action
                        ),
                    });
                }
                (Some(_), _) => {
                    if normal {
                        let since = *track.normal_since.get_or_insert(now);
                        if now - since >= policy.unswamp_s {
                            track.swamped = None;
                            track.normal_since = None;
                            events.push(ActEvent {
                                origin: name.clone(),
                                kind: event_type::APP_UNSWAMPED,
                                text: format!(
                                    "app {name} no longer swamped: load normal for {} s",
                                    policy.unswamp_s
                                ),
                            });
                        }
                    } else {
                        track.normal_since = None;
                    }
                }
                (None, None) => {}
            }
            if self.apps.get(name).is_some_and(|a| a.swamped.is_some()) {
                for f in &mine {
                    if let Some(t) = self.servers.get_mut(&f.server) {
                        t.acts.offloading = false;
                        t.below_max_since = None;
                    }
                }
            }
            self.pending.extend(events);
        }
        let all = !self.apps.is_empty() && self.apps.values().all(|a| a.swamped.is_some());
        if all != self.system_swamped {
            self.system_swamped = all;
            let (kind, text) = if all {
                (event_type::SYSTEM_SWAMPED, "every application is swamped")
            } else {
                (
                    event_type::SYSTEM_UNSWAMPED,
                    "the system is no longer swamped",
                )
            };
            self.event("manager", kind, text.to_string());
        }
    }
}

/// Hysteresis: true once `below` has held for `recover` seconds without a
/// break; `since` remembers when the spell began (cleared on a break).
fn below_for(below: bool, since: &mut Option<f64>, now: f64, recover: f64) -> bool {
    if !below {
        *since = None;
        return false;
    }
    let from = *since.get_or_insert(now);
    now - from >= recover
}

/// Heavily loaded and maximum load, each with its lower mark.
fn judge_load(
    t: &mut Track,
    f: &Figures,
    p: &Policy,
    now: f64,
    swamped: bool,
    events: &mut Vec<ActEvent>,
    thrash: &mut Option<String>,
) {
    let low = p.recover_pct / 100.0;
    let delay = f.delay_ms.unwrap_or(0.0);
    let queue = f64::from(f.queue_length.unwrap_or(0));
    let cpu = f.cpu_pct.unwrap_or(0.0);
    let mem = f.mem_pct.unwrap_or(0.0);
    let heavy_now = delay > p.heavy_ms
        || queue > f64::from(p.heavy_queue)
        || cpu > p.heavy_cpu_pct
        || mem > p.heavy_mem_pct;
    let below_heavy = delay < low * p.heavy_ms
        && queue <= low * f64::from(p.heavy_queue)
        && cpu < low * p.heavy_cpu_pct
        && mem < low * p.heavy_mem_pct;
    let max_now = delay > p.max_ms || queue > f64::from(p.max_queue);
    let below_max = delay < low * p.max_ms && queue <= low * f64::from(p.max_queue);
    let name = &f.server;
    let recover = p.recover_ms as f64 / 1000.0;

    if !t.acts.heavy && heavy_now {
        t.acts.heavy = true;
        t.below_heavy_since = None;
        events.push(ActEvent {
            origin: name.clone(),
            kind: event_type::SERVER_HEAVY,
            text: format!(
                "server {name} heavily loaded ({}); thresholds {} ms, queue {}, cpu {} %, memory {} %: no new users",
                figures_text(f),
                p.heavy_ms,
                p.heavy_queue,
                p.heavy_cpu_pct,
                p.heavy_mem_pct
            ),
        });
    } else if t.acts.heavy && below_for(below_heavy, &mut t.below_heavy_since, now, recover) {
        t.acts.heavy = false;
        t.below_heavy_since = None;
        events.push(ActEvent {
            origin: name.clone(),
            kind: event_type::SERVER_HEAVY_OVER,
            text: format!(
                "server {name} no longer heavily loaded ({}) after {} ms below {} % of its thresholds",
                figures_text(f),
                p.recover_ms,
                p.recover_pct
            ),
        });
    }

    t.offload_entries.retain(|at| now - at < p.thrash_window_s);
    // A swamped app redirects nobody: no new offload while swamped.
    if !t.acts.offloading && max_now && !swamped {
        if t.offload_entries.len() as u32 >= p.thrash_flips {
            *thrash = Some(format!(
                "server {name} would enter offload {} times within {} s (thrashing)",
                t.offload_entries.len() + 1,
                p.thrash_window_s
            ));
        } else {
            t.acts.offloading = true;
            t.below_max_since = None;
            t.offload_entries.push_back(now);
            events.push(ActEvent {
                origin: name.clone(),
                kind: event_type::SERVER_OFFLOADING,
                text: format!(
                    "server {name} at maximum load ({}); thresholds {} ms, queue {}: its WSI redirects new stateless users ({:?})",
                    figures_text(f),
                    p.max_ms,
                    p.max_queue,
                    p.offload_to
                ),
            });
        }
    } else if t.acts.offloading && below_for(below_max, &mut t.below_max_since, now, recover) {
        t.acts.offloading = false;
        t.below_max_since = None;
        events.push(ActEvent {
            origin: name.clone(),
            kind: event_type::SERVER_OFFLOAD_OVER,
            text: format!(
                "server {name} offload lifted ({}) after {} ms below {} % of max",
                figures_text(f),
                p.recover_ms,
                p.recover_pct
            ),
        });
    }
}

/// The error share of a new report: starts or ends a sick spell.
fn judge_errors(t: &mut Track, f: &Figures, p: &Policy) {
    if f.requests < MIN_REQUESTS_FOR_ERRORS {
        return;
    }
    let share = f.errors as f64 * 100.0 / f.requests as f64;
    if share > p.restart_error_pct {
        if let (None, Some(at)) = (t.sick_since, f.report_at) {
            t.sick_since = Some(at);
            t.sick_by_probe = false;
        }
    } else if !f.failed {
        t.sick_since = None;
    }
}

/// A sick spell that lasted `restart_after_s` starts an automatic restart
/// (a short drain first), unless the hour's restarts are used up.
fn restart_if_sick(t: &mut Track, f: &Figures, p: &Policy, now: f64, events: &mut Vec<ActEvent>) {
    let Some(since) = t.sick_since else { return };
    if now - since < p.restart_after_s
        || t.acts.drain.is_some()
        || t.acts.restarting
        || t.acts.held_out.is_some()
        || !f.enabled
    {
        return;
    }
    t.restarts.retain(|at| now - at < RESTART_WINDOW_SECS);
    let name = &f.server;
    let why = if f.failed {
        "its probe fails while its process lives".to_string()
    } else {
        format!(
            "{} of its last {} answers were 5xx/429 (limit {} %)",
            f.errors, f.requests, p.restart_error_pct
        )
    };
    if t.restarts.len() as u32 >= p.restart_max_per_hour {
        let text = format!(
            "server {name}: automatic restart refused ({} restarts within the hour, limit {}); it stays out of rotation until an operator undrains it; {why}",
            t.restarts.len(),
            p.restart_max_per_hour
        );
        t.acts.held_out = Some(format!(
            "restart refused: {} within the hour",
            t.restarts.len()
        ));
        events.push(ActEvent {
            origin: name.clone(),
            kind: event_type::RESTART_REFUSED,
            text,
        });
        return;
    }
    t.restarts.push_back(now);
    t.acts.drain = Some(Drain {
        since_unix: now,
        quiet_s: p.restart_quiet_s,
        then: Then::Restart,
        automatic: true,
        drained_at_unix: None,
    });
    events.push(ActEvent {
        origin: name.clone(),
        kind: event_type::SERVER_RESTARTING,
        text: format!(
            "server {name}: automatic restart ({} of at most {} this hour) after {:.1} s: {why}; draining {} s first",
            t.restarts.len(),
            p.restart_max_per_hour,
            now - since,
            p.restart_quiet_s
        ),
    });
}

/// A drain reaches its quiet period: drained, then the follow-up.
fn drain_progress(
    t: &mut Track,
    f: &Figures,
    now: f64,
    events: &mut Vec<ActEvent>,
    actions: &mut Vec<Action>,
) {
    let Some(d) = t.acts.drain.as_mut() else {
        return;
    };
    if d.drained_at_unix.is_some() {
        return;
    }
    let quiet_from = t
        .last_request_at
        .map_or(d.since_unix, |r| r.max(d.since_unix));
    let quiet = now - quiet_from >= d.quiet_s;
    let overdue = d.automatic && now - d.since_unix >= 10.0 * d.quiet_s.max(1.0);
    if !(quiet || overdue) {
        return;
    }
    d.drained_at_unix = Some(now);
    let name = &f.server;
    events.push(ActEvent {
        origin: name.clone(),
        kind: event_type::SERVER_DRAINED,
        text: format!(
            "server {name} drained: {} after {:.1} s (then {:?})",
            if quiet {
                format!("no request but probes for {} s", d.quiet_s)
            } else {
                "quiet period not reached; going ahead".to_string()
            },
            now - d.since_unix,
            d.then
        ),
    });
    match d.then {
        Then::Nothing => {}
        Then::Stop => actions.push(Action {
            server: name.clone(),
            kind: ActionKind::Stop,
        }),
        Then::Restart => {
            t.acts.restarting = true;
            actions.push(Action {
                server: name.clone(),
                kind: ActionKind::Restart,
            });
        }
    }
}

/// How the engine came to know a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sight {
    /// Seen at an earlier tick.
    Known,
    /// First seen after the first tick: added to the fleet.
    Added,
    /// There at the first tick (the control plane just started).
    AtStart,
}

/// Entering rotation (recovered, undrained, restarted, added) starts slow
/// start; its end is an event too.
fn rotation(
    t: &mut Track,
    f: &Figures,
    p: &Policy,
    now: f64,
    sight: Sight,
    events: &mut Vec<ActEvent>,
) {
    let in_rotation = f.enabled && !f.failed && !t.acts.held_back();
    let entered = in_rotation
        && match sight {
            Sight::Known => !t.in_rotation,
            Sight::Added => true,
            Sight::AtStart => false,
        };
    let name = &f.server;
    if entered && p.slow_start_s > 0.0 {
        t.acts.slow_start_until_unix = Some(now + p.slow_start_s);
        t.acts.slow_start_secs = p.slow_start_s;
        events.push(ActEvent {
            origin: name.clone(),
            kind: event_type::SLOW_START_BEGUN,
            text: format!(
                "server {name} entered rotation: its share ramps from 10 % to full over {} s",
                p.slow_start_s
            ),
        });
    }
    if !in_rotation {
        t.acts.slow_start_until_unix = None;
    } else if let Some(until) = t.acts.slow_start_until_unix {
        if now >= until {
            t.acts.slow_start_until_unix = None;
            events.push(ActEvent {
                origin: name.clone(),
                kind: event_type::SLOW_START_DONE,
                text: format!("server {name} slow start done: full share"),
            });
        }
    }
    t.in_rotation = in_rotation;
}

#[cfg(test)]
mod tests;
