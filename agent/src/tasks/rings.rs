//! The ring reader: one thread drains the shared-memory rings of every
//! server that has one (`ring = ...`) every `drain_ms`, into the record
//! sink, and hands each full batch of raw records to the outbox at once.
//!
//! Why a thread and not a task: draining is a tight CPU loop over shared
//! memory with no await point, and at millions of records a second it
//! would starve the runtime.
//!
//! Why it pauses: the ring is the buffer. Batches handed to the outbox wait
//! in memory until the spool thread has written them; when
//! [`MAX_WAITING_BATCHES`] wait, the reader leaves the rest in the ring and
//! tries again next pass. The web server only drops (and counts) records
//! when its ring is full, and those drops reach the reports as the
//! server's dropped records. So a burst costs the agent a bounded amount
//! of memory, however large it is.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use usher_core::ring::RingArea;

use crate::outbox::Outbox;
use crate::records::{ReadyBatch, RecordSink};
use crate::{lock, RingReader};

/// Most record batches waiting in memory to be spooled; at this many the
/// reader stops draining (about 64 × 8 KiB of records, plus their encoding).
pub const MAX_WAITING_BATCHES: usize = 64;

/// Records taken from a ring per lock of the sink.
const CHUNK: usize = 4096;

/// After this many records the reader lets go of the ring's pages
/// ([`RingReader::release`]), about 1.5 MB of them.
const RELEASE_EVERY: u64 = 16_384;

/// One server's ring file and what the reader knows about it.
#[derive(Debug)]
pub struct RingSource {
    /// Index of the server in the configuration (and the sink).
    server: usize,
    path: PathBuf,
    reader: Option<RingReader>,
    /// Last open error logged (each is logged once).
    reported: String,
    /// Records the producers dropped (full ring), as last seen.
    dropped: Option<u64>,
    /// Records drained since the pages were last released.
    unreleased: u64,
}

impl RingSource {
    /// A source for server number `server` reading `path`.
    pub fn new(server: usize, path: PathBuf) -> RingSource {
        RingSource {
            server,
            path,
            reader: None,
            reported: String::new(),
            dropped: None,
            unreleased: 0,
        }
    }

    /// (Re)opens the file when there is none or nginx replaced it.
    fn open(&mut self) {
        if !self.reader.as_ref().is_none_or(|r| r.replaced()) {
            return;
        }
        match RingReader::open(&self.path) {
            Ok(r) => {
                tracing::info!("reading records from {}", self.path.display());
                self.reader = Some(r);
                self.reported.clear();
                self.dropped = None;
            }
            Err(e) => {
                let text = e.to_string();
                if self.reported != text {
                    tracing::warn!("ring: {text}");
                    self.reported = text;
                }
                self.reader = None;
            }
        }
    }

    /// One pass: drains what there is room for; returns the records taken
    /// and whether it stopped for lack of room.
    fn pass(
        &mut self,
        sink: &Mutex<RecordSink>,
        buf: &mut Vec<u8>,
        forward: &mut impl FnMut(ReadyBatch),
        room: &impl Fn() -> bool,
    ) -> Drained {
        self.open();
        let Some(r) = self.reader.as_ref() else {
            return Drained::default();
        };
        let mut out = Drained::default();
        if let Ok(area) = r.area() {
            out = drain_area(&area, self.server, sink, buf, forward, room);
        }
        // Count the producers' drops as the server's dropped records.
        let now = r.stats().dropped;
        if let Some(before) = self.dropped {
            if now > before {
                lock(sink).bad(self.server, now - before);
            }
        }
        self.dropped = Some(now);
        self.unreleased += out.records;
        if self.unreleased >= RELEASE_EVERY {
            self.unreleased = 0;
            if let Err(e) = r.release() {
                tracing::debug!("ring {}: release: {e}", self.path.display());
            }
        }
        out
    }
}

/// What a drain took.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub records: u64,
    /// It stopped because too many batches wait; records remain.
    pub paused: bool,
}

/// Drains the rings of one area into the sink while `room()` says so,
/// `CHUNK` records per lock; every batch that fills is passed to `forward`
/// (outside the lock). The sink reads the few fields it needs in place and
/// forwards the bytes unchanged.
pub fn drain_area(
    area: &RingArea<'_>,
    server: usize,
    sink: &Mutex<RecordSink>,
    buf: &mut Vec<u8>,
    forward: &mut impl FnMut(ReadyBatch),
    room: &impl Fn() -> bool,
) -> Drained {
    let mut out = Drained::default();
    for i in 0..area.ring_count() {
        let Some(ring) = area.ring(i) else { continue };
        loop {
            if !room() {
                out.paused = true;
                return out;
            }
            let (n, ready) = {
                let mut s = lock(sink);
                let n = ring.drain(CHUNK, buf, |bytes| {
                    s.push_encoded(server, bytes);
                });
                (n, s.take_ready(Instant::now()))
            };
            out.records += n as u64;
            ready.into_iter().for_each(&mut *forward);
            if n < CHUNK {
                break;
            }
        }
    }
    out
}

