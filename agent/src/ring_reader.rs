//! Reads the record channel of one web server instance: a file (usually in
//! `/dev/shm`) that the nginx module creates and splits into one
//! single-producer ring per worker process (layout in `usher_core::ring`).
//!
//! The reader maps the file read-write (it moves each ring's tail), attaches
//! with [`RingArea::attach`], drains every ring and decodes each record with
//! [`RequestRecord::decode`]; records that do not decode are counted, never
//! fatal. nginx replaces the file (write + rename) when its ring layout
//! changes, so a long-running reader calls [`RingReader::replaced`] and
//! reopens.
#![allow(unsafe_code)] // mapping a shared file is unsafe by nature; see SAFETY below

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use memmap2::{MmapMut, UncheckedAdvice};
use usher_core::ring::{RingArea, RingError, RingStats};
use usher_core::RequestRecord;

/// Why a ring file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Layout { path: PathBuf, source: RingError },
}

/// What one drain pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainCounts {
    /// Records that decoded.
    pub records: u64,
    /// Records that did not decode (skipped).
    pub bad: u64,
}

impl DrainCounts {
    /// Adds another pass's counts.
    pub fn add(&mut self, other: DrainCounts) {
        self.records += other.records;
        self.bad += other.bad;
    }
}

/// A mapped ring file.
#[derive(Debug)]
pub struct RingReader {
    path: PathBuf,
    inode: u64,
    map: MmapMut,
    buf: Vec<u8>,
}

impl RingReader {
    /// Maps the ring file at `path` and checks its header.
    pub fn open(path: &Path) -> Result<RingReader, ReaderError> {
        let io = |source| ReaderError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let inode = file.metadata().map_err(io)?.ino();
        // SAFETY: the file is a shared ring area. Every process that maps it
        // (nginx workers, this reader) touches its words only through
        // `AtomicU64` operations (see `words`), so concurrent modification is
        // not a data race. nginx never truncates a live ring file; it writes
        // a new file and renames it over the path, which leaves this mapping
        // valid (the old inode lives until we unmap it).
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io)?;
        let reader = RingReader {
            path: path.to_path_buf(),
            inode,
            map,
            buf: Vec::with_capacity(4096),
        };
        reader.area().map_err(|source| ReaderError::Layout {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(reader)
    }

    /// The path this reader was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The inode of the file this reader maps (a new one means nginx made
    /// the area anew, its counters starting from zero).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    fn words(&self) -> &[AtomicU64] {
        let len = self.map.len() / 8;
        // SAFETY: the mapping is page-aligned (so 8-byte aligned), at least
        // `len * 8` bytes long and lives as long as `self`, which the returned
        // slice borrows. `AtomicU64` has the same size and layout as `u64`,
        // and all access through the slice is atomic, which is sound even
        // while other processes write the same words atomically.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), len) }
    }

