//! `usher-logdb-bench [--records N]`
//!
//! Request records per second into the logging database, end to end on the
//! manager side: 100-record binary batches (as agents send them) go through
//! the writer thread's channel, are decoded and inserted in batched
//! transactions; the clock stops when the last one is committed. Prints one
//! JSON line.
#![forbid(unsafe_code)]

use std::time::Instant;

use usher_control_plane::manager::logdb::{LogDb, Write};
use usher_core::record::encode_batch;
use usher_core::{FieldMask, RequestRecord};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("temp dir: {e}");
            std::process::exit(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let db = match LogDb::open(&dir, 100, 24) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let records: Vec<RequestRecord> = (0..100)
        .map(|i| RequestRecord {
            server_endpoint: Some("127.0.0.1:8081".into()),
            client_endpoint: Some(format!("127.0.0.1:{}", 40_000 + i)),
            method: Some("GET".into()),
            request_line: Some(format!("GET /page/{i} HTTP/1.1")),
            content_path: Some(format!("/page/{i}")),
            status: Some(200),
            protocol: Some("HTTP/1.1".into()),
            content_length: Some(1234),
            start_time_us: Some(1_790_000_000_000_000 + i),
            processing_time_us: Some(10_500),
            user_agent: Some("bench/1.0".into()),
            ..Default::default()
        })
        .collect();
    let batch = encode_batch(&records, FieldMask::ALL);
    let batches = n.div_ceil(100);
    let start = Instant::now();
    rt.block_on(async {
        for seq in 1..=batches {
            let w = Write::Records {
                agent_id: "bench".into(),
                seq,
                server: "web1".into(),
                batch: batch.clone(),
            };
            if let Err(e) = db.write(w, None).await {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        if let Err(e) = db.flush().await {
            eprintln!("{e}");
            std::process::exit(1);
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let stored: i64 = rt
        .block_on(db.read(|c| c.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))))
        .unwrap_or(-1);
    println!(
        "{}",
        serde_json::json!({
            "rows_per_sec": ((batches * 100) as f64 / secs).round(),
            "rows": stored,
            "seconds": (secs * 1000.0).round() / 1000.0,
        })
    );
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("cleanup {}: {e}", dir.display());
    }
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("usher-logdb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
