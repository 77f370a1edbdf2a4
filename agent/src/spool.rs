//! The spool: every sequenced message (report, record batch, event) is
//! appended to a file in the agent's data dir before it is sent, and removed
//! when the control plane acknowledges it. While the control plane is away
//! the spool grows (bounded); after a reconnect everything not yet
//! acknowledged is sent again, in order. The control plane stores each
//! `(agent, seq)` once, so this gives exactly-once in its logging database,
//! also across an agent restart.
//!
//! Files: `spool.log`, lines `<seq> <kind> <frame>` (kind `e` event, `r`
//! report, `b` record batch), and `spool.acked` holding the highest
//! acknowledged sequence number. A torn last line (crash while writing) is
//! ignored.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Kind of a spooled message (what goes first when the spool is full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Event,
    Report,
    Records,
}

impl Kind {
    fn tag(self) -> char {
        match self {
            Kind::Event => 'e',
            Kind::Report => 'r',
            Kind::Records => 'b',
        }
    }
    fn from_tag(c: &str) -> Option<Kind> {
        match c {
            "e" => Some(Kind::Event),
            "r" => Some(Kind::Report),
            "b" => Some(Kind::Records),
            _ => None,
        }
    }
}

/// One spooled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub kind: Kind,
    /// The framed message, ready to send.
    pub frame: String,
}

/// The spool (wrap in a mutex; every call is short).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    file: File,
    entries: VecDeque<Entry>,
    bytes: u64,
    file_bytes: u64,
    max_bytes: u64,
    next_seq: u64,
    acked: u64,
    /// Messages dropped because the spool was full (since start).
    pub dropped: u64,
}

const LOG: &str = "spool.log";
const ACKED: &str = "spool.acked";

fn line_len(e: &Entry) -> u64 {
    (e.frame.len() + 24) as u64
}

