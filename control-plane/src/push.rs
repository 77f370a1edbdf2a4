//! Snapshot pushes to web server interfaces (nginx module, Envoy filter).
//!
//! One task per WSI: it pushes `{"type":"snapshot","snapshot":…}` with the
//! WSI's bearer token at once when *its* snapshot changed (configuration or
//! live view), and at least every push interval otherwise (keep-alive). A
//! load change therefore reaches only the interceptors, and only when it
//! moved their weights meaningfully. Versions come from one clock for the whole
//! control plane: `max(previous + 1, unix time in ms)`; a WSI's "stale
//! version" moves that clock past the WSI's version, unless that version is
//! more than 24 h ahead of this clock (`usher_core::version`). A failed push
//! is logged (once per change of error) and never blocks anything else.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::client::HttpConnector;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Body, Method, Request, StatusCode};
use serde::Serialize;
use usher_core::command::{Command, ErrorReply};
use usher_core::version;
use usher_core::Snapshot;

use tokio::sync::mpsc;

use crate::door::AppliedWithEvents;
use crate::front_door::DoorEvent;
use crate::live::LiveView;
use crate::model::{Fleet, Wsi};
use crate::store::Store;
use crate::views::{differs, now_unix, wsi_snapshot};

/// Largest WSI answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Reads a WSI's answer, refusing one larger than `cap` bytes.
async fn read_capped(mut body: Body, cap: usize) -> Result<Vec<u8>, String> {
    use hyper::body::HttpBody;
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if out.len() + chunk.len() > cap {
            return Err(format!("answer larger than {cap} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Time allowed for one push.
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Strictly increasing snapshot versions: `max(previous + 1, unix ms)`.
#[derive(Debug, Default)]
pub struct VersionClock(AtomicU64);

impl VersionClock {
    pub fn next(&self) -> u64 {
        let now_ms = unix_ms();
        let mut prev = self.0.load(Ordering::Acquire);
        loop {
            let v = now_ms.max(prev + 1);
            match self
                .0
                .compare_exchange(prev, v, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return v,
                Err(actual) => prev = actual,
            }
        }
    }

    /// Makes every later version at least `v`.
    pub fn at_least(&self, v: u64) {
        self.0.fetch_max(v.saturating_sub(1), Ordering::AcqRel);
    }
}

/// Last push result of one WSI (shown by `GET /api/v1/wsis`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct WsiPushState {
    /// Version of the last snapshot the WSI applied.
    pub applied_version: Option<u64>,
    pub last_ok_unix: Option<f64>,
    pub last_error: Option<String>,
    pub pushes: u64,
    pub failures: u64,
}

/// Push results by WSI name.
#[derive(Debug, Clone, Default)]
pub struct PushStatus(Arc<Mutex<HashMap<String, WsiPushState>>>);

impl PushStatus {
    pub fn get(&self, name: &str) -> Option<WsiPushState> {
        self.0.lock().ok().and_then(|m| m.get(name).cloned())
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut WsiPushState)) {
        if let Ok(mut m) = self.0.lock() {
            f(m.entry(name.to_string()).or_default());
        }
    }

    fn forget_except(&self, keep: &HashSet<String>) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|k, _| keep.contains(k));
        }
    }
}

type Client = hyper::Client<HttpConnector, Body>;

