//! `door.toml`: the separate front-door process's own file. It says where
//! the door listens for each application and where the control plane
//! reaches it; what the door does with users (servers, weights, mode, sorry
//! page) comes from the snapshots the control plane pushes, as for the
//! nginx and Envoy front doors.
//!
//! ```toml
//! [command]
//! listen = "127.0.0.1:7910"        # the control plane pushes here (loopback)
//! token_file = "door.token"        # or: token = "..." (at least 8 characters)
//! snapshot_file = "door-state.json" # optional: last snapshots, served at start
//!
//! [front_door]                     # optional: the same keys as usher.toml's
//! upstream_timeout_ms = 3000
//!
//! [[apps]]
//! name = "shop"
//! listen = "127.0.0.1:8080"
//! max_concurrent = 1024            # optional
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::front_door::FrontDoorConfig;

/// Shortest command token accepted (the nginx module's rule too).
pub const MIN_TOKEN_LEN: usize = 8;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DoorFile {
    command: CommandInput,
    #[serde(default)]
    front_door: FrontDoorConfig,
    #[serde(default)]
    apps: Vec<AppInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandInput {
    listen: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    snapshot_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppInput {
    name: String,
    listen: String,
    #[serde(default = "default_max_concurrent")]
    max_concurrent: u32,
}

fn default_max_concurrent() -> u32 {
    1024
}

/// One application's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorApp {
    pub name: String,
    pub listen: SocketAddr,
    pub max_concurrent: u32,
}

/// A checked `door.toml`.
#[derive(Debug, Clone)]
pub struct DoorConfig {
    /// The command endpoint's address.
    pub command_listen: SocketAddr,
    /// The bearer token the control plane presents.
    pub token: String,
    /// Where applied snapshots are kept across restarts (mode 0600).
    pub snapshot_file: Option<PathBuf>,
    pub front_door: FrontDoorConfig,
    pub apps: Vec<DoorApp>,
}

/// A `door.toml` that cannot be used: names the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct DoorConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl DoorConfig {
    /// Reads and checks `path`; relative paths in it are against its folder.
    pub fn load(path: &Path) -> Result<DoorConfig, DoorConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DoorConfigError {
            file: file.clone(),
            key: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        DoorConfig::parse(&text, base).map_err(|(key, message)| DoorConfigError {
            file,
            key,
            message,
        })
    }

    /// Parses and checks config text; the error is (key, problem).
    pub fn parse(text: &str, base: &Path) -> Result<DoorConfig, (String, String)> {
        let de = toml::Deserializer::new(text);
        let raw: DoorFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            (key, e.into_inner().message().trim().to_string())
        })?;
        let bad = |key: &str, m: String| (key.to_string(), m);
        let command_listen =
            parse_addr(&raw.command.listen).map_err(|m| bad("command.listen", m))?;
        let token = match (raw.command.token, raw.command.token_file) {
            (Some(t), None) => t,
            (None, Some(f)) => {
                let f = base.join(f);
                std::fs::read_to_string(&f)
                    .map_err(|e| bad("command.token_file", format!("{}: {e}", f.display())))?
                    .trim()
                    .to_string()
            }
            _ => {
                return Err(bad(
                    "command.token",
                    "give exactly one of token and token_file".into(),
                ))
            }
        };
        if token.chars().count() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
            return Err(bad(
                "command.token",
                format!("must be at least {MIN_TOKEN_LEN} characters, without spaces"),
            ));
        }
        let front_door = raw.front_door.validate().map_err(|e| {
            let (key, problem) = e.split_once(": ").unwrap_or(("", e.as_str()));
            bad(&format!("front_door.{key}"), problem.to_string())
        })?;
        if raw.apps.is_empty() {
            return Err(bad("apps", "name at least one app to serve".into()));
        }
        let mut names = HashSet::new();
        let mut listens = HashSet::from([command_listen]);
        let mut apps = Vec::new();
        for (i, a) in raw.apps.into_iter().enumerate() {
            let at = |f: &str| format!("apps[{i}].{f}");
            usher_core::model::validate_name(&at("name"), &a.name).map_err(|e| match e {
                usher_core::model::ModelError::Invalid { field, problem } => (field, problem),
            })?;
            if !names.insert(a.name.clone()) {
                return Err(bad(&at("name"), format!("{:?} is defined twice", a.name)));
            }
            let listen = parse_addr(&a.listen).map_err(|m| bad(&at("listen"), m))?;
            if !listens.insert(listen) {
                return Err(bad(&at("listen"), format!("{listen} is already used")));
            }
            if a.max_concurrent == 0 {
                return Err(bad(&at("max_concurrent"), "must be at least 1".into()));
            }
            apps.push(DoorApp {
                name: a.name,
                listen,
                max_concurrent: a.max_concurrent,
            });
        }
        Ok(DoorConfig {
            command_listen,
            token,
            snapshot_file: raw.command.snapshot_file.map(|f| base.join(f)),
            front_door,
            apps,
        })
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("not an address like 127.0.0.1:8080: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[command]\nlisten = \"127.0.0.1:7910\"\ntoken = \"0123456789\"\n\n\
                        [[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:8080\"\n";

    fn parse(text: &str) -> Result<DoorConfig, (String, String)> {
        DoorConfig::parse(text, Path::new("/etc/usher"))
    }

    #[test]
    fn a_good_file_and_its_defaults() {
        let c = parse(GOOD).expect("good");
        assert_eq!(c.command_listen.to_string(), "127.0.0.1:7910");
        assert_eq!(c.apps[0].max_concurrent, 1024);
        assert_eq!(c.front_door, FrontDoorConfig::default());
        assert_eq!(c.snapshot_file, None);
        let c = parse(&GOOD.replace("[[apps]]", "snapshot_file = \"state.json\"\n[[apps]]"))
            .expect("with a state file");
        assert_eq!(
            c.snapshot_file,
            Some(PathBuf::from("/etc/usher/state.json"))
        );
    }

    #[test]
    fn errors_name_the_key() {
        let key = |text: &str| parse(text).err().map(|(k, _)| k).unwrap_or_default();
        assert_eq!(key(&GOOD.replace("0123456789", "short")), "command.token");
        assert_eq!(
            key(&GOOD.replace("127.0.0.1:7910", "nowhere")),
            "command.listen"
        );
        assert_eq!(
            key(&GOOD.replace("127.0.0.1:8080", "127.0.0.1:7910")),
            "apps[0].listen"
        );
        assert_eq!(key(&GOOD.replace("shop", "a b")), "apps[0].name");
        assert_eq!(
            key(&format!("{GOOD}max_concurrent = 0\n")),
            "apps[0].max_concurrent"
        );
        assert_eq!(
            key(&GOOD.replace("token = \"0123456789\"", "")),
            "command.token"
        );
        assert_eq!(
            key(&format!("{GOOD}\n[front_door]\nupstream_timeout_ms = 0\n")),
            "front_door.upstream_timeout_ms"
        );
        assert_eq!(key(&format!("{GOOD}bogus = 1\n")), "apps[0].bogus");
        let (k, m) = parse("[command]\nlisten = \"127.0.0.1:1\"\ntoken = \"0123456789\"\n")
            .expect_err("no apps");
        assert_eq!((k.as_str(), m.contains("at least one")), ("apps", true));
    }
}
