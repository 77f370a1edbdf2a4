//! Server role, record channel: real nginx with the usher module in front of
//! the demo app writes one decodable record per request, with exactly the
//! selected fields and a processing time that includes the app's service
//! time; a full ring or a missing reader never costs a request.

use std::collections::HashMap;
use std::time::Duration;

use usher_agent::RingReader;
use usher_core::{FieldMask, RequestRecord};
use usher_integration::{DemoApp, Nginx};

const FIELDS: &[&str] = &[
    "method",
    "request_line",
    "content_path",
    "status",
    "start_time",
    "processing_time",
    "client_endpoint",
];

fn drain_all(reader: &mut RingReader, want: usize) -> (Vec<RequestRecord>, u64) {
    let mut records = Vec::new();
    let mut bad = 0;
    let start = std::time::Instant::now();
    while records.len() < want && start.elapsed() < Duration::from_secs(5) {
        bad += reader.drain(|r| records.push(r)).bad;
        std::thread::sleep(Duration::from_millis(20));
    }
    // Anything more would be a duplicate: give it a moment to show up.
    std::thread::sleep(Duration::from_millis(200));
    bad += reader.drain(|r| records.push(r)).bad;
    (records, bad)
}

#[test]
fn one_record_per_request_with_the_selected_fields_and_service_time() {
    let app = DemoApp::start("rec", 20);
    let nginx = Nginx::start(
        "usher_ring {RING} 64k;",
        &format!(
            "usher_role server; usher_app shop; usher_record {};\n location / {{ proxy_pass {}; }}",
            FIELDS.join(" "),
            app.url()
        ),
    );
    let mut reader = RingReader::open(&nginx.ring).expect("nginx created the ring file");
    let paths = ["/", "/static.html", "/health", "/cart"];
    let mut sent: HashMap<String, usize> = HashMap::new();
    for i in 0..40 {
        let path = paths[i % paths.len()];
        let r = nginx.get(&format!("{path}?i={i}"));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        *sent.entry(path.to_string()).or_default() += 1;
    }
    let (records, bad) = drain_all(&mut reader, 40);
    assert_eq!(bad, 0, "every record decodes");
    assert_eq!(
        records.len(),
        40,
        "one record per request (command endpoint calls are not recorded)"
    );
    let mask = FieldMask::from_names(FIELDS.iter().copied()).expect("names");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for rec in &records {
        assert_eq!(rec.mask(), mask, "exactly the selected fields: {rec:?}");
        assert_eq!(rec.method.as_deref(), Some("GET"));
        assert_eq!(rec.status, Some(200));
        let path = rec.content_path.clone().expect("content_path");
        let line = rec.request_line.as_deref().expect("request_line");
        assert!(
            line.starts_with(&format!("GET {path}?i=")),
            "{line} vs {path}"
        );
        let t = rec.processing_time_us.expect("processing_time");
        assert!(
            t >= 20_000,
            "processing time {t} µs must include the app's 20 ms service time"
        );
        assert!(t < 5_000_000, "processing time {t} µs is implausible");
        let start = rec.start_time_us.expect("start_time");
        assert!(
            start % 1000 != 0 || t % 1000 != 0,
            "microsecond timing, not nginx's cached milliseconds"
        );
        assert!(rec
            .client_endpoint
            .as_deref()
            .is_some_and(|c| c.starts_with("127.0.0.1:")));
        *seen.entry(path).or_default() += 1;
    }
    assert_eq!(seen, sent, "each request's path recorded once");
    let c = nginx.counters();
    assert_eq!(c["records_written"], 40, "{c}");
    assert_eq!(c["records_dropped"], 0, "{c}");
}

#[test]
fn ring_full_without_reader_serves_every_request_and_counts_drops() {
    let app = DemoApp::start("full", 0);
    // 4 KiB rings hold only a few dozen records; nobody reads them.
    let nginx = Nginx::start(
        "usher_ring {RING} 4k;",
        &format!(
            "usher_role server; usher_record all;\n location / {{ proxy_pass {}; }}",
            app.url()
        ),
    );
    let n = 300;
    for i in 0..n {
        let r = nginx.get(&format!("/static.html?i={i}"));
        assert_eq!(r.status, 200, "request {i} served while the ring is full");
    }
    let c = nginx.counters();
    let written = c["records_written"].as_u64().expect("written");
    let dropped = c["records_dropped"].as_u64().expect("dropped");
    assert!(dropped > 0, "a full ring drops: {c}");
    assert_eq!(
        written + dropped,
        n,
        "every request either written or counted as dropped: {c}"
    );
    assert!(
        nginx.error_log().contains("record ring full"),
        "the drop is logged"
    );
    // A reader attaching later finds exactly what was written.
    let mut reader = RingReader::open(&nginx.ring).expect("ring file");
    let mut got = 0;
    let counts = reader.drain(|_| got += 1);
    assert_eq!(counts.bad, 0);
    assert_eq!(got, written);
}

#[test]
fn no_ring_configured_serves_every_request_and_counts_drops() {
    let app = DemoApp::start("noring", 0);
    let nginx = Nginx::start(
        "",
        &format!(
            "usher_role server;\n location / {{ proxy_pass {}; }}",
            app.url()
        ),
    );
    for i in 0..50 {
        assert_eq!(nginx.get(&format!("/?i={i}")).status, 200);
    }
    let c = nginx.counters();
    assert_eq!(c["records_written"], 0, "{c}");
    assert_eq!(c["records_dropped"], 50, "{c}");
}

#[test]
fn start_time_survives_internal_redirects_and_early_errors_fall_back() {
    let app = DemoApp::start("internal", 10);
    let nginx = Nginx::start(
        "usher_ring {RING} 64k;",
        &format!(
            "usher_role server; usher_record content_path status start_time processing_time;\n \
             location /r/ {{ rewrite ^/r/(.*)$ /$1 last; }}\n \
             location / {{ proxy_pass {}; }}",
            app.url()
        ),
    );
    let mut reader = RingReader::open(&nginx.ring).expect("ring file");
    for i in 0..20 {
        assert_eq!(nginx.get(&format!("/r/static.html?i={i}")).status, 200);
    }
    let (records, _) = drain_all(&mut reader, 20);
    assert_eq!(records.len(), 20);
    for rec in &records {
        assert_eq!(
            rec.content_path.as_deref(),
            Some("/static.html"),
            "after the internal redirect"
        );
        assert!(
            rec.processing_time_us.is_some_and(|t| t >= 10_000),
            "{rec:?}"
        );
    }
    // nginx's own start time has millisecond precision; ours (kept in the
    // pool across the rewrite) has microseconds: 20 whole milliseconds by
    // chance would be a one in 10^60 event.
    assert!(
        records
            .iter()
            .any(|r| r.start_time_us.is_some_and(|s| s % 1000 != 0)),
        "start time lost at the internal redirect: {records:?}"
    );

    // A request refused before the phases run (no Host header: 400) is
    // still recorded, timed from nginx's own start time.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", nginx.port)).expect("connect");
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\n\r\n").expect("send");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).ok();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let (records, _) = drain_all(&mut reader, 1);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, Some(400));
    assert!(
        records[0].start_time_us.is_some_and(|s| s % 1000 == 0),
        "{:?}",
        records[0]
    );
}
