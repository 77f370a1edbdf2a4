//! The worker's state, shared by the root context and the request
//! contexts of one Envoy worker (its own module, so the contexts and the
//! root that creates them do not import each other).

use std::cell::RefCell;
use std::rc::Rc;

use usher_core::{RequestRecord, SelfMarked};

use crate::config::Settings;
use crate::host;
use crate::records::RecordBuffer;
use crate::rng::Rng;
use crate::view::View;

/// The worker's state, shared by the root context and its requests.
#[derive(Debug)]
pub struct Worker {
    pub settings: Rc<Settings>,
    pub view: View,
    pub records: RecordBuffer,
    /// The record being assembled in a log phase, reused from one request
    /// to the next (its string buffers are kept).
    pub scratch: RequestRecord,
    pub rng: Rng,
    /// Redirects answered, not yet added to the metric.
    pub redirects: u64,
    /// Requests let through to a picked server, and those finished, not
    /// yet added to the metrics (proxy mode).
    pub proxied: u64,
    pub proxied_done: u64,
    /// Paths whose responses carried `Usher-Stateful: 1` on this worker
    /// (never redirected here); kept across snapshots, not shared with the
    /// other workers' VMs.
    pub self_marked: SelfMarked,
    /// Paths newly learned, not yet added to the metric.
    pub self_marked_new: u64,
    /// Random id of this worker's VM, sent in `x-usher-worker`.
    pub id: String,
}

/// Shared handle on the worker state.
pub type Shared = Rc<RefCell<Worker>>;

/// The counters every role defines (same names: same stats in every worker).
#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics {
    pub written: Option<u32>,
    pub dropped: Option<u32>,
    pub redirects: Option<u32>,
    pub self_marked: Option<u32>,
    pub proxied: Option<u32>,
    pub proxied_done: Option<u32>,
}

impl Metrics {
    pub(crate) fn define() -> Metrics {
        Metrics {
            written: host::counter("usher_records_written"),
            dropped: host::counter("usher_records_dropped"),
            redirects: host::counter("usher_redirects"),
            self_marked: host::counter("usher_self_marked"),
            proxied: host::counter("usher_proxied"),
            proxied_done: host::counter("usher_proxied_done"),
        }
    }
}
