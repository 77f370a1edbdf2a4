//! The events `usher watch` writes (one JSON line each, `--events-file`),
//! read back so that they reach the manager: the line's shape, and a
//! reader that takes only complete new lines and remembers how far it got.
//!
//! The watcher cannot send events itself (it must keep working when the
//! control plane, or the agent it supervises, is down), so it appends to a
//! file and the host's agent reads the file (`watch_events` in agent.toml)
//! and sends each line as an event through its spooled channel.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The watcher's event codes: 140..=149 (`usher watch` uses 140–145).
pub const CODES: std::ops::RangeInclusive<u32> = 140..=149;

/// Most bytes one read takes in (the rest waits for the next read).
pub const MAX_READ_BYTES: u64 = 1 << 20;

/// One line of a watcher's events file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WatchLine {
    #[serde(rename = "type")]
    pub type_name: String,
    pub code: u32,
    /// Unix time, microseconds.
    pub time_us: u64,
    /// The watched component's name (`usher watch --name`).
    pub component: String,
    pub pid: Option<u32>,
    pub watcher_pid: u32,
    pub detail: String,
}

impl WatchLine {
    /// The event text: the detail, then the PIDs.
    pub fn text(&self) -> String {
        match self.pid {
            Some(pid) => format!(
                "{}: {} (pid {pid}, watcher pid {})",
                self.component, self.detail, self.watcher_pid
            ),
            None => format!(
                "{}: {} (watcher pid {})",
                self.component, self.detail, self.watcher_pid
            ),
        }
    }
}

/// What one read found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NewLines {
    /// Lines that decoded, with a watcher code, in file order.
    pub lines: Vec<WatchLine>,
    /// Complete lines that did not decode (or had a code outside
    /// [`CODES`]): counted and skipped.
    pub skipped: usize,
}

/// Reads one events file from a remembered offset.
#[derive(Debug, Clone)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
}

impl Tail {
    /// A reader of `path` that starts at `offset` (0 for a new file).
    pub fn new(path: &Path, offset: u64) -> Tail {
        Tail {
            path: path.to_path_buf(),
            offset,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How far the complete lines read so far reach.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The complete lines written since the last read (at most
    /// [`MAX_READ_BYTES`] of them); a partial last line waits for its end.
    /// A file shorter than the offset was replaced or truncated: read from
    /// its start. A file that does not exist yet reads as nothing.
    pub fn read_new(&mut self) -> std::io::Result<NewLines> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NewLines::default()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len < self.offset {
            self.offset = 0;
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        file.take(MAX_READ_BYTES).read_to_end(&mut buf)?;
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return Ok(NewLines::default());
        };
        let mut read = NewLines::default();
        for line in buf[..end].split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<WatchLine>(line) {
                Ok(l) if CODES.contains(&l.code) => read.lines.push(l),
                _ => read.skipped += 1,
            }
        }
        self.offset += end as u64 + 1;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LINE: &str = r#"{"type":"component_exited","code":143,"time_us":1700000000000000,"component":"agent","pid":42,"watcher_pid":7,"detail":"killed by signal 9; next start in 1.0 s"}"#;

    #[test]
    fn complete_lines_only_bad_ones_counted_truncation_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let mut tail = Tail::new(&path, 0);
        assert_eq!(tail.read_new().expect("missing file"), NewLines::default());

        let mut f = std::fs::File::create(&path).expect("create");
        write!(f, "{LINE}\nnot json\n{{\"type\":\"x\",\"code\":999,\"time_us\":1,\"component\":\"c\",\"pid\":null,\"watcher_pid\":1,\"detail\":\"\"}}\n{LINE}").expect("write");
        let r = tail.read_new().expect("read");
        assert_eq!(r.lines.len(), 1);
        assert_eq!(r.skipped, 2);
        assert_eq!(r.lines[0].code, 143);
        assert_eq!(
            r.lines[0].text(),
            "agent: killed by signal 9; next start in 1.0 s (pid 42, watcher pid 7)"
        );
        // The unfinished last line waits for its newline.
        assert_eq!(tail.read_new().expect("again"), NewLines::default());
        writeln!(f).expect("newline");
        let r = tail.read_new().expect("finished");
        assert_eq!((r.lines.len(), r.skipped), (1, 0));
        let end = tail.offset();
        assert_eq!(end, std::fs::metadata(&path).expect("meta").len());

        // A reader that resumes at a saved offset sees nothing old.
        assert_eq!(
            Tail::new(&path, end).read_new().expect("resume"),
            NewLines::default()
        );

        // Truncated (replaced): read from the start.
        std::fs::write(&path, format!("{LINE}\n")).expect("replace");
        let r = tail.read_new().expect("after truncation");
        assert_eq!(r.lines.len(), 1);
    }
}
