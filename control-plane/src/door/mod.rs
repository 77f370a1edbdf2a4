//! `usher door`: the built-in front door as a process of its own, so that
//! users keep being served when the control plane stops or crashes (issue
//! 10: "front doors outlive the control plane"). It is fed snapshots like
//! the nginx and Envoy front doors: the control plane knows it as one WSI
//! (role `interceptor`) per application, whose URL is this door's command
//! endpoint. Serving is the same code as the front doors inside `usher
//! control` ([`crate::front_door`]): weighted choice, redirect or proxy,
//! bounded waits and passive health; ejections travel back to the control
//! plane in the answers to its pushes ([`events`]).
//!
//! Before its first snapshot a door answers 503 (no server), unless its
//! `snapshot_file` holds what it applied before it stopped.

mod command;
mod config;
mod events;
mod held;

pub use config::{DoorApp, DoorConfig, DoorConfigError, MIN_TOKEN_LEN};
pub use events::{AppliedWithEvents, WireEvent};
pub use held::{Held, HeldApp};

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use hyper::service::{make_service_fn, service_fn};
use usher_core::{AppMode, AppView};

use crate::front_door::{self, Door};
use command::{Endpoint, Served};
use events::WireEvent as Wire;

/// Why the door could not start.
#[derive(Debug, thiserror::Error)]
pub enum DoorError {
    #[error(transparent)]
    Config(#[from] DoorConfigError),
    #[error("{path}: cannot read the held snapshots: {source}")]
    Held {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        addr: std::net::SocketAddr,
        what: String,
        source: std::io::Error,
    },
}

/// What a door serves before any snapshot: no server, so 503.
fn empty_view(name: &str) -> AppView {
    AppView {
        name: name.to_string(),
        enabled: true,
        mode: AppMode::default(),
        epsilon: 0.0,
        obsolescence_secs: usher_core::snapshot::default_obsolescence_secs(),
        sorry_page: None,
        servers: Vec::new(),
    }
}

/// Runs the door described by `config_path` until SIGINT/SIGTERM.
pub async fn run(config_path: &Path) -> Result<(), DoorError> {
    let config = DoorConfig::load(config_path)?;
    let now_unix = crate::views::now_unix();
    let held = match &config.snapshot_file {
        Some(path) => Held::load(path, now_unix).map_err(|source| DoorError::Held {
            path: path.display().to_string(),
            source,
        })?,
        None => Held::default(),
    };
    let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(1024);
    let proxy = front_door::Proxy::new(&config.front_door);
    let mut doors = HashMap::new();
    let mut stops = Vec::new();
    for app in &config.apps {
        let view = held
            .apps
            .get(&app.name)
            .map(|h| h.view.clone())
            .unwrap_or_else(|| empty_view(&app.name));
        let door = Arc::new(Door::new(
            &view,
            app.max_concurrent,
            &config.front_door,
            events_tx.clone(),
        ));
        let stop =
            front_door::serve(app.listen, door.clone(), proxy.clone()).map_err(|source| {
                DoorError::Listen {
                    addr: app.listen,
                    what: format!("app {}", app.name),
                    source,
                }
            })?;
        let from = match held.apps.get(&app.name) {
            Some(h) => format!("held version {}", h.version),
            None => "no snapshot yet".to_string(),
        };
        tracing::info!(
            "front door of app {} on http://{} ({from})",
            app.name,
            app.listen
        );
        stops.push(stop);
        doors.insert(
            app.name.clone(),
            Served {
                door,
                max_concurrent: app.max_concurrent,
            },
        );
    }
    let endpoint = Arc::new(Endpoint::new(
        config.token.clone(),
        doors,
        held,
        config.snapshot_file.clone(),
    ));
    let queue = endpoint.clone();
    tokio::spawn(async move {
        while let Some(e) = events_rx.recv().await {
            tracing::info!("{}", e.text);
            if let Ok(mut q) = queue.events.lock() {
                q.push(Wire::from_door(&e));
            }
        }
    });

    let listener =
        std::net::TcpListener::bind(config.command_listen).map_err(|source| DoorError::Listen {
            addr: config.command_listen,
            what: "command endpoint".into(),
            source,
        })?;
    if !config.command_listen.ip().is_loopback() {
        tracing::warn!(
            "command endpoint on {}, not a loopback address: its token travels in plain text",
            config.command_listen
        );
    }
    let listen_error = |source| DoorError::Listen {
        addr: config.command_listen,
        what: "command endpoint".into(),
        source,
    };
    listener.set_nonblocking(true).map_err(listen_error)?;
    let make = make_service_fn(move |_| {
        let ep = endpoint.clone();
        async move {
            Ok::<_, Infallible>(service_fn(move |req| {
                let ep = ep.clone();
                async move { Ok::<_, Infallible>(command::handle(ep, req).await) }
            }))
        }
    });
    let server = hyper::Server::from_tcp(listener)
        .map_err(|e| listen_error(std::io::Error::other(e)))?
        .http1_only(true)
        .serve(make)
        .with_graceful_shutdown(crate::run::shutdown_signal());
    tracing::info!(
        "command endpoint on http://{}/ (register it as a WSI with role interceptor per app)",
        config.command_listen
    );
    if let Err(e) = server.await {
        tracing::error!("command endpoint: {e}");
    }
    drop(stops);
    tracing::info!("stopped");
    Ok(())
}