/// The reader thread: a pass over every source each `every` until `stop`.
pub fn run(
    mut sources: Vec<RingSource>,
    sink: Arc<Mutex<RecordSink>>,
    outbox: Arc<Outbox>,
    stop: Arc<AtomicBool>,
    every: Duration,
) {
    let mut buf = Vec::with_capacity(4096);
    let mut forward = |b: ReadyBatch| outbox.records(&b.server, b.bytes);
    let room = || outbox.batches_waiting() < MAX_WAITING_BATCHES;
    let mut paused = false;
    while !stop.load(Ordering::Relaxed) {
        let mut now_paused = false;
        for src in &mut sources {
            now_paused |= src.pass(&sink, &mut buf, &mut forward, &room).paused;
        }
        if now_paused != paused {
            tracing::debug!(
                "ring reader {}: {MAX_WAITING_BATCHES} record batches wait to be spooled",
                if now_paused { "paused" } else { "resumed" }
            );
            paused = now_paused;
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::AtomicU64;
    use usher_core::record::decode_batch;
    use usher_core::ring::area_bytes;
    use usher_core::{FieldMask, RequestRecord};

    use crate::config::RecordsConfig;

    fn words(rings: usize, per_ring: usize) -> Vec<AtomicU64> {
        (0..area_bytes(rings, per_ring) / 8)
            .map(|_| AtomicU64::new(0))
            .collect()
    }

    fn fill(area: &RingArea<'_>, ring: usize, n: u64) {
        let mut bytes = Vec::new();
        for i in 0..n {
            let rec = RequestRecord {
                status: Some(200),
                start_time_us: Some(i),
                processing_time_us: Some(10),
                request_line: Some(format!("GET /{i} HTTP/1.1")),
                ..Default::default()
            };
            bytes.clear();
            rec.encode_into(FieldMask::ALL, &mut bytes);
            assert!(area.ring(ring).expect("ring").push(&bytes), "ring full");
        }
    }

    fn sink() -> Mutex<RecordSink> {
        let cfg = RecordsConfig {
            batch_records: 10,
            ..Default::default()
        };
        Mutex::new(RecordSink::new(["web1".to_string()], cfg))
    }

    #[test]
    fn stops_draining_at_the_limit_and_loses_nothing() {
        let w = words(2, 1 << 16);
        let area = RingArea::init(&w, 2, 1 << 16).expect("area");
        fill(&area, 0, 6_000);
        fill(&area, 1, 3_000);
        let sink = sink();
        let mut buf = Vec::new();
        let waiting = Cell::new(0usize);
        let mut batches = Vec::new();
        let mut forward = |b: ReadyBatch| {
            waiting.set(waiting.get() + 1);
            batches.push(b);
        };
        // Room for 100 batches: one chunk of 4096 records makes 409 of
        // them, so the reader pauses after it.
        let room = || waiting.get() < 100;
        let first = drain_area(&area, 0, &sink, &mut buf, &mut forward, &room);
        assert_eq!(
            first,
            Drained {
                records: CHUNK as u64,
                paused: true
            }
        );
        // Still no room: nothing is taken.
        let none = drain_area(&area, 0, &sink, &mut buf, &mut forward, &room);
        assert_eq!(
            none,
            Drained {
                records: 0,
                paused: true
            }
        );
        // The spool caught up: the rest comes out.
        waiting.set(0);
        let rest = drain_area(&area, 0, &sink, &mut buf, &mut forward, &|| true);
        assert_eq!(
            rest,
            Drained {
                records: 9_000 - CHUNK as u64,
                paused: false
            }
        );
        let flushed = lock(&sink).take_ready(Instant::now() + Duration::from_secs(3600));
        batches.extend(flushed);
        let forwarded: usize = batches
            .iter()
            .map(|b| decode_batch(&b.bytes).expect("batch").records.len())
            .sum();
        assert_eq!(forwarded, 9_000);
        assert!(batches
            .iter()
            .all(|b| b.server == "web1" && b.records <= 10));
        let agg = &lock(&sink).take_aggregates()[0];
        assert_eq!((agg.count, agg.dropped), (9_000, 0));
    }

    #[test]
    fn a_missing_ring_file_is_retried_and_counts_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut src = RingSource::new(0, dir.path().join("none"));
        let sink = sink();
        let mut buf = Vec::new();
        let got = src.pass(&sink, &mut buf, &mut |_| {}, &|| true);
        assert_eq!(got, Drained::default());
        assert!(src.reader.is_none() && !src.reported.is_empty());
    }
}
