//! `fixture-manager --listen 127.0.0.1:PORT --data-dir DIR [--config FILE] [--admin-token T]`
//!
//! A test fixture, not shipped: the manager alone: the agent channel and the log queries, no managed
//! objects and no snapshot pushes. Used by tests and to try agents out.
//! Prints `listening on ADDR` when ready.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use usher_control_plane::manager::{
    api_routes, channel_route, AuthCheck, Manager, ManagerConfig, NoListener,
};
use warp::Filter;

fn arg_value(args: &[String], key: &str) -> Option<String> {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(dir)) = (arg_value(&args, "--listen"), arg_value(&args, "--data-dir"))
    else {
        eprintln!(
            "usage: fixture-manager --listen ADDR --data-dir DIR [--config FILE] [--admin-token T]"
        );
        std::process::exit(2);
    };
    let cfg = match arg_value(&args, "--config") {
        Some(p) => match std::fs::read_to_string(&p)
            .map_err(|e| e.to_string())
            .and_then(|t| ManagerConfig::from_toml(&t))
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{p}: {e}");
                std::process::exit(2);
            }
        },
        None => ManagerConfig::default(),
    };
    let addr: std::net::SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("--listen {listen}: {e}");
            std::process::exit(2);
        }
    };
    let dir = PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("{}: {e}", dir.display());
        std::process::exit(1);
    }
    let m = match Manager::open(&dir, cfg, Arc::new(NoListener)).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let admin = arg_value(&args, "--admin-token").unwrap_or_else(|| m.agent_token().to_string());
    let expected = format!("Bearer {admin}");
    let auth: AuthCheck = Arc::new(move |h| h == Some(expected.as_str()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let loop_task = m.spawn(async move {
        if stop_rx.await.is_err() {
            tracing::debug!("stop sender dropped");
        }
    });
    let routes = channel_route(m.clone()).or(api_routes(m.clone(), auth));
    let (bound, server) = match warp::serve(routes).try_bind_with_graceful_shutdown(addr, async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("--listen {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {bound}");
    server.await;
    if stop_tx.send(()).is_err() {
        tracing::debug!("load loop already ended");
    }
    if let Err(e) = loop_task.await {
        tracing::warn!("load loop: {e}");
    }
}
