//! The spool: every sequenced message (report, record batch, event) is
//! appended to a file in the agent's data dir before it is sent, and removed
//! when the control plane acknowledges it. While the control plane is away
//! the spool grows (bounded); after a reconnect everything not yet
//! acknowledged is sent again, in order. The control plane stores each
//! `(agent, seq)` once, so this gives exactly-once in its logging database,
//! also across an agent restart.
//!
//! Files: `spool.log`, one line per message, and `spool.acked` holding the
//! highest acknowledged sequence number. A line is `<seq> <kind> <frame>\n`
//! for a JSON text frame (kind `e` event, `r` report) or
//! `<seq> <KIND> <length> <frame>\n` for a binary frame (kind `B`, a record
//! batch; the length says where the frame ends, as its bytes may hold
//! anything). A torn last line (crash while writing) is ignored. Lines an
//! agent of protocol version 1 left (kind `b` was a JSON record batch then)
//! are read and sent as they are: a version-2 manager skips them (logged,
//! counted), and the next acknowledgement takes them out of the spool.
//!
//! The frames live on disk only: in memory the spool keeps an index (sequence
//! number, kind, where the frame is in the file), about 32 bytes a message,
//! so a full 64 MiB spool costs the agent's memory next to nothing. Frames
//! are read back when they are sent. All of this is blocking file I/O: the
//! agent runs a [`Spool`] on a thread of its own (see [`crate::outbox`]).
//!
//! Tests are in `spool/tests.rs` (crash recovery, compaction and ack cases
//! need the real files side by side).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use line::{read_line, write_line};

/// Kind of a spooled message (what goes first when the spool is full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Event,
    Report,
    Records,
}

/// A framed message, ready to send as one WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A JSON frame (`usher_core::channel::encode`).
    Text(String),
    /// A binary frame (`usher_core::channel::encode_records`).
    Binary(Vec<u8>),
}

impl Frame {
    fn bytes(&self) -> &[u8] {
        match self {
            Frame::Text(t) => t.as_bytes(),
            Frame::Binary(b) => b,
        }
    }

    fn is_binary(&self) -> bool {
        matches!(self, Frame::Binary(_))
    }
}

/// One spooled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub kind: Kind,
    /// The framed message, ready to send.
    pub frame: Frame,
}

/// Where one message's frame is in `spool.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    seq: u64,
    kind: Kind,
    binary: bool,
    /// Byte offset of the frame (after `<seq> <kind> [<length>] `).
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
            let (mut r, mut buf, mut pos) = (BufReader::new(f), Vec::new(), 0u64);
            while let Some(line) = read_line(&mut r, &mut buf) {
                last_seq = last_seq.max(line.slot.seq);
                if line.slot.seq > acked {
                    slots.push_back(Slot {
                        offset: pos + line.slot.offset,
                        ..line.slot
                    });
                }
                pos += line.len;
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
    /// number. Returns the number. When `make` fails the number is not used.
    pub fn push(
        &mut self,
        kind: Kind,
        make: impl FnOnce(u64) -> std::io::Result<Frame>,
    ) -> std::io::Result<u64> {
        let seq = self.next_seq;
        let frame = make(seq)?;
        self.next_seq += 1;
        let binary = frame.is_binary();
        let len = u32::try_from(frame.bytes().len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame above 4 GiB")
        })?;
        // One write call per line: a crash leaves at most a torn last line.
        let mut line = Vec::with_capacity(frame.bytes().len() + 32);
        let head = write_line(&mut line, seq, kind, binary, frame.bytes())?;
        drop(frame);
        self.file.write_all(&line)?;
        let slot = Slot {
            seq,
            kind,
            binary,
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

    fn read(&self, slot: &Slot) -> std::io::Result<Frame> {
        let mut buf = vec![0u8; slot.len as usize];
        self.file.read_exact_at(&mut buf, slot.offset)?;
        if slot.binary {
            return Ok(Frame::Binary(buf));
        }
        String::from_utf8(buf)
            .map(Frame::Text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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
            let head = write_line(&mut f, slot.seq, slot.kind, slot.binary, &buf)?;
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

mod line;
#[cfg(test)]
mod tests;
