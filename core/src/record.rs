//! The request record: what a web server interface reports per request, and
//! its compact binary form (one encoder, one decoder, used by every host).
//!
//! Encoding of one record: a format byte (`RECORD_FORMAT`), the field mask as
//! a LEB128 varint, then each present field in bit order: text as varint
//! length + UTF-8 bytes, numbers as varints, flags as one byte. A batch is
//! `BATCH_MAGIC` followed by varint-length-prefixed records. Decoding never
//! panics: garbage gives a `DecodeError`.
//!
//! Size: the field table, encoder and decoder of one wire format belong
//! together; about 100 lines are tests.

use serde::{Deserialize, Serialize};

/// Format byte at the start of every encoded record.
pub const RECORD_FORMAT: u8 = 1;
/// Magic bytes at the start of a batch.
pub const BATCH_MAGIC: &[u8; 4] = b"USB1";
/// Longest text field kept; longer values are cut (at a char boundary).
pub const MAX_TEXT: usize = 4096;

macro_rules! fields {
    ($( $bit:literal $variant:ident $name:literal $field:ident : $kind:ident; )*) => {
        /// One field a web server interface can report.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Field { $( $variant = $bit, )* }

        impl Field {
            /// Every field, in bit order.
            pub const ALL: &'static [Field] = &[$( Field::$variant, )*];

            /// The name used in configs (`usher_record status method ...`).
            pub fn name(self) -> &'static str {
                match self { $( Field::$variant => $name, )* }
            }

            /// Looks a field up by its config name.
            pub fn from_name(name: &str) -> Option<Field> {
                match name { $( $name => Some(Field::$variant), )* _ => None }
            }

            /// The field's bit in a `FieldMask`.
            pub fn bit(self) -> u32 { 1u32 << (self as u32) }

            /// How the field is encoded.
            pub fn kind(self) -> FieldKind {
                match self { $( Field::$variant => fields!(@kind $kind), )* }
            }
        }

        /// A decoded request record; `None` for fields not reported.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct RequestRecord { $( pub $field: Option<fields!(@ty $kind)>, )* }

        impl RequestRecord {
            /// Mask of the fields this record holds.
            pub fn mask(&self) -> FieldMask {
                let mut m = 0u32;
                $( if self.$field.is_some() { m |= Field::$variant.bit(); } )*
                FieldMask(m)
            }

            /// The same record with only the fields in `mask`.
            pub fn project(&self, mask: FieldMask) -> RequestRecord {
                RequestRecord { $( $field: if mask.has(Field::$variant) { self.$field.clone() } else { None }, )* }
            }

            /// Appends the encoding of the fields in `mask` that are present.
            pub fn encode_into(&self, mask: FieldMask, out: &mut Vec<u8>) {
                let mask = FieldMask(mask.0 & self.mask().0);
                out.push(RECORD_FORMAT);
                put_varint(out, u64::from(mask.0));
                $( if mask.has(Field::$variant) { if let Some(v) = &self.$field { fields!(@put $kind out v); } } )*
            }

            /// Decodes one record (the whole of `bytes`).
            pub fn decode(bytes: &[u8]) -> Result<RequestRecord, DecodeError> {
                let mut r = Reader { bytes, at: 0 };
                let format = r.byte()?;
                if format != RECORD_FORMAT {
                    return Err(DecodeError::Format(format));
                }
                let mask = r.varint()?;
                if mask >> Field::ALL.len() != 0 {
                    return Err(DecodeError::UnknownFields(mask));
                }
                let mask = FieldMask(mask as u32);
                let mut rec = RequestRecord::default();
                $( if mask.has(Field::$variant) { rec.$field = Some(fields!(@get $kind r)); } )*
                if r.at != bytes.len() {
                    return Err(DecodeError::Trailing(bytes.len() - r.at));
                }
                Ok(rec)
            }
        }
    };
    (@kind text) => { FieldKind::Text };
    (@kind num) => { FieldKind::Num };
    (@kind flag) => { FieldKind::Flag };
    (@ty text) => { String };
    (@ty num) => { u64 };
    (@ty flag) => { bool };
    (@put text $out:ident $v:ident) => { put_text($out, $v) };
    (@put num $out:ident $v:ident) => { put_varint($out, *$v) };
    (@put flag $out:ident $v:ident) => { $out.push(u8::from(*$v)) };
    (@get text $r:ident) => { $r.text()? };
    (@get num $r:ident) => { $r.varint()? };
    (@get flag $r:ident) => { $r.flag()? };
}

