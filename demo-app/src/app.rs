//! The demo application's state: the worker pool, its knobs (service time,
//! CPU burn, error share, a page's drawn latency) and the carts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::latency::Latency;

/// Most carts kept at once; the oldest are forgotten beyond this.
const MAX_CARTS: usize = 10_000;
/// Most items in one cart.
const MAX_ITEMS: usize = 100;

/// Shared state of one demo application process.
pub struct App {
    pub name: String,
    pool: Semaphore,
    service_ms: AtomicU64,
    /// Drawn per page on top of `service_ms` (`/health` never draws, so
    /// a probe's timeout does not fail a server that is only slow).
    latency: Latency,
    burn_ms: AtomicU64,
    /// Share (0..=100 %) of `/` and `/static.html` answered 500 at once.
    error_pct: AtomicU64,
    /// Requests that were subject to `error_pct` so far (the draw counter).
    error_draws: AtomicU64,
    /// Requests answered 500 because of `error_pct`.
    errors: AtomicU64,
    served: AtomicU64,
    in_flight: AtomicU64,
    waiting: AtomicU64,
    carts: Mutex<HashMap<String, Vec<String>>>,
}

/// Counters shown at `/stats`.
#[derive(Debug, serde::Serialize)]
pub struct Stats {
    pub name: String,
    pub served: u64,
    pub in_flight: u64,
    pub waiting: u64,
    pub service_ms: u64,
    pub burn_ms: u64,
    pub error_pct: u64,
    pub errors: u64,
    /// `fixed` or `uniform:MAX_MS`.
    pub latency: String,
}

