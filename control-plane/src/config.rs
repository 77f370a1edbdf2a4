//! The control plane's TOML config file: parsing, then `validate()` into a
//! checked [`Config`]. Every error names the file and the key
//! (`usher.toml: apps[1].mode: unknown variant ...`).
//!
//! Size: about 250 lines are tests of the checks; the code is under 300.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use usher_core::model::ModelError;

use crate::front_door::FrontDoorConfig;
use crate::manager::ManagerConfig;
use crate::model::{App, Origin, Server, Wsi, WsiRole};
use crate::spec::{AppInput, ServerInput, WsiInput};
use crate::tls::{ServerTls, TlsInput};

mod agents;
pub use agents::AgentInput;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The control plane itself.
    #[serde(default)]
    pub control: ControlInput,
    /// Applications, each with its front door.
    #[serde(default)]
    pub apps: Vec<AppInput>,
    /// Web servers of the applications.
    #[serde(default)]
    pub servers: Vec<ServerInput>,
    /// Web server interfaces to push snapshots to.
    #[serde(default)]
    pub wsis: Vec<WsiInput>,
    /// Agents with their own token, each bound to the servers it may
    /// report on (`config/agents.rs`).
    #[serde(default)]
    pub agents: Vec<AgentInput>,
    /// The manager: agent channel, logging database, dynamic load loop.
    #[serde(default)]
    pub manager: ManagerConfig,
    /// The built-in front doors' bounds on a server and passive health.
    #[serde(default)]
    pub front_door: FrontDoorConfig,
}

/// `[control]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlInput {
    /// Address of the admin API (and later the console and `/metrics`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Folder for the SQLite database and `admin.token`; relative to the
    /// config file's folder.
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// Seconds between snapshot pushes to every WSI when nothing changes.
    #[serde(default = "default_push_interval_secs")]
    pub push_interval_secs: f64,
    /// Whether a WSI's command URL may name a host that is not loopback
    /// (127.0.0.0/8, `::1`, `localhost`), here and in the admin API. Every
    /// push carries the WSI's token in plain text, so the default is no.
    #[serde(default)]
    pub allow_remote_wsis: bool,
    /// Whether `GET /metrics` answers without the admin token (for a
    /// Prometheus that cannot send one). The default is no.
    #[serde(default)]
    pub metrics_public: bool,
    /// Whether `usher control` serves each app's front door itself (the
    /// default) or leaves that to `usher door` processes, which outlive it.
    #[serde(default = "default_true")]
    pub serve_front_doors: bool,
    /// `[control.tls]`: serve the admin API and the agent channel over
    /// https / wss with this certificate and key.
    #[serde(default)]
    pub tls: Option<TlsInput>,
}

