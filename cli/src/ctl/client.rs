//! The admin API client `usher ctl` uses, and its clear errors.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_023 as rustls;
use serde_json::Value;

/// Why a call failed, worded for the operator.
#[derive(Debug)]
pub enum CtlError {
    /// Nothing answers at the URL.
    Unreachable { url: String, detail: String },
    /// 401: the token was refused.
    TokenRefused { url: String },
    /// 404 or another 4xx/5xx with the API's own message.
    Api { status: u16, message: String },
    /// Something answered, but not with the admin API's JSON (a front
    /// door's redirect, an HTML page).
    NotAdminApi {
        url: String,
        status: u16,
        content_type: String,
    },
    /// Anything on our side (no token, bad answer).
    Local(String),
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::Unreachable { url, detail } => {
                write!(f, "cannot reach the control plane at {url}: {detail}")
            }
            CtlError::TokenRefused { url } => write!(
                f,
                "token refused by the control plane at {url} (use --token-file <data_dir>/admin.token or USHER_TOKEN)"
            ),
            CtlError::Api { status, message } => write!(f, "{message} (HTTP {status})"),
            CtlError::NotAdminApi {
                url,
                status,
                content_type,
            } => write!(
                f,
                "{url} is not an usher admin API (HTTP {status}, {content_type}); \
                 --url or USHER_URL must be the control plane's [control] listen address"
            ),
            CtlError::Local(m) => f.write_str(m),
        }
    }
}

/// How long a call may take, unless it says otherwise.
const CALL_LIMIT: Duration = Duration::from_secs(15);

/// True when an answer is the admin API's own: every answer it gives,
/// errors included, is JSON.
fn is_api_answer(r: &ureq::Response) -> bool {
    r.header("content-type")
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// A refusal with the answer's own message: its JSON `error` (what every
/// usher endpoint sends), else the text as it came.
pub(super) fn api_error(status: u16, r: ureq::Response) -> CtlError {
    let text = r.into_string().unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or(text);
    CtlError::Api { status, message }
}

/// A connection to one control plane.
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client that trusts the compiled-in Mozilla roots for https.
    pub fn new(base: &str, token: String) -> Client {
        Client::with_builder(base, token, ureq::AgentBuilder::new())
    }

    /// A client that trusts only the CAs in `ca_file` (PEM) for https;
    /// without one, as [`Client::new`].
    pub fn with_ca_file(
        base: &str,
        token: String,
        ca_file: Option<&Path>,
    ) -> Result<Client, CtlError> {
        let Some(path) = ca_file else {
            return Ok(Client::new(base, token));
        };
        let bad = |e: String| CtlError::Local(format!("--ca-file: {e}"));
        let mut roots = rustls::RootCertStore::empty();
        for cert in usher_agent::tls::read_ca_certs(path).map_err(|e| bad(e.to_string()))? {
            roots.add(cert).map_err(|e| {
                bad(format!(
                    "{}: not a usable CA certificate: {e}",
                    path.display()
                ))
            })?;
        }
        // ring, named: the one provider compiled in (as in the agent and
        // the control plane).
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client::with_builder(
            base,
            token,
            ureq::AgentBuilder::new().tls_config(Arc::new(tls)),
        ))
    }

    fn with_builder(base: &str, token: String, builder: ureq::AgentBuilder) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent: builder.redirects(0).build(),
        }
    }

    fn not_api(&self, r: &ureq::Response) -> CtlError {
        CtlError::NotAdminApi {
            url: self.base.clone(),
            status: r.status(),
            content_type: r
                .header("content-type")
                .and_then(|t| t.split(';').next())
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "no content type".into()),
        }
    }

    /// Sends `method path` with an optional JSON body; returns the JSON answer.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CtlError> {
        self.call_within(method, path, body, CALL_LIMIT)
    }

    /// As [`Client::call`], waiting up to `limit` for the answer (for calls
    /// the control plane answers only after an agent did: process control).
    pub fn call_within(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        limit: Duration,
    ) -> Result<Value, CtlError> {
        let url = format!("{}/api/v1{path}", self.base);
        let req = self
            .agent
            .request(method, &url)
            .timeout(limit)
            .set("Authorization", &format!("Bearer {}", self.token));
        let res = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        match res {
            Ok(r) if is_api_answer(&r) && (200..300).contains(&r.status()) => r
                .into_json::<Value>()
                .map_err(|e| CtlError::Local(format!("the control plane sent a bad answer: {e}"))),
            // A redirect (`redirects(0)`) or a page: not the admin API.
            Ok(r) => Err(self.not_api(&r)),
            Err(ureq::Error::Status(_, r)) if !is_api_answer(&r) => Err(self.not_api(&r)),
            Err(ureq::Error::Status(401, _)) => Err(CtlError::TokenRefused {
                url: self.base.clone(),
            }),
            Err(ureq::Error::Status(status, r)) => Err(api_error(status, r)),
            Err(ureq::Error::Transport(t)) => Err(CtlError::Unreachable {
                url: self.base.clone(),
                detail: t.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Answers one request on a loopback port with `response`; returns
    /// the base URL.
    fn answer_once(response: &'static str) -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                if let Err(e) = s.write_all(response.as_bytes()) {
                    eprintln!("test server: {e}");
                }
            }
        });
        format!("http://{addr}")
    }

    fn call(response: &'static str) -> (String, Result<Value, CtlError>) {
        let base = answer_once(response);
        let c = Client::new(&base, "t".into());
        (base, c.call("GET", "/servers", None))
    }

    #[test]
    fn a_front_door_is_not_the_admin_api() {
        let (base, r) = call(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\n\
             Content-Type: text/html; charset=utf-8\r\nContent-Length: 0\r\n\r\n",
        );
        let e = r.expect_err("302 is not an answer").to_string();
        assert!(
            e.starts_with(&format!(
                "{base} is not an usher admin API (HTTP 302, text/html)"
            )),
            "{e}"
        );
        let (_, r) =
            call("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>");
        assert!(r
            .expect_err("html")
            .to_string()
            .contains("(HTTP 200, text/html)"),);
        let (_, r) = call("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!");
        assert!(r
            .expect_err("404 page")
            .to_string()
            .contains("is not an usher admin API (HTTP 404, no content type)"),);
        let (_, r) = call(
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(matches!(r, Err(CtlError::NotAdminApi { status: 401, .. })));
    }

    #[test]
    fn the_admin_api_answers_json() {
        let (_, r) = call(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]",
        );
        assert_eq!(r.expect("json"), serde_json::json!([]));
        let (_, r) = call(
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"error\":\"no\"}",
        );
        assert!(matches!(r, Err(CtlError::TokenRefused { .. })));
        let (_, r) = call(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"error\":\"no server named x\"}",
        );
        assert_eq!(
            r.expect_err("404").to_string(),
            "no server named x (HTTP 404)"
        );
    }
}
