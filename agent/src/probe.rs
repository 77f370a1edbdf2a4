//! Probe requests: `GET <url><probe_path>?usher-probe=<seq>` to each local
//! server. The answer must have the configured status and contain the
//! configured text, within the timeout; otherwise the server counts as
//! failed. The queue figures come from finding the same request in the
//! server's record stream (see `records.rs` and `usher_core::probe`).

use std::time::{Duration, Instant};

use hyper::client::HttpConnector;
use hyper::{Body, Client, Request};

use crate::config::ServerConfig;

/// Largest probe answer body read.
const MAX_BODY: usize = 64 * 1024;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// The answer was as expected.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Round trip as the agent saw it.
    pub rtt: Duration,
}

/// The probe URL for sequence number `seq`.
pub fn probe_url(base: &str, path: &str, seq: u64) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!(
        "{}{path}{sep}{}{seq}",
        base.trim_end_matches('/'),
        usher_core::probe::PROBE_PARAM
    )
}

/// Checks an answer against the server's expectations.
pub fn check(server: &ServerConfig, status: u16, body: &[u8]) -> Result<(), String> {
    if status != server.probe_status {
        return Err(format!("status {status}, expected {}", server.probe_status));
    }
    if !server.probe_body.is_empty() {
        let text = String::from_utf8_lossy(body);
        if !text.contains(&server.probe_body) {
            return Err(format!("body does not contain {:?}", server.probe_body));
        }
    }
    Ok(())
}

/// Sends one probe.
pub async fn send(client: &Client<HttpConnector>, server: &ServerConfig, seq: u64) -> ProbeOutcome {
    let started = Instant::now();
    let url = probe_url(&server.url, &server.probe_path, seq);
    let timeout = Duration::from_millis(server.probe_timeout_ms);
    let result = tokio::time::timeout(timeout, async {
        let req = Request::get(&url)
            .header("user-agent", "usher-agent-probe")
            .body(Body::empty())
            .map_err(|e| format!("bad probe url {url}: {e}"))?;
        let res = client.request(req).await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let mut body = res.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = hyper::body::HttpBody::data(&mut body).await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            bytes
                .extend_from_slice(&chunk[..chunk.len().min(MAX_BODY - bytes.len().min(MAX_BODY))]);
            if bytes.len() >= MAX_BODY {
                break;
            }
        }
        check(server, status, &bytes)
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {} ms", server.probe_timeout_ms)));
    ProbeOutcome {
        ok: result.is_ok(),
        error: result.err(),
        rtt: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerConfig {
        let cfg = crate::config::AgentConfig::parse(
            "data_dir = \"/tmp\"\ncontrol_url = \"ws://127.0.0.1:9\"\ntoken = \"test-token\"\n[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/\"\nprobe_body = \"ok a\"\n",
        )
        .expect("cfg");
        cfg.servers[0].clone()
    }

    #[test]
    fn urls_and_checks() {
        assert_eq!(
            probe_url("http://h:1/", "/health", 5),
            "http://h:1/health?usher-probe=5"
        );
        assert_eq!(
            probe_url("http://h:1", "/h?x=1", 5),
            "http://h:1/h?x=1&usher-probe=5"
        );
        let s = server();
        assert!(check(&s, 200, b"ok a\n").is_ok());
        assert!(check(&s, 500, b"ok a").unwrap_err().contains("500"));
        assert!(check(&s, 200, b"db down").unwrap_err().contains("ok a"));
    }

    #[tokio::test]
    async fn refused_connection_fails_fast() {
        let s = server();
        let out = send(&Client::new(), &s, 1).await;
        assert!(!out.ok);
        assert!(out.error.is_some());
        assert!(out.rtt < Duration::from_millis(800));
    }
}