impl App {
    /// `workers` 0 means no limit: every request is served at once (a
    /// backend with unbounded concurrency, whose answer time is its
    /// latency alone).
    pub fn new(name: String, workers: usize, service_ms: u64, burn_ms: u64) -> Self {
        let workers = if workers == 0 {
            Semaphore::MAX_PERMITS
        } else {
            workers
        };
        App {
            name,
            pool: Semaphore::new(workers),
            service_ms: AtomicU64::new(service_ms),
            latency: Latency::Fixed,
            burn_ms: AtomicU64::new(burn_ms),
            error_pct: AtomicU64::new(0),
            error_draws: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            served: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            carts: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the latency drawn for every page.
    pub fn with_latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// Runs `work` while holding one worker of the pool, after the configured
    /// service time and CPU burn: this is what makes requests queue.
    pub async fn serve<T>(&self, work: impl FnOnce() -> T) -> T {
        self.serve_for(Duration::ZERO, work).await
    }

    /// As [`App::serve`], with the page latency drawn on top of the
    /// service time (for pages users load, not `/health`).
    pub async fn serve_page<T>(&self, work: impl FnOnce() -> T) -> T {
        let extra = self.latency.draw(rand::random::<f64>());
        self.serve_for(extra, work).await
    }

    async fn serve_for<T>(&self, extra: Duration, work: impl FnOnce() -> T) -> T {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = self.pool.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let service = Duration::from_millis(self.service_ms.load(Ordering::Relaxed)) + extra;
        if !service.is_zero() {
            tokio::time::sleep(service).await;
        }
        let burn = self.burn_ms.load(Ordering::Relaxed);
        if burn > 0 {
            // Spin on a blocking thread so the async workers stay free.
            let spun =
                tokio::task::spawn_blocking(move || burn_cpu(Duration::from_millis(burn))).await;
            if let Err(e) = spun {
                tracing::warn!("cpu burn task failed: {e}");
            }
        }
        let out = work();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        drop(permit);
        out
    }

    /// Changes the knobs at run time (`error_pct` must be at most 100; the
    /// caller checks it).
    pub fn set_knobs(&self, service_ms: Option<u64>, burn_ms: Option<u64>, error_pct: Option<u64>) {
        if let Some(v) = service_ms {
            self.service_ms.store(v, Ordering::Relaxed);
        }
        if let Some(v) = burn_ms {
            self.burn_ms.store(v, Ordering::Relaxed);
        }
        if let Some(v) = error_pct {
            self.error_pct.store(v.min(100), Ordering::Relaxed);
            self.error_draws.store(0, Ordering::Relaxed);
        }
    }

    /// True when this request (to a page subject to the error knob) must
    /// fail at once, without a worker. Deterministic: the k-th such request
    /// since the knob was set fails when `k * pct mod 100 < pct`, which is
    /// exactly `pct` of every 100 consecutive requests (all at 100, none
    /// at 0).
    pub fn fails_now(&self) -> bool {
        let pct = self.error_pct.load(Ordering::Relaxed);
        if pct == 0 {
            return false;
        }
        let k = self.error_draws.fetch_add(1, Ordering::Relaxed);
        let fails = fails(k, pct);
        if fails {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        fails
    }

    pub fn stats(&self) -> Stats {
        Stats {
            name: self.name.clone(),
            served: self.served.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            service_ms: self.service_ms.load(Ordering::Relaxed),
            burn_ms: self.burn_ms.load(Ordering::Relaxed),
            error_pct: self.error_pct.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: self.latency.to_string(),
        }
    }

    /// Adds `item` (if any) to the cart of `session` and returns the cart.
    pub fn cart(&self, session: &str, item: Option<String>) -> Vec<String> {
        let mut carts = match self.carts.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if carts.len() >= MAX_CARTS && !carts.contains_key(session) {
            carts.clear();
        }
        let cart = carts.entry(session.to_string()).or_default();
        if let Some(item) = item {
            if cart.len() < MAX_ITEMS {
                cart.push(item);
            }
        }
        cart.clone()
    }
}

/// The `error_pct` rule for the k-th request: fails when `k * pct mod 100 <
/// pct`.
fn fails(k: u64, pct: u64) -> bool {
    (k % 100) * pct % 100 < pct
}

fn burn_cpu(how_long: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < how_long {
        for i in 0..1000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_share_is_exact_per_hundred_requests() {
        for pct in 0..=100u64 {
            let failed = (0..100).filter(|k| fails(*k, pct)).count() as u64;
            assert_eq!(failed, pct, "pct {pct}");
            let later = (12_300..12_400).filter(|k| fails(*k, pct)).count() as u64;
            assert_eq!(later, pct, "pct {pct}, later window");
        }
        assert!((0..1000).all(|k| fails(k, 100)));
        assert!((0..1000).all(|k| !fails(k, 0)));
        // Spread out, not in one run: 50 % alternates.
        assert_eq!(
            (0..6).map(|k| fails(k, 50)).collect::<Vec<_>>(),
            [true, false, true, false, true, false]
        );
    }

    #[tokio::test]
    async fn zero_workers_serve_everything_at_once() {
        // 64 requests of 200 ms each: with no pool limit none waits, so
        // all are in flight together and the lot takes about 200 ms.
        let app = std::sync::Arc::new(
            App::new("t".into(), 0, 200, 0).with_latency(Latency::Uniform { max_ms: 1 }),
        );
        let start = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { app.serve_page(|| ()).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = app.stats();
        assert_eq!((s.in_flight, s.waiting), (64, 0));
        assert_eq!(s.latency, "uniform:1");
        for t in tasks {
            t.await.expect("task");
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(app.stats().served, 64);
    }

    #[test]
    fn knob_counts_errors_and_shows_in_stats() {
        let app = App::new("t".into(), 1, 0, 0);
        assert!(!app.fails_now());
        app.set_knobs(None, None, Some(100));
        assert!((0..10).all(|_| app.fails_now()));
        app.set_knobs(None, None, Some(25));
        let failed = (0..100).filter(|_| app.fails_now()).count();
        assert_eq!(failed, 25);
        let s = app.stats();
        assert_eq!((s.error_pct, s.errors), (25, 35));
        app.set_knobs(None, None, Some(0));
        assert!(!app.fails_now());
    }
}