impl Spool {
    /// Opens the spool in `dir`, keeping what was not acknowledged.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let acked: u64 = std::fs::read_to_string(dir.join(ACKED))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let mut entries = VecDeque::new();
        let mut last_seq = acked;
        if let Ok(f) = File::open(dir.join(LOG)) {
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.splitn(3, ' ');
                let (Some(seq), Some(kind), Some(frame)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    break;
                };
                let (Ok(seq), Some(kind)) = (seq.parse::<u64>(), Kind::from_tag(kind)) else {
                    break;
                };
                // A torn line fails to parse as a whole frame on the far
                // side; check the JSON here so it is dropped instead.
                if serde_json::from_str::<serde_json::Value>(frame).is_err() {
                    break;
                }
                last_seq = last_seq.max(seq);
                if seq > acked {
                    entries.push_back(Entry {
                        seq,
                        kind,
                        frame: frame.to_string(),
                    });
                }
            }
        }
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(LOG))?,
            bytes: entries.iter().map(line_len).sum(),
            file_bytes: 0,
            entries,
            max_bytes: max_bytes.max(4096),
            next_seq: last_seq + 1,
            acked,
            dropped: 0,
        };
        spool.rewrite()?;
        Ok(spool)
    }

    /// Appends a message: `make` builds the frame for the given sequence
    /// number. Returns the number.
    pub fn push(&mut self, kind: Kind, make: impl FnOnce(u64) -> String) -> std::io::Result<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = make(seq);
        let entry = Entry { seq, kind, frame };
        let line = format!("{} {} {}\n", seq, kind.tag(), entry.frame);
        self.file.write_all(line.as_bytes())?;
        self.file_bytes += line.len() as u64;
        self.bytes += line_len(&entry);
        self.entries.push_back(entry);
        if self.bytes > self.max_bytes {
            self.shed()?;
        }
        Ok(seq)
    }

    /// The control plane stored everything up to `seq`.
    pub fn ack(&mut self, seq: u64) -> std::io::Result<()> {
        if seq <= self.acked {
            return Ok(());
        }
        self.acked = seq;
        while self.entries.front().is_some_and(|e| e.seq <= seq) {
            if let Some(e) = self.entries.pop_front() {
                self.bytes -= line_len(&e);
            }
        }
        let tmp = self.dir.join("spool.acked.tmp");
        std::fs::write(&tmp, format!("{seq}\n"))?;
        std::fs::rename(&tmp, self.dir.join(ACKED))?;
        // Compact when the file is mostly acknowledged lines.
        if self.file_bytes > 1024 * 1024 && self.file_bytes > 4 * self.bytes {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Up to `max` entries after `seq`, in order (cloned, to send).
    pub fn after(&self, seq: u64, max: usize) -> Vec<Entry> {
        let start = self.entries.partition_point(|e| e.seq <= seq);
        self.entries.iter().skip(start).take(max).cloned().collect()
    }

    /// Unacknowledged messages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when everything was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Highest acknowledged sequence number.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Flushes the file to disk.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Drops the oldest reports and record batches (events only when
    /// nothing else is left) until 3/4 of the bound is used.
    fn shed(&mut self) -> std::io::Result<()> {
        let goal = self.max_bytes / 4 * 3;
        for pass in [false, true] {
            let mut keep = VecDeque::with_capacity(self.entries.len());
            while let Some(e) = self.entries.pop_front() {
                if self.bytes > goal && (pass || e.kind != Kind::Event) {
                    self.bytes -= line_len(&e);
                    self.dropped += 1;
                } else {
                    keep.push_back(e);
                }
            }
            self.entries = keep;
        }
        tracing::warn!("spool full: {} messages dropped so far", self.dropped);
        self.rewrite()
    }

    /// Writes the live entries to a new file and renames it over the log.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let tmp = self.dir.join("spool.log.tmp");
        let mut f = std::io::BufWriter::new(File::create(&tmp)?);
        let mut n = 0u64;
        for e in &self.entries {
            let line = format!("{} {} {}\n", e.seq, e.kind.tag(), e.frame);
            n += line.len() as u64;
            f.write_all(line.as_bytes())?;
        }
        f.flush()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(LOG))?;
        self.file = OpenOptions::new().append(true).open(self.dir.join(LOG))?;
        self.file_bytes = n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> String {
        format!("{{\"v\":1,\"msg\":{{\"seq\":{seq}}}}}")
    }

    #[test]
    fn survives_restart_and_sends_each_message_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut delivered = Vec::new();
        {
            let mut s = Spool::open(dir.path(), 1 << 20).expect("open");
            for _ in 0..10 {
                s.push(Kind::Event, frame).expect("push");
            }
            // The first four are sent and acknowledged, 5 and 6 sent but not acknowledged.
            delivered.extend(s.after(0, 4).iter().map(|e| e.seq));
            s.ack(4).expect("ack");
            assert_eq!(s.after(4, 2).len(), 2);
        } // agent restarts
        let mut s = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(s.len(), 6);
        let rest: Vec<u64> = s.after(s.acked(), 100).iter().map(|e| e.seq).collect();
        assert_eq!(rest, vec![5, 6, 7, 8, 9, 10]);
        delivered.extend(rest);
        s.ack(10).expect("ack");
        // New messages continue the numbering.
        assert_eq!(s.push(Kind::Report, frame).expect("push"), 11);
        assert_eq!(delivered, (1..=10).collect::<Vec<_>>());
        drop(s);
        let s = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(
            s.after(0, 100).iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![11]
        );
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = Spool::open(dir.path(), 1 << 20).expect("open");
            s.push(Kind::Event, frame).expect("push");
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG))
            .expect("open");
        f.write_all(b"2 e {\"v\":1,\"ms").expect("torn");
        drop(f);
        let mut s = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(s.len(), 1);
        assert_eq!(s.push(Kind::Event, frame).expect("push"), 2);
    }

    #[test]
    fn full_spool_sheds_reports_before_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(dir.path(), 8192).expect("open");
        for i in 0..200 {
            let kind = if i % 10 == 0 {
                Kind::Event
            } else {
                Kind::Report
            };
            s.push(kind, frame).expect("push");
        }
        assert!(s.dropped > 0);
        let kept = s.after(0, 1000);
        assert_eq!(kept.iter().filter(|e| e.kind == Kind::Event).count(), 20);
        assert!(kept.windows(2).all(|w| w[0].seq < w[1].seq));
        drop(s);
        assert_eq!(
            Spool::open(dir.path(), 8192).expect("reopen").len(),
            kept.len()
        );
    }
}