fields! {
    0 ServerEndpoint "server_endpoint" server_endpoint: text;
    1 ClientEndpoint "client_endpoint" client_endpoint: text;
    2 ClientHost "client_host" client_host: text;
    3 UserName "user_name" user_name: text;
    4 AuthType "auth_type" auth_type: text;
    5 AuthDbPath "auth_db_path" auth_db_path: text;
    6 RequestLine "request_line" request_line: text;
    7 ContentPath "content_path" content_path: text;
    8 Accept "accept" accept: text;
    9 Method "method" method: text;
    10 UserAgent "user_agent" user_agent: text;
    11 Connection "connection" connection: text;
    12 Pragma "pragma" pragma: text;
    13 Status "status" status: num;
    14 Protocol "protocol" protocol: text;
    15 LastModified "last_modified" last_modified: num;
    16 ContentLength "content_length" content_length: num;
    17 ContentType "content_type" content_type: text;
    18 StartTime "start_time" start_time_us: num;
    19 ProcessingTime "processing_time" processing_time_us: num;
    20 Cookies "cookies" cookies: text;
    21 Referer "referer" referer: text;
    22 RedirectLocation "redirect_location" redirect_location: text;
    23 Aborted "aborted" aborted: flag;
    24 QueueDelay "queue_delay" queue_delay_us: num;
    25 LoggedAt "logged_at" logged_at_us: num;
}

/// Which fields a web server interface reports: bit `i` is `Field` `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldMask(pub u32);

impl FieldMask {
    /// Every field (what an encoder may write; not what `all` selects).
    pub const ALL: FieldMask = FieldMask((1u32 << 26) - 1);

    /// What the config name `all` selects: every field except `cookies`.
    /// Cookie values are session secrets; they are recorded only when an
    /// operator names `cookies` (e.g. `usher_record all cookies;`).
    pub const ALL_BUT_COOKIES: FieldMask =
        FieldMask(Self::ALL.0 & !(1u32 << Field::Cookies as u32));

    /// True when `field` is selected.
    pub fn has(self, field: Field) -> bool {
        self.0 & field.bit() != 0
    }

    /// Builds a mask from config names; the error is the first unknown name.
    /// `all` selects every field but `cookies` ([`FieldMask::ALL_BUT_COOKIES`]);
    /// `cookies` must be named to be recorded.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<FieldMask, String> {
        let mut m = 0;
        for n in names {
            if n == "all" {
                m |= FieldMask::ALL_BUT_COOKIES.0;
            } else {
                m |= Field::from_name(n).ok_or_else(|| n.to_string())?.bit();
            }
        }
        Ok(FieldMask(m))
    }

    /// Names of the selected fields, in bit order.
    pub fn names(self) -> Vec<&'static str> {
        Field::ALL
            .iter()
            .filter(|f| self.has(**f))
            .map(|f| f.name())
            .collect()
    }
}

/// Why bytes are not a record or a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record ends early")]
    Truncated,
    #[error("unknown record format {0}")]
    Format(u8),
    #[error("field mask {0:#x} names unknown fields")]
    UnknownFields(u64),
    #[error("varint longer than 64 bits")]
    Varint,
    #[error("text field is not UTF-8")]
    Utf8,
    #[error("text field longer than {MAX_TEXT} bytes")]
    TooLong,
    #[error("flag byte is {0}, not 0 or 1")]
    Flag(u8),
    #[error("{0} bytes after the record")]
    Trailing(usize),
    #[error("batch does not start with the magic bytes")]
    BatchMagic,
}

/// Appends `v` as a LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    put_varint(out, end as u64);
    out.extend_from_slice(&s.as_bytes()[..end]);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.at).ok_or(DecodeError::Truncated)?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(DecodeError::Varint);
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Varint)
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        let len = self.varint()?;
        if len > MAX_TEXT as u64 {
            return Err(DecodeError::TooLong);
        }
        let len = len as usize;
        let end = self.at.checked_add(len).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        std::str::from_utf8(slice)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Utf8)
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::Flag(b)),
        }
    }
}

/// How a field is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Num,
    Flag,
}

/// A field value borrowed from an encoded record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Text(&'a str),
    Num(u64),
    Flag(bool),
}

impl<'a> Reader<'a> {
    fn text_ref(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.varint()?;
        if len > MAX_TEXT as u64 {
            return Err(DecodeError::TooLong);
        }
        let end = self
            .at
            .checked_add(len as usize)
            .ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        std::str::from_utf8(slice).map_err(|_| DecodeError::Utf8)
    }
}

