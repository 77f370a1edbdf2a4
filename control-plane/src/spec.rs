//! Input shapes for applications, servers and WSIs, shared by the config
//! file (`[[apps]]`, `[[servers]]`, `[[wsis]]`) and the admin API (`POST`
//! bodies), and their checks into the model types.
//!
//! Every field is documented here once: these comments are the reference for
//! `docs/configuration.md` and `docs/admin-api.md`. A failed check names the
//! field (`apps[1].mode`, or `mode` in an API body).
//!
//! Size: about 100 lines are tests; the rest (about 410) is the three input
//! shapes with their field docs and checks, kept together because the docs
//! of config keys and API fields are read from here.

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use usher_core::model::{validate_base_url, validate_capacity, validate_name, ModelError};
use usher_core::{AppMode, RedirectRules};

use crate::model::{App, Origin, Server, SorryPage, Wsi, WsiRole, FRONT_DOOR_TARGET};

/// Largest sorry page accepted. It travels inside every interceptor
/// snapshot, and the nginx module and the Envoy filter refuse a snapshot
/// above [`usher_core::snapshot::MAX_SNAPSHOT_BYTES`] (256 KiB), so the page
/// stays well under that.
pub const MAX_SORRY_PAGE_BYTES: u64 = 64 * 1024;

/// Largest token file accepted.
pub const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// An application and its front door.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppInput {
    /// Name: 1..64 of letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// Address of the built-in front door, e.g. `127.0.0.1:8080`.
    pub listen: String,
    /// `redirect` (302 to the chosen server, the design's way) or `proxy`
    /// (forward the request and stream the answer back).
    #[serde(default)]
    pub mode: AppMode,
    /// Whether the front door sends users to servers; a disabled app gets
    /// the sorry page with 503.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// HTML file shown with 503 when the app is disabled or no server is
    /// available; relative to the config file's folder, and it must lie
    /// inside that folder (after symbolic links), be a regular file and hold
    /// at most 64 KiB. A built-in page otherwise.
    #[serde(default)]
    pub sorry_page: Option<String>,
    /// Exact paths that hold session state; a server never redirects them.
    #[serde(default)]
    pub stateful: Vec<String>,
    /// Path prefixes under which every page is stateful.
    #[serde(default)]
    pub stateful_prefixes: Vec<String>,
    /// If not empty, only these paths (or prefixes ending in `*`) may be
    /// redirected by a server.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Cookie marking a user with session state; never redirected.
    #[serde(default)]
    pub session_cookie: Option<String>,
    /// Load-metric bump per pick toward "busier" (0 = none).
    #[serde(default)]
    pub epsilon: f64,
    /// `T`: seconds after which a dynamic load value has aged back to the
    /// static capacity.
    #[serde(default = "default_obsolescence_secs")]
    pub obsolescence_secs: f64,
    /// Requests the front door serves at once; excess gets 503 at once.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// Panic threshold, percent: when fewer than this share of the app's
    /// enabled servers are in rotation, the front doors use every enabled
    /// server rather than turn users away (as Envoy's healthy panic
    /// threshold). 0 switches it off.
    #[serde(default = "default_panic_threshold_pct")]
    pub panic_threshold_pct: f64,
    /// URL users reach this front door at (target of a redirect order
    /// `front-door`); default `http://<listen>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Thresholds and timings the manager acts on (`[apps.policy]`; every
    /// key has a default: docs/manager.md).
    #[serde(default)]
    pub policy: crate::acts::Policy,
}

/// A web server of an application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerInput {
    /// Name: 1..64 of letters, digits, `.`, `_`, `-` (not `front-door`).
    pub name: String,
    /// The application it serves.
    pub app: String,
    /// Base URL users are sent to, `http://host:port`.
    pub url: String,
    /// Static capacity 1..10 (scaled x1000 in the load metric).
    pub capacity: u32,
    /// Whether the front door may send users to it.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// A web server interface (nginx module, Envoy filter) to push snapshots to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsiInput {
    /// Name: 1..64 of letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// Command endpoint URL, e.g. `http://127.0.0.1:8181/usher/command`;
    /// its host must be loopback (127.0.0.0/8, `::1`, `localhost`) unless
    /// `[control] allow_remote_wsis = true`.
    pub url: String,
    /// File holding the endpoint's token: relative to the config folder,
    /// inside it, a regular file of at most 4 KiB.
    #[serde(default)]
    pub token_file: Option<String>,
    /// The endpoint's token itself (instead of `token_file`).
    #[serde(default)]
    pub token: Option<String>,
    /// `server` or `interceptor`.
    pub role: WsiRole,
    /// The application it serves or fronts.
    pub app: String,
    /// For role `server`: the configured server it sits in.
    #[serde(default)]
    pub server: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_obsolescence_secs() -> f64 {
    usher_core::snapshot::default_obsolescence_secs()
}

