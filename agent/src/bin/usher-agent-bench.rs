//! `usher-agent-bench [--seconds N] [--no-forward] [--phased]`
//!
//! Records per second through a record ring into the agent: one producer
//! thread pushes encoded records (an nginx-like field set) into a ring area
//! (the `usher_core::ring` layout the nginx module uses) as fast as it can;
//! the consumer drains and feeds each encoded record to the agent's record
//! sink (reads status, times and request line in place; per-server
//! aggregation, probe bookkeeping and, unless `--no-forward`, 100-record
//! batches of the raw bytes for the request log).
//! `--phased` fills the ring and then drains it, in turn, and times only the
//! draining (no producer competing for the cores).
//! Prints one JSON line with records/s, drops and the process RSS.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use usher_agent::config::RecordsConfig;
use usher_agent::records::RecordSink;
use usher_core::ring::{area_words, RingArea};
use usher_core::{FieldMask, RequestRecord};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Fills the ring, then drains it, in turn on one thread: the consumer's
/// cost without a producer spinning on the same cache lines.
fn phased(words: &[AtomicU64], encoded: &[u8], cfg: RecordsConfig, seconds: u64) {
    let Some(ring) = RingArea::attach(words).ok().and_then(|a| a.ring(0)) else {
        eprintln!("attach failed");
        std::process::exit(1);
    };
    let mut sink = RecordSink::new(["web1".to_string()], cfg);
    let mut buf = Vec::with_capacity(4096);
    let (mut consumed, mut draining) = (0u64, Duration::ZERO);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        while ring.push(encoded) {}
        let t = Instant::now();
        consumed += ring.drain(usize::MAX, &mut buf, |bytes| {
            sink.push_encoded(0, bytes);
        }) as u64;
        sink.take_ready(Instant::now());
        draining += t.elapsed();
    }
    println!(
        "{}",
        serde_json::json!({
            "mode": "phased",
            "records_per_sec": (consumed as f64 / draining.as_secs_f64()).round(),
            "records": consumed,
            "aggregated": sink_forward(&mut sink),
            "rss_kib": rss_kib(),
        })
    );
}

fn sink_forward(sink: &mut RecordSink) -> u64 {
    sink.take_aggregates().first().map(|a| a.count).unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let forward = !args.iter().any(|a| a == "--no-forward");
    let ring_words = 1 << 20; // 8 MiB per ring
    let words: Arc<Vec<AtomicU64>> = Arc::new(
        (0..area_words(1, ring_words))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    if let Err(e) = RingArea::init(&words, 1, ring_words) {
        eprintln!("ring init: {e}");
        std::process::exit(1);
    }
    let rec = RequestRecord {
        server_endpoint: Some("127.0.0.1:8081".into()),
        client_endpoint: Some("127.0.0.1:51234".into()),
        method: Some("GET".into()),
        request_line: Some("GET /cart?item=42 HTTP/1.1".into()),
        content_path: Some("/cart".into()),
        status: Some(200),
        protocol: Some("HTTP/1.1".into()),
        content_length: Some(1234),
        start_time_us: Some(1_790_000_000_000_000),
        processing_time_us: Some(10_500),
        ..Default::default()
    };
    let mut encoded = Vec::new();
    rec.encode_into(FieldMask::ALL, &mut encoded);
    let cfg = RecordsConfig {
        forward,
        ..Default::default()
    };
    if args.iter().any(|a| a == "--phased") {
        phased(&words, &encoded, cfg, seconds);
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (words, stop) = (words.clone(), stop.clone());
        std::thread::spawn(move || {
            let Ok(area) = RingArea::attach(&words) else {
                return 0u64;
            };
            let Some(ring) = area.ring(0) else { return 0 };
            let mut pushed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..1024 {
                    if ring.push(&encoded) {
                        pushed += 1;
                    }
                }
            }
            pushed
        })
    };
    let Ok(area) = RingArea::attach(&words) else {
        eprintln!("attach failed");
        std::process::exit(1);
    };
    let Some(ring) = area.ring(0) else {
        eprintln!("no ring");
        std::process::exit(1);
    };
    let cfg = RecordsConfig {
        forward,
        ..Default::default()
    };
    let mut sink = RecordSink::new(["web1".to_string()], cfg);
    let mut buf = Vec::with_capacity(4096);
    let (mut consumed, mut bad, mut batches) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    while Instant::now() < until {
        consumed += ring.drain(4096, &mut buf, |bytes| {
            if !sink.push_encoded(0, bytes) {
                bad += 1;
            }
        }) as u64;
        batches += sink.take_ready(Instant::now()).len() as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let pushed = producer.join().unwrap_or(0);
    let aggs = sink.take_aggregates();
    let stats = ring.stats();
    println!(
        "{}",
        serde_json::json!({
            "records_per_sec": (consumed as f64 / elapsed).round(),
            "records": consumed,
            "bad": bad,
            "pushed": pushed,
            "dropped_full_ring": stats.dropped,
            "forward_batches": batches,
            "aggregated": aggs.first().map(|a| a.count).unwrap_or(0),
            "forward": forward,
            "rss_kib": rss_kib(),
        })
    );
}
