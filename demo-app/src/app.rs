//! The demo application's state: the worker pool, its knobs and the carts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Most carts kept at once; the oldest are forgotten beyond this.
const MAX_CARTS: usize = 10_000;
/// Most items in one cart.
const MAX_ITEMS: usize = 100;

/// Shared state of one demo application process.
pub struct App {
    pub name: String,
    pool: Semaphore,
    service_ms: AtomicU64,
    burn_ms: AtomicU64,
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
}

impl App {
    pub fn new(name: String, workers: usize, service_ms: u64, burn_ms: u64) -> Self {
        App {
            name,
            pool: Semaphore::new(workers),
            service_ms: AtomicU64::new(service_ms),
            burn_ms: AtomicU64::new(burn_ms),
            served: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            carts: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` while holding one worker of the pool, after the configured
    /// service time and CPU burn: this is what makes requests queue.
    pub async fn serve<T>(&self, work: impl FnOnce() -> T) -> T {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = self.pool.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let service = self.service_ms.load(Ordering::Relaxed);
        if service > 0 {
            tokio::time::sleep(Duration::from_millis(service)).await;
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

    /// Changes the knobs at run time.
    pub fn set_knobs(&self, service_ms: Option<u64>, burn_ms: Option<u64>) {
        if let Some(v) = service_ms {
            self.service_ms.store(v, Ordering::Relaxed);
        }
        if let Some(v) = burn_ms {
            self.burn_ms.store(v, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            name: self.name.clone(),
            served: self.served.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            service_ms: self.service_ms.load(Ordering::Relaxed),
            burn_ms: self.burn_ms.load(Ordering::Relaxed),
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

fn burn_cpu(how_long: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < how_long {
        for i in 0..1000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
}
