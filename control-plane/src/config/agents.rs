//! `[[agents]]`: agents with their own token, declared in the config file
//! (the file way to do what `usher ctl agent add` does).
//!
//! ```toml
//! [[agents]]
//! id = "host-1"
//! servers = ["a", "b"]
//! token_file = "host-1.token"   # relative to the config folder
//! ```
//!
//! The control plane reads the token at start and keeps only its SHA-256;
//! the agent on `host-1` gets the same file as its `token_file`.

use std::path::Path;

use serde::Deserialize;
use usher_core::model::ModelError;
use usher_core::token::{token_is_acceptable, TOKEN_RULE};

use crate::model::{AgentEntry, Origin};
use crate::spec::read_field_file;
use crate::store::{check_agent, StoreError};
use crate::token::agent_token_sha256;

/// Largest agent token file.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// One `[[agents]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    /// The agent's id (its `agent_id` in agent.toml).
    pub id: String,
    /// The servers it may claim and report on; each server at most one
    /// agent's.
    pub servers: Vec<String>,
    /// File holding its token (at least 8 printable characters), inside
    /// the config folder.
    pub token_file: String,
}

impl AgentInput {
    /// Reads the token file and checks the entry; `at` names the key.
    pub fn check(
        self,
        at: &dyn Fn(&str) -> String,
        base_dir: &Path,
    ) -> Result<AgentEntry, ModelError> {
        let (path, text) = read_field_file(
            &at("token_file"),
            base_dir,
            &self.token_file,
            MAX_TOKEN_FILE_BYTES,
        )?;
        let token = text.trim();
        if !token_is_acceptable(token) {
            return Err(ModelError::invalid(
                at("token_file"),
                format!("{}: {TOKEN_RULE}", path.display()),
            ));
        }
        let entry = AgentEntry {
            id: self.id,
            origin: Origin::Config,
            servers: self.servers,
            token_sha256: agent_token_sha256(token),
            token_file: Some(path),
        };
        check_agent(&entry).map_err(|e| match e {
            StoreError::Invalid { field, problem } => ModelError::invalid(at(&field), problem),
            other => ModelError::invalid(at("id"), other.to_string()),
        })?;
        Ok(entry)
    }
}

/// Checks every `[[agents]]` entry and the rules between them (unique ids,
/// each server bound once, each token once).
pub fn check_all(inputs: Vec<AgentInput>, base_dir: &Path) -> Result<Vec<AgentEntry>, ModelError> {
    let mut out: Vec<AgentEntry> = Vec::new();
    for (i, a) in inputs.into_iter().enumerate() {
        let at = |f: &str| format!("agents[{i}].{f}");
        let entry = a.check(&at, base_dir)?;
        if out.iter().any(|x| x.id == entry.id) {
            return Err(ModelError::invalid(
                at("id"),
                format!("{:?} is defined twice", entry.id),
            ));
        }
        if let Some((s, other)) = entry.servers.iter().find_map(|s| {
            out.iter()
                .find(|x| x.servers.contains(s))
                .map(|x| (s, &x.id))
        }) {
            return Err(ModelError::invalid(
                at("servers"),
                format!("server {s:?} is already bound to agent {other:?}"),
            ));
        }
        if let Some(other) = out.iter().find(|x| x.token_sha256 == entry.token_sha256) {
            return Err(ModelError::invalid(
                at("token_file"),
                format!("agent {:?} has the same token", other.id),
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:18080\"\n";

    #[test]
    fn agents_read_their_token_file_and_errors_name_file_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("h1.token"), "h1-token-0123\n").expect("write");
        std::fs::write(dir.path().join("h2.token"), "h2-token-0123\n").expect("write");
        std::fs::write(dir.path().join("short.token"), "abc\n").expect("write");
        let parse = |agents: &str| {
            Config::parse(&dir.path().join("usher.toml"), &format!("{BASE}{agents}"))
        };
        let one = "[[agents]]\nid = \"h1\"\nservers = [\"a\", \"b\"]\ntoken_file = \"h1.token\"\n";
        let c = parse(one).expect("valid");
        assert_eq!(c.agents.len(), 1);
        assert_eq!(c.agents[0].servers, ["a", "b"]);
        assert_eq!(
            c.agents[0].token_sha256,
            crate::token::agent_token_sha256("h1-token-0123")
        );
        for (agents, want) in [
            (
                one.replace("h1.token", "short.token"),
                "usher.toml: agents[0].token_file: ",
            ),
            (
                one.replace("h1.token", "/etc/passwd"),
                "usher.toml: agents[0].token_file: ",
            ),
            (
                one.replace("[\"a\", \"b\"]", "[]"),
                "usher.toml: agents[0].servers: name at least one server",
            ),
            (
                one.replace("servers", "server"),
                "usher.toml: line 5: agents[0].server: unknown field",
            ),
            (
                format!(
                    "{one}[[agents]]\nid = \"h2\"\nservers = [\"b\"]\ntoken_file = \"h2.token\"\n"
                ),
                "usher.toml: agents[1].servers: server \"b\" is already bound to agent \"h1\"",
            ),
            (
                format!(
                    "{one}[[agents]]\nid = \"h1\"\nservers = [\"c\"]\ntoken_file = \"h2.token\"\n"
                ),
                "usher.toml: agents[1].id: \"h1\" is defined twice",
            ),
            (
                format!(
                    "{one}[[agents]]\nid = \"h2\"\nservers = [\"c\"]\ntoken_file = \"h1.token\"\n"
                ),
                "usher.toml: agents[1].token_file: agent \"h1\" has the same token",
            ),
        ] {
            let e = parse(&agents).unwrap_err().to_string();
            assert!(e.starts_with(want), "{agents}: {e}");
        }
    }
}
