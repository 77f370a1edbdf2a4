//! Relays a command (a snapshot) to a web server interface's command
//! endpoint (`command_url`, with `command_token` as a bearer token): one
//! POST with a 5 s limit. The answer text (at most 4 KiB of it) goes back
//! to the control plane in the command result; a refusal in the endpoint's
//! error form (`usher_core::command::ErrorReply`) is told as its message.

use std::time::Duration;

use usher_core::command::{Command as WsiCommand, ErrorReply};

use crate::config::ServerConfig;

/// How long the web server interface may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Most answer text kept.
const MAX_TEXT: usize = 4096;

/// The POST for `cmd` to `server`'s command endpoint.
pub fn request(
    server: &ServerConfig,
    cmd: &WsiCommand,
) -> Result<hyper::Request<hyper::Body>, String> {
    let url = server
        .command_url
        .as_deref()
        .ok_or_else(|| format!("server {}: no command_url configured", server.name))?;
    let body = serde_json::to_vec(cmd).map_err(|e| e.to_string())?;
    let mut req = hyper::Request::post(url).header("content-type", "application/json");
    if let Some(t) = &server.command_token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(hyper::Body::from(body))
        .map_err(|e| format!("command_url {url}: {e}"))
}

/// What an answer means: its text on success, else the status and the
/// refusal's message (the raw text when it is not the error form).
pub fn answer(url: &str, status: hyper::StatusCode, body: &[u8]) -> Result<String, String> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(MAX_TEXT)]).into_owned();
    if status.is_success() {
        return Ok(text());
    }
    match ErrorReply::from_json(body) {
        Some(e) => Err(format!("{url}: {status} {e}")),
        None => Err(format!("{url}: {status} {}", text())),
    }
}

/// Largest command-endpoint answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Sends `cmd` to `server`'s command endpoint; returns the answer text.
pub async fn relay(server: &ServerConfig, cmd: &WsiCommand) -> Result<String, String> {
    let req = request(server, cmd)?;
    let url = req.uri().to_string();
    let res = tokio::time::timeout(TIMEOUT, hyper::Client::new().request(req))
        .await
        .map_err(|_| format!("{url}: no answer within 5 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = res.status();
    let bytes = crate::util::read_capped(res.into_body(), MAX_ANSWER_BYTES)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    answer(&url, status, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    fn server(extra: &str) -> ServerConfig {
        let text = format!(
            "data_dir = \"/tmp\"\ncontrol_url = \"ws://127.0.0.1:9\"\ntoken = \"test-token\"\n[[servers]]\nname = \"web1\"\nurl = \"http://127.0.0.1:1\"\n{extra}"
        );
        crate::config::AgentConfig::parse(&text)
            .expect("cfg")
            .servers[0]
            .clone()
    }

    fn cmd() -> WsiCommand {
        WsiCommand::Echo { text: "hi".into() }
    }

    #[test]
    fn posts_json_with_the_token() {
        let s = server(
            "command_url = \"http://127.0.0.1:9/usher/command\"\ncommand_token = \"wsi-token\"\n",
        );
        let req = request(&s, &cmd()).expect("request");
        assert_eq!(req.method(), hyper::Method::POST);
        assert_eq!(req.uri(), "http://127.0.0.1:9/usher/command");
        assert_eq!(req.headers()["authorization"], "Bearer wsi-token");
        assert_eq!(req.headers()["content-type"], "application/json");
        let err = request(&server(""), &cmd()).expect_err("no url");
        assert!(err.contains("no command_url"), "{err}");
    }

    #[test]
    fn answers_are_text_or_an_error_with_the_status() {
        assert_eq!(
            answer("u", StatusCode::OK, b"{\"ok\":true}"),
            Ok("{\"ok\":true}".into())
        );
        let err = answer("u", StatusCode::CONFLICT, b"stale").expect_err("409");
        assert!(err.contains("409") && err.contains("stale"), "{err}");
        let body = br#"{"error":"stale version","current":12}"#;
        let err = answer("u", StatusCode::CONFLICT, body).expect_err("409");
        assert_eq!(err, "u: 409 Conflict stale version (current 12)");
        let long = vec![b'x'; 10_000];
        assert_eq!(
            answer("u", StatusCode::OK, &long).map(|t| t.len()),
            Ok(MAX_TEXT)
        );
    }
}