/// Visits the fields of one encoded record in bit order without copying
/// (for readers that need a few fields at high rates). Makes the same
/// checks as [`RequestRecord::decode`]; on an error some fields may already
/// have been visited.
pub fn visit_fields<'a>(
    bytes: &'a [u8],
    mut each: impl FnMut(Field, FieldValue<'a>),
) -> Result<(), DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.byte()?;
    if format != RECORD_FORMAT {
        return Err(DecodeError::Format(format));
    }
    let mask = r.varint()?;
    if mask >> Field::ALL.len() != 0 {
        return Err(DecodeError::UnknownFields(mask));
    }
    let mask = FieldMask(mask as u32);
    for &f in Field::ALL {
        if mask.has(f) {
            let v = match f.kind() {
                FieldKind::Text => FieldValue::Text(r.text_ref()?),
                FieldKind::Num => FieldValue::Num(r.varint()?),
                FieldKind::Flag => FieldValue::Flag(r.flag()?),
            };
            each(f, v);
        }
    }
    if r.at != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - r.at));
    }
    Ok(())
}

/// Builds a batch of encoded records in a reusable buffer.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: usize,
    scratch: Vec<u8>,
}

impl Default for BatchWriter {
    fn default() -> Self {
        let mut buf = Vec::with_capacity(8 * 1024);
        buf.extend_from_slice(BATCH_MAGIC);
        BatchWriter {
            buf,
            count: 0,
            scratch: Vec::with_capacity(512),
        }
    }
}

impl BatchWriter {
    /// Appends one record with the fields in `mask`.
    pub fn push(&mut self, record: &RequestRecord, mask: FieldMask) {
        self.scratch.clear();
        record.encode_into(mask, &mut self.scratch);
        self.push_encoded_scratch();
    }

    /// Appends one already encoded record.
    pub fn push_encoded(&mut self, encoded: &[u8]) {
        put_varint(&mut self.buf, encoded.len() as u64);
        self.buf.extend_from_slice(encoded);
        self.count += 1;
    }

    fn push_encoded_scratch(&mut self) {
        put_varint(&mut self.buf, self.scratch.len() as u64);
        self.buf.extend_from_slice(&self.scratch);
        self.count += 1;
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no record was pushed since the last `take`.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Returns the batch bytes and starts a new batch.
    pub fn take(&mut self) -> Vec<u8> {
        self.count = 0;
        let mut fresh = Vec::with_capacity(self.buf.capacity());
        fresh.extend_from_slice(BATCH_MAGIC);
        std::mem::replace(&mut self.buf, fresh)
    }
}

/// Encodes records into one batch.
pub fn encode_batch(records: &[RequestRecord], mask: FieldMask) -> Vec<u8> {
    let mut w = BatchWriter::default();
    for r in records {
        w.push(r, mask);
    }
    w.take()
}

/// The records of a batch, and how many could not be decoded (skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedBatch {
    pub records: Vec<RequestRecord>,
    pub bad: usize,
}