fn default_panic_threshold_pct() -> f64 {
    50.0
}

fn default_max_concurrent() -> u32 {
    1024
}

fn invalid(field: String, problem: impl Into<String>) -> ModelError {
    ModelError::invalid(field, problem)
}

/// Reads a small text file named by a field (a sorry page, a token file).
///
/// `path` is taken relative to `base` (the config folder); the file it
/// resolves to, symbolic links followed, must lie inside `base`, be a
/// regular file and hold at most `max` bytes of UTF-8. The size is checked
/// before any read and the read itself stops after `max + 1` bytes, so
/// neither `/dev/zero` nor a file that grows while read can exhaust memory.
/// Returns the resolved path and the text.
pub fn read_field_file(
    field: &str,
    base: &Path,
    path: &str,
    max: u64,
) -> Result<(PathBuf, String), ModelError> {
    let bad = |problem: String| invalid(field.to_string(), problem);
    let root = base.canonicalize().map_err(|e| {
        bad(format!(
            "cannot resolve the config folder {}: {e}",
            base.display()
        ))
    })?;
    let full = root
        .join(path)
        .canonicalize()
        .map_err(|e| bad(format!("cannot read {path}: {e}")))?;
    if !full.starts_with(&root) {
        return Err(bad(format!(
            "{} is outside the config folder {}",
            full.display(),
            root.display()
        )));
    }
    let meta = std::fs::metadata(&full)
        .map_err(|e| bad(format!("cannot read {}: {e}", full.display())))?;
    check_small_file(&full, &meta, max).map_err(bad)?;
    let file =
        File::open(&full).map_err(|e| bad(format!("cannot read {}: {e}", full.display())))?;
    // The name may have been swapped between the check and the open.
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot read {}: {e}", full.display())))?;
    check_small_file(&full, &meta, max).map_err(bad)?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read {}: {e}", full.display())))?;
    if bytes.len() as u64 > max {
        return Err(bad(format!(
            "{} is larger than {max} bytes",
            full.display()
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| bad(format!("{} is not UTF-8 text", full.display())))?;
    Ok((full, text))
}

fn check_small_file(path: &Path, meta: &std::fs::Metadata, max: u64) -> Result<(), String> {
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.len() > max {
        return Err(format!("{} is larger than {max} bytes", path.display()));
    }
    Ok(())
}

/// Refuses a command endpoint whose host is not a loopback address
/// (127.0.0.0/8, `::1`, `localhost`): a WSI receives its token with every
/// push, so it goes off the machine only when the operator allows it.
pub fn check_loopback_url(field: &str, url: &str) -> Result<(), ModelError> {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(invalid(
            field.to_string(),
            format!(
                "host {host:?} is not a loopback address (127.0.0.0/8, ::1, localhost); \
                 set `allow_remote_wsis = true` in [control] to push to other machines"
            ),
        ))
    }
}

impl AppInput {
    /// Checks every field; `at("mode")` gives the name an error reports.
    pub fn check(
        self,
        at: &dyn Fn(&str) -> String,
        base: &Path,
        origin: Origin,
    ) -> Result<App, ModelError> {
        validate_name(&at("name"), &self.name)?;
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            invalid(
                at("listen"),
                format!("not an address like 127.0.0.1:8080: {:?}", self.listen),
            )
        })?;
        let rules = RedirectRules {
            stateful: self.stateful,
            stateful_prefixes: self.stateful_prefixes,
            allow: self.allow,
            session_cookie: self.session_cookie,
        };
        rules.validate().map_err(|e| {
            let problem = match &e {
                ModelError::Invalid { problem, .. } => problem.clone(),
            };
            invalid(at(e.field()), problem)
        })?;
        if !self.epsilon.is_finite() || self.epsilon < 0.0 {
            return Err(invalid(at("epsilon"), "must be a number >= 0"));
        }
        if !self.obsolescence_secs.is_finite() || self.obsolescence_secs < 0.0 {
            return Err(invalid(at("obsolescence_secs"), "must be a number >= 0"));
        }
        if !(0.0..=100.0).contains(&self.panic_threshold_pct) {
            return Err(invalid(
                at("panic_threshold_pct"),
                format!("must be 0..100, got {}", self.panic_threshold_pct),
            ));
        }
        if self.max_concurrent == 0 {
            return Err(invalid(at("max_concurrent"), "must be at least 1"));
        }
        self.policy.validate(&at("policy."))?;
        let public_url = self
            .public_url
            .unwrap_or_else(|| format!("http://{listen}"));
        validate_base_url(&at("public_url"), &public_url)?;
        let sorry_page = match self.sorry_page {
            Some(p) => {
                let (path, html) =
                    read_field_file(&at("sorry_page"), base, &p, MAX_SORRY_PAGE_BYTES)?;
                Some(SorryPage { path, html })
            }
            None => None,
        };
        Ok(App {
            name: self.name,
            origin,
            listen,
            public_url,
            mode: self.mode,
            enabled: self.enabled,
            sorry_page,
            rules,
            epsilon: self.epsilon,
            obsolescence_secs: self.obsolescence_secs,
            max_concurrent: self.max_concurrent,
            panic_threshold_pct: self.panic_threshold_pct,
            policy: self.policy,
        })
    }
}

