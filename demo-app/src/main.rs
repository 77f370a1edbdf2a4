//! `usher-demo-app`: the web application usher's demo, tests and benchmarks
//! put behind nginx, Envoy and the front door.
//!
//! It has a bounded pool of workers (a semaphore), so requests beyond the
//! pool really wait in a queue, a configurable service time (sleep) and CPU
//! burn (spin) per request, both changeable at run time, and a `/cart` page
//! that keeps per-user state in memory behind a cookie: the page a redirect
//! must never take a user away from. `/account` marks itself stateful with
//! `Usher-Stateful: 1` instead of relying on a listed rule. `POST
//! /control?error_pct=N` makes N % of `/` and `/static.html` answer 500 at
//! once (for failure tests; `/health` is never affected).
//!
//! For steering benchmarks (`make bench-lb`), `--latency uniform:MAX_MS`
//! draws each page's answer time from uniform(0, MAX_MS), and `--workers 0`
//! lifts the pool's limit, so a backend's answer time is its latency alone.
#![forbid(unsafe_code)]

mod app;
mod latency;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;

/// Command line of the demo application.
#[derive(Debug, Parser)]
#[command(
    name = "usher-demo-app",
    about = "Demo web application with a bounded worker pool"
)]
struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Name shown in every page, so tests can tell servers apart.
    #[arg(long, default_value = "demo")]
    name: String,
    /// Requests served at once; more wait in a queue. 0: no limit.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Time each request sleeps while holding a worker, in milliseconds.
    #[arg(long, default_value_t = 10)]
    service_ms: u64,
    /// CPU time each request burns while holding a worker, in milliseconds.
    #[arg(long, default_value_t = 0)]
    burn_ms: u64,
    /// Time each page (not `/health`) adds to `--service-ms`: `fixed` (none)
    /// or `uniform:MAX_MS`, drawn per request from uniform(0, MAX_MS).
    #[arg(long, default_value = "fixed")]
    latency: latency::Latency,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let state = Arc::new(
        app::App::new(args.name, args.workers, args.service_ms, args.burn_ms)
            .with_latency(args.latency),
    );
    let (addr, server) = match warp::serve(routes::routes(state)).try_bind_with_graceful_shutdown(
        args.listen,
        async {
            tokio::signal::ctrl_c().await.ok();
        },
    ) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("usher-demo-app: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    tracing::info!(%addr, "usher-demo-app listening");
    server.await;
}
