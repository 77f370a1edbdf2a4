//! Where the tests find what `make build` (and `make deps`) made.
//!
//! Every binary, module and filter the tests run is looked up here, once,
//! with its override variable; a missing one fails the test with the
//! command that builds it, instead of a confusing spawn error later.

use std::path::{Path, PathBuf};

/// Something built (or installed) before the tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// `target/release/usher` (`usher control`, `usher agent`, `usher ctl`).
    Usher,
    /// `target/release/usher-demo-app`.
    DemoApp,
    /// `target/release/usher-agent`, the standalone agent.
    Agent,
    /// `target/release/fixture-manager`, the manager alone (a test binary).
    FixtureManager,
    /// The usher nginx module.
    NginxModule,
    /// The usher Envoy filter.
    WasmFilter,
    /// Envoy from the project venv.
    Envoy,
    /// Debian's nginx.
    Nginx,
}

impl Artifact {
    /// The variable that overrides the default location, if any.
    pub fn env_var(self) -> Option<&'static str> {
        match self {
            Artifact::Usher => Some("USHER_BIN"),
            Artifact::DemoApp => Some("USHER_DEMO_APP"),
            Artifact::NginxModule => Some("USHER_NGINX_MODULE"),
            Artifact::WasmFilter => Some("USHER_WASM"),
            Artifact::Envoy => Some("ENVOY_BIN"),
            Artifact::Agent | Artifact::FixtureManager | Artifact::Nginx => None,
        }
    }

    /// Where it is when no variable says otherwise.
    pub fn default_path(self) -> PathBuf {
        let root = repo_root();
        match self {
            Artifact::Usher => root.join("target/release/usher"),
            Artifact::DemoApp => root.join("target/release/usher-demo-app"),
            Artifact::Agent => root.join("target/release/usher-agent"),
            Artifact::FixtureManager => root.join("target/release/fixture-manager"),
            Artifact::NginxModule => root.join("target/nginx/ngx_http_usher_module.so"),
            Artifact::WasmFilter => root.join("target/wasm32-wasip1/wasm/usher_filter.wasm"),
            Artifact::Envoy => root.join(".venv/bin/envoy"),
            Artifact::Nginx => PathBuf::from("/usr/sbin/nginx"),
        }
    }

    /// The command that makes it.
    pub fn build_hint(self) -> &'static str {
        match self {
            Artifact::Usher => "run `make build` (or `cargo build --release -p usher-cli`)",
            Artifact::DemoApp => "run `make build` (or `cargo build --release -p usher-demo-app`)",
            Artifact::Agent => "run `make build` (or `cargo build --release -p usher-agent`)",
            Artifact::FixtureManager => {
                "run `make build` (or `cargo build --release -p usher-integration`)"
            }
            Artifact::NginxModule => "run `make build` (or `bash scripts/build-nginx-module.sh`)",
            Artifact::WasmFilter => "run `make build` (or `bash scripts/build-wasm.sh`)",
            Artifact::Envoy => "run `make deps` (or `bash scripts/install-deps.sh`)",
            Artifact::Nginx => "run `make deps` (apt-get install nginx)",
        }
    }

    /// Where it is expected, whether or not it exists.
    pub fn location(self) -> PathBuf {
        self.env_var()
            .and_then(std::env::var_os)
            .map(PathBuf::from)
            .unwrap_or_else(|| self.default_path())
    }

    /// Its path; panics with the build hint when it is missing.
    pub fn path(self) -> PathBuf {
        let p = self.location();
        assert!(
            p.is_file(),
            "{} is missing: {}",
            p.display(),
            self.build_hint()
        );
        p
    }
}

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The release `usher` binary (`USHER_BIN` overrides).
pub fn usher_bin() -> PathBuf {
    Artifact::Usher.path()
}

/// The demo app binary (`USHER_DEMO_APP` overrides).
pub fn demo_app_bin() -> PathBuf {
    Artifact::DemoApp.path()
}

/// The nginx module (`USHER_NGINX_MODULE` overrides).
pub fn nginx_module() -> PathBuf {
    Artifact::NginxModule.path()
}

/// The Envoy filter (`USHER_WASM` overrides).
pub fn wasm_filter() -> PathBuf {
    Artifact::WasmFilter.path()
}

/// Envoy from the project venv (`ENVOY_BIN` overrides).
pub fn envoy_bin() -> PathBuf {
    Artifact::Envoy.path()
}