    /// The area view (header checked).
    pub fn area(&self) -> Result<RingArea<'_>, RingError> {
        RingArea::attach(self.words())
    }

    /// Drains every ring, passing each decoded record to `each`.
    pub fn drain(&mut self, mut each: impl FnMut(RequestRecord)) -> DrainCounts {
        let mut counts = DrainCounts::default();
        let mut buf = std::mem::take(&mut self.buf);
        if let Ok(area) = self.area() {
            for i in 0..area.ring_count() {
                let Some(ring) = area.ring(i) else { continue };
                ring.drain(usize::MAX, &mut buf, |bytes| {
                    match RequestRecord::decode(bytes) {
                        Ok(rec) => {
                            counts.records += 1;
                            each(rec);
                        }
                        Err(_) => counts.bad += 1,
                    }
                });
            }
        }
        self.buf = buf;
        counts
    }

    /// Drains every ring without decoding, passing each record's bytes to
    /// `each`; returns how many there were.
    pub fn drain_raw(&mut self, mut each: impl FnMut(&[u8])) -> u64 {
        let mut n = 0u64;
        let mut buf = std::mem::take(&mut self.buf);
        if let Ok(area) = self.area() {
            for i in 0..area.ring_count() {
                if let Some(ring) = area.ring(i) {
                    n += ring.drain(usize::MAX, &mut buf, &mut each) as u64;
                }
            }
        }
        self.buf = buf;
        n
    }

    /// Lets go of the pages of the file this reader touched: the kernel
    /// takes them out of this process's resident set but keeps the file's
    /// contents, and the next read faults them back in. A reader calls it
    /// after draining a lot, so a burst that went through the ring does not
    /// stay resident in the reader (the pages belong to the ring, which the
    /// web server keeps anyway).
    pub fn release(&self) -> std::io::Result<()> {
        // SAFETY: the mapping is a shared mapping of a file (see `open`).
        // For such a mapping MADV_DONTNEED only drops this process's page
        // table entries: the next access to a page maps the file's current
        // contents again, so no word read through `words` changes value
        // because of it, and the mapping itself (which the returned area
        // views borrow) stays in place. Writes by other processes are in
        // the file, not in the dropped entries, so none is lost.
        unsafe { self.map.unchecked_advise(UncheckedAdvice::DontNeed) }
    }

    /// Records written and dropped by the producers, summed over all rings.
    pub fn stats(&self) -> RingStats {
        let mut total = RingStats::default();
        if let Ok(area) = self.area() {
            for i in 0..area.ring_count() {
                if let Some(ring) = area.ring(i) {
                    let s = ring.stats();
                    total.written += s.written;
                    total.dropped += s.dropped;
                }
            }
        }
        total
    }

    /// True when the path now names another file (nginx made a new area) or
    /// no file at all: reopen to follow it.
    pub fn replaced(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => m.ino() != self.inode,
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use usher_core::ring::area_bytes;
    use usher_core::FieldMask;

    /// Writes an area the way nginx does (init + push through the core API),
    /// then reads it back through a second mapping of the same file.
    #[test]
    fn drains_records_written_through_another_mapping() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ring");
        let mut f = File::create(&path).expect("create");
        f.write_all(&vec![0u8; area_bytes(2, 256)]).expect("size");
        drop(f);
        let writer = RingReader {
            path: path.clone(),
            inode: 0,
            map: {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .expect("open");
                // SAFETY: test-only mapping of a file this test owns.
                unsafe { MmapMut::map_mut(&file) }.expect("map")
            },
            buf: Vec::new(),
        };
        let area = RingArea::init(writer.words(), 2, 256).expect("init");
        let rec = RequestRecord {
            method: Some("GET".into()),
            status: Some(200),
            ..Default::default()
        };
        let mut bytes = Vec::new();
        rec.encode_into(FieldMask::ALL, &mut bytes);
        assert!(area.ring(0).expect("ring 0").push(&bytes));
        assert!(area.ring(1).expect("ring 1").push(&bytes));
        assert!(area.ring(1).expect("ring 1").push(&[9, 9, 9]));

        let mut reader = RingReader::open(&path).expect("open");
        let mut got = Vec::new();
        let counts = reader.drain(|r| got.push(r));
        assert_eq!(counts, DrainCounts { records: 2, bad: 1 });
        assert_eq!(got, vec![rec.clone(), rec.clone()]);
        assert_eq!(reader.stats().written, 3);
        assert!(!reader.replaced());
        assert_eq!(reader.drain(|_| {}), DrainCounts::default());
        // Released pages come back with the file's contents.
        reader.release().expect("release");
        assert!(area.ring(0).expect("ring 0").push(&bytes));
        assert_eq!(reader.stats().written, 4);
        let mut again = Vec::new();
        assert_eq!(reader.drain(|r| again.push(r)).records, 1);
        assert_eq!(again, vec![rec]);
    }

    #[test]
    fn refuses_a_file_that_is_not_an_area() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ring");
        std::fs::write(&path, vec![0u8; 4096]).expect("write");
        assert!(matches!(
            RingReader::open(&path),
            Err(ReaderError::Layout { .. })
        ));
        assert!(matches!(
            RingReader::open(&dir.path().join("missing")),
            Err(ReaderError::Io { .. })
        ));
    }
}
