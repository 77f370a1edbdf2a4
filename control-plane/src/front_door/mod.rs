//! The built-in front door (the design's interceptor): one plain hyper
//! listener per application. Listeners and their state follow the fleet:
//! an app added through the API gets a listener, a removed one loses it,
//! and every change of the fleet or the live view (or every push interval,
//! to fold in aging and drop epsilon bumps) rebuilds each app's [`Door`]
//! from a fresh view. In proxy mode each door also keeps its servers'
//! passive health (`health.rs`) and reports ejections as [`DoorEvent`]s.

mod config;
mod door;
mod health;
mod proxy;
mod service;
mod sorry;

pub use config::FrontDoorConfig;
pub use door::{mono_now, Decision, Door, DoorEvent, InFlight};
pub use health::{SERVER_EJECTED, SERVER_RETURNED};
pub use proxy::Proxy;
pub use sorry::BUILT_IN_SORRY_PAGE;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::AddrStream;
use hyper::service::{make_service_fn, service_fn};
use tokio::sync::{mpsc, oneshot, watch};

use crate::live::{Live, LiveView};
use crate::model::Fleet;
use crate::store::Store;
use crate::views::{app_view, now_unix};

/// A listener that could not start; names the app and the address.
#[derive(Debug, thiserror::Error)]
#[error("app {app}: cannot listen on {addr}: {source}")]
pub struct ListenError {
    pub app: String,
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

struct Listener {
    addr: SocketAddr,
    door: Arc<Door>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            if stop.send(()).is_err() {
                tracing::debug!("front door on {} had already stopped", self.addr);
            }
        }
    }
}

/// Every running front-door listener.
pub struct FrontDoors {
    listeners: HashMap<String, Listener>,
    proxy: proxy::Proxy,
    settings: FrontDoorConfig,
    events: mpsc::Sender<DoorEvent>,
}

impl FrontDoors {
    /// Binds a listener for every app of the current fleet (an error names
    /// the app whose address is taken) and keeps them in step with the
    /// fleet from then on.
    ///
    /// The returned receiver holds the fleet generation the doors have
    /// applied, so a caller can wait until a change is live. Ejections and
    /// returns of servers go to `events` (never waited on: a full queue
    /// drops the event and logs an error).
    pub fn start(
        store: &Store,
        live: &LiveView,
        refresh: Duration,
        settings: &FrontDoorConfig,
        events: mpsc::Sender<DoorEvent>,
    ) -> Result<watch::Receiver<u64>, ListenError> {
        let mut doors = FrontDoors {
            listeners: HashMap::new(),
            proxy: proxy::Proxy::new(settings),
            settings: settings.clone(),
            events,
        };
        let mut rx = store.subscribe();
        let mut live_rx = live.subscribe();
        let fleet = rx.borrow_and_update().clone();
        let picture = live_rx.borrow_and_update().clone();
        if let Some(e) = doors.reconcile(&fleet, &picture).into_iter().next() {
            return Err(e);
        }
        let (applied, applied_rx) = watch::channel(fleet.generation);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { break },
                    changed = live_rx.changed() => if changed.is_err() { break },
                    _ = tokio::time::sleep(refresh) => {}
                }
                let fleet = rx.borrow_and_update().clone();
                let picture = live_rx.borrow_and_update().clone();
                for e in doors.reconcile(&fleet, &picture) {
                    tracing::error!("{e}");
                }
                applied.send_replace(fleet.generation);
            }
        });
        Ok(applied_rx)
    }

    /// No embedded front doors (`[control] serve_front_doors = false`: `usher
    /// door` processes serve the apps): the returned receiver follows the
    /// fleet's generation at once, so API answers do not wait for doors.
    pub fn none(store: &Store) -> watch::Receiver<u64> {
        let mut rx = store.subscribe();
        let (applied, applied_rx) = watch::channel(rx.borrow_and_update().generation);
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let generation = rx.borrow_and_update().generation;
                applied.send_replace(generation);
            }
        });
        applied_rx
    }

    /// Starts, stops and updates listeners to match `fleet`.
    fn reconcile(&mut self, fleet: &Fleet, live: &Live) -> Vec<ListenError> {
        let now = now_unix();
        self.listeners
            .retain(|name, l| fleet.app(name).is_some_and(|a| a.listen == l.addr));
        let mut errors = Vec::new();
        for app in &fleet.apps {
            let view = app_view(fleet, live, app, now);
            if let Some(l) = self.listeners.get(&app.name) {
                l.door.update(&view, app.max_concurrent);
                continue;
            }
            let door = Arc::new(Door::new(
                &view,
                app.max_concurrent,
                &self.settings,
                self.events.clone(),
            ));
            match serve(app.listen, door.clone(), self.proxy.clone()) {
                Ok(stop) => {
                    tracing::info!("front door of app {} on http://{}", app.name, app.listen);
                    self.listeners.insert(
                        app.name.clone(),
                        Listener {
                            addr: app.listen,
                            door,
                            stop: Some(stop),
                        },
                    );
                }
                Err(source) => errors.push(ListenError {
                    app: app.name.clone(),
                    addr: app.listen,
                    source,
                }),
            }
        }
        errors
    }
}

/// Binds `addr` and serves the door there until the returned sender fires
/// or is dropped.
pub fn serve(
    addr: SocketAddr,
    door: Arc<Door>,
    proxy: Proxy,
) -> std::io::Result<oneshot::Sender<()>> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let make = make_service_fn(move |conn: &AddrStream| {
        let door = door.clone();
        let proxy = proxy.clone();
        let remote = conn.remote_addr();
        async move {
            Ok::<_, Infallible>(service_fn(move |req| {
                service::handle(&door, &proxy, remote, req)
            }))
        }
    });
    let server = hyper::Server::from_tcp(listener)
        .map_err(std::io::Error::other)?
        .http1_only(true)
        .tcp_nodelay(true)
        .serve(make);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = server.with_graceful_shutdown(async {
        // Either an explicit stop or the sender dropped: both mean stop.
        let _stopped = stopped.await;
    });
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("front door on {addr}: {e}");
        }
    });
    Ok(stop)
}
