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
//!
//! Every drop is counted once, across restarts too: the last counter each
//! ring was counted up to is kept in a state file ([`super::ring_state`]),
//! so a restarted agent reports what nginx dropped while it was away. A
//! ring that dropped records raises a `ring_overflow` event, at most once
//! a minute per server.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use usher_core::channel::event_type;
use usher_core::ring::RingArea;

use super::ring_state::{new_drops, overflow_due, RingMark, RingState};
use crate::outbox::Outbox;
use crate::records::{ReadyBatch, RecordSink};
use crate::{lock, now_us, RingReader};

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
    /// Its name (the state file's key, the event's origin).
    name: String,
    path: PathBuf,
    reader: Option<RingReader>,
    /// Inode of the file `reader` maps.
    inode: u64,
    /// Last open error logged (each is logged once).
    reported: String,
    /// Records drained since the pages were last released.
    unreleased: u64,
}

/// A ring overflow to tell: the server and the drops just counted.
pub type Overflow = (String, u64);

impl RingSource {
    /// A source for server number `server`, named `name`, reading `path`.
    pub fn new(server: usize, name: &str, path: PathBuf) -> RingSource {
        RingSource {
            server,
            name: name.to_string(),
            path,
            reader: None,
            inode: 0,
            reported: String::new(),
            unreleased: 0,
        }
    }