impl ServerInput {
    /// Checks every field (whether `app` exists is the caller's check).
    pub fn check(self, at: &dyn Fn(&str) -> String, origin: Origin) -> Result<Server, ModelError> {
        validate_name(&at("name"), &self.name)?;
        if self.name == FRONT_DOOR_TARGET {
            return Err(invalid(
                at("name"),
                "`front-door` is reserved for redirect orders",
            ));
        }
        validate_name(&at("app"), &self.app)?;
        validate_base_url(&at("url"), &self.url)?;
        validate_capacity(&at("capacity"), self.capacity)?;
        Ok(Server {
            name: self.name,
            origin,
            app: self.app,
            url: self.url,
            capacity: self.capacity,
            enabled: self.enabled,
            pinned_load: None,
            pinned_until_unix: None,
            redirect: None,
        })
    }
}

impl WsiInput {
    /// Checks every field and reads `token_file` (relative to `base`); the
    /// URL must be loopback unless `allow_remote`.
    pub fn check(
        self,
        at: &dyn Fn(&str) -> String,
        base: &Path,
        allow_remote: bool,
        origin: Origin,
    ) -> Result<Wsi, ModelError> {
        validate_name(&at("name"), &self.name)?;
        validate_base_url(&at("url"), &self.url)?;
        if !self.url.starts_with("http://") {
            return Err(invalid(
                at("url"),
                "command endpoints are reached over http:// (loopback)",
            ));
        }
        if !allow_remote {
            check_loopback_url(&at("url"), &self.url)?;
        }
        validate_name(&at("app"), &self.app)?;
        let (token, token_file) = match (self.token, self.token_file) {
            (Some(t), None) => (t, None),
            (None, Some(f)) => {
                let (path, text) =
                    read_field_file(&at("token_file"), base, &f, MAX_TOKEN_FILE_BYTES)?;
                (text.trim().to_string(), Some(path))
            }
            _ => {
                return Err(invalid(
                    at("token"),
                    "give exactly one of `token` and `token_file`",
                ));
            }
        };
        // The rule every WSI keeps for its command token (usher_core::token).
        if !usher_core::token::token_is_acceptable(&token) {
            let key = if token_file.is_some() {
                "token_file"
            } else {
                "token"
            };
            return Err(invalid(at(key), usher_core::token::TOKEN_RULE));
        }
        match (self.role, &self.server) {
            (WsiRole::Server, None) => {
                return Err(invalid(
                    at("server"),
                    "role `server` needs the server it sits in",
                ));
            }
            (WsiRole::Interceptor, Some(_)) => {
                return Err(invalid(at("server"), "only role `server` takes a server"));
            }
            (_, Some(s)) => validate_name(&at("server"), s)?,
            _ => {}
        }
        Ok(Wsi {
            name: self.name,
            origin,
            url: self.url,
            token,
            token_file,
            role: self.role,
            app: self.app,
            server: self.server,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(e: ModelError) -> (String, String) {
        let field = e.field().to_string();
        match e {
            ModelError::Invalid { problem, .. } => (field, problem),
        }
    }

    #[test]
    fn field_files_only_from_the_config_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("conf");
        std::fs::create_dir(&base).expect("mkdir");
        std::fs::write(base.join("ok.html"), "<p>ok</p>").expect("write");
        std::fs::write(dir.path().join("outside.html"), "secret").expect("write");
        std::os::unix::fs::symlink(dir.path().join("outside.html"), base.join("link.html"))
            .expect("symlink");

        let (path, text) = read_field_file("f", &base, "ok.html", 100).expect("inside");
        assert_eq!(text, "<p>ok</p>");
        assert!(path.is_absolute() && path.ends_with("conf/ok.html"));

        for outside in ["../outside.html", "link.html", "/etc/passwd"] {
            let (field, p) = problem(read_field_file("f", &base, outside, 100).unwrap_err());
            assert_eq!(field, "f");
            assert!(p.contains("outside the config folder"), "{outside}: {p}");
        }
    }

    #[test]
    fn field_files_are_regular_and_capped_before_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("big.html"), vec![b'x'; 101]).expect("write");
        std::fs::write(dir.path().join("exact.html"), vec![b'x'; 100]).expect("write");
        std::fs::write(dir.path().join("bin"), [0xff, 0xfe]).expect("write");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).expect("symlink");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");

