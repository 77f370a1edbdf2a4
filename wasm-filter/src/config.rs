//! The plugin configuration: the JSON string in the Envoy filter's
//! `configuration`, parsed once per root context, then checked into
//! `Settings`. Unknown fields and bad values are refused with a message that
//! names the field, and `on_configure` then returns false so Envoy refuses
//! the whole config.

use serde::Deserialize;
use usher_core::model::{validate_base_url, validate_capacity, validate_name, ModelError};
use usher_core::token::{token_is_acceptable, TOKEN_RULE};
use usher_core::{AppMode, FieldMask, RedirectRules, MAX_SORRY_PAGE_BYTES};

/// What this filter instance does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Web server role: record, and redirect users away on command.
    Server,
    /// Front door: pick a server per new user.
    Interceptor,
    /// Command endpoint on a loopback listener (snapshots, counters).
    Command,
}

/// Which fields to record: a list of field names, or `"all"` (every field
/// but `cookies`; write `["all", "cookies"]` to record cookie values too).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RecordSpec {
    All(String),
    Names(Vec<String>),
}

/// One front-door server used until the first snapshot arrives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticServer {
    /// Server name (`[A-Za-z0-9._-]`, 1..64).
    pub name: String,
    /// Base URL users are referred to (and, in proxy mode, the `IP:port` the
    /// `override_host` load balancer is asked for).
    pub url: String,
    /// Static capacity 1..=10.
    pub capacity: u32,
}

/// The plugin configuration as written in the Envoy config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// `server`, `interceptor` or `command`.
    pub role: Role,
    /// Application name (server and interceptor roles).
    #[serde(default)]
    pub app: Option<String>,
    /// Fields to record (server role): names from `usher_core::Field`, or
    /// `"all"` (every field but `cookies`: cookie values are recorded only
    /// when `"cookies"` is named, e.g. `["all", "cookies"]`). Default:
    /// method, content_path, status, start_time, processing_time.
    #[serde(default)]
    pub record: Option<RecordSpec>,
    /// Envoy cluster of the host's agent; records are not kept without it.
    #[serde(default)]
    pub agent_cluster: Option<String>,
    /// Path the record batches are POSTed to.
    #[serde(default = "default_agent_path")]
    pub agent_path: String,
    /// `:authority` of the batch requests (default: the cluster name).
    #[serde(default)]
    pub agent_authority: Option<String>,
    /// Bearer token sent with every batch (at least 8 printable characters,
    /// as the agent's receiver requires).
    #[serde(default)]
    pub agent_token: Option<String>,
    /// Bearer token the command endpoint requires (command role): at least
    /// 8 printable characters without spaces, the nginx module's rule.
    #[serde(default)]
    pub command_token: Option<String>,
    /// Path of the command endpoint (command role).
    #[serde(default = "default_command_path")]
    pub command_path: String,
    /// Exact paths that are never redirected (server role).
    #[serde(default)]
    pub stateful: Vec<String>,
    /// Path prefixes that are never redirected (server role).
    #[serde(default)]
    pub stateful_prefixes: Vec<String>,
    /// If set, only these paths (or `prefix*`) may be redirected.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Cookie that marks a user with session state (never redirected).
    #[serde(default)]
    pub session_cookie: Option<String>,
    /// Front-door servers used until a snapshot names the app (interceptor).
    #[serde(default)]
    pub servers: Vec<StaticServer>,
    /// `redirect` (302) or `proxy` for the static servers (interceptor).
    #[serde(default)]
    pub mode: AppMode,
    /// Load-metric bump per pick for the static servers (interceptor).
    #[serde(default)]
    pub epsilon: f64,
    /// HTML of the sorry page (interceptor), at most 64 KiB (the cap of every
    /// usher host); a built-in page otherwise.
    #[serde(default)]
    pub sorry_page: Option<String>,
    /// Request header the cluster's `override_host` policy reads (proxy mode).
    #[serde(default = "default_host_header")]
    pub host_header: String,
}

fn default_agent_path() -> String {
    "/usher/records".to_string()
}

fn default_command_path() -> String {
    "/usher/command".to_string()
}

fn default_host_header() -> String {
    "x-usher-host".to_string()
}

/// The default record mask when `record` is not given.
pub const DEFAULT_RECORD: &[&str] = &[
    "method",
    "content_path",
    "status",
    "start_time",
    "processing_time",
];

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub role: Role,
    pub app: String,
    /// Fields recorded unless a snapshot says otherwise; empty when no agent.
    pub mask: FieldMask,
    pub agent: Option<AgentTarget>,
    pub command_token: String,
    pub command_path: String,
    pub rules: RedirectRules,
    pub servers: Vec<StaticServer>,
    pub mode: AppMode,
    pub epsilon: f64,
    pub sorry_page: Option<String>,
    pub host_header: String,
}

