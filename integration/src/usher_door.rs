//! `usher door` as the tests run it: the real binary from `target/release`,
//! its `door.toml` in a temp folder (command endpoint and app listeners on
//! the given loopback ports, a held-snapshot file), stopped by PID when
//! dropped. The control plane reaches it as one WSI per app: see
//! [`UsherDoor::wsi_config`].

use std::process::Command;
use std::time::Duration;

use crate::artifacts::Artifact;
use crate::ports::free_port;
use crate::proc::Proc;

/// The command token the tests give a door (and its WSI entries).
pub const DOOR_TOKEN: &str = "door-token-0123456789";

/// A running (or stopped) `usher door`.
pub struct UsherDoor {
    pub dir: tempfile::TempDir,
    pub command_port: u16,
    /// (app, port) of each front door it serves.
    pub apps: Vec<(String, u16)>,
    proc: Option<Proc>,
}

impl UsherDoor {
    /// Writes `door.toml` for `apps` (name, listen port) with `extra` text
    /// (e.g. a `[front_door]` table) and starts the door.
    pub fn start(apps: &[(&str, u16)], extra: &str) -> UsherDoor {
        let dir = tempfile::tempdir().expect("tempdir");
        let command_port = free_port();
        std::fs::write(dir.path().join("door.token"), DOOR_TOKEN).expect("token file");
        let mut text = format!(
            "[command]\nlisten = \"127.0.0.1:{command_port}\"\ntoken_file = \"door.token\"\n\
             snapshot_file = \"held.json\"\n\n{extra}\n"
        );
        for (name, port) in apps {
            text.push_str(&format!(
                "[[apps]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\n\n"
            ));
        }
        std::fs::write(dir.path().join("door.toml"), text).expect("door.toml");
        let mut door = UsherDoor {
            dir,
            command_port,
            apps: apps.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            proc: None,
        };
        door.launch();
        door
    }

    /// Starts the process (again), same config; waits for its command port.
    pub fn launch(&mut self) {
        let mut cmd = Command::new(Artifact::Usher.path());
        cmd.arg("door")
            .arg("--config")
            .arg(self.dir.path().join("door.toml"));
        cmd.env("USHER_LOG", "info");
        let log = self.dir.path().join("door.log");
        let mut p = Proc::spawn("usher door", cmd, &log);
        p.wait_listening(self.command_port, Duration::from_secs(10), None);
        self.proc = Some(p);
    }

    /// Stops the process (SIGTERM, by PID).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// The snapshot version the door holds for `app` (0: none yet, or the
    /// door does not answer).
    pub fn version(&self, app: &str) -> u64 {
        let url = format!("http://127.0.0.1:{}/", self.command_port);
        let r = crate::http::call(
            crate::http::http()
                .get(&url)
                .set("Authorization", &format!("Bearer {DOOR_TOKEN}")),
            None,
        );
        if r.status != 200 {
            return 0;
        }
        r.json()["apps"][app]["version"].as_u64().unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("door.log")).unwrap_or_default()
    }

    /// `[[wsis]]` entries for usher.toml, one per app, with the token file
    /// `door.token` (which [`UsherDoor::token_file`] gives the control plane).
    pub fn wsi_config(&self) -> String {
        self.apps
            .iter()
            .map(|(app, _)| {
                format!(
                    "[[wsis]]\nname = \"door-{app}\"\nrole = \"interceptor\"\napp = \"{app}\"\n\
                     url = \"http://127.0.0.1:{}/\"\ntoken_file = \"door.token\"\n\n",
                    self.command_port
                )
            })
            .collect()
    }

    /// The token file the control plane needs next to its usher.toml.
    pub fn token_file() -> (&'static str, &'static str) {
        ("door.token", DOOR_TOKEN)
    }
}
