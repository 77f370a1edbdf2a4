//! The record channel between a web server and its host's agent: one shared
//! memory area split into single-producer, single-consumer rings, one per
//! web server worker process.
//!
//! The area is a slice of `AtomicU64` words, so the producer (an nginx worker)
//! and the consumer (the agent) need no lock and this crate needs no
//! `unsafe`: each side maps the same file and views it as `&[AtomicU64]`.
//!
//! Layout (all words little-endian `u64`):
//! ```text
//! header  (HEADER_WORDS):  magic, version, ring_count, ring_words, 0...
//! ring i  (CONTROL_WORDS + ring_words):
//!          control: [0] head (producer), [1] written, [2] dropped,
//!                   [8] tail (consumer, own cache line)
//!          data:    records, each a length word then ceil(len/8) words
//! ```
//! Positions are ever-increasing word counters; `pos % ring_words` is the
//! slot. A record never wraps: if it does not fit before the end, the producer
//! writes a `SKIP` length word and starts again at slot 0. A full ring drops
//! the record and counts it: the producer never waits.

use std::sync::atomic::{AtomicU64, Ordering};

/// "USHRING1" as a little-endian word.
pub const MAGIC: u64 = u64::from_le_bytes(*b"USHRING1");
/// Layout version; the agent refuses any other.
pub const VERSION: u64 = 1;
/// Words in the area header.
pub const HEADER_WORDS: usize = 8;
/// Control words in front of each ring's data.
pub const CONTROL_WORDS: usize = 16;
/// Length word meaning "the rest of the ring is padding".
const SKIP: u64 = u64::MAX;

const HEAD: usize = 0;
const WRITTEN: usize = 1;
const DROPPED: usize = 2;
const TAIL: usize = 8;

/// Why an area cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("area is {0} words, too small for its header")]
    TooSmall(usize),
    #[error("area does not start with the usher ring magic")]
    Magic,
    #[error("ring layout version {0}, expected {VERSION}")]
    Version(u64),
    #[error("ring_words {0} is not a power of two >= 64")]
    RingWords(u64),
    #[error("area of {have} words is smaller than the {need} its header describes")]
    Size { have: usize, need: usize },
}

/// Words an area with `ring_count` rings of `ring_words` data words needs.
pub fn area_words(ring_count: usize, ring_words: usize) -> usize {
    HEADER_WORDS + ring_count * (CONTROL_WORDS + ring_words)
}

/// Bytes an area needs (for sizing the shared file).
pub fn area_bytes(ring_count: usize, ring_words: usize) -> usize {
    area_words(ring_count, ring_words) * 8
}

/// A view of an initialised area.
#[derive(Debug, Clone, Copy)]
pub struct RingArea<'a> {
    words: &'a [AtomicU64],
    ring_count: usize,
    ring_words: usize,
}

impl<'a> RingArea<'a> {
    /// Writes a fresh header and zeroes every ring. Only the creator calls
    /// this, before any producer or consumer attaches.
    pub fn init(
        words: &'a [AtomicU64],
        ring_count: usize,
        ring_words: usize,
    ) -> Result<Self, RingError> {
        if !ring_words.is_power_of_two() || ring_words < 64 {
            return Err(RingError::RingWords(ring_words as u64));
        }
        let need = area_words(ring_count, ring_words);
        if words.len() < need {
            return Err(RingError::Size {
                have: words.len(),
                need,
            });
        }
        for w in &words[..need] {
            w.store(0, Ordering::Relaxed);
        }
        words[1].store(VERSION, Ordering::Relaxed);
        words[2].store(ring_count as u64, Ordering::Relaxed);
        words[3].store(ring_words as u64, Ordering::Relaxed);
        // Magic last, with Release: a reader that sees it sees the rest.
        words[0].store(MAGIC, Ordering::Release);
        Ok(RingArea {
            words,
            ring_count,
            ring_words,
        })
    }

    /// Attaches to an area someone else initialised; checks the header.
    pub fn attach(words: &'a [AtomicU64]) -> Result<Self, RingError> {
        if words.len() < HEADER_WORDS {
            return Err(RingError::TooSmall(words.len()));
        }
        if words[0].load(Ordering::Acquire) != MAGIC {
            return Err(RingError::Magic);
        }
        let version = words[1].load(Ordering::Relaxed);
        if version != VERSION {
            return Err(RingError::Version(version));
        }
        let ring_count = words[2].load(Ordering::Relaxed);
        let ring_words = words[3].load(Ordering::Relaxed);
        if !ring_words.is_power_of_two()
            || !(64..=1 << 32).contains(&ring_words)
            || ring_count > 4096
        {
            return Err(RingError::RingWords(ring_words));
        }
        let (ring_count, ring_words) = (ring_count as usize, ring_words as usize);
        let need = area_words(ring_count, ring_words);
        if words.len() < need {
            return Err(RingError::Size {
                have: words.len(),
                need,
            });
        }
        Ok(RingArea {
            words,
            ring_count,
            ring_words,
        })
    }

