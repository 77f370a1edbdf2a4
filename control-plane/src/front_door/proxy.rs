//! Proxy mode: forward a request to the chosen server and stream the
//! answer back. The target is always a configured server URL. The wait for
//! the answer head is bounded (`[front_door] upstream_timeout_ms`, connect
//! included: then 504), and every outcome is booked with the door's
//! passive health. A GET or HEAD without a body whose connection failed
//! (nothing was sent) is tried once more on another server; one whose
//! kept-alive connection the server closed before answering (as nginx does
//! to idle connections when it reloads) is tried once more on the same
//! server, and books nothing against it unless that fails too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hyper::client::HttpConnector;
use hyper::header::{
    HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING,
};
use hyper::http::request::Parts;
use hyper::{Body, Method, Request, Response, StatusCode, Uri};

use super::config::FrontDoorConfig;
use super::door::{Admitted, Decision, Door, InFlight};
use super::health::Outcome;

/// The HTTP client every front door shares (keeps connections to servers).
pub type Client = hyper::Client<HttpConnector, Body>;

/// The shared client and the bound on a server's answer head.
#[derive(Clone)]
pub struct Proxy {
    client: Client,
    timeout: Duration,
}

/// Headers that belong to one hop and are not forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

impl Proxy {
    pub fn new(config: &FrontDoorConfig) -> Proxy {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout()));
        let client = hyper::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .build(http);
        Proxy {
            client,
            timeout: config.upstream_timeout(),
        }
    }
}

fn gateway_error(status: StatusCode, server: &str, problem: &str) -> Response<Body> {
    let body = serde_json::json!({"error": format!("server {server} failed: {problem}"), "server": server});
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn bad_gateway(server: &str, problem: &str) -> Response<Body> {
    gateway_error(StatusCode::BAD_GATEWAY, server, problem)
}

fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

/// Why one attempt got no answer.
enum Failed {
    /// Not a server's fault (a bad configured URL): 502, nothing booked.
    Target(String),
    /// The server's: booked with the door's passive health.
    Server(Outcome, String),
    /// The connection closed before the answer head: a server that closed
    /// a kept-alive connection as the request went out (a reload), or one
    /// that died. Booked as [`Outcome::Broken`] unless a retry answers.
    Closed(String),
}

/// Sends one request to `base` + `pq` and waits (bounded) for the answer head.
async fn attempt(
    proxy: &Proxy,
    base: &str,
    pq: &str,
    mut parts: Parts,
    body: Body,
) -> Result<Response<Body>, Failed> {
    let target = usher_core::model::join_url(base, pq);
    let uri: Uri = target
        .parse()
        .map_err(|e| Failed::Target(format!("bad target URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(Failed::Target(
            "only http:// servers can be proxied to".into(),
        ));
    }
    if let Some(authority) = uri.authority() {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(HOST, v);
        }
    }
    parts.uri = uri;
    let outgoing = Request::from_parts(parts, body);
    match tokio::time::timeout(proxy.timeout, proxy.client.request(outgoing)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) if e.is_connect() => Err(Failed::Server(Outcome::ConnectFailed, e.to_string())),
        Ok(Err(e)) if e.is_incomplete_message() => Err(Failed::Closed(e.to_string())),
        Ok(Err(e)) => Err(Failed::Server(Outcome::Broken, e.to_string())),
        Err(_) => Err(Failed::Server(
            Outcome::TimedOut,
            format!("no answer within {} ms", proxy.timeout.as_millis()),
        )),
    }
}

/// A copy of a request head without a body, for a second attempt.
fn head_copy(parts: &Parts) -> Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

/// Forwards `req` to the ticket's server (a configured server URL) and
/// streams the answer. The concurrency slot is held until the answer's body
/// has been sent; the ticket (the request in flight at its server) is
/// closed when the answer head arrives or the attempt fails.
pub async fn forward(
    door: &Arc<Door>,
    proxy: &Proxy,
    ticket: InFlight,
    remote: SocketAddr,
    req: Request<Body>,
    slot: Admitted,
) -> Response<Body> {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(v) = HeaderValue::from_str(&remote.ip().to_string()) {
        parts
            .headers
            .append(HeaderName::from_static("x-forwarded-for"), v);
    }
    let bodiless = matches!(parts.method, Method::GET | Method::HEAD)
        && !parts.headers.contains_key(CONTENT_LENGTH)
        && !parts.headers.contains_key(TRANSFER_ENCODING);
    let again = bodiless.then(|| head_copy(&parts));
    let server = ticket.server.clone();
    let base = ticket.base.clone();
    let failure = match attempt(proxy, &base, &pq, parts, body).await {
        Ok(answer) => return answered(ticket, answer, slot),
        Err(f) => f,
    };
    let (outcome, problem, again) = match (failure, again) {
        (Failed::Target(problem), _) => return bad_gateway(&server, &problem),
        (Failed::Closed(problem), Some(head)) => {
            tracing::debug!("proxy to {server}: {problem}; trying again");
            // A request without a body is safe to send twice.
            return match attempt(proxy, &base, &pq, head, Body::empty()).await {
                Ok(answer) => answered(ticket, answer, slot),
                Err(f) => failed_attempt(ticket, f),
            };
        }
        (Failed::Closed(problem), None) => {
            ticket.report(Outcome::Broken);
            return failed(&server, Outcome::Broken, &problem);
        }
        (Failed::Server(outcome, problem), again) => (outcome, problem, again),
    };
    tracing::debug!("proxy to {server}: {problem}");
    ticket.report(outcome);
    if let (Outcome::ConnectFailed, Some(head)) = (outcome, again) {
        // Nothing was sent: one more try, on another server.
        if let Decision::Proxy(other) = door.decide(&pq, super::service::draws()) {
            if other.server != server {
                let other_base = other.base.clone();
                return match attempt(proxy, &other_base, &pq, head, Body::empty()).await {
                    Ok(answer) => answered(other, answer, slot),
                    Err(f) => failed_attempt(other, f),
                };
            }
        }
    }
    failed(&server, outcome, &problem)
}

/// Books a failed last attempt on its ticket and answers 502/504.
fn failed_attempt(ticket: InFlight, failure: Failed) -> Response<Body> {
    let server = ticket.server.clone();
    match failure {
        // Not the server's fault: only the in-flight count is returned.
        Failed::Target(p) => bad_gateway(&server, &p),
        Failed::Server(o, p) => {
            ticket.report(o);
            failed(&server, o, &p)
        }
        Failed::Closed(p) => {
            ticket.report(Outcome::Broken);
            failed(&server, Outcome::Broken, &p)
        }
    }
}

/// 504 when the server did not answer in time, 502 otherwise.
fn failed(server: &str, outcome: Outcome, problem: &str) -> Response<Body> {
    let status = match outcome {
        Outcome::TimedOut => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    gateway_error(status, server, problem)
}

/// Books the answer's status and streams it back, holding the slot.
fn answered(ticket: InFlight, answer: Response<Body>, slot: Admitted) -> Response<Body> {
    ticket.report(Outcome::Answered(answer.status().as_u16()));
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = Body::wrap_stream(body.map(move |chunk| {
        let _held = &slot;
        chunk
    }));
    Response::from_parts(parts, body)
}