/// Decodes a batch: bad records are counted and skipped; a broken length
/// prefix ends the batch and counts as one bad record.
pub fn decode_batch(bytes: &[u8]) -> Result<DecodedBatch, DecodeError> {
    let body = bytes
        .strip_prefix(BATCH_MAGIC.as_slice())
        .ok_or(DecodeError::BatchMagic)?;
    let mut r = Reader { bytes: body, at: 0 };
    let mut out = DecodedBatch::default();
    while r.at < body.len() {
        let Ok(len) = r.varint() else {
            out.bad += 1;
            break;
        };
        let end = match usize::try_from(len).ok().and_then(|l| r.at.checked_add(l)) {
            Some(end) if end <= body.len() => end,
            _ => {
                out.bad += 1;
                break;
            }
        };
        match RequestRecord::decode(&body[r.at..end]) {
            Ok(rec) => out.records.push(rec),
            Err(_) => out.bad += 1,
        }
        r.at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn full() -> RequestRecord {
        RequestRecord {
            server_endpoint: Some("127.0.0.1:8081".into()),
            client_endpoint: Some("127.0.0.1:50000".into()),
            method: Some("GET".into()),
            request_line: Some("GET /cart?x=1 HTTP/1.1".into()),
            status: Some(200),
            processing_time_us: Some(12_345),
            start_time_us: Some(1_790_000_000_000_000),
            aborted: Some(false),
            cookies: Some("sid=é".into()),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_and_projection() {
        let r = full();
        let mask = FieldMask::from_names(["method", "status", "processing_time"]).expect("names");
        let mut buf = Vec::new();
        r.encode_into(mask, &mut buf);
        let back = RequestRecord::decode(&buf).expect("decodes");
        assert_eq!(back.mask(), mask);
        assert_eq!(back.status, Some(200));
        assert_eq!(back.request_line, None);
        assert_eq!(FieldMask::from_names(["nope"]), Err("nope".to_string()));
        assert_eq!(Field::ALL.len(), 26);
    }

    #[test]
    fn all_means_every_field_but_cookies() {
        let all = FieldMask::from_names(["all"]).expect("all");
        assert_eq!(all, FieldMask::ALL_BUT_COOKIES);
        assert!(!all.has(Field::Cookies), "cookies only when named");
        assert!(Field::ALL
            .iter()
            .all(|f| *f == Field::Cookies || all.has(*f)));
        assert_eq!(all.names().len(), Field::ALL.len() - 1);
        let with = FieldMask::from_names(["all", "cookies"]).expect("all cookies");
        assert_eq!(with, FieldMask::ALL);
        let only = FieldMask::from_names(["status", "cookies"]).expect("named");
        assert_eq!(only.names(), vec!["status", "cookies"]);
        let mut buf = Vec::new();
        full().encode_into(all, &mut buf);
        let back = RequestRecord::decode(&buf).expect("decodes");
        assert_eq!(back.cookies, None);
        assert!(full().cookies.is_some() && back.request_line.is_some());
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(RequestRecord::decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(RequestRecord::decode(&[9]), Err(DecodeError::Format(9)));
        assert!(RequestRecord::decode(&[
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err());
        assert!(decode_batch(b"nope").is_err());
    }

    #[test]
    fn batch_skips_bad_records() {
        let mut w = BatchWriter::default();
        w.push(&full(), FieldMask::ALL);
        w.push_encoded(&[1, 0x80]); // truncated varint
        w.push(&full(), FieldMask(1));
        let out = decode_batch(&w.take()).expect("batch");
        assert_eq!(out.records.len(), 2);
        assert_eq!(out.bad, 1);
        assert!(w.is_empty());
    }

    fn arb_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("\\PC{0,40}")
    }

    prop_compose! {
        fn arb_record()(a in arb_text(), b in arb_text(), c in arb_text(), n in proptest::option::of(any::<u64>()),
                        m in proptest::option::of(any::<u64>()), f in proptest::option::of(any::<bool>()), d in arb_text()) -> RequestRecord {
            RequestRecord { server_endpoint: a, user_agent: b, cookies: c, status: n, queue_delay_us: m, aborted: f, referer: d, ..Default::default() }
        }
    }

    proptest! {
        #[test]
        fn encode_decode_is_identity_for_every_mask(rec in arb_record(), mask in 0u32..(1 << 26)) {
            let mut buf = Vec::new();
            rec.encode_into(FieldMask(mask), &mut buf);
            prop_assert_eq!(RequestRecord::decode(&buf).expect("decodes"), rec.project(FieldMask(mask)));
        }

        #[test]
        fn visit_agrees_with_decode(rec in arb_record(), mask in 0u32..(1 << 26), cut in 0usize..64) {
            let mut buf = Vec::new();
            rec.encode_into(FieldMask(mask), &mut buf);
            let mut seen = RequestRecord::default();
            visit_fields(&buf, |f, v| match (f, v) {
                (Field::ServerEndpoint, FieldValue::Text(t)) => seen.server_endpoint = Some(t.to_string()),
                (Field::UserAgent, FieldValue::Text(t)) => seen.user_agent = Some(t.to_string()),
                (Field::Cookies, FieldValue::Text(t)) => seen.cookies = Some(t.to_string()),
                (Field::Referer, FieldValue::Text(t)) => seen.referer = Some(t.to_string()),
                (Field::Status, FieldValue::Num(n)) => seen.status = Some(n),
                (Field::QueueDelay, FieldValue::Num(n)) => seen.queue_delay_us = Some(n),
                (Field::Aborted, FieldValue::Flag(b)) => seen.aborted = Some(b),
                _ => {}
            }).expect("visits");
            prop_assert_eq!(seen, rec.project(FieldMask(mask)));
            let short = &buf[..buf.len().saturating_sub(cut)];
            prop_assert_eq!(visit_fields(short, |_, _| {}).is_ok(), RequestRecord::decode(short).is_ok());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            std::hint::black_box(RequestRecord::decode(&bytes)).ok();
            std::hint::black_box(visit_fields(&bytes, |_, _| {})).ok();
            let mut b = BATCH_MAGIC.to_vec();
            b.extend_from_slice(&bytes);
            std::hint::black_box(decode_batch(&b)).ok();
        }
    }
}