impl Default for ControlInput {
    fn default() -> Self {
        ControlInput {
            listen: default_listen(),
            data_dir: default_data_dir(),
            push_interval_secs: default_push_interval_secs(),
            allow_remote_wsis: false,
            metrics_public: false,
            serve_front_doors: true,
            tls: None,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_listen() -> String {
    "127.0.0.1:7900".into()
}

fn default_data_dir() -> String {
    "var".into()
}

fn default_push_interval_secs() -> f64 {
    2.0
}

/// A checked config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file (as given).
    pub path: PathBuf,
    /// Its folder: relative paths in the file and in API bodies are against it.
    pub base_dir: PathBuf,
    /// The file's text, to notice when it changed since the last start.
    pub text: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub push_interval_secs: f64,
    /// WSI URLs may be off this machine (`[control] allow_remote_wsis`).
    pub allow_remote_wsis: bool,
    /// `[control] metrics_public`: `GET /metrics` needs no token.
    pub metrics_public: bool,
    /// `[control] serve_front_doors`: false when `usher door` serves the apps.
    pub serve_front_doors: bool,
    /// `[control.tls]`, read and checked: the admin listener serves https.
    pub tls: Option<ServerTls>,
    pub apps: Vec<App>,
    pub servers: Vec<Server>,
    pub wsis: Vec<Wsi>,
    /// `[[agents]]`, checked (tokens read and hashed).
    pub agents: Vec<crate::model::AgentEntry>,
    /// `[manager]`, checked.
    pub manager: ManagerConfig,
    /// `[front_door]`, checked.
    pub front_door: FrontDoorConfig,
}

/// A config that cannot be used; names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {location}{key}: {message}")]
    Invalid {
        file: String,
        /// `line N: ` when known.
        location: String,
        key: String,
        message: String,
    },
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and checks config text as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let de = toml::Deserializer::new(text);
        let raw: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let location = inner
                .span()
                .map(|s| format!("line {}: ", line_of(text, s.start)))
                .unwrap_or_default();
            ConfigError::Invalid {
                file: file.clone(),
                location,
                key: if key == "." { "(top)".into() } else { key },
                message: inner.message().trim().to_string(),
            }
        })?;
        let parent = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let base_dir = std::path::absolute(&parent).unwrap_or(parent);
        raw.validate(path, &base_dir, text)
            .map_err(|e| ConfigError::Invalid {
                file,
                location: String::new(),
                key: e.field().to_string(),
                message: match e {
                    ModelError::Invalid { problem, .. } => problem,
                },
            })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|t| t.lines().count().max(1))
        .unwrap_or(1)
}

