//! Per-worker state: this worker's ring, the snapshot it acts on (re-parsed
//! only when the shared version changes), one `FrontDoor` per application,
//! the pages this worker saw mark themselves stateful, and a fast random
//! number generator. nginx workers are single-threaded, so
//! this is a thread-local; nothing here is shared or locked.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use ngx::ffi::{
    ngx_add_timer, ngx_cycle_t, ngx_event_t, ngx_exiting, ngx_int_t, ngx_quit, ngx_terminate,
    ngx_worker, NGX_LOG_WARN,
};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_log_error;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use usher_core::ring::Ring;
use usher_core::snapshot::AppView;
use usher_core::{FrontDoor, RequestRecord, SelfMarked, Snapshot, SteeringOutcome};

use crate::module::Module;

/// How often an idle worker checks for a new snapshot.
const POLL_MS: usize = 200;

pub struct Worker {
    pub index: usize,
    pub ring: Option<Ring<'static>>,
    /// Version of `snapshot` (0: none).
    pub version: u64,
    pub snapshot: Option<Snapshot>,
    /// When this worker applied `snapshot` (its clock): the snapshot's
    /// ages and slow-start ramps count from here, not from the first
    /// request that needed a front door (an idle worker would otherwise
    /// start aging late).
    applied_at: f64,
    /// Front doors built from the snapshot, by app name.
    doors: HashMap<String, FrontDoor>,
    /// Front doors built from `usher_server` defaults, by app name.
    static_doors: HashMap<String, FrontDoor>,
    rng: SmallRng,
    started: Instant,
    pub scratch: Vec<u8>,
    /// The record being built, reused so its strings keep their capacity.
    pub record: RequestRecord,
    pub conn_cache: crate::log_phase::ConnCache,
    pub last_drop_log: u64,
    /// Paths whose responses carried `Usher-Stateful: 1` on this worker
    /// (learned in the log phase, never redirected by the access phase);
    /// kept across snapshots, not shared with other workers.
    pub self_marked: SelfMarked,
}

impl Worker {
    fn new() -> Self {
        let seed = u64::from(std::process::id()) ^ crate::timing::now_us().rotate_left(17);
        Worker {
            index: 0,
            ring: None,
            version: 0,
            snapshot: None,
            applied_at: 0.0,
            doors: HashMap::new(),
            static_doors: HashMap::new(),
            rng: SmallRng::seed_from_u64(seed),
            started: Instant::now(),
            scratch: Vec::with_capacity(1024),
            record: RequestRecord::default(),
            conn_cache: Default::default(),
            last_drop_log: 0,
            self_marked: SelfMarked::new(),
        }
    }

    /// Seconds on this worker's monotonic clock.
    pub fn now_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Re-reads the shared snapshot if its version changed (one atomic load
    /// when it did not).
    #[inline]
    pub fn refresh(&mut self) {
        let shared = crate::shared::version();
        if shared != self.version {
            self.reload();
        }
    }

    #[cold]
    fn reload(&mut self) {
        let Some((version, json)) = crate::shared::read() else {
            return;
        };
        // The command endpoint validated it; parse again here because each
        // worker has its own copy. A failure would be a bug: keep the old.
        if let Ok(s) = Snapshot::from_json(&json) {
            let now = self.now_secs();
            // Rebuild the doors in use now, carrying over what they learned
            // (requests in flight stay counted); the others on first use.
            let old = std::mem::take(&mut self.doors);
            for view in &s.apps {
                let before = old
                    .get(&view.name)
                    .or_else(|| self.static_doors.get(&view.name));
                if let Some(before) = before {
                    let mut door = FrontDoor::new(view, now);
                    door.carry_over(before);
                    self.doors.insert(view.name.clone(), door);
                }
            }
            self.snapshot = Some(s);
            self.applied_at = now;
        }
        self.version = version;
        crate::shared::set_applied(self.index, version);
    }

    /// A uniform draw in [0, 1).
    pub fn draw(&mut self) -> f64 {
        self.rng.gen::<f64>()
    }

    /// The front door for `app`: from the snapshot when it names the app,
    /// else from the static `usher_server` defaults.
    pub fn door(&mut self, app: &str, defaults: Option<&AppView>) -> Option<&mut FrontDoor> {
        let now = self.now_secs();
        let view = self
            .snapshot
            .as_ref()
            .and_then(|s| s.apps.iter().find(|a| a.name == app));
        match view {
            Some(view) => {
                if !self.doors.contains_key(app) {
                    let received = self.applied_at.min(now);
                    self.doors
                        .insert(app.to_string(), FrontDoor::new(view, received));
                }
                self.doors.get_mut(app)
            }
            None => {
                let defaults = defaults?;
                if !self.static_doors.contains_key(app) {
                    self.static_doors
                        .insert(app.to_string(), FrontDoor::new(defaults, now));
                }
                self.static_doors.get_mut(app)
            }
        }
    }
}

impl Worker {
    /// Closes a proxied request of `app` to `server` in whichever of this
    /// worker's front doors serves the app now.
    pub fn finished(&mut self, app: &str, server: &str, now: f64, took: f64, how: SteeringOutcome) {
        let door = match self.doors.get_mut(app) {
            Some(d) => Some(d),
            None => self.static_doors.get_mut(app),
        };
        if let Some(door) = door {
            door.finished(server, now, took, how);
        }
    }
}

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::new());
}

