//! `usher-bench-lb`: usher's steering benchmark (`make bench-lb`, issue
//! 12). Runs each scenario through usher's three proxy-mode front doors and
//! through nginx `least_conn` and Envoy `LEAST_REQUEST` on the same
//! backends, and prints a table per scenario (progress goes to stderr).
//! Settings come from `BENCH_LB_ROUNDS`, `BENCH_LB_SCALE`,
//! `BENCH_LB_CAP_S`, `BENCH_LB_WARMUP` and `BENCH_LB_SCENARIOS`
//! (`usher_integration::bench_lb::Settings`).
#![forbid(unsafe_code)]

use std::time::Instant;

use usher_integration::bench_lb::{self, report, Settings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_lookup(|k| std::env::var(k).ok())?;
    // One client thread: the machine's cores belong to what is measured.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let start = Instant::now();
    for n in &settings.scenarios {
        let sc = match n {
            1 => bench_lb::spread_latency(&settings),
            _ => bench_lb::hidden_load(&settings),
        };
        let res = bench_lb::run_scenario(&rt, &sc, &settings);
        println!("{}", report::table(&sc, &res, settings.rounds));
    }
    println!("bench-lb took {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}
