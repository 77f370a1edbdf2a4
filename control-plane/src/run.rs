//! `usher control`: start every part of the control plane from a config
//! file and run until SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::front_door::{FrontDoors, ListenError};
use crate::live::LiveView;
use crate::manager_link::LiveListener;
use crate::push::{self, PushStatus};
use crate::state::AppState;
use crate::store::{self, Store, StoreError};
use crate::{api, panic_watch, token};
use futures_util::future::Either;
use warp::Filter;

/// Why the control plane could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Store { file: String, source: StoreError },
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("admin API: cannot listen on {addr}: {source}")]
    Admin {
        addr: std::net::SocketAddr,
        source: warp::Error,
    },
    #[error("manager: {0}")]
    Manager(#[from] crate::manager::ManagerError),
    #[error("internal error: {0}")]
    Internal(String),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the control plane described by the config file at `config_path`.
pub async fn run(config_path: &Path) -> Result<(), RunError> {
    let config = Config::load(config_path)?;
    if !config.listen.ip().is_loopback() {
        match &config.tls {
            Some(_) => tracing::warn!(
                "admin API listens on {}, which is not a loopback address: other machines can reach it; TLS is on ([control.tls]), so its tokens travel encrypted",
                config.listen
            ),
            None => tracing::warn!(
                "admin API listens on {}, which is not a loopback address: other machines can reach it, and TLS is off (no [control.tls]): the admin and agent tokens travel in plain text",
                config.listen
            ),
        }
    }
    std::fs::create_dir_all(&config.data_dir).map_err(io_at(&config.data_dir))?;
    let token = token::load_or_create_admin(&config.data_dir)
        .map_err(io_at(&config.data_dir.join(token::ADMIN_TOKEN_FILE)))?;

    let db_path = config.data_dir.join("usher.db");
    let seed_config = config.clone();
    let seeded = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
        let mut conn = store::open(&db_path)?;
        let tx = conn.transaction()?;
        let outcome = store::apply_config(&tx, &seed_config)?;
        tx.commit()?;
        Ok((conn, outcome))
    })
    .await
    .map_err(|e| RunError::Internal(e.to_string()))?;
    let (conn, outcome) = seeded.map_err(|source| RunError::Store {
        file: config.path.display().to_string(),
        source,
    })?;
    if outcome.applied {
        tracing::info!(
            "applied {} (changed since the last start)",
            config.path.display()
        );
    } else {
        tracing::info!(
            "{} unchanged since the last start: the database's state stands",
            config.path.display()
        );
    }
    for removed in &outcome.removed {
        tracing::info!("removed {removed}: no longer in the config file");
    }
    let store = Store::start(conn).map_err(|source| RunError::Store {
        file: config.data_dir.join("usher.db").display().to_string(),
        source,
    })?;

    let interval = Duration::from_secs_f64(config.push_interval_secs);
    // Measured loads and verdicts start empty: the manager judges anew.
    let live = LiveView::new();
    // Ejections at the built-in front doors become events once the
    // manager (and its logging database) is up, below.
    let (door_events, mut door_events_rx) = tokio::sync::mpsc::channel(1024);
    let push_status = PushStatus::default();
    push::start(
        &store,
        &live,
        push_status.clone(),
        interval,
        door_events.clone(),
    );
    let front_doors = if config.serve_front_doors {
        FrontDoors::start(&store, &live, interval, &config.front_door, door_events)?
    } else {
        tracing::info!(
            "[control] serve_front_doors = false: the apps' front doors are served by `usher door` processes"
        );
        FrontDoors::none(&store)
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        if stop_tx.send(true).is_err() {
            tracing::debug!("nothing was waiting for the stop signal");
        }
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        if rx.wait_for(|s| *s).await.is_err() {
            tracing::debug!("the stop signal's sender went away");
        }
    };

    let listener = LiveListener::new(live.clone());
    let manager =
        crate::manager::Manager::open(&config.data_dir, config.manager.clone(), listener).await?;
    manager.spawn(stopped(stop_rx.clone()));
    // Agents with their own token come from the store (usher.db).
    manager.follow_fleet(store.subscribe());
    panic_watch::start(&store, &live, manager.clone());
    let acts = crate::acts::Acts::new();
    crate::acts::start(&acts, &store, &live, manager.clone());
    crate::acts::forecast::start(&store, &manager);
    let events_to = manager.clone();
    tokio::spawn(async move {
        while let Some(e) = door_events_rx.recv().await {
            events_to.raise_event(&e.origin, e.kind, e.text).await;
        }
    });
    let admin_token: Arc<str> = Arc::from(token.as_str());
    let channel = crate::manager::channel_route(manager.clone());

    let state = AppState {
        store,
        live,
        manager,
        acts,
        token: admin_token,
        base_dir: Arc::new(config.base_dir.clone()),
        allow_remote_wsis: config.allow_remote_wsis,
        metrics_public: config.metrics_public,
        push_status,
        front_doors,
        sessions: crate::console::Sessions::default(),
        acks: crate::console::alerts::Acks::default(),
        tls: config.tls.is_some(),
    };
    let routes = channel.or(api::routes(state));
    let admin_err = |source| RunError::Admin {
        addr: config.listen,
        source,
    };
    // The same routes either way; with `[control.tls]` warp serves them
    // through rustls (the pair was checked with the config).
    let (addr, server, http, ws) = match &config.tls {
        Some(tls) => {
            let (addr, server) = warp::serve(routes)
                .tls()
                .cert(&tls.cert_pem)
                .key(&tls.key_pem)
                .try_bind_with_graceful_shutdown(config.listen, stopped(stop_rx))
                .map_err(admin_err)?;
            (addr, Either::Left(server), "https", "wss")
        }
        None => {
            let (addr, server) = warp::serve(routes)
                .try_bind_with_graceful_shutdown(config.listen, stopped(stop_rx))
                .map_err(admin_err)?;
            (addr, Either::Right(server), "http", "ws")
        }
    };
    tracing::info!(
        "admin API on {http}://{addr}/api/v1/ (token in {}); agent channel {ws}://{addr}/api/v1/agent/channel (token in {})",
        config.data_dir.join(token::ADMIN_TOKEN_FILE).display(),
        config.data_dir.join(crate::token::AGENT_TOKEN_FILE).display()
    );
    server.await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!("cannot watch SIGINT: {e}");
            }
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => if let Err(e) = r { tracing::error!("SIGINT: {e}") },
    }
}