/// Where record batches go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTarget {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub token: Option<String>,
}

impl AgentTarget {
    /// What the log says when Envoy refuses a batch dispatch with
    /// `BadArgument`: the filter's headers are fixed and well formed, so it
    /// means Envoy has no cluster named `agent_cluster`. The proxy-wasm ABI
    /// has no call to look a cluster up, so `on_configure` cannot refuse the
    /// name; the first send is the earliest point it shows.
    pub fn unknown_cluster_error(&self) -> String {
        format!(
            "agent_cluster \"{}\": Envoy has no cluster of that name (the record batch dispatch was refused); records are dropped and counted until the Envoy config defines it",
            self.cluster
        )
    }
}

/// Parses and checks the plugin configuration; the error names the field.
pub fn parse(bytes: &[u8]) -> Result<Settings, String> {
    let cfg: PluginConfig =
        crate::protocol::from_json(bytes).map_err(|e| format!("plugin configuration: {e}"))?;
    cfg.check()
        .map_err(|e| format!("plugin configuration: {e}"))
}

impl PluginConfig {
    /// Checks every field for the role and builds `Settings`.
    pub fn check(self) -> Result<Settings, ModelError> {
        fn bad(field: impl Into<String>, problem: impl Into<String>) -> ModelError {
            ModelError::invalid(field, problem)
        }
        // Tokens keep the rule of every usher host (the nginx module's
        // `usher_command_token` one): at least 8 printable characters.
        for (field, token) in [
            ("command_token", &self.command_token),
            ("agent_token", &self.agent_token),
        ] {
            if token.as_deref().is_some_and(|t| !token_is_acceptable(t)) {
                return Err(bad(field, TOKEN_RULE));
            }
        }
        let app = match (&self.app, self.role) {
            (Some(a), _) => {
                validate_name("app", a)?;
                a.clone()
            }
            (None, Role::Command) => String::new(),
            (None, _) => return Err(bad("app", "is required for this role")),
        };
        let rules = RedirectRules {
            stateful: self.stateful,
            stateful_prefixes: self.stateful_prefixes,
            allow: self.allow,
            session_cookie: self.session_cookie,
        };
        rules.validate()?;
        let mask = match &self.record {
            None => FieldMask::from_names(DEFAULT_RECORD.iter().copied()),
            Some(RecordSpec::All(s)) if s == "all" => Ok(FieldMask::ALL_BUT_COOKIES),
            Some(RecordSpec::All(s)) => Err(s.clone()),
            Some(RecordSpec::Names(n)) => FieldMask::from_names(n.iter().map(String::as_str)),
        }
        .map_err(|name| bad("record", format!("unknown field name '{name}'")))?;
        if self.record.is_some() && self.agent_cluster.is_none() && mask.0 != 0 {
            return Err(bad(
                "agent_cluster",
                "is required when 'record' selects fields",
            ));
        }
        let agent = match self.agent_cluster {
            Some(c) if c.is_empty() => return Err(bad("agent_cluster", "must not be empty")),
            Some(cluster) => {
                if !self.agent_path.starts_with('/') {
                    return Err(bad("agent_path", "must start with '/'"));
                }
                Some(AgentTarget {
                    authority: self.agent_authority.unwrap_or_else(|| cluster.clone()),
                    cluster,
                    path: self.agent_path,
                    token: self.agent_token,
                })
            }
            None => None,
        };
        let mask = if agent.is_some() { mask } else { FieldMask(0) };
        if !self.command_path.starts_with('/') {
            return Err(bad("command_path", "must start with '/'"));
        }
        let command_token = self.command_token.unwrap_or_default();
        if self.role == Role::Command && command_token.is_empty() {
            return Err(bad("command_token", "is required for role command"));
        }
        if self.role != Role::Interceptor && !self.servers.is_empty() {
            return Err(bad("servers", "only the interceptor role has servers"));
        }
        for (i, s) in self.servers.iter().enumerate() {
            validate_name(&format!("servers[{i}].name"), &s.name)?;
            validate_base_url(&format!("servers[{i}].url"), &s.url)?;
            validate_capacity(&format!("servers[{i}].capacity"), s.capacity)?;
            if self.mode == AppMode::Proxy && crate::authority::authority_of(&s.url).is_none() {
                return Err(bad(
                    format!("servers[{i}].url"),
                    "proxy mode needs an IP:port host",
                ));
            }
        }
        if self
            .sorry_page
            .as_ref()
            .is_some_and(|p| p.len() > MAX_SORRY_PAGE_BYTES)
        {
            return Err(bad(
                "sorry_page",
                format!(
                    "is larger than {} KiB (the cap of every usher host)",
                    MAX_SORRY_PAGE_BYTES / 1024
                ),
            ));
        }
        if !self.epsilon.is_finite() || self.epsilon < 0.0 {
            return Err(bad("epsilon", "must be a finite number >= 0"));
        }
        let h = &self.host_header;
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("host_header", "must be a lower-case header name"));
        }
        Ok(Settings {
            role: self.role,
            app,
            mask,
            agent,
            command_token,
            command_path: self.command_path,
            rules,
            servers: self.servers,
            mode: self.mode,
            epsilon: self.epsilon,
            sorry_page: self.sorry_page,
            host_header: self.host_header,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_core::Field;

    #[test]
    fn server_config_with_fields() {
        let s = parse(
            br#"{"role":"server","app":"shop","record":["status","method"],
                 "agent_cluster":"usher_agent","stateful":["/cart"],"session_cookie":"usher_session"}"#,
        )
        .expect("valid");
        assert_eq!(s.mask.names(), vec!["method", "status"]);
        assert_eq!(
            s.agent.as_ref().map(|a| a.path.as_str()),
            Some("/usher/records")
        );
        assert!(!s.rules.may_redirect("/cart", None));
        let all = parse(br#"{"role":"server","app":"shop","record":"all","agent_cluster":"a"}"#)
            .expect("all");
        assert!(all.mask.has(Field::LoggedAt));
        assert!(!all.mask.has(Field::Cookies), "cookies only when named");
        let with = parse(
            br#"{"role":"server","app":"shop","record":["all","cookies"],"agent_cluster":"a"}"#,
        )
        .expect("all cookies");
        assert_eq!(with.mask, FieldMask::ALL);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"role":"server","app":"shop","bogus":1}"#, "bogus"),
            (br#"{"role":"waiter","app":"shop"}"#, "role"),
            (br#"{"role":"server"}"#, "app"),
            (br#"{"role":"server","app":"shop","record":["nope"],"agent_cluster":"a"}"#, "record"),
            (br#"{"role":"server","app":"shop","record":["status"]}"#, "agent_cluster"),
            (br#"{"role":"server","app":"shop","stateful":["cart"]}"#, "stateful[0]"),
            (br#"{"role":"command"}"#, "command_token"),
            (br#"{"role":"command","command_token":"xy"}"#, "command_token: the token must be at least 8"),
            (br#"{"role":"command","command_token":"1234567"}"#, "command_token"),
            (br#"{"role":"command","command_token":"with space"}"#, "command_token"),
            (br#"{"role":"server","app":"a","agent_cluster":"c","agent_token":"ab"}"#, "agent_token"),
            (br#"{"role":"interceptor","app":"a","servers":[{"name":"x","url":"ftp://x","capacity":1}]}"#, "servers[0].url"),
            (br#"{"role":"interceptor","app":"a","servers":[{"name":"x","url":"http://a:1","capacity":11}]}"#, "servers[0].capacity"),
            (b"{", "plugin configuration"),
        ];
        for (json, field) in cases {
            let e = parse(json).expect_err("must be refused");
            assert!(e.contains(field), "{e} should name {field}");
        }
    }

    #[test]
    fn tokens_and_sorry_pages_at_their_limits() {
        let cmd = parse(br#"{"role":"command","command_token":"12345678"}"#).expect("8 characters");
        assert_eq!(cmd.command_token, "12345678");
        let page = |n: usize| {
            serde_json::json!({"role": "interceptor", "app": "a", "sorry_page": "x".repeat(n)})
                .to_string()
        };
        let at_cap = parse(page(MAX_SORRY_PAGE_BYTES).as_bytes()).expect("64 KiB is allowed");
        assert_eq!(
            at_cap.sorry_page.map(|p| p.len()),
            Some(MAX_SORRY_PAGE_BYTES)
        );
        let e = parse(page(70_000).as_bytes()).expect_err("70 KB refused");
        assert!(e.contains("sorry_page: is larger than 64 KiB"), "{e}");
    }

    #[test]
    fn an_unknown_cluster_is_named_with_its_key() {
        let s = parse(br#"{"role":"server","app":"shop","agent_cluster":"usher_agnet"}"#)
            .expect("valid: Envoy's clusters are not known at configure");
        let m = s.agent.expect("agent").unknown_cluster_error();
        assert!(
            m.starts_with("agent_cluster \"usher_agnet\": Envoy has no cluster of that name"),
            "{m}"
        );
    }

    #[test]
    fn no_agent_records_nothing() {
        let s = parse(br#"{"role":"server","app":"shop"}"#).expect("valid");
        assert_eq!(s.mask, FieldMask(0));
        assert!(s.agent.is_none());
    }
}
