//! The root context: one per worker (and one on the main thread). It parses
//! the plugin configuration, owns the worker's state (view, record buffer,
//! random draws) shared with the request contexts, and on its tick picks up
//! new snapshots, sends sealed record batches and moves counters into the
//! Envoy metrics.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, Status};

use crate::command::CommandCtx;
use crate::config::{self, Role};
use crate::interceptor::InterceptorCtx;
use crate::records::RecordBuffer;
use crate::rng::Rng;
use crate::roll;
use crate::server::ServerCtx;
use crate::view::View;
use crate::worker::{Metrics, Shared, Worker};
use crate::{host, shared};
use usher_core::{RequestRecord, SelfMarked};

/// Tick period when records are kept (sealed batches leave within this).
const RECORD_TICK: Duration = Duration::from_millis(20);
/// Ticks between two looks at the snapshot version (about 100 ms).
const SNAPSHOT_EVERY_MS: u64 = 100;

pub struct Root {
    context_id: u32,
    worker: Option<Shared>,
    metrics: Metrics,
    tick_ms: u64,
    since_snapshot_ms: u64,
    /// Unix ms when this worker last wrote its line in the roll (`roll`).
    reported_ms: u64,
    agent_failing: bool,
    /// The unknown-`agent_cluster` error was logged (once per worker).
    told_no_cluster: bool,
}

/// Creates the root context (registered in `main!`).
pub fn new_root(context_id: u32) -> Box<dyn RootContext> {
    Box::new(Root {
        context_id,
        worker: None,
        metrics: Metrics::default(),
        tick_ms: 0,
        since_snapshot_ms: 0,
        reported_ms: 0,
        agent_failing: false,
        told_no_cluster: false,
    })
}

impl Root {
    /// Loads the published snapshot into this worker's view when its version
    /// changed (normally a newer one).
    /// Then, from a tick, writes this worker's line in the roll of workers
    /// when the version changed or the heartbeat is due (only from a tick:
    /// a root context that never ticks, like the main thread's, must not
    /// be listed as a worker that lags behind).
    fn refresh(&mut self, worker: &Shared, ticking: bool) {
        let applied = worker.borrow().view.version;
        let now_ms = host::now_us() / 1000;
        let mut changed = false;
        if shared::current_version() != applied {
            if let Some(snap) = shared::load_changed(applied) {
                let mut w = worker.borrow_mut();
                let mut view = View::from_snapshot(&w.settings, &snap, now_ms as f64 / 1e3);
                view.carry_over(&w.view);
                w.view = view;
                info!("worker {} applied snapshot {}", w.id, snap.version);
                changed = true;
            }
        }
        if ticking && (changed || now_ms.saturating_sub(self.reported_ms) >= roll::HEARTBEAT_MS) {
            let w = worker.borrow();
            shared::report_applied(&w.id, w.view.version, now_ms);
            self.reported_ms = now_ms;
        }
    }

    /// Sends every ready batch the in-flight limit allows.
    fn flush(&mut self, worker: &Shared) {
        let mut w = worker.borrow_mut();
        let Some(agent) = w.settings.agent.clone() else {
            return;
        };
        w.records.seal_if_old(host::now_us());
        while let Some((batch, n)) = w.records.next_batch() {
            match host::post(
                &agent.cluster,
                &agent.authority,
                &agent.path,
                agent.token.as_deref(),
                &batch,
            ) {
                Ok(token) => w.records.sent(token, n),
                Err(e) => {
                    w.records.failed_to_send(n);
                    if e == Status::BadArgument && !self.told_no_cluster {
                        // Said once per worker, as an error: it is a config
                        // mistake, and it does not heal by itself.
                        error!("{}", agent.unknown_cluster_error());
                        self.told_no_cluster = true;
                        self.agent_failing = true;
                    } else if !self.agent_failing {
                        warn!("cannot send records to cluster {}: {e:?}", agent.cluster);
                        self.agent_failing = true;
                    }
                }
            }
        }
    }

    /// Moves the worker's counts into the Envoy metrics.
    fn publish_counts(&mut self, worker: &Shared) {
        let mut w = worker.borrow_mut();
        host::add(self.metrics.written, std::mem::take(&mut w.records.written));
        host::add(self.metrics.dropped, std::mem::take(&mut w.records.dropped));
        host::add(self.metrics.redirects, std::mem::take(&mut w.redirects));
        host::add(self.metrics.proxied, std::mem::take(&mut w.proxied));
        host::add(
            self.metrics.proxied_done,
            std::mem::take(&mut w.proxied_done),
        );
        host::add(
            self.metrics.self_marked,
            std::mem::take(&mut w.self_marked_new),
        );
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        let Some(worker) = self.worker.clone() else {
            return;
        };
        let status = host::call_status();
        let ok = matches!(status, Some(200..=299));
        worker.borrow_mut().records.answered(token, ok);
        if ok == self.agent_failing {
            self.agent_failing = !ok;
            if ok {
                info!("agent takes records again");
            } else {
                warn!("agent refused a record batch (status {status:?}); records are dropped and counted");
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = host::plugin_configuration() else {
            error!("plugin configuration is missing");
            return false;
        };
        let settings = match config::parse(&bytes) {
            Ok(s) => Rc::new(s),
            Err(e) => {
                error!("refused: {e}");
                return false;
            }
        };
        self.metrics = Metrics::define();
        let now = host::now_us();
        let mut rng = Rng::new(now ^ (u64::from(self.context_id) << 32));
        let id = format!("{:016x}", rng.next_u64());
        if settings.role == Role::Command {
            shared::init();
        } else {
            let tick = if settings.agent.is_some() {
                RECORD_TICK
            } else {
                Duration::from_millis(SNAPSHOT_EVERY_MS)
            };
            self.tick_ms = tick.as_millis() as u64;
            host::set_tick(tick);
        }
        let view = View::from_settings(&settings, now as f64 / 1e6);
        let worker = Rc::new(RefCell::new(Worker {
            settings,
            view,
            records: RecordBuffer::default(),
            scratch: RequestRecord::default(),
            rng,
            redirects: 0,
            proxied: 0,
            proxied_done: 0,
            self_marked: SelfMarked::new(),
            self_marked_new: 0,
            id,
        }));
        if worker.borrow().settings.role != Role::Command {
            self.refresh(&worker, false);
        }
        self.worker = Some(worker);
        true
    }

    fn on_tick(&mut self) {
        let Some(worker) = self.worker.clone() else {
            return;
        };
        self.since_snapshot_ms += self.tick_ms;
        if self.since_snapshot_ms >= SNAPSHOT_EVERY_MS {
            self.since_snapshot_ms = 0;
            self.refresh(&worker, true);
        }
        self.flush(&worker);
        self.publish_counts(&worker);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let Some(worker) = self.worker.clone() else {
            // Not configured: pass every request through untouched.
            return Some(Box::new(Passthrough));
        };
        let role = worker.borrow().settings.role;
        Some(match role {
            Role::Server => Box::new(ServerCtx::new(worker)),
            Role::Interceptor => Box::new(InterceptorCtx::new(worker)),
            Role::Command => Box::new(CommandCtx::new(worker, self.metrics)),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// A request context that does nothing.
struct Passthrough;

impl Context for Passthrough {}
impl HttpContext for Passthrough {}
