//! The one HTTP/1.1 message reader of the harness: a start line, headers,
//! and a `Content-Length` body. The recorder reads requests with it and
//! [`raw_request`](crate::http::raw_request) reads answers with it.
//!
//! It reads only what the tests need: no chunked bodies, no trailers.

use std::io::{BufRead, Read};

/// Bodies bigger than this are refused (a test never sends one).
pub const MAX_BODY: usize = 16 << 20;

/// One HTTP/1.1 message as read from the wire.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// `GET /path HTTP/1.1` or `HTTP/1.1 302 Found`, without the line end.
    pub start: String,
    /// Header names and values as sent (values trimmed).
    pub headers: Vec<(String, String)>,
    /// The body: `Content-Length` bytes, or fewer if the peer hung up.
    pub body: Vec<u8>,
}

impl Message {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The second word of the start line: a request's target, or an
    /// answer's status code.
    pub fn second_word(&self) -> &str {
        self.start.split_whitespace().nth(1).unwrap_or("")
    }

    /// The `Content-Length` (0 when absent or unreadable).
    pub fn content_length(&self) -> usize {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Reads one message; `None` when the peer hung up (or a read failed)
/// before the end of the headers.
pub fn read_message(reader: &mut impl BufRead) -> Option<Message> {
    let mut start = String::new();
    if reader.read_line(&mut start).unwrap_or(0) == 0 {
        return None;
    }
    let mut msg = Message {
        start: start.trim_end().to_string(),
        ..Message::default()
    };
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            msg.headers
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = msg.content_length().min(MAX_BODY);
    let mut body = Vec::with_capacity(len);
    // A short body (the peer hung up) is kept as it came.
    reader.take(len as u64).read_to_end(&mut body).ok();
    msg.body = body;
    Some(msg)
}