    /// Number of rings.
    pub fn ring_count(&self) -> usize {
        self.ring_count
    }

    /// Ring `i`, or `None` when out of range.
    pub fn ring(&self, i: usize) -> Option<Ring<'a>> {
        if i >= self.ring_count {
            return None;
        }
        let start = HEADER_WORDS + i * (CONTROL_WORDS + self.ring_words);
        let control = &self.words[start..start + CONTROL_WORDS];
        let data = &self.words[start + CONTROL_WORDS..start + CONTROL_WORDS + self.ring_words];
        Some(Ring { control, data })
    }
}

/// Counters of one ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    pub written: u64,
    pub dropped: u64,
}

/// One single-producer single-consumer ring.
#[derive(Debug, Clone, Copy)]
pub struct Ring<'a> {
    control: &'a [AtomicU64],
    data: &'a [AtomicU64],
}

impl Ring<'_> {
    fn mask(&self) -> u64 {
        self.data.len() as u64 - 1
    }

    /// Producer side: appends one record. Returns false (and counts a drop)
    /// when the ring has no room; never waits. Only one thread may push.
    pub fn push(&self, record: &[u8]) -> bool {
        let size = self.data.len() as u64;
        let words = 1 + (record.len() as u64).div_ceil(8);
        let head = self.control[HEAD].load(Ordering::Relaxed);
        let tail = self.control[TAIL].load(Ordering::Acquire);
        let slot = head & self.mask();
        let pad = if slot + words > size { size - slot } else { 0 };
        let used = head.wrapping_sub(tail);
        if words > size / 2 || used + pad + words > size {
            self.control[DROPPED].fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut at = head;
        if pad > 0 {
            self.data[(at & self.mask()) as usize].store(SKIP, Ordering::Relaxed);
            at += pad;
        }
        let base = (at & self.mask()) as usize;
        self.data[base].store(record.len() as u64, Ordering::Relaxed);
        for (i, chunk) in record.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.data[base + 1 + i].store(u64::from_le_bytes(word), Ordering::Relaxed);
        }
        self.control[WRITTEN].fetch_add(1, Ordering::Relaxed);
        self.control[HEAD].store(at + words, Ordering::Release);
        true
    }

    /// Consumer side: passes up to `max` records to `each` (in order) and
    /// frees their space. Returns how many were read. A corrupt length word,
    /// or positions further apart than the ring holds, make the reader skip
    /// everything written so far (counted as dropped): a ring file that was
    /// scribbled over can never make this loop run away (found by
    /// `make fuzz`, target `ring`).
    pub fn drain(&self, max: usize, buf: &mut Vec<u8>, mut each: impl FnMut(&[u8])) -> usize {
        let size = self.data.len() as u64;
        let head = self.control[HEAD].load(Ordering::Acquire);
        let mut tail = self.control[TAIL].load(Ordering::Relaxed);
        let mut n = 0;
        if head.wrapping_sub(tail) > size {
            self.control[DROPPED].fetch_add(1, Ordering::Relaxed);
            tail = head;
        }
        while tail != head && n < max {
            let slot = tail & self.mask();
            let len = self.data[slot as usize].load(Ordering::Relaxed);
            if len == SKIP {
                if head.wrapping_sub(tail) < size - slot {
                    self.control[DROPPED].fetch_add(1, Ordering::Relaxed);
                    tail = head;
                    break;
                }
                tail = tail.wrapping_add(size - slot);
                continue;
            }
            let words = 1 + len.div_ceil(8);
            if len > size * 8 || slot + words > size || head.wrapping_sub(tail) < words {
                self.control[DROPPED].fetch_add(1, Ordering::Relaxed);
                tail = head;
                break;
            }
            buf.clear();
            for i in 0..words - 1 {
                let w = self.data[(slot + 1 + i) as usize].load(Ordering::Relaxed);
                buf.extend_from_slice(&w.to_le_bytes());
            }
            buf.truncate(len as usize);
            each(buf);
            tail = tail.wrapping_add(words);
            n += 1;
        }
        self.control[TAIL].store(tail, Ordering::Release);
        n
    }

    /// Records written and dropped since the area was created.
    pub fn stats(&self) -> RingStats {
        RingStats {
            written: self.control[WRITTEN].load(Ordering::Relaxed),
            dropped: self.control[DROPPED].load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(rings: usize, words: usize) -> Vec<AtomicU64> {
        (0..area_words(rings, words))
            .map(|_| AtomicU64::new(0))
            .collect()
    }

    #[test]
    fn push_and_drain_in_order_across_wraps() {
        let mem = area(2, 64);
        let a = RingArea::init(&mem, 2, 64).expect("init");
        let b = RingArea::attach(&mem).expect("attach");
        let (w, r) = (a.ring(1).expect("ring"), b.ring(1).expect("ring"));
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for i in 0u32..1000 {
            let rec = vec![i as u8; (i % 37) as usize];
            assert!(w.push(&rec));
            r.drain(usize::MAX, &mut buf, |x| got.push(x.to_vec()));
            assert_eq!(got.pop().expect("one record"), rec);
        }
        assert_eq!(
            w.stats(),
            RingStats {
                written: 1000,
                dropped: 0
            }
        );
    }

    #[test]
    fn full_ring_drops_and_counts() {
        let mem = area(1, 64);
        let a = RingArea::init(&mem, 1, 64).expect("init");
        let ring = a.ring(0).expect("ring");
        let mut ok = 0;
        for _ in 0..100 {
            if ring.push(&[7u8; 24]) {
                ok += 1;
            }
        }
        assert_eq!(ok, 16); // 4 words each in 64
        assert_eq!(ring.stats().dropped, 84);
        let mut buf = Vec::new();
        assert_eq!(ring.drain(usize::MAX, &mut buf, |_| {}), 16);
        assert!(ring.push(&[1]));
        assert!(
            !ring.push(&[0u8; 400]),
            "a record over half the ring is refused"
        );
    }

    #[test]
    fn attach_checks_header() {
        let mem = area(1, 64);
        assert_eq!(RingArea::attach(&mem).unwrap_err(), RingError::Magic);
        RingArea::init(&mem, 1, 64).expect("init");
        assert!(RingArea::attach(&mem[..20]).is_err());
        mem[1].store(9, Ordering::Relaxed);
        assert_eq!(RingArea::attach(&mem).unwrap_err(), RingError::Version(9));
        assert!(RingArea::init(&mem, 1, 100).is_err());
    }

    /// Positions a scribbled-over ring file may hold: the reader drops
    /// what is there (counted) and returns, never loops on.
    #[test]
    fn corrupt_positions_end_the_drain() {
        let mem = area(1, 64);
        let a = RingArea::init(&mem, 1, 64).expect("init");
        let ring = a.ring(0).expect("ring");
        let start = HEADER_WORDS;
        // Head far ahead of tail (more than the ring holds), zeroed data.
        mem[start + HEAD].store(u64::MAX / 2, Ordering::Relaxed);
        let mut buf = Vec::new();
        assert_eq!(ring.drain(usize::MAX, &mut buf, |_| {}), 0);
        assert_eq!(ring.stats().dropped, 1);
        // A skip word that would jump past head.
        mem[start + TAIL].store(0, Ordering::Relaxed);
        mem[start + HEAD].store(5, Ordering::Relaxed);
        mem[start + CONTROL_WORDS].store(SKIP, Ordering::Relaxed);
        assert_eq!(ring.drain(usize::MAX, &mut buf, |_| {}), 0);
        assert_eq!(ring.stats().dropped, 2);
        // The ring works again afterwards.
        assert!(ring.push(&[1, 2, 3]));
        let mut got = Vec::new();
        assert_eq!(ring.drain(usize::MAX, &mut buf, |x| got = x.to_vec()), 1);
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[test]
    fn concurrent_producer_and_consumer() {
        let mem = area(1, 1024);
        let a = RingArea::init(&mem, 1, 1024).expect("init");
        let ring = a.ring(0).expect("ring");
        let total = 200_000u64;
        let mut seen = 0u64;
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..total {
                    while !ring.push(&i.to_le_bytes()) {
                        std::hint::spin_loop();
                    }
                }
            });
            let mut buf = Vec::new();
            while seen < total {
                ring.drain(usize::MAX, &mut buf, |x| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(x);
                    assert_eq!(u64::from_le_bytes(b), seen);
                    seen += 1;
                });
            }
        });
        assert_eq!(seen, total);
    }
}
