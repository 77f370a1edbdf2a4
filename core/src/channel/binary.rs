//! Binary WebSocket frames of the channel: record batches.
//!
//! A record batch is the bulk of what an agent sends, so it travels as a
//! binary frame with a fixed header instead of base64 inside JSON. Layout
//! (integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | protocol version ([`PROTOCOL_VERSION`], 2) |
//! | 1 | 1 | kind: [`KIND_RECORDS`] (`0x52`, `R`); others are reserved |
//! | 2 | 8 | `seq`: the agent's sequence number (acknowledged like any other) |
//! | 10 | 2 | `n`: length of the server name in bytes (1..=65535) |
//! | 12 | n | server name, UTF-8 |
//! | 12 + n | rest | the batch: a [`crate::record`] batch (`USB1` …), unchanged |
//!
//! The version comes first so a reader can refuse a frame of another
//! version before it reads anything else. Decoding never panics and never
//! copies: garbage gives a [`FrameError`], a good frame borrows from the
//! bytes. The manager checks nothing inside the batch; the logging database
//! decodes it later.

use super::{FrameError, MAX_FRAME_BYTES, PROTOCOL_VERSION};

/// Kind byte of a record batch frame.
pub const KIND_RECORDS: u8 = b'R';
/// Bytes before the server name: version, kind, seq, name length.
pub const RECORDS_HEADER_BYTES: usize = 12;

// The version is one byte on the wire.
const WIRE_VERSION: u8 = {
    assert!(PROTOCOL_VERSION <= u8::MAX as u32);
    PROTOCOL_VERSION as u8
};

/// A record batch frame, decoded (borrowing from the frame's bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsFrame<'a> {
    pub seq: u64,
    /// The server the records are of.
    pub server: &'a str,
    /// A `usher_core::record` batch.
    pub batch: &'a [u8],
}

/// Encodes a record batch frame. Fails only for an empty or over-long
/// server name, or when the frame would exceed [`MAX_FRAME_BYTES`].
pub fn encode_records(seq: u64, server: &str, batch: &[u8]) -> Result<Vec<u8>, FrameError> {
    let name_len = u16::try_from(server.len()).map_err(|_| FrameError::ServerName)?;
    if name_len == 0 {
        return Err(FrameError::ServerName);
    }
    let len = RECORDS_HEADER_BYTES + server.len() + batch.len();
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge);
    }
    let mut out = Vec::with_capacity(len);
    out.push(WIRE_VERSION);
    out.push(KIND_RECORDS);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&name_len.to_be_bytes());
    out.extend_from_slice(server.as_bytes());
    out.extend_from_slice(batch);
    Ok(out)
}

