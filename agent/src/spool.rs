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
//!
//! The frames live on disk only: in memory the spool keeps an index (sequence
//! number, kind, where the frame is in the file), about 32 bytes a message,
//! so a full 64 MiB spool costs the agent's memory next to nothing. Frames
//! are read back when they are sent. All of this is blocking file I/O: the
//! agent runs a [`Spool`] on a thread of its own (see [`crate::outbox`]).
//!
//! Size: about a third of this file is its unit tests (crash recovery,
//! compaction and ack cases need the real files side by side).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
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

/// Where one message's frame is in `spool.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    seq: u64,
    kind: Kind,
    /// Byte offset of the frame (after `<seq> <kind> `).
    offset: u64,
    len: u32,
}

/// The spool. Every call does blocking file I/O: own it from one thread.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    file: File,
    slots: VecDeque<Slot>,
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

/// What a message counts against the bound (its line plus bookkeeping).
fn slot_len(s: &Slot) -> u64 {
    u64::from(s.len) + 24
}

/// Writes one line; returns the frame's offset relative to the line start.
fn write_line(out: &mut impl Write, seq: u64, kind: Kind, frame: &[u8]) -> std::io::Result<u64> {
    let head = format!("{seq} {} ", kind.tag());
    out.write_all(head.as_bytes())?;
    out.write_all(frame)?;
    out.write_all(b"\n")?;
    Ok(head.len() as u64)
}

/// Mode of the spool's files: they hold request lines and cookies.
const PRIVATE: u32 = 0o600;

/// Creates (or empties) a file with mode 0600, also when it existed.
fn private_file(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(PRIVATE))?;
    Ok(f)
}