    /// (Re)opens the file when there is none or nginx replaced it; drops
    /// the replaced file counted since the last pass are counted first.
    fn open(&mut self, sink: &Mutex<RecordSink>, state: &mut RingState) -> Option<Overflow> {
        if !self.reader.as_ref().is_none_or(|r| r.replaced()) {
            return None;
        }
        let told = self.count_drops(sink, state);
        match RingReader::open(&self.path) {
            Ok(r) => {
                tracing::info!("reading records from {}", self.path.display());
                self.inode = r.inode();
                self.reader = Some(r);
                self.reported.clear();
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
        told
    }

    /// Counts the producers' drops since the mark as the server's dropped
    /// records and moves the mark; returns an overflow to tell, when one
    /// is due.
    fn count_drops(&self, sink: &Mutex<RecordSink>, state: &mut RingState) -> Option<Overflow> {
        let r = self.reader.as_ref()?;
        let now = r.stats().dropped;
        let mark = state.mark(&self.name).copied();
        let new = new_drops(mark.as_ref(), self.inode, now);
        let mut told = mark.and_then(|m| m.overflow_told_us);
        let mut out = None;
        if new > 0 {
            lock(sink).bad(self.server, new);
            let now_us = now_us();
            if overflow_due(told, now_us) {
                told = Some(now_us);
                out = Some((self.name.clone(), new));
            }
        }
        state.set(
            &self.name,
            RingMark {
                inode: self.inode,
                dropped: now,
                overflow_told_us: told,
            },
        );
        out
    }

    /// One pass: drains what there is room for; returns the records taken,
    /// whether it stopped for lack of room, and any overflow to tell.
    fn pass(
        &mut self,
        sink: &Mutex<RecordSink>,
        state: &mut RingState,
        buf: &mut Vec<u8>,
        forward: &mut impl FnMut(ReadyBatch),
        room: &impl Fn() -> bool,
    ) -> (Drained, Vec<Overflow>) {
        let mut told: Vec<Overflow> = self.open(sink, state).into_iter().collect();
        let Some(r) = self.reader.as_ref() else {
            return (Drained::default(), told);
        };
        let mut out = Drained::default();
        if let Ok(area) = r.area() {
            out = drain_area(&area, self.server, sink, buf, forward, room);
        }
        told.extend(self.count_drops(sink, state));
        self.unreleased += out.records;
        if self.unreleased >= RELEASE_EVERY {
            self.unreleased = 0;
            if let Some(r) = self.reader.as_ref() {
                if let Err(e) = r.release() {
                    tracing::debug!("ring {}: release: {e}", self.path.display());
                }
            }
        }
        (out, told)
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

/// The reader thread: a pass over every source each `every` until `stop`;
/// the drop marks live in the state file at `state` (written at most once
/// a second while they change, and when the thread ends).
pub fn run(
    mut sources: Vec<RingSource>,
    sink: Arc<Mutex<RecordSink>>,
    outbox: Arc<Outbox>,
    stop: Arc<AtomicBool>,
    every: Duration,
    state: PathBuf,
) {
    let mut state = RingState::load(&state);
    let mut buf = Vec::with_capacity(4096);
    let mut forward = |b: ReadyBatch| outbox.records(&b.server, b.bytes);
    let room = || outbox.batches_waiting() < MAX_WAITING_BATCHES;
    let mut paused = false;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut now_paused = false;
        for src in &mut sources {
            let (drained, told) = src.pass(&sink, &mut state, &mut buf, &mut forward, &room);
            now_paused |= drained.paused;
            for (server, n) in told {
                outbox.event(
                    &server,
                    event_type::RING_OVERFLOW,
                    format!(
                        "ring of {server} full: {n} records dropped (told at most once a minute; \
                         every drop is in the server's dropped count)"
                    ),
                );
            }
        }
        // Events go out before the marks that say they were told.
        state.save_if_due(Instant::now(), stopping);
        if stopping {
            return;
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

    /// Writes a fresh area of one ring of `words` words to `path` (via a
    /// temporary file and a rename, as nginx does: a new inode).
    fn make_ring_file(path: &std::path::Path, size: usize) {
        let w = words(1, size);
        RingArea::init(&w, 1, size).expect("area");
        let bytes: Vec<u8> = w
            .iter()
            .flat_map(|x| x.load(Ordering::Relaxed).to_le_bytes())
            .collect();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).expect("write ring");
        std::fs::rename(&tmp, path).expect("rename ring");
    }

    /// Pushes records into ring 0 of the file until it has dropped `drops`.
    fn overflow(path: &std::path::Path, drops: u64) {
        let writer = RingReader::open(path).expect("writer");
        let area = writer.area().expect("area");
        let ring = area.ring(0).expect("ring");
        let rec = RequestRecord {
            status: Some(200),
            request_line: Some("GET / HTTP/1.1".into()),
            ..Default::default()
        };
        let mut bytes = Vec::new();
        rec.encode_into(FieldMask::ALL, &mut bytes);
        let until = ring.stats().dropped + drops;
        while ring.stats().dropped < until {
            ring.push(&bytes);
        }
    }

    fn dropped(sink: &Mutex<RecordSink>) -> u64 {
        lock(sink).take_aggregates()[0].dropped
    }

    #[test]
    fn drops_made_while_the_agent_was_away_are_counted_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ring, state_path) = (dir.path().join("ring"), dir.path().join("rings.state"));
        make_ring_file(&ring, 64);
        let sink = sink();
        let mut buf = Vec::new();
        let mut pass = |src: &mut RingSource, state: &mut RingState| {
            src.pass(&sink, state, &mut buf, &mut |_| {}, &|| true).1
        };

        // The first agent: the ring overflows while it runs.
        let mut state = RingState::load(&state_path);
        let mut src = RingSource::new(0, "web1", ring.clone());
        assert_eq!(pass(&mut src, &mut state), vec![]);
        overflow(&ring, 5);
        assert_eq!(pass(&mut src, &mut state), vec![("web1".to_string(), 5)]);
        assert_eq!(pass(&mut src, &mut state), vec![], "nothing new");
        state.save_if_due(Instant::now(), true);
        drop((src, state));
        assert_eq!(dropped(&sink), 5);

        // Away: 7 more dropped. The next agent counts them, and tells no
        // overflow again within the minute.
        overflow(&ring, 7);
        let mut state = RingState::load(&state_path);
        let mut src = RingSource::new(0, "web1", ring.clone());
        assert_eq!(pass(&mut src, &mut state), vec![]);
        assert_eq!(dropped(&sink), 7);

        // nginx made the area anew: its counter starts from zero again.
        make_ring_file(&ring, 64);
        overflow(&ring, 3);
        assert_eq!(pass(&mut src, &mut state), vec![]);
        assert_eq!(dropped(&sink), 3);
        state.save_if_due(Instant::now(), true);
        let mark = RingState::load(&state_path).mark("web1").copied();
        assert_eq!(mark.map(|m| m.dropped), Some(3));
    }

    #[test]
    fn a_missing_ring_file_is_retried_and_counts_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut src = RingSource::new(0, "web1", dir.path().join("none"));
        let mut state = RingState::load(&dir.path().join("state"));
        let sink = sink();
        let mut buf = Vec::new();
        let got = src.pass(&sink, &mut state, &mut buf, &mut |_| {}, &|| true);
        assert_eq!(got, (Drained::default(), vec![]));
        assert!(src.reader.is_none() && !src.reported.is_empty());
    }
}
