//! A loopback stand-in for WSI command endpoints (used by `cp_push.rs` and
//! `cp_live.rs`): records every snapshot pushed to it, with when it came,
//! the path and the bearer token, and answers as a WSI does.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use usher_integration::eventually;

#[derive(Debug, Clone)]
pub struct Got {
    pub at: Instant,
    pub path: String,
    pub auth: String,
    pub body: Value,
}

#[derive(Default)]
pub struct Receiver {
    got: Mutex<Vec<Got>>,
    /// When set, the next push to this path is answered 409 with this
    /// current version.
    pub stale_once: Mutex<Option<(String, u64)>>,
}

impl Receiver {
    pub fn start() -> (Arc<Receiver>, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let rx = Arc::new(Receiver::default());
        let r = rx.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let r = r.clone();
                std::thread::spawn(move || r.serve(conn));
            }
        });
        (rx, port)
    }

    /// Serves requests on one (keep-alive) connection.
    fn serve(&self, conn: TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().expect("clone"));
        let mut out = conn;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (mut len, mut auth) = (0usize, String::new());
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        "authorization" => auth = v.trim().to_string(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let version = body["snapshot"]["version"].as_u64().unwrap_or(0);
            let stale = {
                let mut s = self.stale_once.lock().expect("lock");
                match s.take() {
                    Some((p, v)) if p == path => Some(v),
                    other => {
                        *s = other;
                        None
                    }
                }
            };
            let (status, answer) = match stale {
                Some(current) => (
                    "409 Conflict",
                    format!(r#"{{"error":"stale version","current":{current}}}"#),
                ),
                None => ("200 OK", format!(r#"{{"applied":{version}}}"#)),
            };
            if stale.is_none() {
                self.got.lock().expect("lock").push(Got {
                    at: Instant::now(),
                    path,
                    auth,
                    body,
                });
            }
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
            if out.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }

    pub fn all(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }

    /// Waits for a push to `path` received after `since` that satisfies `check`.
    pub fn wait_for(
        &self,
        path: &str,
        since: Instant,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Option<Got> {
        let mut found = None;
        eventually(limit, || {
            found = self
                .all(path)
                .into_iter()
                .find(|g| g.at >= since && check(&g.body["snapshot"]));
            found.is_some()
        });
        found
    }
}
