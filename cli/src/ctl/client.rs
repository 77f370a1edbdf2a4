//! The admin API client `usher ctl` uses, and its clear errors.

use std::time::Duration;

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
            CtlError::Local(m) => f.write_str(m),
        }
    }
}

/// A connection to one control plane.
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str, token: String) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(15))
                .build(),
        }
    }

    /// Sends `method path` with an optional JSON body; returns the JSON answer.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CtlError> {
        let url = format!("{}/api/v1{path}", self.base);
        let req = self
            .agent
            .request(method, &url)
            .set("Authorization", &format!("Bearer {}", self.token));
        let res = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        match res {
            Ok(r) => r
                .into_json::<Value>()
                .map_err(|e| CtlError::Local(format!("the control plane sent a bad answer: {e}"))),
            Err(ureq::Error::Status(401, _)) => Err(CtlError::TokenRefused {
                url: self.base.clone(),
            }),
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or(text);
                Err(CtlError::Api { status, message })
            }
            Err(ureq::Error::Transport(t)) => Err(CtlError::Unreachable {
                url: self.base.clone(),
                detail: t.to_string(),
            }),
        }
    }
}
