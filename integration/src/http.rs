//! The test side of HTTP: a client that never follows redirects, a call
//! that returns 4xx/5xx answers instead of failing, and raw requests for
//! what a client library would refuse to send.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::wire::read_message;

/// An HTTP client that never follows redirects, so tests see every 302.
pub fn http() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(10))
        .build()
}

/// What a test looks at in an answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Response {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends a request and returns (status, headers-lookup, body) whatever the
/// status (ureq treats 4xx/5xx as errors; tests want to see them).
pub fn call(req: ureq::Request, body: Option<&str>) -> Response {
    let resp = send(req, body);
    let status = resp.status();
    let location = resp.header("location").map(str::to_string);
    let content_type = resp.header("content-type").map(str::to_string);
    let body = resp.into_string().unwrap_or_default();
    Response {
        status,
        location,
        content_type,
        body,
    }
}

fn send(req: ureq::Request, body: Option<&str>) -> ureq::Response {
    let res = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    }
}

/// A GET through a fresh connection (so a proxy may give it to any worker).
pub fn fresh_get(url: &str) -> Response {
    call(http().get(url).set("connection", "close"), None)
}

/// A GET through a fresh connection: (status, location, x-usher-worker).
pub fn fresh_get_worker(url: &str) -> (u16, Option<String>, Option<String>) {
    let resp = send(http().get(url).set("connection", "close"), None);
    let status = resp.status();
    let location = resp.header("location").map(str::to_string);
    let worker = resp.header("x-usher-worker").map(str::to_string);
    (status, location, worker)
}

/// GETs `path` of an admin API on 127.0.0.1:`port` with a bearer token;
/// asserts 200 and returns the JSON.
pub fn get_json(port: u16, path_and_query: &str, token: &str) -> serde_json::Value {
    let r = call(
        http()
            .get(&format!("http://127.0.0.1:{port}{path_and_query}"))
            .set("authorization", &format!("Bearer {token}")),
        None,
    );
    assert_eq!(r.status, 200, "{path_and_query}: {}", r.body);
    r.json()
}

/// Sends raw bytes as one HTTP/1.1 request and returns (status, Location, body).
pub fn raw_request(port: u16, request: &str) -> (u16, Option<String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let answer = read_message(&mut BufReader::new(s)).unwrap_or_default();
    let status = answer.second_word().parse().unwrap_or(0);
    let location = answer.header("location").map(str::to_string);
    let body = String::from_utf8_lossy(&answer.body).into_owned();
    (status, location, body)
}
