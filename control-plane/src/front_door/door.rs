//! One application's front-door state, shared by its listener's
//! connections: the `usher-core` [`FrontDoor`] behind a short mutex (held
//! for one pick), the concurrency counter, and what the answers need.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use usher_core::{AppMode, AppView, FrontDoor, Pick};

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
    /// Forward to this configured server (base URL).
    Proxy { server: Arc<str>, base: Arc<str> },
    /// 503 with this HTML (app disabled, or no server and a sorry page).
    Sorry(Bytes),
    /// 503, plain: no server available and no sorry page configured.
    NoServer,
}

struct State {
    front: FrontDoor,
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
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door").finish_non_exhaustive()
    }
}

fn build(view: &AppView) -> State {
    let front = FrontDoor::new(view, mono_now());
    State {
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

impl Door {
    pub fn new(view: &AppView, max_concurrent: u32) -> Door {
        Door {
            state: Mutex::new(build(view)),
            in_flight: AtomicUsize::new(0),
            max: AtomicUsize::new(max_concurrent as usize),
        }
    }

    /// Replaces the state with one built from a new view.
    pub fn update(&self, view: &AppView, max_concurrent: u32) {
        let fresh = build(view);
        self.max.store(max_concurrent as usize, Ordering::Relaxed);
        match self.state.lock() {
            Ok(mut s) => *s = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
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
    pub fn decide(&self, path_and_query: &str, draw: f64) -> Decision {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        match s.front.pick(mono_now(), draw) {
            Pick::Server(i) => match s.mode {
                AppMode::Redirect => {
                    Decision::Redirect(usher_core::model::join_url(&s.urls[i], path_and_query))
                }
                AppMode::Proxy => Decision::Proxy {
                    server: s.names[i].clone(),
                    base: s.urls[i].clone(),
                },
            },
            Pick::Disabled => Decision::Sorry(s.sorry.clone()),
            Pick::NoServer if s.has_sorry_page => Decision::Sorry(s.sorry.clone()),
            Pick::NoServer => Decision::NoServer,
        }
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
