//! `usher-ring-fill PATH RECORDS`
//!
//! Creates a record ring file laid out as the nginx module lays it out (one
//! ring, `usher_core::ring`) and pushes RECORDS nginx-like request records
//! into it, waiting whenever the ring is full. `make bench` uses it to feed
//! a real `usher agent` and time records end to end into the logging
//! database. Prints `{"records":N,"seconds":S}` when done.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use memmap2::MmapMut;
use usher_core::ring::{area_bytes, RingArea};
use usher_core::{FieldMask, RequestRecord};

/// Data words of the ring: 32 MiB, room for about 400,000 such records.
const RING_WORDS: usize = 1 << 22;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(count)) = (
        args.next().map(PathBuf::from),
        args.next().and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: usher-ring-fill PATH RECORDS");
        std::process::exit(2);
    };
    if let Err(e) = fill(&path, count) {
        eprintln!("usher-ring-fill: {}: {e}", path.display());
        std::process::exit(1);
    }
}

fn fill(path: &PathBuf, count: u64) -> Result<(), String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    file.set_len(area_bytes(1, RING_WORDS) as u64)
        .map_err(|e| e.to_string())?;
    // SAFETY: the file was just created and sized by this process; other
    // processes (the agent) only ever access it through atomics.
    let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| e.to_string())?;
    let words = as_words(&mut map);
    let area = RingArea::init(words, 1, RING_WORDS).map_err(|e| e.to_string())?;
    let ring = area.ring(0).ok_or("no ring 0")?;
    let mut record = RequestRecord {
        server_endpoint: Some("127.0.0.1:8081".into()),
        client_endpoint: Some("127.0.0.1:50000".into()),
        method: Some("GET".into()),
        protocol: Some("HTTP/1.1".into()),
        status: Some(200),
        content_length: Some(2048),
        ..Default::default()
    };
    let mask = FieldMask::ALL;
    let mut bytes = Vec::with_capacity(256);
    let start = Instant::now();
    for i in 0..count {
        record.request_line = Some(format!("GET /page/{i} HTTP/1.1"));
        record.content_path = Some(format!("/page/{i}"));
        record.start_time_us = Some(1_790_000_000_000_000 + i);
        record.processing_time_us = Some(100 + i % 1000);
        bytes.clear();
        record.encode_into(mask, &mut bytes);
        while !ring.push(&bytes) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    println!(
        "{{\"records\":{count},\"seconds\":{:.3}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn as_words(map: &mut MmapMut) -> &[AtomicU64] {
    let len = map.len() / 8;
    // SAFETY: an mmap is page aligned (so 8-byte aligned), `len` words fit in
    // it, AtomicU64 has the layout of u64, and the borrow of `map` keeps the
    // mapping alive for as long as the slice.
    unsafe { std::slice::from_raw_parts(map.as_mut_ptr().cast::<AtomicU64>(), len) }
}
