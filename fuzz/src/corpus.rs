//! The generated seeds, made with the real encoders (`usher-fuzz
//! write-corpus`), so they stay valid when a format changes: records and
//! batches, ring areas with records in them, channel frames (binary record
//! frames and JSON messages).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use usher_core::channel::{
    self, encode_records, AgentMessage, CommandKind, Event, HostFacts, HostMetrics, Report,
    ServerAggregate, ServerInfo,
};
use usher_core::record::{encode_batch, FieldMask, RequestRecord};
use usher_core::ring::{area_words, RingArea};

fn records() -> Vec<RequestRecord> {
    let full = RequestRecord {
        server_endpoint: Some("127.0.0.1:8081".into()),
        client_endpoint: Some("127.0.0.1:50000".into()),
        method: Some("GET".into()),
        request_line: Some("GET /cart?x=1 HTTP/1.1".into()),
        content_path: Some("/cart".into()),
        status: Some(200),
        protocol: Some("HTTP/1.1".into()),
        processing_time_us: Some(12_345),
        start_time_us: Some(1_790_000_000_000_000),
        aborted: Some(false),
        queue_delay_us: Some(250),
        ..Default::default()
    };
    let small = RequestRecord {
        status: Some(503),
        aborted: Some(true),
        ..Default::default()
    };
    vec![full, small, RequestRecord::default()]
}

fn encoded(rec: &RequestRecord) -> Vec<u8> {
    let mut out = Vec::new();
    rec.encode_into(FieldMask(u32::MAX), &mut out);
    out
}

/// A ring area of `rings` rings of 64 words with `n` records pushed into
/// ring 0, as bytes.
fn ring_area(rings: usize, n: usize) -> Vec<u8> {
    let words: Vec<AtomicU64> = (0..area_words(rings, 64))
        .map(|_| AtomicU64::new(0))
        .collect();
    if let Ok(area) = RingArea::init(&words, rings, 64) {
        if let Some(ring) = area.ring(0) {
            for rec in records().iter().cycle().take(n) {
                ring.push(&encoded(rec));
            }
        }
    }
    words
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .collect()
}

/// Agent messages as the agent encodes them (text frames).
fn agent_messages() -> Vec<(&'static str, String)> {
    let hello = AgentMessage::Hello(channel::Hello {
        protocol: channel::PROTOCOL_VERSION,
        agent_id: "host-1".into(),
        facts: HostFacts {
            host_id: "m-1".into(),
            host_name: "host-1".into(),
            cpu_logical: 2,
            memory_bytes: 1 << 34,
            ..Default::default()
        },
        servers: vec![ServerInfo {
            name: "a".into(),
            url: "http://127.0.0.1:8081".into(),
            pid: Some(4321),
        }],
    });
    let report = AgentMessage::Report(Report {
        seq: 3,
        interval_start_us: 1_790_000_000_000_000,
        interval_stop_us: 1_790_000_000_500_000,
        servers: vec![ServerAggregate {
            server: "a".into(),
            count: 10,
            mean_us: 900,
            p50_us: 800,
            p95_us: 2000,
            p99_us: 4000,
            errors_5xx: 1,
            queue_length: Some(2),
            queue_delay_us: Some(150),
            ..Default::default()
        }],
        host: HostMetrics::default(),
    });
    let event = AgentMessage::Event(Event::new(
        4,
        "a",
        channel::event_type::PROBE_FAILED,
        "connection refused".into(),
        1_790_000_000_000_000,
    ));
    let result = AgentMessage::CommandResult(channel::CommandResult {
        id: 9,
        ok: true,
        text: "started".into(),
        pid: Some(77),
    });
    let command = channel::ManagerMessage::Command(channel::AgentCommand {
        id: 9,
        kind: CommandKind::StopServer {
            server: "a".into(),
            signal: Some("TERM".into()),
        },
    });
    vec![
        ("channel/hello.json", channel::encode(&hello)),
        ("channel/report.json", channel::encode(&report)),
        ("channel/event.json", channel::encode(&event)),
        ("channel/command-result.json", channel::encode(&result)),
        ("channel/command.json", channel::encode(&command)),
    ]
}

/// Writes the generated seeds under `dir`; returns how many.
pub fn write_seeds(dir: &Path) -> std::io::Result<usize> {
    let recs = records();
    let batch = encode_batch(&recs, FieldMask(u32::MAX));
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("record/full.bin".into(), encoded(&recs[0])),
        ("record/small.bin".into(), encoded(&recs[1])),
        ("record/batch.bin".into(), batch.clone()),
        ("ring/one-ring.bin".into(), ring_area(1, 2)),
        ("ring/two-rings.bin".into(), ring_area(2, 1)),
        ("ring/empty.bin".into(), ring_area(1, 0)),
    ];
    if let Ok(frame) = encode_records(7, "a", &batch) {
        files.push(("channel/records.bin".into(), frame));
    }
    if let Ok(frame) = encode_records(1, "web-1", &encode_batch(&[], FieldMask(0))) {
        files.push(("channel/records-empty.bin".into(), frame));
    }
    for (name, text) in agent_messages() {
        files.push((name.into(), text.into_bytes()));
    }
    for (name, bytes) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(files.len())
}