/// Decodes a binary frame as a record batch, checking size, version, kind
/// and the server name.
pub fn decode_records(bytes: &[u8]) -> Result<RecordsFrame<'_>, FrameError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge);
    }
    let truncated = |need: usize| FrameError::Truncated {
        need,
        got: bytes.len(),
    };
    let (&version, rest) = bytes
        .split_first()
        .ok_or_else(|| truncated(RECORDS_HEADER_BYTES))?;
    if version != WIRE_VERSION {
        return Err(FrameError::Version(u32::from(version)));
    }
    let Some((head, rest)) = rest.split_first_chunk::<{ RECORDS_HEADER_BYTES - 1 }>() else {
        return Err(truncated(RECORDS_HEADER_BYTES));
    };
    let [kind, s0, s1, s2, s3, s4, s5, s6, s7, n0, n1] = *head;
    if kind != KIND_RECORDS {
        return Err(FrameError::Kind(kind));
    }
    let seq = u64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
    let name_len = usize::from(u16::from_be_bytes([n0, n1]));
    if rest.len() < name_len {
        return Err(truncated(RECORDS_HEADER_BYTES + name_len));
    }
    let (name, batch) = rest.split_at(name_len);
    let server = std::str::from_utf8(name).map_err(|_| FrameError::ServerName)?;
    if server.is_empty() {
        return Err(FrameError::ServerName);
    }
    Ok(RecordsFrame { seq, server, batch })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_layout_is_as_documented() {
        let f = encode_records(0x0102_0304_0506_0708, "web1", b"USB1xy").expect("encode");
        assert_eq!(
            f,
            b"\x02R\x01\x02\x03\x04\x05\x06\x07\x08\x00\x04web1USB1xy".to_vec()
        );
        let d = decode_records(&f).expect("decode");
        assert_eq!(
            d,
            RecordsFrame {
                seq: 0x0102_0304_0506_0708,
                server: "web1",
                batch: b"USB1xy"
            }
        );
        // An empty batch is a frame too (the logging database judges it).
        let f = encode_records(1, "a", b"").expect("encode");
        assert_eq!(decode_records(&f).map(|d| d.batch.len()), Ok(0));
    }

    #[test]
    fn bad_frames_give_typed_errors() {
        let good = encode_records(9, "web1", b"batch").expect("encode");
        assert_eq!(
            decode_records(b""),
            Err(FrameError::Truncated { need: 12, got: 0 })
        );
        assert_eq!(
            decode_records(&good[..7]),
            Err(FrameError::Truncated { need: 12, got: 7 })
        );
        // Header complete, name cut short.
        assert_eq!(
            decode_records(&good[..14]),
            Err(FrameError::Truncated { need: 16, got: 14 })
        );
        let mut v1 = good.clone();
        v1[0] = 1;
        assert_eq!(decode_records(&v1), Err(FrameError::Version(1)));
        // The version is checked first, even on a one-byte frame.
        assert_eq!(decode_records(&[3]), Err(FrameError::Version(3)));
        let mut kind = good.clone();
        kind[1] = b'X';
        assert_eq!(decode_records(&kind), Err(FrameError::Kind(b'X')));
        let mut name = good.clone();
        name[12] = 0xff;
        assert_eq!(decode_records(&name), Err(FrameError::ServerName));
        let mut empty = good.clone();
        empty[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(decode_records(&empty), Err(FrameError::ServerName));
        assert_eq!(encode_records(1, "", b"x"), Err(FrameError::ServerName));
        let long = "s".repeat(70_000);
        assert_eq!(encode_records(1, &long, b"x"), Err(FrameError::ServerName));
        let huge = vec![0u8; MAX_FRAME_BYTES];
        assert_eq!(encode_records(1, "a", &huge), Err(FrameError::TooLarge));
        let mut too_big = good;
        too_big.resize(MAX_FRAME_BYTES + 1, 0);
        assert_eq!(decode_records(&too_big), Err(FrameError::TooLarge));
    }

    proptest! {
        #[test]
        fn round_trip(
            seq in any::<u64>(),
            server in "\\PC{1,80}",
            batch in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let f = encode_records(seq, &server, &batch).expect("encode");
            prop_assert_eq!(f.len(), RECORDS_HEADER_BYTES + server.len() + batch.len());
            let d = decode_records(&f).expect("decode");
            prop_assert_eq!(d, RecordsFrame { seq, server: &server, batch: &batch });
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            std::hint::black_box(decode_records(&bytes)).ok();
            // Also past the version and kind checks.
            let mut framed = vec![2, b'R'];
            framed.extend_from_slice(&bytes);
            std::hint::black_box(decode_records(&framed)).ok();
        }

        #[test]
        fn a_cut_frame_is_truncated_or_a_shorter_batch(cut in 0usize..40) {
            let f = encode_records(5, "server-one", b"USB1 some batch").expect("encode");
            let cut = cut.min(f.len());
            let name_end = RECORDS_HEADER_BYTES + "server-one".len();
            match decode_records(&f[..cut]) {
                Ok(d) => prop_assert!(cut >= name_end && d.batch == &f[name_end..cut]),
                Err(FrameError::Truncated { got, .. }) => prop_assert!(got == cut && cut < name_end),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
