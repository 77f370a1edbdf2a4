//! The benchmark's load generator: a closed loop of N users, each a task
//! on the tokio runtime with its own keep-alive connection (a hyper client
//! holding one idle connection), sending `GET /` as soon as its previous
//! answer has arrived. It records the latency of every request, answered
//! or not, and who served each 2xx answer (the demo app names itself in
//! its page), and stops at a request count, a deadline or a stop flag,
//! whichever comes first.
//!
//! Why not wrk: it reports latency per connection from a sample and
//! misreported the first scenario's p50 as 60 ms where it was 9.4 ms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::HttpBody;
use hyper::client::HttpConnector;
use hyper::{Body, Client, Request, Uri};

use crate::acts::hello_from;

/// A request without an answer after this long is an error (every front
/// door here gives up on a server after 3 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer body read; the demo app's page is under 100 bytes.
const BODY_CAP: usize = 64 * 1024;

/// How much load: users in flight, requests in all, and the time cap.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub in_flight: usize,
    pub requests: u64,
    pub cap: Duration,
}

/// What the users saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Every request's latency (µs), answered or failed, in no order.
    pub latencies_us: Vec<u64>,
    /// 2xx answers by the server that named itself (`?` when none did).
    pub served_by: BTreeMap<String, u64>,
    /// Answers that were not 2xx, by status.
    pub non_2xx: BTreeMap<u16, u64>,
    /// Requests without an answer (refused, reset, timed out).
    pub errors: u64,
    /// The first few errors and non-2xx answers, for the report.
    pub samples: Vec<String>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// The time cap stopped it before its request count.
    pub capped: bool,
}

impl Outcome {
    /// Requests sent.
    pub fn sent(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// 2xx answers.
    pub fn ok(&self) -> u64 {
        self.served_by.values().sum()
    }

    fn note(&mut self, what: String) {
        if self.samples.len() < 5 {
            self.samples.push(what);
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.served_by {
            *self.served_by.entry(k).or_default() += v;
        }
        for (k, v) in other.non_2xx {
            *self.non_2xx.entry(k).or_default() += v;
        }
        self.errors += other.errors;
        for s in other.samples {
            self.note(s);
        }
    }
}

/// Runs the closed loop against `uri` until `plan.requests` were sent,
/// `plan.cap` passed, or `stop` is set; requests under way then finish.
/// Must run inside a tokio runtime.
pub async fn closed_loop(uri: Uri, plan: Plan, stop: Arc<AtomicBool>) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + plan.cap;
    let users: Vec<_> = (0..plan.in_flight.max(1))
        .map(|_| {
            let (uri, next, stop) = (uri.clone(), next.clone(), stop.clone());
            tokio::spawn(user(uri, next, plan.requests, deadline, stop))
        })
        .collect();
    let mut out = Outcome::default();
    for u in users {
        match u.await {
            Ok(o) => out.merge(o),
            Err(e) => {
                out.errors += 1;
                out.note(format!("client task failed: {e}"));
            }
        }
    }
    out.elapsed = start.elapsed();
    out.capped = out.sent() < plan.requests && Instant::now() >= deadline;
    out
}

/// One user: its own connection, one request at a time.
async fn user(
    uri: Uri,
    next: Arc<AtomicU64>,
    requests: u64,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector> =
        Client::builder().pool_max_idle_per_host(1).build(connector);
    let mut out = Outcome::default();
    while !stop.load(Ordering::Relaxed)
        && Instant::now() < deadline
        && next.fetch_add(1, Ordering::Relaxed) < requests
    {
        let t0 = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, get(&client, &uri)).await;
        out.latencies_us.push(t0.elapsed().as_micros() as u64);
        match answer {
            Ok(Ok((status, body))) if (200..300).contains(&status) => {
                let who = hello_from(&body).unwrap_or_else(|| "?".into());
                *out.served_by.entry(who).or_default() += 1;
            }
            Ok(Ok((status, body))) => {
                *out.non_2xx.entry(status).or_default() += 1;
                out.note(format!("{status} {}", body.trim()));
            }
            Ok(Err(e)) => {
                out.errors += 1;
                out.note(e);
            }
            Err(_) => {
                out.errors += 1;
                out.note(format!("no answer within {REQUEST_TIMEOUT:?}"));
            }
        }
    }
    out
}

/// One GET: (status, body as text), the body read whole up to [`BODY_CAP`].
async fn get(client: &Client<HttpConnector>, uri: &Uri) -> Result<(u16, String), String> {
    let req = Request::get(uri.clone())
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let mut body = res.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("body: {e}"))?;
        if bytes.len() + chunk.len() > BODY_CAP {
            return Err(format!("body above {BODY_CAP} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}