        let (_, p) = problem(read_field_file("f", dir.path(), "big.html", 100).unwrap_err());
        assert!(p.contains("larger than 100 bytes"), "{p}");
        assert_eq!(
            read_field_file("f", dir.path(), "exact.html", 100)
                .expect("at the cap")
                .1
                .len(),
            100
        );
        let (_, p) = problem(read_field_file("f", dir.path(), "sub", 100).unwrap_err());
        assert!(p.contains("not a regular file"), "{p}");
        let (_, p) = problem(read_field_file("f", dir.path(), "bin", 100).unwrap_err());
        assert!(p.contains("not UTF-8"), "{p}");
        // `/dev/zero` is refused whether named directly (outside) or linked.
        assert!(read_field_file("f", dir.path(), "/dev/zero", 100).is_err());
        assert!(read_field_file("f", Path::new("/"), "/dev/zero", 100)
            .is_err_and(|e| problem(e).1.contains("not a regular file")));
    }

    #[test]
    fn wsi_urls_are_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8181/usher/command",
            "http://127.9.8.7/usher/command",
            "http://[::1]:8181/usher/command",
            "http://LOCALHOST:8181/x",
        ] {
            assert!(check_loopback_url("url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.1.2.3:8181/usher/command",
            "http://example.com/usher/command",
            "http://[::2]:8181/x",
            "http://127.1:8181/x",
            "http://localhost.example.com/x",
            "http://0.0.0.0:8181/x",
        ] {
            let (field, p) = problem(check_loopback_url("url", bad).unwrap_err());
            assert_eq!(field, "url");
            assert!(p.contains("allow_remote_wsis"), "{bad}: {p}");
        }

        let input = |url: &str| WsiInput {
            name: "w".into(),
            url: url.into(),
            token_file: None,
            token: Some("sekrit-token".into()),
            role: WsiRole::Interceptor,
            app: "shop".into(),
            server: None,
        };
        let at = |f: &str| format!("wsis[0].{f}");
        let remote = "http://10.1.2.3:8181/usher/command";
        let e = input(remote)
            .check(&at, Path::new("/"), false, Origin::Config)
            .unwrap_err();
        assert_eq!(e.field(), "wsis[0].url");
        assert!(input(remote)
            .check(&at, Path::new("/"), true, Origin::Config)
            .is_ok());
    }
}
