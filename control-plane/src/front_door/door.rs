//! One application's front-door state, shared by its listener's
//! connections: the `usher-core` [`FrontDoor`] and the servers' passive
//! health behind a short mutex (held for one pick or one report, never
//! across an await), the concurrency counter, and what the answers need.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;
use usher_core::{AppMode, AppView, FrontDoor, Pick, SteeringOutcome};

use super::config::FrontDoorConfig;
use super::health::{Change, Health, Outcome, SERVER_EJECTED, SERVER_RETURNED};
use super::sorry::BUILT_IN_SORRY_PAGE;

/// Seconds on this process's monotonic clock.
pub fn mono_now() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// What the listener does with one request.
#[derive(Debug)]
pub enum Decision {
    /// 302 to this URL (configured server URL + the request's path and query).
    Redirect(String),
    /// Forward to the configured server the ticket names; the ticket
    /// keeps the request counted in flight until it is closed or dropped.
    Proxy(InFlight),
    /// 503 with this HTML (app disabled, or no server and a sorry page).
    Sorry(Bytes),
    /// 503, plain: no server available and no sorry page configured.
    NoServer,
}

/// An event for the logging database: a door ejected a server or took it back.
#[derive(Debug, Clone, PartialEq)]
pub struct DoorEvent {
    /// The server.
    pub origin: String,
    pub kind: (u32, &'static str),
    pub text: String,
}

impl DoorEvent {
    fn new(app: &str, change: Change) -> DoorEvent {
        match change {
            Change::Ejected {
                server,
                for_ms,
                why,
            } => DoorEvent {
                text: format!(
                    "app {app}: server {server} out of the built-in front door's rotation for {for_ms} ms: {why}"
                ),
                origin: server.to_string(),
                kind: SERVER_EJECTED,
            },
            Change::Returned { server, after_ms } => DoorEvent {
                text: format!(
                    "app {app}: server {server} back in the built-in front door's rotation after {after_ms} ms"
                ),
                origin: server.to_string(),
                kind: SERVER_RETURNED,
            },
        }
    }
}

struct State {
    app: Arc<str>,
    front: FrontDoor,
    health: Health,
    mode: AppMode,
    sorry: Bytes,
    has_sorry_page: bool,
    names: Vec<Arc<str>>,
    urls: Vec<Arc<str>>,
}

/// Front-door state of one application.
pub struct Door {
    state: Mutex<State>,
    in_flight: AtomicUsize,
    max: AtomicUsize,
    events: mpsc::Sender<DoorEvent>,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door").finish_non_exhaustive()
    }
}

fn build(view: &AppView, health: Health) -> State {
    let front = FrontDoor::new(view, mono_now());
    State {
        app: Arc::from(view.name.as_str()),
        health,
        names: front
            .servers()
            .iter()
            .map(|s| Arc::from(s.name.as_str()))
            .collect(),
        urls: front
            .servers()
            .iter()
            .map(|s| Arc::from(s.url.as_str()))
            .collect(),
        mode: view.mode,
        has_sorry_page: view.sorry_page.is_some(),
        sorry: Bytes::from(
            view.sorry_page
                .clone()
                .unwrap_or_else(|| BUILT_IN_SORRY_PAGE.to_string()),
        ),
        front,
    }
}

impl State {
    /// The front door's choice over the servers in rotation: ejected
    /// servers are left out, unless every server in rotation is ejected;
    /// then all of them are used (never no server because of ejections).
    fn pick(&mut self, now: f64, draws: [f64; 2]) -> Pick {
        if self.front.enabled && self.health.any_ejected() {
            let allowed: Vec<bool> = self
                .names
                .iter()
                .map(|n| !self.health.is_ejected(n))
                .collect();
            let pick = self.front.pick_among(now, draws, Some(&allowed));
            if pick != Pick::NoServer {
                return pick;
            }
        }
        self.front.pick(now, draws)
    }

    /// Servers in rotation (a share above 0, not ejected) other than `server`.
    fn others_in_rotation(&self, server: &str) -> usize {
        let shares = self.front.shares();
        self.names
            .iter()
            .zip(shares)
            .filter(|(n, share)| *share > 0.0 && &***n != server && !self.health.is_ejected(n))
            .count()
    }
}

