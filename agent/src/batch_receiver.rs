//! The loopback endpoint where web server interfaces without a ring (the
//! Envoy filter) POST binary record batches (`usher_core::record` format).
//!
//! `POST /usher/records[/<server>]` with `Authorization: Bearer <token>`.
//! The server is the path's last segment, else the server whose
//! `endpoints` list names the record's `server_endpoint`, else the only
//! configured server without a ring. Answers 200 `{"accepted":N,"bad":M}`,
//! 400 for a body that is not a batch, 401 for a missing or wrong token
//! (compared in constant time by `usher_core::token`),
//! 413 for a body above the cap. Bad records are counted and skipped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Buf;
use futures_util::StreamExt;
use serde_json::json;
use usher_core::record::decode_batch;
use usher_core::token::bearer_matches;
use warp::http::StatusCode;
use warp::reply::{json as json_reply, with_status, Json, WithStatus};
use warp::Filter;

use crate::lock;
use crate::records::RecordSink;

/// How received records map to servers.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// (server_endpoint value, server index).
    pub endpoints: Vec<(String, usize)>,
    /// Server used when nothing else says.
    pub fallback: Option<usize>,
}

fn answer(status: StatusCode, v: serde_json::Value) -> WithStatus<Json> {
    with_status(json_reply(&v), status)
}

async fn read_capped(
    mut body: impl futures_util::Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
    cap: u64,
) -> Result<Vec<u8>, StatusCode> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        if out.len() as u64 + chunk.remaining() as u64 > cap {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// Serves the receiver until `shutdown`; returns the bound address at once.
pub fn serve(
    listen: SocketAddr,
    token: String,
    max_body: u64,
    sink: Arc<Mutex<RecordSink>>,
    routing: Routing,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    if !listen.ip().is_loopback() {
        return Err(format!(
            "receiver.listen {listen}: must be a loopback address"
        ));
    }
    let token = Arc::new(token);
    let routing = Arc::new(routing);
    let route = warp::post()
        .and(warp::path("usher"))
        .and(warp::path("records"))
        .and(warp::path::tail())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::stream())
        .then(move |tail: warp::path::Tail, auth: Option<String>, body| {
            let (token, sink, routing) = (token.clone(), sink.clone(), routing.clone());
            async move {
                if !bearer_matches(auth.as_deref().map(str::as_bytes), token.as_bytes()) {
                    return answer(StatusCode::UNAUTHORIZED, json!({"error": "authorization: missing or wrong token"}));
                }
                let bytes = match read_capped(body, max_body).await {
                    Ok(b) => b,
                    Err(status) => {
                            return answer(status, json!({"error": format!("body: larger than {max_body} bytes or unreadable")}));
                    }
                };
                let batch = match decode_batch(&bytes) {
                    Ok(b) => b,
                    Err(e) => {
                            return answer(StatusCode::BAD_REQUEST, json!({"error": format!("body: {e}")}));
                    }
                };
                let named = tail.as_str().trim_matches('/');
                let mut guard = lock(&sink);
                let by_path = if named.is_empty() { None } else { guard.index(named) };
                if !named.is_empty() && by_path.is_none() {
                    drop(guard);
                    return answer(StatusCode::NOT_FOUND, json!({"error": format!("path: no server named {named}")}));
                }
                let mut unknown = 0u64;
                for rec in &batch.records {
                    let idx = by_path
                        .or_else(|| {
                            rec.server_endpoint.as_deref().and_then(|ep| {
                                routing.endpoints.iter().find(|(e, _)| e == ep).map(|(_, i)| *i)
                            })
                        })
                        .or(routing.fallback);
                    match idx {
                        Some(i) => guard.push(i, rec),
                        None => unknown += 1,
                    }
                }
                guard.unknown += unknown;
                if let Some(i) = by_path.or(routing.fallback) {
                    guard.bad(i, batch.bad as u64);
                }
                drop(guard);
                answer(StatusCode::OK, json!({"accepted": batch.records.len() as u64 - unknown, "bad": batch.bad as u64 + unknown}))
            }
        })
        .recover(|_rej: warp::Rejection| async move {
            Ok::<_, Infallible>(answer(StatusCode::NOT_FOUND, json!({"error": "path: POST /usher/records[/<server>]"})))
        });
    let (addr, fut) = warp::serve(route)
        .try_bind_with_graceful_shutdown(listen, shutdown)
        .map_err(|e| format!("receiver.listen {listen}: {e}"))?;
    Ok((addr, tokio::spawn(fut)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The receiver checks the header with `usher_core::token` (constant
    /// time, tested there); this pins how it calls it.
    #[test]
    fn token_compare_takes_the_whole_token() {
        let ok = |h: Option<&str>| bearer_matches(h.map(str::as_bytes), b"sekrit-token");
        assert!(ok(Some("Bearer sekrit-token")));
        assert!(!ok(Some("Bearer sekrit-tokem")));
        assert!(!ok(Some("Bearer sekrit-token2")));
        assert!(!ok(Some("Bearer sekrit")));
        assert!(!ok(Some("sekrit-token")));
        assert!(!ok(None));
    }
}