impl Spool {
    /// Opens the spool in `dir`, keeping what was not acknowledged. Its
    /// files are mode 0600 (a spool left readable by an older agent is
    /// rewritten private here).
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let acked: u64 = std::fs::read_to_string(dir.join(ACKED))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let mut slots = VecDeque::new();
        let mut last_seq = acked;
        if let Ok(f) = File::open(dir.join(LOG)) {
            let mut pos = 0u64;
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                let line_start = pos;
                pos += line.len() as u64 + 1;
                let mut parts = line.splitn(3, ' ');
                let (Some(seq_text), Some(kind), Some(frame)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    break;
                };
                let (Ok(seq), Some(kind)) = (seq_text.parse::<u64>(), Kind::from_tag(kind)) else {
                    break;
                };
                // A torn line fails to parse as a whole frame on the far
                // side; check the JSON here so it is dropped instead.
                if serde_json::from_str::<serde::de::IgnoredAny>(frame).is_err() {
                    break;
                }
                last_seq = last_seq.max(seq);
                if seq > acked {
                    let Ok(len) = u32::try_from(frame.len()) else {
                        break;
                    };
                    slots.push_back(Slot {
                        seq,
                        kind,
                        offset: line_start + (line.len() - frame.len()) as u64,
                        len,
                    });
                }
            }
        }
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            file: OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .mode(PRIVATE)
                .open(dir.join(LOG))?,
            bytes: slots.iter().map(slot_len).sum(),
            file_bytes: 0,
            slots,
            max_bytes: max_bytes.max(4096),
            next_seq: last_seq + 1,
            acked,
            dropped: 0,
        };
        spool.rewrite()?;
        match std::fs::set_permissions(dir.join(ACKED), std::fs::Permissions::from_mode(PRIVATE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(spool)
    }

    /// Appends a message: `make` builds the frame for the given sequence
    /// number. Returns the number.
    pub fn push(&mut self, kind: Kind, make: impl FnOnce(u64) -> String) -> std::io::Result<u64> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = make(seq);
        let len = u32::try_from(frame.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame above 4 GiB")
        })?;
        // One write call per line: a crash leaves at most a torn last line.
        let mut line = Vec::with_capacity(frame.len() + 24);
        let head = write_line(&mut line, seq, kind, frame.as_bytes())?;
        drop(frame);
        self.file.write_all(&line)?;
        let slot = Slot {
            seq,
            kind,
            offset: self.file_bytes + head,
            len,
        };
        self.file_bytes += line.len() as u64;
        self.bytes += slot_len(&slot);
        self.slots.push_back(slot);
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
        while self.slots.front().is_some_and(|s| s.seq <= seq) {
            if let Some(s) = self.slots.pop_front() {
                self.bytes -= slot_len(&s);
            }
        }
        let tmp = self.dir.join("spool.acked.tmp");
        private_file(&tmp)?.write_all(format!("{seq}\n").as_bytes())?;
        std::fs::rename(&tmp, self.dir.join(ACKED))?;
        // Compact when the file is mostly acknowledged lines.
        if self.file_bytes > 1024 * 1024 && self.file_bytes > 4 * self.bytes {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Up to `max` entries after `seq`, in order, read back from the file
    /// (to send). A read error is logged and ends the list early; the
    /// caller asks again later.
    pub fn after(&self, seq: u64, max: usize) -> Vec<Entry> {
        let start = self.slots.partition_point(|s| s.seq <= seq);
        let mut out = Vec::new();
        for slot in self.slots.iter().skip(start).take(max) {
            match self.read(slot) {
                Ok(frame) => out.push(Entry {
                    seq: slot.seq,
                    kind: slot.kind,
                    frame,
                }),
                Err(e) => {
                    tracing::error!("spool: reading message {}: {e}", slot.seq);
                    break;
                }
            }
        }
        out
    }

    fn read(&self, slot: &Slot) -> std::io::Result<String> {
        let mut buf = vec![0u8; slot.len as usize];
        self.file.read_exact_at(&mut buf, slot.offset)?;
        String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Unacknowledged messages.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when everything was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Highest acknowledged sequence number.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Highest sequence number handed out (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
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
            let mut keep = VecDeque::with_capacity(self.slots.len());
            while let Some(s) = self.slots.pop_front() {
                if self.bytes > goal && (pass || s.kind != Kind::Event) {
                    self.bytes -= slot_len(&s);
                    self.dropped += 1;
                } else {
                    keep.push_back(s);
                }
            }
            self.slots = keep;
        }
        tracing::warn!("spool full: {} messages dropped so far", self.dropped);
        self.rewrite()
    }

    /// Copies the live messages to a new file, frame by frame (never the
    /// whole spool in memory), and renames it over the log.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let tmp = self.dir.join("spool.log.tmp");
        let mut f = std::io::BufWriter::new(private_file(&tmp)?);
        let mut n = 0u64;
        let mut buf = Vec::new();
        let mut moved = VecDeque::with_capacity(self.slots.len());
        for slot in &self.slots {
            buf.resize(slot.len as usize, 0);
            self.file.read_exact_at(&mut buf, slot.offset)?;
            let head = write_line(&mut f, slot.seq, slot.kind, &buf)?;
            moved.push_back(Slot {
                offset: n + head,
                ..*slot
            });
            n += head + buf.len() as u64 + 1;
        }
        f.flush()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(LOG))?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.dir.join(LOG))?;
        self.slots = moved;
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

    #[test]
    fn frames_stay_on_disk_and_survive_compaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(dir.path(), 64 << 20).expect("open");
        let big = |seq: u64| {
            format!(
                "{{\"v\":1,\"msg\":{{\"seq\":{seq},\"pad\":\"{}\"}}}}",
                "x".repeat(1000)
            )
        };
        for _ in 0..3000 {
            s.push(Kind::Records, big).expect("push");
        }
        assert_eq!(s.after(10, 1)[0].frame, big(11));
        // Acknowledging most of it compacts the file; the rest reads back.
        s.ack(2900).expect("ack");
        let size = std::fs::metadata(dir.path().join(LOG)).expect("log").len();
        assert!(size < 200 * 1100, "compacted to {size} bytes");
        let rest = s.after(2900, 1000);
        assert_eq!(rest.len(), 100);
        assert!(rest.iter().all(|e| e.frame == big(e.seq)));
        // Appends after the compaction land where the index says.
        let seq = s.push(Kind::Event, frame).expect("push");
        assert_eq!(s.after(seq - 1, 1)[0].frame, frame(seq));
        drop(s);
        let s = Spool::open(dir.path(), 64 << 20).expect("reopen");
        assert_eq!(s.len(), 101);
        assert_eq!(
            s.after(2999, 5)
                .iter()
                .map(|e| e.frame.clone())
                .collect::<Vec<_>>(),
            vec![big(3000), frame(3001)]
        );
    }

    #[test]
    fn spool_files_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777
        };
        {
            let mut s = Spool::open(dir.path(), 1 << 20).expect("open");
            s.push(Kind::Records, frame).expect("push");
            s.push(Kind::Records, frame).expect("push");
            s.ack(1).expect("ack");
        }
        assert_eq!((mode(LOG), mode(ACKED)), (0o600, 0o600));
        // A spool an older agent left readable is made private at open.
        for name in [LOG, ACKED] {
            std::fs::set_permissions(
                dir.path().join(name),
                std::fs::Permissions::from_mode(0o644),
            )
            .expect("chmod");
        }
        let mut s = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!((mode(LOG), mode(ACKED)), (0o600, 0o600));
        s.ack(2).expect("ack");
        assert_eq!(mode(ACKED), 0o600);
    }
}