impl Door {
    pub fn new(
        view: &AppView,
        max_concurrent: u32,
        policy: &FrontDoorConfig,
        events: mpsc::Sender<DoorEvent>,
    ) -> Door {
        Door {
            state: Mutex::new(build(view, Health::new(policy.clone()))),
            in_flight: AtomicUsize::new(0),
            max: AtomicUsize::new(max_concurrent as usize),
            events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Replaces the state with one built from a new view; the servers'
    /// passive health and what the steering learned carry over.
    pub fn update(&self, view: &AppView, max_concurrent: u32) {
        let mut fresh = build(view, Health::new(FrontDoorConfig::default()));
        self.max.store(max_concurrent as usize, Ordering::Relaxed);
        let changes = {
            let mut s = self.lock();
            std::mem::swap(&mut fresh.health, &mut s.health);
            fresh.health.retain(&fresh.names);
            fresh.front.carry_over(&s.front);
            *s = fresh;
            s.health.sweep(mono_now())
        };
        self.emit(changes);
    }

    /// Takes a slot under the concurrency limit, or `None` when full.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.max.load(Ordering::Relaxed) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Admitted(self.clone()))
    }

    /// Picks where this request goes. `path_and_query` comes from the
    /// request line; only its path and query are ever used.
    pub fn decide(self: &Arc<Self>, path_and_query: &str, draws: [f64; 2]) -> Decision {
        let now = mono_now();
        let (decision, returned) = {
            let mut s = self.lock();
            let returned = s.health.sweep(now);
            let decision = match s.pick(now, draws) {
                Pick::Server(i) => match s.mode {
                    AppMode::Redirect => {
                        Decision::Redirect(usher_core::model::join_url(&s.urls[i], path_and_query))
                    }
                    AppMode::Proxy => Decision::Proxy(InFlight {
                        door: self.clone(),
                        server: s.names[i].clone(),
                        base: s.urls[i].clone(),
                        picked_at: now,
                        open: true,
                    }),
                },
                Pick::Disabled => Decision::Sorry(s.sorry.clone()),
                Pick::NoServer if s.has_sorry_page => Decision::Sorry(s.sorry.clone()),
                Pick::NoServer => Decision::NoServer,
            };
            (decision, returned)
        };
        self.emit(returned);
        decision
    }

    /// Books how a proxied request to `server` ended (passive health).
    pub fn report(&self, server: &Arc<str>, outcome: Outcome) {
        let change = {
            let mut s = self.lock();
            // A good answer never ejects: skip counting the others.
            let others = match outcome {
                Outcome::Answered(status) if status < 500 => 0,
                _ => s.others_in_rotation(server),
            };
            s.health.report(server, outcome, mono_now(), others)
        };
        if let Some(c) = change {
            self.emit(vec![c]);
        }
    }

    /// This door's proxied requests not finished yet.
    pub fn in_flight(&self) -> u64 {
        self.lock().front.in_flight()
    }

    /// Queues events for the logging database; never waits.
    fn emit(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let app = self.lock().app.clone();
        for c in changes {
            let event = DoorEvent::new(&app, c);
            tracing::debug!("{}", event.text);
            if let Err(e) = self.events.try_send(event) {
                tracing::error!("front-door event not logged: {e}");
            }
        }
    }
}

/// A proxied request counted in flight at its server until it is
/// reported ([`InFlight::report`]) or dropped (a client that went away:
/// only the count is returned).
#[derive(Debug)]
pub struct InFlight {
    door: Arc<Door>,
    pub server: Arc<str>,
    pub base: Arc<str>,
    picked_at: f64,
    open: bool,
}

impl InFlight {
    /// Books how the request ended: passive health, and what the steering
    /// learns (the time from the pick to the answer head, or a failure).
    pub fn report(mut self, outcome: Outcome) {
        self.door.report(&self.server, outcome);
        let steering = match outcome {
            Outcome::Answered(status) if status < 500 => SteeringOutcome::Answered,
            _ => SteeringOutcome::Failed,
        };
        self.close(steering);
    }

    fn close(&mut self, outcome: SteeringOutcome) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        let now = mono_now();
        let took = now - self.picked_at;
        self.door
            .lock()
            .front
            .finished(&self.server, now, took, outcome);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.close(SteeringOutcome::Abandoned);
    }
}

/// A slot under the concurrency limit; released on drop.
#[derive(Debug)]
pub struct Admitted(Arc<Door>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_core::ServerView;

    fn view(names: &[&str]) -> AppView {
        AppView {
            name: "shop".into(),
            enabled: true,
            mode: AppMode::Proxy,
            epsilon: 0.0,
            obsolescence_secs: 1200.0,
            sorry_page: None,
            servers: names
                .iter()
                .enumerate()
                .map(|(i, n)| ServerView {
                    name: n.to_string(),
                    url: format!("http://127.0.0.1:{}", 9000 + i),
                    capacity: 5,
                    dynamic_load: None,
                    load_age_secs: 0.0,
                    available: true,
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn picked(d: &Arc<Door>, draw: f64) -> String {
        match d.decide("/", [draw, draw]) {
            Decision::Proxy(ticket) => ticket.server.to_string(),
            other => panic!("{other:?}"),
        }
    }

    /// An ejected server gets no pick (the others split its share); the
    /// last server in rotation is never ejected; health survives a
    /// rebuild for the servers the door still has.
    #[test]
    fn ejected_servers_are_not_picked_but_never_the_last() {
        let (tx, mut events) = mpsc::channel(16);
        let d = Arc::new(Door::new(
            &view(&["s0", "s1", "s2"]),
            10,
            &FrontDoorConfig::default(),
            tx,
        ));
        d.report(&Arc::from("s1"), Outcome::TimedOut);
        let e = events.try_recv().expect("ejection event");
        assert_eq!((e.origin.as_str(), e.kind), ("s1", SERVER_EJECTED));
        assert!(e.text.contains("app shop: server s1 out of"), "{}", e.text);
        let mut seen = std::collections::BTreeMap::<String, u32>::new();
        for i in 0..1000 {
            *seen.entry(picked(&d, f64::from(i) / 1000.0)).or_default() += 1;
        }
        assert_eq!(seen.get("s1"), None, "{seen:?}");
        assert_eq!((seen["s0"], seen["s2"]), (500, 500), "{seen:?}");

        d.report(&Arc::from("s0"), Outcome::Broken);
        assert_eq!(events.try_recv().map(|e| e.origin).ok(), Some("s0".into()));
        d.report(&Arc::from("s2"), Outcome::ConnectFailed);
        assert!(events.try_recv().is_err(), "s2 is the last one in rotation");
        for i in 0..100 {
            assert_eq!(picked(&d, f64::from(i) / 100.0), "s2");
        }

        d.update(&view(&["s0", "s1", "s2"]), 10);
        assert!(d.lock().health.is_ejected("s1"));
        d.update(&view(&["s0", "s2"]), 10);
        assert!(!d.lock().health.is_ejected("s1"));
        assert!(d.lock().health.is_ejected("s0"));
    }
}