/// Starts the push supervisor: one task per WSI of the fleet, started and
/// ended as WSIs come and go.
///
/// Events a separate front door (`usher door`) hands over in its answers go
/// to `events`, the queue the embedded front doors' events take too.
pub fn start(
    store: &Store,
    live: &LiveView,
    status: PushStatus,
    interval: Duration,
    events: mpsc::Sender<DoorEvent>,
) {
    let clock = Arc::new(VersionClock::default());
    let client: Client = hyper::Client::builder().build(HttpConnector::new());
    let mut rx = store.subscribe();
    let store = store.clone();
    let live = live.clone();
    tokio::spawn(async move {
        let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let fleet = rx.borrow_and_update().clone();
            running.retain(|_, h| !h.is_finished());
            let names: HashSet<String> = fleet.wsis.iter().map(|w| w.name.clone()).collect();
            status.forget_except(&names);
            for name in names {
                if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(name) {
                    let task = wsi_loop(
                        slot.key().clone(),
                        Sources {
                            store: store.clone(),
                            live: live.clone(),
                        },
                        Pusher {
                            client: client.clone(),
                            clock: clock.clone(),
                            events: events.clone(),
                        },
                        status.clone(),
                        interval,
                    );
                    slot.insert(tokio::spawn(task));
                }
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
}

/// Where a WSI's snapshot comes from: the configured objects and the live view.
struct Sources {
    store: Store,
    live: LiveView,
}

/// What a push needs: the HTTP client, the version clock, and where the
/// events in a door's answer go.
struct Pusher {
    client: Client,
    clock: Arc<VersionClock>,
    events: mpsc::Sender<DoorEvent>,
}

/// One WSI's task: it builds the WSI's snapshot whenever the fleet or the
/// live view changes and pushes it only when it differs from the last one
/// sent ([`differs`]), and at least once every `interval` (the keep-alive,
/// which also retries a failed push).
async fn wsi_loop(
    name: String,
    sources: Sources,
    pusher: Pusher,
    status: PushStatus,
    interval: Duration,
) {
    let mut fleet_rx = sources.store.subscribe();
    let mut live_rx = sources.live.subscribe();
    let mut last_error: Option<String> = None;
    let mut last_sent: Option<Snapshot> = None;
    let mut last_attempt = tokio::time::Instant::now();
    loop {
        let fleet: Arc<Fleet> = fleet_rx.borrow_and_update().clone();
        let live = live_rx.borrow_and_update().clone();
        let Some(wsi) = fleet.wsi(&name).cloned() else {
            return;
        };
        let snapshot = wsi_snapshot(&fleet, &live, &wsi, 0, now_unix());
        let due = last_sent.is_none()
            || last_attempt.elapsed() >= interval
            || match (&last_sent, &snapshot) {
                (Some(old), Some(new)) => differs(old, new),
                _ => true,
            };
        if due {
            last_attempt = tokio::time::Instant::now();
            let outcome = match snapshot.clone() {
                Some(s) => pusher.push(&wsi, s).await,
                None => Err(format!("its app {:?} is gone", wsi.app)),
            };
            last_sent = snapshot;
            match outcome {
                Ok(version) => {
                    if last_error.take().is_some() {
                        tracing::info!("WSI {name}: pushes work again (version {version})");
                    }
                    status.update(&name, |s| {
                        s.applied_version = Some(version);
                        s.last_ok_unix = Some(now_unix());
                        s.last_error = None;
                        s.pushes += 1;
                    });
                }
                Err(e) => {
                    if last_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!("WSI {name}: push to {} failed: {e}", wsi.url);
                    }
                    status.update(&name, |s| {
                        s.last_error = Some(e.clone());
                        s.pushes += 1;
                        s.failures += 1;
                    });
                    last_error = Some(e);
                }
            }
        }
        tokio::select! {
            changed = fleet_rx.changed() => if changed.is_err() { return },
            changed = live_rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(last_attempt + interval) => {}
        }
    }
}

impl Pusher {
    /// Pushes one snapshot under a fresh version; on "stale version" moves
    /// the clock past the WSI's version and tries once more. Returns the
    /// applied version.
    async fn push(&self, wsi: &Wsi, mut snapshot: Snapshot) -> Result<u64, String> {
        for _attempt in 0..2 {
            let version = self.clock.next();
            snapshot.version = version;
            snapshot
                .validate()
                .map_err(|e| format!("not sent, the snapshot is invalid: {e}"))?;
            let body = serde_json::to_vec(&Command::Snapshot {
                snapshot: snapshot.clone(),
            })
            .map_err(|e| e.to_string())?;
            let req = Request::builder()
                .method(Method::POST)
                .uri(&wsi.url)
                .header(AUTHORIZATION, format!("Bearer {}", wsi.token))
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .map_err(|e| format!("bad request: {e}"))?;
            let answer = tokio::time::timeout(PUSH_TIMEOUT, async {
                let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                let bytes = read_capped(resp.into_body(), MAX_ANSWER_BYTES).await?;
                Ok::<_, String>((status, bytes))
            })
            .await
            .map_err(|_| format!("no answer within {PUSH_TIMEOUT:?}"))??;
            let (status, bytes) = answer;
            if status == StatusCode::OK {
                self.take_events(&wsi.name, &bytes);
                return Ok(version);
            }
            let refusal = ErrorReply::from_json(&bytes);
            if status == StatusCode::CONFLICT {
                if let Some(c) = refusal.as_ref().and_then(ErrorReply::stale_current) {
                    follow_stale(&self.clock, c, unix_ms())?;
                    continue;
                }
            }
            let why = match refusal {
                Some(e) => e.to_string(),
                None => String::from_utf8_lossy(&bytes).into_owned(),
            };
            return Err(format!(
                "HTTP {status}: {}",
                why.chars().take(300).collect::<String>()
            ));
        }
        Err("the WSI refused two versions as stale".into())
    }
}

impl Pusher {
    /// Passes on the events a separate front door put in its answer (other
    /// WSIs send none; an answer that is not this shape has none).
    fn take_events(&self, wsi: &str, answer: &[u8]) {
        let Ok(applied) = serde_json::from_slice::<AppliedWithEvents>(answer) else {
            return;
        };
        for wire in applied.events {
            let code = wire.code;
            match wire.into_door() {
                Some(e) => {
                    if self.events.try_send(e).is_err() {
                        tracing::error!("WSI {wsi}: event queue full, an event was dropped");
                    }
                }
                None => tracing::warn!(
                    "WSI {wsi}: answer carried event {code}, which no door raises: ignored"
                ),
            }
        }
    }
}

/// On a WSI's "stale version" with its `current`: moves the clock past it,
/// unless it is far ahead of this control plane's wall clock `now_ms`
/// (`usher_core::version`): following it would poison every later version.
/// A WSI that has the version rule accepts a normal version instead of
/// answering that, so such a `current` comes from an older build, which only
/// a restart can bring back. The error is logged as a warning naming the WSI
/// (once per change, by [`wsi_loop`]).
fn follow_stale(clock: &VersionClock, current: u64, now_ms: u64) -> Result<(), String> {
    if version::is_far_ahead(current, now_ms) {
        return Err(format!(
            "the WSI holds version {current}, more than 24 h ahead of this control plane's \
             clock; not following it (a WSI built before the version bound needs a restart)"
        ));
    }
    clock.at_least(current.saturating_add(1));
    Ok(())
}

/// This control plane's wall clock in unix milliseconds.
fn unix_ms() -> u64 {
    (now_unix() * 1000.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_follow_the_clock() {
        let c = VersionClock::default();
        let a = c.next();
        let b = c.next();
        assert!(b > a && a > 1_600_000_000_000);
        c.at_least(u64::MAX / 2);
        assert!(c.next() >= u64::MAX / 2);
    }

    #[test]
    fn a_far_ahead_current_is_not_followed() {
        let now = unix_ms();
        let c = VersionClock::default();
        let err = follow_stale(&c, u64::MAX, now).expect_err("refused");
        assert!(err.contains("18446744073709551615"), "{err}");
        follow_stale(&c, now + version::MAX_AHEAD_MS + 1, now).expect_err("refused");
        let v = c.next();
        assert!(v < now + version::MAX_AHEAD_MS, "clock moved to {v}");
        // A current within the bound is followed as before.
        let ahead = now + 60_000;
        follow_stale(&c, ahead, now).expect("followed");
        assert!(c.next() > ahead);
    }
}
