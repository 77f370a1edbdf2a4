//! State every worker of one nginx instance shares: the current snapshot
//! (its JSON and version), counters, and which version each worker applied.
//!
//! It lives in an anonymous shared mapping made by the master before it
//! forks the workers (and kept across reloads). All access is through
//! `AtomicU64` words, so no `unsafe` beyond creating the mapping:
//! - one writer at a time (the command endpoint of whichever worker got the
//!   push) holds `LOCK` (its pid; a dead holder's lock is taken over);
//! - readers copy the JSON under a sequence lock (`SEQ` odd while writing)
//!   and never wait: a torn read is retried a few times, then left for the
//!   next request;
//! - the request path loads `VERSION` once (one atomic load) and re-reads
//!   the JSON only when it changed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use usher_core::snapshot::MAX_SNAPSHOT_BYTES;
use usher_core::version::{admit, Accepted, Refused};

const LOCK: usize = 0;
const SEQ: usize = 1;
const VERSION: usize = 2;
const LEN: usize = 3;
const REDIRECTS: usize = 4;
const PICKS: usize = 5;
const NO_RING_DROPS: usize = 6;
const SORRY: usize = 7;
const SELF_MARKED: usize = 8;
const PROXY_STARTED: usize = 9;
const PROXY_FINISHED: usize = 10;
/// Per-worker applied versions start here.
const APPLIED: usize = 16;
/// Workers whose applied version is tracked.
pub const MAX_WORKERS: usize = 64;
const DATA: usize = APPLIED + MAX_WORKERS;
const DATA_WORDS: usize = MAX_SNAPSHOT_BYTES / 8;
const WORDS: usize = DATA + DATA_WORDS;

static SHARED: OnceLock<&'static [AtomicU64]> = OnceLock::new();

/// Creates the shared area (master, first configuration only). Later calls
/// (reloads) keep the existing one, so state survives a reload.
pub fn init() -> Result<(), String> {
    if SHARED.get().is_some() {
        return Ok(());
    }
    let bytes = WORDS * 8;
    // SAFETY: an anonymous shared mapping: no file, no existing memory is
    // touched. The result is checked for MAP_FAILED before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(format!(
            "mmap of {bytes} shared bytes failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the mapping is `bytes` long, page-aligned (so aligned for
    // u64), zero-filled (a valid `AtomicU64` bit pattern) and never unmapped:
    // it is shared with every forked worker for the life of the process, so
    // a `'static` slice is sound. Workers touch it only through atomics.
    let words: &'static [AtomicU64] =
        unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), WORDS) };
    // A concurrent init cannot happen (the master is single-threaded); if it
    // did, the loser's mapping would only be leaked.
    SHARED.get_or_init(|| words);
    Ok(())
}

fn words() -> Option<&'static [AtomicU64]> {
    SHARED.get().copied()
}

/// Version of the snapshot currently published (0: none yet).
#[inline]
pub fn version() -> u64 {
    words().map_or(0, |w| w[VERSION].load(Ordering::Acquire))
}

/// Why a snapshot was not published.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishError {
    /// Refused by the version rule (`usher_core::version`).
    Version(Refused),
    TooLarge,
    Busy,
    NoArea,
}

/// Publishes a validated snapshot's JSON as `version` if the version rule
/// (`usher_core::version::admit`, with the wall clock `now_ms` in unix ms)
/// accepts it against the current version.
pub fn publish(version: u64, json: &[u8], now_ms: u64) -> Result<Accepted, PublishError> {
    let w = words().ok_or(PublishError::NoArea)?;
    if json.len() > DATA_WORDS * 8 {
        return Err(PublishError::TooLarge);
    }
    let me = u64::from(std::process::id());
    lock(w, me)?;
    let current = w[VERSION].load(Ordering::Acquire);
    let result = admit(version, current, now_ms).map_err(PublishError::Version);
    if result.is_ok() {
        let seq = w[SEQ].load(Ordering::Relaxed);
        w[SEQ].store(seq.wrapping_add(1), Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        for (i, chunk) in json.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            w[DATA + i].store(u64::from_le_bytes(word), Ordering::Relaxed);
        }
        w[LEN].store(json.len() as u64, Ordering::Relaxed);
        w[SEQ].store(seq.wrapping_add(2), Ordering::Release);
        w[VERSION].store(version, Ordering::Release);
    }
    w[LOCK].store(0, Ordering::Release);
    result
}

/// Takes the writer lock, waiting at most ~50 ms; takes over the lock of a
/// process that no longer exists.
fn lock(w: &[AtomicU64], me: u64) -> Result<(), PublishError> {
    for attempt in 0..500 {
        match w[LOCK].compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(holder) => {
                if (holder == me || !process_alive(holder))
                    && w[LOCK]
                        .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return Ok(());
                }
                if attempt > 10 {
                    std::thread::sleep(std::time::Duration::from_micros(100));
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
    Err(PublishError::Busy)
}

fn process_alive(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Copies the published snapshot JSON and its version; `None` when there is
/// none or a writer kept changing it.
pub fn read() -> Option<(u64, Vec<u8>)> {
    let w = words()?;
    for _ in 0..8 {
        let s1 = w[SEQ].load(Ordering::Acquire);
        if s1 % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let version = w[VERSION].load(Ordering::Acquire);
        let len = (w[LEN].load(Ordering::Relaxed) as usize).min(DATA_WORDS * 8);
        let mut out = Vec::with_capacity(len);
        for i in 0..len.div_ceil(8) {
            out.extend_from_slice(&w[DATA + i].load(Ordering::Relaxed).to_le_bytes());
        }
        out.truncate(len);
        std::sync::atomic::fence(Ordering::Acquire);
        if w[SEQ].load(Ordering::Relaxed) == s1 && version != 0 {
            return Some((version, out));
        }
    }
    None
}

/// Shared counters.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    Redirects,
    Picks,
    NoRingDrops,
    Sorry,
    /// Paths a worker learned are self-marked stateful (one per worker and
    /// path: with every worker knowing one page, it equals the workers).
    SelfMarked,
    /// Requests the interceptor handed to `proxy_pass` (proxy mode).
    ProxyStarted,
    /// Of those, the ones nginx has freed: the difference is in flight.
    ProxyFinished,
}

impl Counter {
    fn index(self) -> usize {
        match self {
            Counter::Redirects => REDIRECTS,
            Counter::Picks => PICKS,
            Counter::NoRingDrops => NO_RING_DROPS,
            Counter::Sorry => SORRY,
            Counter::SelfMarked => SELF_MARKED,
            Counter::ProxyStarted => PROXY_STARTED,
            Counter::ProxyFinished => PROXY_FINISHED,
        }
    }
}

/// Adds one to a counter.
#[inline]
pub fn count(c: Counter) {
    if let Some(w) = words() {
        w[c.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// A counter's value.
pub fn get(c: Counter) -> u64 {
    words().map_or(0, |w| w[c.index()].load(Ordering::Relaxed))
}

/// Notes that worker `index` now acts on `version`.
pub fn set_applied(index: usize, version: u64) {
    if let (Some(w), true) = (words(), index < MAX_WORKERS) {
        w[APPLIED + index].store(version, Ordering::Relaxed);
    }
}

/// Applied versions of the first `n` workers.
pub fn applied(n: usize) -> Vec<u64> {
    let Some(w) = words() else { return Vec::new() };
    (0..n.min(MAX_WORKERS))
        .map(|i| w[APPLIED + i].load(Ordering::Relaxed))
        .collect()
}
