//! Recorded stand-ins for the HTTP endpoints usher talks to: a web server
//! interface's command endpoint (the control plane pushes snapshots to it)
//! and the agent's record-batch receiver (the Envoy filter posts to it).
//! Both are answer rules on the one [`Recorder`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::poll::eventually;
use crate::recorder::{Recorder, Reply};

/// One snapshot push a [`WsiRecorder`] accepted.
#[derive(Debug, Clone)]
pub struct Got {
    pub at: Instant,
    pub path: String,
    pub auth: String,
    pub body: Value,
}

/// Plays WSI command endpoints (any path): answers `{"applied": VERSION}`,
/// or once `409` with a current version when told to.
pub struct WsiRecorder {
    recorder: Recorder,
    stale_once: Arc<Mutex<Option<(String, u64)>>>,
}

impl WsiRecorder {
    /// Starts it; returns it and its port.
    pub fn start() -> (WsiRecorder, u16) {
        let stale_once: Arc<Mutex<Option<(String, u64)>>> = Arc::default();
        let stale = stale_once.clone();
        let recorder = Recorder::start(move |req| {
            let version = req.json()["snapshot"]["version"].as_u64().unwrap_or(0);
            let current = {
                let mut s = stale.lock().expect("lock");
                match s.take() {
                    Some((p, v)) if p == req.path => Some(v),
                    other => {
                        *s = other;
                        None
                    }
                }
            };
            match current {
                Some(current) => Reply::json(
                    409,
                    "Conflict",
                    format!(r#"{{"error":"stale version","current":{current}}}"#),
                ),
                None => Reply::json(200, "OK", format!(r#"{{"applied":{version}}}"#)),
            }
        });
        let port = recorder.port();
        (
            WsiRecorder {
                recorder,
                stale_once,
            },
            port,
        )
    }

    /// Answers the next push to `path` with 409 and `current`.
    pub fn stale_once(&self, path: &str, current: u64) {
        *self.stale_once.lock().expect("lock") = Some((path.to_string(), current));
    }

    /// Every accepted push to `path` (a 409 is not accepted).
    pub fn all(&self, path: &str) -> Vec<Got> {
        self.recorder
            .recorded()
            .into_iter()
            .filter(|r| r.status == 200 && r.request.path == path)
            .map(|r| Got {
                at: r.at,
                auth: r.request.header("authorization").unwrap_or("").to_string(),
                body: r.request.json(),
                path: r.request.path,
            })
            .collect()
    }

    /// Waits for a push to `path` received after `since` that satisfies `check`.
    pub fn wait_for(
        &self,
        path: &str,
        since: Instant,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Option<Got> {
        let mut found = None;
        eventually(limit, || {
            found = self
                .all(path)
                .into_iter()
                .find(|g| g.at >= since && check(&g.body["snapshot"]));
            found.is_some()
        });
        found
    }
}

/// One POST a [`BatchReceiver`] got.
#[derive(Debug, Clone)]
pub struct Batch {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

/// Takes record batches like the agent's loopback receiver (`200`, no body).
#[derive(Clone)]
pub struct BatchReceiver {
    pub port: u16,
    recorder: Recorder,
}

impl BatchReceiver {
    pub fn start() -> BatchReceiver {
        let recorder = Recorder::start(|_| Reply::ok_empty());
        BatchReceiver {
            port: recorder.port(),
            recorder,
        }
    }

    /// Every batch so far, in arrival order.
    pub fn batches(&self) -> Vec<Batch> {
        self.recorder
            .recorded()
            .into_iter()
            .map(|r| Batch {
                authorization: r.request.header("authorization").map(str::to_string),
                path: r.request.path,
                body: r.request.body,
            })
            .collect()
    }

    /// Every record received so far, decoded (panics on a bad batch).
    pub fn records(&self) -> Vec<usher_core::RequestRecord> {
        self.batches()
            .iter()
            .flat_map(|b| {
                let d = usher_core::decode_batch(&b.body).expect("batch decodes");
                assert_eq!(d.bad, 0, "undecodable records in a batch");
                d.records
            })
            .collect()
    }
}
