//! The one HTTP recorder: a loopback server that keeps every request it
//! gets (when, what, and how it answered) and answers as the test says.
//! The stand-ins for a web server interface and for the agent's batch
//! receiver ([`crate::stand_ins`]) are answer rules on top of it.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::wire::{read_message, Message};

/// A request as the recorder read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    fn from_message(m: Message) -> Request {
        let mut words = m.start.split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let path = words.next().unwrap_or("").to_string();
        Request {
            method,
            path,
            headers: m.headers,
            body: m.body,
        }
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How the recorder answers a request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub content_type: Option<&'static str>,
    pub body: String,
}

impl Reply {
    /// `200 OK` with no body.
    pub fn ok_empty() -> Reply {
        Reply {
            status: 200,
            reason: "OK",
            content_type: None,
            body: String::new(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, reason: &'static str, body: String) -> Reply {
        Reply {
            status,
            reason,
            content_type: Some("application/json"),
            body,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        if let Some(ct) = self.content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut out = head.into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// One request the recorder got, and the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub request: Request,
    pub status: u16,
}

type Answer = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running recorder on 127.0.0.1 (it serves until the test process ends).
#[derive(Clone)]
pub struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    /// Binds an ephemeral loopback port and answers every request with
    /// `answer` (keep-alive connections, one thread each).
    pub fn start(answer: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let sink = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (sink, answer) = (sink.clone(), answer.clone());
                std::thread::spawn(move || serve(conn, &sink, &*answer));
            }
        });
        Recorder { port, seen }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request so far, in arrival order.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Serves requests on one (keep-alive) connection; a request is recorded
/// before its answer is sent, so a client that saw the answer finds it.
fn serve(conn: TcpStream, seen: &Mutex<Vec<Recorded>>, answer: &Answer) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Some(msg) = read_message(&mut reader) {
        if msg.body.len() < msg.content_length() {
            return;
        }
        let request = Request::from_message(msg);
        let reply = answer(&request);
        seen.lock().expect("lock").push(Recorded {
            at: Instant::now(),
            request,
            status: reply.status,
        });
        if out.write_all(&reply.to_bytes()).is_err() {
            return;
        }
    }
}
