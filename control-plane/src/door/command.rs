//! The separate front door's command endpoint: the control plane pushes
//! each application's snapshot here as it does to the nginx and Envoy front
//! doors (`usher_core::command`), with the door's bearer token.
//!
//! * `POST` a [`Command`]: a snapshot is applied (per-app versions,
//!   [`Held`]), the app's door rebuilt, the hold saved, and the answer
//!   `{"applied":N,"events":[...]}` carries the door's queued events;
//!   an echo answers `{"echo":...,"pid":...}`.
//! * `GET`: what the door holds, per app (version, servers, age, proxied
//!   requests in flight), and its event queue.
//!
//! Errors are `{"error": ...}` with 400 (bad command), 401 (token), 405
//! (method, with `Allow`), 409 (stale version, with `current`), 413 (size).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Body, Method, Request, Response, StatusCode};
use serde_json::json;
use usher_core::command::to_json;
use usher_core::snapshot::MAX_SNAPSHOT_BYTES;
use usher_core::{Command, Echoed, ErrorReply};

use super::events::{AppliedWithEvents, EventQueue};
use super::held::Held;
use crate::front_door::Door;

/// One application's door and its concurrency limit.
pub struct Served {
    pub door: Arc<Door>,
    pub max_concurrent: u32,
}

/// What the command endpoint works on.
pub struct Endpoint {
    pub token: String,
    pub doors: HashMap<String, Served>,
    pub held: Mutex<Held>,
    pub events: Mutex<EventQueue>,
    pub snapshot_file: Option<PathBuf>,
    /// Generation of the hold (bumped on every apply) and the last one
    /// written, so a slow write never overwrites a newer one.
    generation: AtomicU64,
    written: Mutex<u64>,
}

impl Endpoint {
    pub fn new(
        token: String,
        doors: HashMap<String, Served>,
        held: Held,
        snapshot_file: Option<PathBuf>,
    ) -> Endpoint {
        Endpoint {
            token,
            doors,
            held: Mutex::new(held),
            events: Mutex::new(EventQueue::default()),
            snapshot_file,
            generation: AtomicU64::new(0),
            written: Mutex::new(0),
        }
    }

    fn served(&self) -> Vec<String> {
        self.doors.keys().cloned().collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn answer(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    answer(status, to_json(&ErrorReply::new(message)))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Answers one request to the command endpoint.
pub async fn handle(ep: Arc<Endpoint>, req: Request<Body>) -> Response<Body> {
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !crate::token::bearer_matches(auth, &ep.token) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    match *req.method() {
        Method::GET => answer(StatusCode::OK, status(&ep)),
        Method::POST => post(ep, req.into_body()).await,
        _ => {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            r
        }
    }
}

async fn post(ep: Arc<Endpoint>, body: Body) -> Response<Body> {
    let cap = MAX_SNAPSHOT_BYTES + 4096;
    let bytes = match read_capped(body, cap).await {
        Ok(b) => b,
        Err(Capped::TooLarge) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("command larger than {cap} bytes"),
            )
        }
        Err(Capped::Io(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let command: Command = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a command: {e}")),
    };
    match command {
        Command::Echo { text } => answer(
            StatusCode::OK,
            to_json(&Echoed {
                echo: text,
                pid: std::process::id(),
                worker: None,
            }),
        ),
        Command::Snapshot { snapshot } => apply(&ep, snapshot),
    }
}

fn apply(ep: &Arc<Endpoint>, snapshot: usher_core::Snapshot) -> Response<Body> {
    let version = snapshot.version;
    let saved = {
        let mut held = lock(&ep.held);
        let changed = match held.apply(snapshot, &ep.served(), unix_ms()) {
            Ok(c) => c,
            Err(r) => {
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
                return answer(status, to_json(&r.reply));
            }
        };
        for name in &changed {
            if let (Some(s), Some(h)) = (ep.doors.get(name), held.apps.get(name)) {
                s.door.update(&h.view, s.max_concurrent);
            }
        }
        let generation = ep.generation.fetch_add(1, Ordering::AcqRel) + 1;
        ep.snapshot_file
            .clone()
            .map(|path| (path, held.clone(), generation))
    };
    if let Some((path, held, generation)) = saved {
        let ep = ep.clone();
        tokio::task::spawn_blocking(move || {
            let mut written = lock(&ep.written);
            if *written >= generation {
                return;
            }
            match held.save(&path) {
                Ok(()) => *written = generation,
                Err(e) => {
                    tracing::error!("cannot save the held snapshots to {}: {e}", path.display())
                }
            }
        });
    }
    let events = lock(&ep.events).take();
    answer(
        StatusCode::OK,
        to_json(&AppliedWithEvents {
            applied: version,
            events,
        }),
    )
}

fn status(ep: &Endpoint) -> Vec<u8> {
    let held = lock(&ep.held);
    let now = unix_ms() as f64 / 1000.0;
    let apps: serde_json::Map<String, serde_json::Value> = ep
        .doors
        .iter()
        .map(|(name, served)| {
            let v = match held.apps.get(name) {
                Some(h) => json!({
                    "version": h.version,
                    "in_flight": served.door.in_flight(),
                    "enabled": h.view.enabled,
                    "mode": h.view.mode,
                    "servers": h.view.servers.iter().map(|s| json!({
                        "name": s.name,
                        "available": s.available,
                        "dynamic_load": s.dynamic_load,
                    })).collect::<Vec<_>>(),
                    "applied_secs_ago": (now - h.applied_unix).max(0.0),
                }),
                None => json!({ "version": 0, "in_flight": served.door.in_flight() }),
            };
            (name.clone(), v)
        })
        .collect();
    let events = lock(&ep.events);
    serde_json::to_vec(&json!({
        "apps": apps,
        "events_queued": events.len(),
        "events_dropped": events.dropped,
    }))
    .unwrap_or_else(|_| b"{}".to_vec())
}

enum Capped {
    TooLarge,
    Io(String),
}

async fn read_capped(mut body: Body, cap: usize) -> Result<Vec<u8>, Capped> {
    use hyper::body::HttpBody;
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| Capped::Io(e.to_string()))?;
        if out.len() + chunk.len() > cap {
            return Err(Capped::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