impl ConfigFile {
    /// Checks every object and the references between them.
    pub fn validate(self, path: &Path, base_dir: &Path, text: &str) -> Result<Config, ModelError> {
        let listen: SocketAddr = self.control.listen.parse().map_err(|_| {
            ModelError::invalid(
                "control.listen",
                format!(
                    "not an address like 127.0.0.1:7900: {:?}",
                    self.control.listen
                ),
            )
        })?;
        if self.control.data_dir.is_empty() {
            return Err(ModelError::invalid("control.data_dir", "must not be empty"));
        }
        let p = self.control.push_interval_secs;
        if !p.is_finite() || !(0.1..=3600.0).contains(&p) {
            return Err(ModelError::invalid(
                "control.push_interval_secs",
                "must be 0.1..3600",
            ));
        }
        let data_dir = base_dir.join(&self.control.data_dir);
        let tls = match &self.control.tls {
            Some(t) => Some(t.check(base_dir).map_err(|e| {
                ModelError::invalid(format!("control.tls.{}", e.key()), e.to_string())
            })?),
            None => None,
        };
        let manager = self.manager.validate().map_err(|e| {
            let (key, problem) = e.split_once(": ").unwrap_or(("", e.as_str()));
            ModelError::invalid(format!("manager.{key}"), problem.to_string())
        })?;
        let front_door = self.front_door.validate().map_err(|e| {
            let (key, problem) = e.split_once(": ").unwrap_or(("", e.as_str()));
            ModelError::invalid(format!("front_door.{key}"), problem.to_string())
        })?;

        let mut apps = Vec::new();
        let mut listens = HashSet::from([listen]);
        for (i, a) in self.apps.into_iter().enumerate() {
            let at = |f: &str| format!("apps[{i}].{f}");
            let app = a.check(&at, base_dir, Origin::Config)?;
            if apps.iter().any(|x: &App| x.name == app.name) {
                return Err(ModelError::invalid(
                    at("name"),
                    format!("{:?} is defined twice", app.name),
                ));
            }
            if !listens.insert(app.listen) {
                return Err(ModelError::invalid(
                    at("listen"),
                    format!("{} is already used", app.listen),
                ));
            }
            apps.push(app);
        }
        let mut servers = Vec::new();
        for (i, s) in self.servers.into_iter().enumerate() {
            let at = |f: &str| format!("servers[{i}].{f}");
            let server = s.check(&at, Origin::Config)?;
            if servers.iter().any(|x: &Server| x.name == server.name) {
                return Err(ModelError::invalid(
                    at("name"),
                    format!("{:?} is defined twice", server.name),
                ));
            }
            if !apps.iter().any(|a| a.name == server.app) {
                return Err(ModelError::invalid(
                    at("app"),
                    format!("no app named {:?}", server.app),
                ));
            }
            servers.push(server);
        }
        let mut wsis = Vec::new();
        for (i, w) in self.wsis.into_iter().enumerate() {
            let at = |f: &str| format!("wsis[{i}].{f}");
            let wsi = w.check(
                &at,
                base_dir,
                self.control.allow_remote_wsis,
                Origin::Config,
            )?;
            if wsis.iter().any(|x: &Wsi| x.name == wsi.name) {
                return Err(ModelError::invalid(
                    at("name"),
                    format!("{:?} is defined twice", wsi.name),
                ));
            }
            if !apps.iter().any(|a| a.name == wsi.app) {
                return Err(ModelError::invalid(
                    at("app"),
                    format!("no app named {:?}", wsi.app),
                ));
            }
            if wsi.role == WsiRole::Server {
                let name = wsi.server.as_deref().unwrap_or_default();
                if !servers.iter().any(|s| s.name == name && s.app == wsi.app) {
                    return Err(ModelError::invalid(
                        at("server"),
                        format!("no server named {name:?} in app {:?}", wsi.app),
                    ));
                }
            }
            wsis.push(wsi);
        }
        let agents = agents::check_all(self.agents, base_dir)?;
        Ok(Config {
            path: path.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            text: text.to_string(),
            listen,
            data_dir,
            push_interval_secs: p,
            allow_remote_wsis: self.control.allow_remote_wsis,
            metrics_public: self.control.metrics_public,
            serve_front_doors: self.control.serve_front_doors,
            tls,
            apps,
            servers,
            wsis,
            agents,
            manager,
            front_door,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_SHAPE: &str = r#"
[control]
listen = "127.0.0.1:7900"
data_dir = "var"
[[apps]]
name = "shop"
listen = "127.0.0.1:8080"
mode = "redirect"
enabled = true
sorry_page = "sorry.html"
stateful = ["/cart", "/checkout"]
epsilon = 0
obsolescence_secs = 1200
[[servers]]
name = "a"
app = "shop"
url = "http://127.0.0.1:8081"
capacity = 5
"#;

    fn parse_in(dir: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse(&dir.join("usher.toml"), text)
    }

    #[test]
    fn accepts_the_issue_shape() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sorry.html"), "<p>sorry</p>").expect("write");
        let c = parse_in(dir.path(), ISSUE_SHAPE).expect("valid");
        assert_eq!(c.data_dir, dir.path().join("var"));
        assert_eq!(
            c.apps[0].sorry_page.as_ref().map(|s| s.html.as_str()),
            Some("<p>sorry</p>")
        );
        assert_eq!(c.apps[0].rules.stateful, vec!["/cart", "/checkout"]);
        assert_eq!(c.apps[0].public_url, "http://127.0.0.1:8080");
        assert_eq!(c.apps[0].max_concurrent, 1024);
        assert_eq!(c.servers[0].capacity, 5);
    }

    #[test]
    fn errors_name_file_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sorry.html"), "x").expect("write");
        let text = ISSUE_SHAPE.replace("mode = \"redirect\"", "mode = \"teleport\"");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert!(
            e.starts_with("usher.toml: line 8: apps[0].mode: unknown variant"),
            "{e}"
        );

        let text = ISSUE_SHAPE.replace("capacity = 5", "capacity = 50");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert_eq!(e, "usher.toml: servers[0].capacity: must be 1..10, got 50");

        let text = ISSUE_SHAPE.replace("epsilon = 0", "epsilon = 0\ncolour = 1");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert!(
            e.contains("apps[0]") && e.contains("unknown field `colour`"),
            "{e}"
        );

        let text = format!("{ISSUE_SHAPE}\n[manager]\ninterval_ms = 5\n");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert_eq!(e, "usher.toml: manager.interval_ms: must be 10..=60000");
        let text = format!("{ISSUE_SHAPE}\n[manager]\nbogus = 1\n");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert!(
            e.contains("manager") && e.contains("unknown field `bogus`"),
            "{e}"
        );
        let text = format!("{ISSUE_SHAPE}\n[manager]\nhalf_at_ms = 20\n");
        let c = parse_in(dir.path(), &text).expect("manager section");
        assert_eq!(c.manager.half_at_ms, 20.0);
        assert_eq!(c.manager.interval_ms, 250);

        let text = format!("{ISSUE_SHAPE}\n[front_door]\nupstream_timeout_ms = 0\n");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert_eq!(
            e,
            "usher.toml: front_door.upstream_timeout_ms: must be 1..=3600000"
        );
        let text = format!("{ISSUE_SHAPE}\n[front_door]\nconnect_timeout_ms = 5000\n");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert_eq!(
            e,
            "usher.toml: front_door.connect_timeout_ms: must be 1..=upstream_timeout_ms"
        );
        let text = format!("{ISSUE_SHAPE}\n[front_door]\neject_after_5xx = \"x\"\n");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert!(e.contains("front_door.eject_after_5xx"), "{e}");
        let text = format!("{ISSUE_SHAPE}\n[front_door]\nupstream_timeout_ms = 1000\n");
        let c = parse_in(dir.path(), &text).expect("front_door section");
        assert_eq!(c.front_door.upstream_timeout_ms, 1000);
        assert_eq!(c.front_door.eject_ms, 10_000);

        let text = ISSUE_SHAPE.replace("app = \"shop\"", "app = \"shoe\"");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert_eq!(e, "usher.toml: servers[0].app: no app named \"shoe\"");

        let e = parse_in(dir.path(), &ISSUE_SHAPE.replace("sorry.html", "nope.html"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("usher.toml: apps[0].sorry_page: cannot read"),
            "{e}"
        );

        let text = ISSUE_SHAPE.replace("\"/cart\"", "\"cart\"");
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert_eq!(e, "usher.toml: apps[0].stateful[0]: must start with '/'");
    }

    #[test]
    fn wsi_tokens_keep_the_token_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sorry.html"), "x").expect("write");
        std::fs::write(dir.path().join("short.token"), "1234567\n").expect("write");
        let base = format!(
            "{ISSUE_SHAPE}\n[[wsis]]\nname = \"door\"\nurl = \"http://127.0.0.1:8181/usher/command\"\nrole = \"interceptor\"\napp = \"shop\"\n"
        );
        let rule = "the token must be at least 8 printable characters without spaces";
        for (line, key) in [
            ("token = \"x\"", "token"),
            ("token = \"1234567\"", "token"),
            ("token = \"with space\"", "token"),
            ("token_file = \"short.token\"", "token_file"),
        ] {
            let e = parse_in(dir.path(), &format!("{base}{line}\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("usher.toml: wsis[0].{key}: {rule}"), "{line}");
        }
        let c =
            parse_in(dir.path(), &format!("{base}token = \"12345678\"\n")).expect("8 is enough");
        assert_eq!(c.wsis[0].token, "12345678");
    }

    #[test]
    fn wsis_need_a_token_and_a_known_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sorry.html"), "x").expect("write");
        std::fs::write(dir.path().join("w.token"), "sekrit-token\n").expect("write");
        let base = format!(
            "{ISSUE_SHAPE}\n[[wsis]]\nname = \"ngx-a\"\nurl = \"http://127.0.0.1:8181/usher/command\"\nrole = \"server\"\napp = \"shop\"\n"
        );
        let ok = format!("{base}server = \"a\"\ntoken_file = \"w.token\"\n");
        let c = parse_in(dir.path(), &ok).expect("valid");
        assert_eq!(c.wsis[0].token, "sekrit-token");
        let e = parse_in(dir.path(), &format!("{base}server = \"a\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("usher.toml: wsis[0].token:"), "{e}");
        let e = parse_in(
            dir.path(),
            &format!("{base}server = \"zz\"\ntoken = \"sekrit-token\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("usher.toml: wsis[0].server: no server"),
            "{e}"
        );
    }

    #[test]
    fn field_files_must_be_small_regular_files_in_the_config_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sorry.html"), "x").expect("write");
        let big = vec![b'x'; crate::spec::MAX_SORRY_PAGE_BYTES as usize + 1];
        std::fs::write(dir.path().join("big.html"), big).expect("write");
        for (page, says) in [
            ("/etc/passwd", "is outside the config folder"),
            (
                "../../../../../../etc/passwd",
                "is outside the config folder",
            ),
            ("/dev/zero", "is outside the config folder"),
            ("big.html", "is larger than 65536 bytes"),
        ] {
            let text = ISSUE_SHAPE.replace("\"sorry.html\"", &format!("{page:?}"));
            let e = parse_in(dir.path(), &text).unwrap_err().to_string();
            assert!(
                e.starts_with("usher.toml: apps[0].sorry_page: ") && e.contains(says),
                "{page}: {e}"
            );
        }

        std::fs::write(dir.path().join("big.token"), vec![b'x'; 4097]).expect("write");
        let wsi = |extra: &str| {
            format!(
                "{ISSUE_SHAPE}\n[[wsis]]\nname = \"door\"\nurl = \"http://127.0.0.1:8181/usher/command\"\nrole = \"interceptor\"\napp = \"shop\"\n{extra}\n"
            )
        };
        for (file, says) in [
            ("/etc/hostname", "is outside the config folder"),
            ("big.token", "is larger than 4096 bytes"),
            (".", "is not a regular file"),
        ] {
            let e = parse_in(dir.path(), &wsi(&format!("token_file = {file:?}")))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("usher.toml: wsis[0].token_file: ") && e.contains(says),
                "{file}: {e}"
            );
        }
    }

    #[test]
    fn wsi_urls_are_loopback_unless_allowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sorry.html"), "x").expect("write");
        let text = format!(
            "{ISSUE_SHAPE}\n[[wsis]]\nname = \"door\"\nurl = \"http://10.1.2.3:8181/usher/command\"\nrole = \"interceptor\"\napp = \"shop\"\ntoken = \"sekrit-token\"\n"
        );
        let e = parse_in(dir.path(), &text).unwrap_err().to_string();
        assert!(
            e.starts_with("usher.toml: wsis[0].url: host \"10.1.2.3\" is not a loopback address"),
            "{e}"
        );
        let allowed = text.replace(
            "data_dir = \"var\"",
            "data_dir = \"var\"\nallow_remote_wsis = true",
        );
        let c = parse_in(dir.path(), &allowed).expect("allowed");
        assert!(c.allow_remote_wsis);
        assert_eq!(c.wsis[0].url, "http://10.1.2.3:8181/usher/command");
    }

    #[test]
    fn defaults_for_an_empty_file() {
        let c = Config::parse(Path::new("usher.toml"), "").expect("valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:7900");
        assert!(!c.allow_remote_wsis);
        assert!(c.data_dir.is_absolute() && c.data_dir.ends_with("var"));
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The example at the repository root stays a valid config.
    #[test]
    fn the_example_config_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sorry.html"), "<p>sorry</p>").expect("write");
        let text = include_str!("../../usher.example.toml");
        let c = Config::parse(&dir.path().join("usher.toml"), text).expect("example parses");
        assert_eq!((c.apps.len(), c.servers.len(), c.wsis.len()), (1, 2, 0));
        assert_eq!(
            c.apps[0].rules.session_cookie.as_deref(),
            Some("usher_session")
        );
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains('=') || r.starts_with("[[wsis"))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(dir.path().join("nginx-a.token"), "nginx-a-token").expect("write");
        let c = Config::parse(&dir.path().join("usher.toml"), &uncommented)
            .expect("example with wsis parses");
        assert_eq!(c.wsis.len(), 1);
        assert_eq!(c.apps[0].public_url, "http://shop.example.com");
    }
}