/// Runs `f` on this worker's state; `None` if it is already in use (a
/// re-entrant call) — callers then act as if usher had nothing to do.
pub fn with<T>(f: impl FnOnce(&mut Worker) -> T) -> Option<T> {
    WORKER
        .try_with(|w| w.try_borrow_mut().ok().map(|mut w| f(&mut w)))
        .ok()
        .flatten()
}

/// `init_process`: find this worker's ring and arm the snapshot timer.
///
/// # Safety
/// `cycle` must be the running cycle.
pub unsafe fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    let ok: ngx_int_t = ngx::core::Status::NGX_OK.into();
    // SAFETY: the caller passes the running cycle.
    let cycle_ref = unsafe { &*cycle };
    match Module::main_conf(cycle_ref) {
        Some(main) if main.used => {}
        _ => return ok,
    }
    // SAFETY: `ngx_worker` is set by the master before init_process runs.
    let index = unsafe { ngx_worker };
    let ring = crate::channel::worker_ring(index);
    let seed = Module::main_conf(cycle_ref).and_then(|m| m.random_seed);
    with(|w| {
        w.index = index;
        w.ring = ring;
        if let Some(seed) = seed {
            w.rng = SmallRng::seed_from_u64(seed.wrapping_add(index as u64));
        }
        w.refresh();
    });
    if index >= crate::shared::MAX_WORKERS {
        ngx_log_error!(
            NGX_LOG_WARN,
            cycle_ref.log,
            "usher: worker {} is not tracked in counters",
            index
        );
    }
    // The event lives as long as the worker process.
    // SAFETY: `ngx_event_t` is a plain C struct for which all-zero is the
    // documented initial state (nginx itself allocates events with calloc).
    let ev: &'static mut ngx_event_t =
        Box::leak(Box::new(unsafe { std::mem::zeroed::<ngx_event_t>() }));
    ev.handler = Some(poll_snapshot);
    ev.log = cycle_ref.log;
    ev.set_cancelable(1);
    // SAFETY: a valid, 'static event on the worker's own event loop.
    unsafe { ngx_add_timer(ev, POLL_MS as _) };
    ok
}

/// Timer: apply a new snapshot even when no request arrives.
unsafe extern "C" fn poll_snapshot(ev: *mut ngx_event_t) {
    crate::guard((), || {
        with(Worker::refresh);
        // SAFETY: reading nginx's process-state globals in its own thread.
        let stopping = unsafe { ngx_exiting != 0 || ngx_quit != 0 || ngx_terminate != 0 };
        if !stopping {
            // SAFETY: `ev` is our 'static event, just fired (not armed).
            unsafe { ngx_add_timer(ev, POLL_MS as _) };
        }
    });
}
