//! The managed objects as the control plane holds them: applications,
//! servers and web server interfaces (WSIs), each with its checked static
//! properties and its runtime state.
//!
//! `Fleet` is one consistent picture of all of them; the store publishes a
//! new one after every committed change and every reader (admin API, front
//! doors, snapshot pushes) works from such a picture, never from the database.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;
use usher_core::{AppMode, RedirectRules};

/// Name that a redirect order uses for "the application's front door".
pub const FRONT_DOOR_TARGET: &str = "front-door";

/// Where an object came from: the config file or the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Config,
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Origin {
        if s == "config" {
            Origin::Config
        } else {
            Origin::Api
        }
    }
}

/// A sorry page: where it was read from and its HTML.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SorryPage {
    pub path: PathBuf,
    #[serde(skip)]
    pub html: String,
}

/// An application and its front door.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct App {
    pub name: String,
    pub origin: Origin,
    /// Address of this application's built-in front door.
    pub listen: SocketAddr,
    /// URL users reach the front door at (redirect target "front-door").
    pub public_url: String,
    pub mode: AppMode,
    pub enabled: bool,
    pub sorry_page: Option<SorryPage>,
    pub rules: RedirectRules,
    pub epsilon: f64,
    pub obsolescence_secs: f64,
    /// Requests the front door serves at once; excess gets 503 at once.
    pub max_concurrent: u32,
    /// Below this share (percent) of enabled servers in rotation, the front
    /// doors use every enabled server (panic); 0 = never.
    pub panic_threshold_pct: f64,
    /// Thresholds and timings the manager acts on.
    pub policy: crate::acts::Policy,
}

/// A web server of an application.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Server {
    pub name: String,
    pub origin: Origin,
    pub app: String,
    pub url: String,
    /// Operator's static capacity, 1..=10.
    pub capacity: u32,
    pub enabled: bool,
    /// A dynamic load value `L` (0..=10000) the operator pinned: applied
    /// instead of the measured one while the pin holds. Measured values and
    /// failure verdicts are live state: they live in [`crate::live`].
    pub pinned_load: Option<u32>,
    /// Unix time (seconds) the pin ends; `None` = until cleared.
    pub pinned_until_unix: Option<f64>,
    /// Redirect order: another server's name or `front-door`.
    pub redirect: Option<String>,
}

impl Server {
    /// The pinned load value in force at `now_unix`, if any.
    pub fn pin_at(&self, now_unix: f64) -> Option<u32> {
        let value = self.pinned_load?;
        match self.pinned_until_unix {
            Some(until) if until <= now_unix => None,
            _ => Some(value),
        }
    }
}

/// Role of a web server interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WsiRole {
    /// Inside a web server: records requests, redirects users away on order.
    Server,
    /// A front door for one application.
    Interceptor,
}

impl WsiRole {
    pub fn as_str(self) -> &'static str {
        match self {
            WsiRole::Server => "server",
            WsiRole::Interceptor => "interceptor",
        }
    }

    pub fn parse(s: &str) -> Option<WsiRole> {
        match s {
            "server" => Some(WsiRole::Server),
            "interceptor" => Some(WsiRole::Interceptor),
            _ => None,
        }
    }
}

/// A web server interface the control plane pushes snapshots to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wsi {
    pub name: String,
    pub origin: Origin,
    /// Command endpoint URL.
    pub url: String,
    #[serde(skip)]
    pub token: String,
    pub token_file: Option<PathBuf>,
    pub role: WsiRole,
    pub app: String,
    /// For role `server`: the configured server it fronts.
    pub server: Option<String>,
}

/// An agent the operator declared (`usher ctl agent add`, `[[agents]]`):
/// its own token and the servers it may report on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentEntry {
    pub id: String,
    pub origin: Origin,
    /// The only servers this agent may claim and report on.
    pub servers: Vec<String>,
    /// SHA-256 (hex) of its token; the token itself is never stored.
    #[serde(skip)]
    pub token_sha256: String,
    /// For `[[agents]]`: the file the token was read from.
    pub token_file: Option<PathBuf>,
}

/// One consistent picture of every managed object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fleet {
    /// Increases with every committed change.
    pub generation: u64,
    pub apps: Vec<App>,
    pub servers: Vec<Server>,
    pub wsis: Vec<Wsi>,
    /// Agents with their own token, in id order.
    pub agents: Vec<AgentEntry>,
}

impl Fleet {
    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }

    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }

    pub fn wsi(&self, name: &str) -> Option<&Wsi> {
        self.wsis.iter().find(|w| w.name == name)
    }

    /// The servers of one application, in name order.
    pub fn servers_of<'a>(&'a self, app: &'a str) -> impl Iterator<Item = &'a Server> + 'a {
        self.servers.iter().filter(move |s| s.app == app)
    }
}
