//! The line format of `spool.log` (see [`super`]): writing a line, and
//! reading lines back at open, stopping at the first torn or garbled one.

use std::io::{BufRead, Read, Write};

use super::{Kind, Slot};

impl Kind {
    /// The kind's letter: lower case for a text frame, upper for binary.
    fn tag(self, binary: bool) -> u8 {
        let t = match self {
            Kind::Event => b'e',
            Kind::Report => b'r',
            Kind::Records => b'b',
        };
        if binary {
            t.to_ascii_uppercase()
        } else {
            t
        }
    }

    /// The kind and whether the frame is binary.
    fn from_tag(t: &[u8]) -> Option<(Kind, bool)> {
        let [t] = t else { return None };
        let kind = match t.to_ascii_lowercase() {
            b'e' => Kind::Event,
            b'r' => Kind::Report,
            b'b' => Kind::Records,
            _ => return None,
        };
        Some((kind, t.is_ascii_uppercase()))
    }
}

/// Writes one line; returns the frame's offset relative to the line start.
pub(super) fn write_line(
    out: &mut impl Write,
    seq: u64,
    kind: Kind,
    binary: bool,
    frame: &[u8],
) -> std::io::Result<u64> {
    let tag = char::from(kind.tag(binary));
    let head = if binary {
        format!("{seq} {tag} {} ", frame.len())
    } else {
        format!("{seq} {tag} ")
    };
    out.write_all(head.as_bytes())?;
    out.write_all(frame)?;
    out.write_all(b"\n")?;
    Ok(head.len() as u64)
}

/// One line of `spool.log` as read at open: its slot (offset relative to
/// the line start) and its length with the newline.
pub(super) struct Line {
    pub(super) slot: Slot,
    pub(super) len: u64,
}

/// Reads the next word (up to a space) into `buf`; its length with the space.
fn read_word(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Option<u64> {
    buf.clear();
    let n = r.read_until(b' ', buf).ok()?;
    (buf.pop() == Some(b' ')).then_some(n as u64)
}

/// Reads the next line; `None` at the end of the file or at a torn or
/// garbled line (everything after it is ignored).
pub(super) fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Option<Line> {
    let mut head = read_word(r, buf)?;
    let seq: u64 = std::str::from_utf8(buf).ok()?.parse().ok()?;
    head += read_word(r, buf)?;
    let (kind, binary) = Kind::from_tag(buf)?;
    if binary {
        head += read_word(r, buf)?;
        let len: u32 = std::str::from_utf8(buf).ok()?.parse().ok()?;
        let with_newline = u64::from(len) + 1;
        buf.clear();
        // `take`: a garbled length allocates only what the file holds.
        let got = r.by_ref().take(with_newline).read_to_end(buf).ok()?;
        if got as u64 != with_newline {
            return None;
        }
    } else {
        buf.clear();
        r.read_until(b'\n', buf).ok()?;
    }
    if buf.pop() != Some(b'\n') {
        return None;
    }
    // A torn JSON line fails to parse as a whole frame on the far side;
    // check it here so it is dropped instead. (A binary line's length
    // already shows whether it is whole.)
    if !binary && serde_json::from_slice::<serde::de::IgnoredAny>(buf).is_err() {
        return None;
    }
    let len = u32::try_from(buf.len()).ok()?;
    Some(Line {
        slot: Slot {
            seq,
            kind,
            binary,
            offset: head,
            len,
        },
        len: head + u64::from(len) + 1,
    })
}
