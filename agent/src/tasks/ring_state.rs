//! What the ring reader remembers across restarts, so that no lost record
//! goes uncounted: per server, the ring file it last read (inode), the
//! producers' drop counter it last counted, and when it last raised a
//! `ring_overflow` event.
//!
//! Why: nginx counts the records it drops from a full ring in the ring
//! file itself, and the count only grows. A reader that took the counter
//! as a fresh baseline at start would never report what was dropped while
//! the agent was dead (issue 10 saw 23,558 such records in one run). With
//! the mark, a restarted agent reports `counter − mark` as the server's
//! dropped records.
//!
//! A ring file that was made anew (another inode, or a counter lower than
//! the mark: nginx re-created the area) has counted from zero since it was
//! made, so its whole counter is news; so is the counter of a ring no mark
//! names (the first start, or a new server): those records were lost too.
//!
//! The file (`<data_dir>/spool/rings.state`, JSON, mode 0600) is written
//! whole to a temporary file and renamed over the old one, so a crash
//! leaves the old mark or the new one, never half of one. It is written at
//! most once a second while counts change, and at shutdown; after a
//! `kill -9` the last second's drops may be counted twice (never lost).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The state file's name inside the spool folder.
pub const FILE: &str = "rings.state";

/// Longest time a changed mark waits to be written.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// A `ring_overflow` event is raised at most this often per server.
pub const OVERFLOW_EVERY_US: u64 = 60_000_000;

/// What the reader last knew of one server's ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingMark {
    /// Inode of the ring file the counter belongs to.
    pub inode: u64,
    /// The producers' drop counter, summed over the file's rings, as last
    /// counted into the reports.
    pub dropped: u64,
    /// When the last `ring_overflow` event for this server was raised
    /// (Unix µs).
    #[serde(default)]
    pub overflow_told_us: Option<u64>,
}

/// Drops not yet counted, given the last mark and the file's counter now.
pub fn new_drops(mark: Option<&RingMark>, inode: u64, dropped: u64) -> u64 {
    match mark {
        Some(m) if m.inode == inode && m.dropped <= dropped => dropped - m.dropped,
        // A ring never seen, or one made anew: it counted from zero.
        _ => dropped,
    }
}

/// True when a `ring_overflow` event may be raised now (none yet, a minute
/// passed, or the clock went back).
pub fn overflow_due(told_us: Option<u64>, now_us: u64) -> bool {
    told_us.is_none_or(|t| now_us < t || now_us - t >= OVERFLOW_EVERY_US)
}

/// Why the state file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct SaveError {
    path: PathBuf,
    source: std::io::Error,
}

/// The marks of every ring, and the file they live in.
#[derive(Debug)]
pub struct RingState {
    path: PathBuf,
    marks: BTreeMap<String, RingMark>,
    /// Marks changed since the last write.
    dirty: bool,
    last_save: Option<Instant>,
}

impl RingState {
    /// Reads the marks from `path`. A missing file means none; an
    /// unreadable one is logged and treated as none (its rings' whole
    /// counters are then counted, which may count some drops twice but
    /// loses none).
    pub fn load(path: &Path) -> RingState {
        let marks = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ring state {}: {e}; starting without marks", path.display());
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!("ring state {}: {e}; starting without marks", path.display());
                BTreeMap::new()
            }
        };
        RingState {
            path: path.to_path_buf(),
            marks,
            dirty: false,
            last_save: None,
        }
    }

    /// The mark of `server`, if any.
    pub fn mark(&self, server: &str) -> Option<&RingMark> {
        self.marks.get(server)
    }

    /// Sets the mark of `server`.
    pub fn set(&mut self, server: &str, mark: RingMark) {
        if self.marks.get(server) != Some(&mark) {
            self.marks.insert(server.to_string(), mark);
            self.dirty = true;
        }
    }

    /// Writes the marks when they changed and [`SAVE_EVERY`] passed since
    /// the last write (or `force`).
    pub fn save_if_due(&mut self, now: Instant, force: bool) {
        let due = self
            .last_save
            .is_none_or(|t| now.duration_since(t) >= SAVE_EVERY);
        if self.dirty && (due || force) {
            self.last_save = Some(now);
            match self.save() {
                Ok(()) => self.dirty = false,
                Err(e) => tracing::warn!("ring state: {e}"),
            }
        }
    }

    /// Writes every mark to a temporary file (0600) and renames it over
    /// the state file.
    fn save(&self) -> Result<(), SaveError> {
        let text = serde_json::to_vec(&self.marks).map_err(|e| SaveError {
            path: self.path.clone(),
            source: e.into(),
        })?;
        crate::util::write_private_atomically(&self.path, &text)
            .map_err(|(path, source)| SaveError { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn drops_since_the_mark_or_since_the_file_was_made() {
        let mark = RingMark {
            inode: 7,
            dropped: 100,
            overflow_told_us: None,
        };
        assert_eq!(new_drops(Some(&mark), 7, 130), 30, "same file");
        assert_eq!(new_drops(Some(&mark), 7, 100), 0);
        assert_eq!(new_drops(Some(&mark), 8, 40), 40, "another file");
        assert_eq!(new_drops(Some(&mark), 7, 40), 40, "counter went back");
        assert_eq!(new_drops(None, 7, 55), 55, "never seen");
    }

    #[test]
    fn overflow_at_most_once_a_minute() {
        assert!(overflow_due(None, 5));
        let t = 1_000_000_000;
        assert!(!overflow_due(Some(t), t + 59_999_999));
        assert!(overflow_due(Some(t), t + 60_000_000));
        assert!(overflow_due(Some(t), t - 1), "clock went back");
    }

    #[test]
    fn marks_survive_a_restart_in_a_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE);
        let mut s = RingState::load(&path);
        assert_eq!(s.mark("web1"), None);
        let mark = RingMark {
            inode: 3,
            dropped: 12,
            overflow_told_us: Some(99),
        };
        s.set("web1", mark);
        let t = Instant::now();
        s.save_if_due(t, false);
        assert_eq!(RingState::load(&path).mark("web1"), Some(&mark));
        let mode = std::fs::metadata(&path).expect("state file").mode() & 0o777;
        assert_eq!(mode, 0o600);

        // Within the second: not written, unless forced.
        let later = RingMark {
            dropped: 20,
            ..mark
        };
        s.set("web1", later);
        s.save_if_due(t + Duration::from_millis(10), false);
        assert_eq!(RingState::load(&path).mark("web1"), Some(&mark));
        s.save_if_due(t + Duration::from_millis(20), true);
        assert_eq!(RingState::load(&path).mark("web1"), Some(&later));
        assert!(!dir.path().join("rings.state.tmp").exists());

        // A damaged file is no mark at all.
        std::fs::write(&path, b"{not json").expect("write");
        assert_eq!(RingState::load(&path).mark("web1"), None);
    }
}
