//! Per-test process set-up shared by the tests that run usher's crates in
//! process: a tokio runtime of a given size, and tracing output on demand.

use std::time::Duration;

/// A multi-thread tokio runtime with `workers` threads, timers and I/O.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Stops a runtime without waiting long for tasks still running (played
/// agents loop forever).
pub fn shutdown(rt: tokio::runtime::Runtime) {
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// When `USHER_TEST_LOG` is set, prints this process's tracing events
/// that pass `filter` (an `EnvFilter` directive, e.g.
/// `usher_agent::records=debug`). Safe to call from several tests.
pub fn init_tracing(filter: &str) {
    if std::env::var_os("USHER_TEST_LOG").is_none() {
        return;
    }
    let filter = tracing_subscriber::EnvFilter::new(filter);
    if let Err(e) = tracing_subscriber::fmt().with_env_filter(filter).try_init() {
        eprintln!("tracing already set up: {e}");
    }
}
