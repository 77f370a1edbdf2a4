//! Proxy mode: forward a request to the chosen server and stream the
//! answer back. The target is always a configured server URL.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use hyper::client::HttpConnector;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Body, Request, Response, StatusCode, Uri};

use super::door::Admitted;

/// The HTTP client every front door shares (keeps connections to servers).
pub type Client = hyper::Client<HttpConnector, Body>;

/// Time allowed for a server to start answering.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(30);

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

pub fn client() -> Client {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    hyper::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .build(http)
}

fn bad_gateway(server: &str, problem: &str) -> Response<Body> {
    let body = serde_json::json!({"error": format!("server {server} failed: {problem}"), "server": server});
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
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

/// Forwards `req` to `base` (a configured server URL) and streams the answer.
/// The concurrency slot is held until the answer's body has been sent.
pub async fn forward(
    client: &Client,
    server: &str,
    base: &str,
    remote: SocketAddr,
    req: Request<Body>,
    slot: Admitted,
) -> Response<Body> {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = usher_core::model::join_url(base, pq);
    let uri: Uri = match target.parse() {
        Ok(u) => u,
        Err(e) => return bad_gateway(server, &format!("bad target URL: {e}")),
    };
    if uri.scheme_str() != Some("http") {
        return bad_gateway(server, "only http:// servers can be proxied to");
    }
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(authority) = uri.authority() {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(HOST, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&remote.ip().to_string()) {
        parts
            .headers
            .append(HeaderName::from_static("x-forwarded-for"), v);
    }
    parts.uri = uri;
    let outgoing = Request::from_parts(parts, body);
    let answer = match tokio::time::timeout(BACKEND_TIMEOUT, client.request(outgoing)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::debug!("proxy to {server}: {e}");
            return bad_gateway(server, &e.to_string());
        }
        Err(_) => return bad_gateway(server, "no answer within 30 s"),
    };
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = Body::wrap_stream(body.map(move |chunk| {
        let _held = &slot;
        chunk
    }));
    Response::from_parts(parts, body)
}
