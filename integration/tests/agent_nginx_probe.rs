//! Probe-based queue figures against the truth: the demo app's bounded
//! worker pool (4 workers, 20 ms service) behind real nginx with the usher
//! module, driven by 12 closed-loop clients (8 always waiting). The agent
//! reads nginx's record ring, probes through nginx, and reports queue
//! length and queue delay; they must be within ±1 request of the number
//! waiting (12 − 4, which the app's own count confirms) and ±20 % of the
//! wait of requests sent to the app at random moments (latency − service
//! time).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use usher_control_plane::manager::{
    api_routes, channel_route, AuthCheck, Manager, ManagerConfig, NoListener,
};
use usher_integration::setup::{init_tracing, runtime};
use usher_integration::{eventually, get_json as api, http, DemoApp, Nginx};
use warp::Filter;

const WORKERS: usize = 4;
const SERVICE_MS: u64 = 20;
const CLIENTS: usize = 12;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[test]
fn probe_queue_length_and_delay_match_the_truth() {
    init_tracing("usher_agent::records=debug");
    let dir = tempfile::tempdir().expect("tempdir");
    let app = DemoApp::spec("web1")
        .workers(WORKERS as u32)
        .service_ms(SERVICE_MS)
        .log_dir(dir.path())
        .start();
    let app_port = app.port;
    let nginx = Nginx::start(
        "usher_ring {RING} 256k;",
        &format!(
            "usher_role server; usher_app shop; usher_record method request_line content_path status start_time processing_time;\n\
             location / {{ proxy_pass http://127.0.0.1:{app_port}; }}"
        ),
    );

    let rt = runtime(2);
    let mdir = dir.path().join("manager");
    std::fs::create_dir_all(&mdir).expect("mkdir");
    let cfg = ManagerConfig {
        interval_ms: 200,
        flush_ms: 20,
        ..Default::default()
    };
    let m = rt
        .block_on(Manager::open(&mdir, cfg, Arc::new(NoListener)))
        .expect("manager");
    let auth: AuthCheck = Arc::new(|h| h == Some("Bearer admin"));
    let (maddr, server) = rt.block_on(async {
        warp::serve(channel_route(m.clone()).or(api_routes(m.clone(), auth)))
            .bind_ephemeral(([127, 0, 0, 1], 0))
    });
    rt.spawn(server);
    let text = format!(
        "agent_id = \"agent-q\"\ndata_dir = \"{data}\"\ncontrol_url = \"ws://{maddr}/api/v1/agent/channel\"\ntoken = \"{token}\"\n\
         interval_ms = 200\nprobe_interval_ms = 100\n[records]\nforward = false\n\
         [[servers]]\nname = \"web1\"\nurl = \"http://127.0.0.1:{port}\"\nring = \"{ring}\"\nprobe_body = \"ok web1\"\nprobe_timeout_ms = 1000\n",
        data = dir.path().join("agent").display(),
        token = m.agent_token(),
        port = nginx.port,
        ring = nginx.ring.display(),
    );
    let (_handle, running) = rt
        .block_on(usher_agent::start(
            usher_agent::AgentConfig::parse(&text).expect("config"),
        ))
        .expect("agent");

    // Idle first: the probes learn their own service time.
    let sample = |metric: &str, from_us: u64| -> Vec<f64> {
        api(maddr.port(), &format!("/api/v1/metrics?component=server:web1&metric={metric}&from_us={from_us}&limit=10000"), "admin")
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["value"].as_f64()).collect())
            .unwrap_or_default()
    };
    eventually(Duration::from_secs(10), || {
        sample("queue_delay_us", 0).len() >= 5
    })
    .expect("idle probes measured");
    let idle = median(sample("queue_delay_us", 0));
    assert!(idle < 5_000.0, "idle queue delay {idle} us");

    // Load: 12 closed-loop clients; measure their latency and the app's waiting count.
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, lat, url) = (stop.clone(), latencies.clone(), nginx.url("/"));
            std::thread::spawn(move || {
                let agent = http();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = agent.get(&url).call().is_ok();
                    if ok {
                        lat.lock()
                            .expect("lock")
                            .push(t.elapsed().as_secs_f64() * 1e6);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let from_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64;
    latencies.lock().expect("lock").clear();
    // The truth for the delay: what a request arriving at a random moment
    // waits (latency − service time), sent straight to the app at jittered
    // times. (The closed-loop clients themselves always arrive just after a
    // wave of completions, so their own wait is not what a random arrival
    // sees.)
    let truth_waits = Arc::new(Mutex::new(Vec::<f64>::new()));
    let truth = {
        let (stop, waits) = (stop.clone(), truth_waits.clone());
        let url = format!("http://127.0.0.1:{app_port}/health");
        std::thread::spawn(move || {
            let agent = http();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                std::thread::sleep(Duration::from_millis(60 + (i * 37) % 53));
                let t = Instant::now();
                if agent.get(&url).call().is_ok() {
                    let wait = t.elapsed().as_secs_f64() * 1e6 - (SERVICE_MS * 1000) as f64;
                    waits.lock().expect("lock").push(wait);
                }
            }
        })
    };
    let mut waiting = Vec::new();
    let stats_url = format!("http://127.0.0.1:{app_port}/stats");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        // /stats does not queue in the pool.
        if let Ok(r) = http().get(&stats_url).call() {
            if let Ok(v) = r.into_json::<serde_json::Value>() {
                waiting.push(v["waiting"].as_f64().unwrap_or(0.0));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(400));
    let lengths = sample("queue_length", from_us);
    let delays = sample("queue_delay_us", from_us);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().ok();
    }
    truth.join().ok();
    rt.block_on(running.stop());

    // Truth: by construction CLIENTS - WORKERS wait; the app's own count
    // agrees (it also sees our probe waiting about half the time).
    let app_waiting = median(waiting.clone());
    let true_len = (CLIENTS - WORKERS) as f64;
    assert!(
        (true_len..=true_len + 1.0).contains(&app_waiting),
        "the app saw {app_waiting} waiting"
    );
    let clients_wait = median(latencies.lock().expect("lock").clone()) - (SERVICE_MS * 1000) as f64;
    let true_delay = median(truth_waits.lock().expect("lock").clone());
    let (len, delay) = (median(lengths.clone()), median(delays.clone()));
    eprintln!("queue length: probe {len} vs truth {true_len} (app saw {app_waiting}); queue delay: probe {delay} us vs random arrivals {true_delay} us (closed-loop clients waited {clients_wait} us)");
    eprintln!("samples: lengths {lengths:?} delays {delays:?}");
    assert!(lengths.len() >= 5, "too few samples: {lengths:?}");
    assert!(
        (len - true_len).abs() <= 1.0,
        "queue length {len} vs truth {true_len}"
    );
    assert!(
        (delay - true_delay).abs() <= 0.2 * true_delay,
        "queue delay {delay} us vs truth {true_delay} us"
    );
}
