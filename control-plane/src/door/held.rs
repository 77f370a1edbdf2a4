//! What a separate front door holds: per application, the last snapshot
//! version it applied and the application's view. Versions are kept per
//! application because the control plane pushes each application's view to
//! this door as a WSI of its own, each push with its own version.
//!
//! With a `snapshot_file` the held views survive a restart of the door, so
//! a door restarted while the control plane is down still serves users
//! (loads age from the moment they were saved, as the design's aging rule
//! says).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use usher_core::version::{admit, Refused};
use usher_core::{AppView, ErrorReply, Snapshot};

/// One application's held view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldApp {
    pub version: u64,
    pub view: AppView,
    /// Wall-clock seconds when the view was applied (to age it on reload).
    pub applied_unix: f64,
}

/// Every application's held view, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Held {
    pub apps: BTreeMap<String, HeldApp>,
}

/// Why a snapshot was not applied: the HTTP status and the reply body.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub reply: ErrorReply,
}

impl Refusal {
    fn bad(message: String) -> Refusal {
        Refusal {
            status: 400,
            reply: ErrorReply::new(message),
        }
    }
}

impl From<Refused> for Refusal {
    fn from(r: Refused) -> Refusal {
        Refusal {
            status: r.status(),
            reply: r.reply(),
        }
    }
}

impl Held {
    /// Applies `snapshot` to every app it names, or to none: each app must
    /// be one this door serves (`served`), and the version must be
    /// admitted against that app's held version (`usher_core::version`).
    /// Returns the apps that changed.
    pub fn apply(
        &mut self,
        snapshot: Snapshot,
        served: &[String],
        now_ms: u64,
    ) -> Result<Vec<String>, Refusal> {
        snapshot
            .validate()
            .map_err(|e| Refusal::bad(format!("snapshot.{e}")))?;
        if snapshot.orders.is_some() {
            return Err(Refusal::bad(
                "snapshot.orders: this is a front door (role interceptor), not a server-role WSI"
                    .into(),
            ));
        }
        if snapshot.apps.is_empty() {
            return Err(Refusal::bad(
                "snapshot.apps: names no application (is the WSI's role interceptor?)".into(),
            ));
        }
        for app in &snapshot.apps {
            if !served.contains(&app.name) {
                return Err(Refusal::bad(format!(
                    "snapshot.apps: app {:?} has no listener in this door's config",
                    app.name
                )));
            }
            let current = self.apps.get(&app.name).map_or(0, |h| h.version);
            admit(snapshot.version, current, now_ms)?;
        }
        let now_unix = now_ms as f64 / 1000.0;
        let mut changed = Vec::new();
        for view in snapshot.apps {
            changed.push(view.name.clone());
            self.apps.insert(
                view.name.clone(),
                HeldApp {
                    version: snapshot.version,
                    view,
                    applied_unix: now_unix,
                },
            );
        }
        Ok(changed)
    }

    /// Reads a saved file; a missing file is an empty hold. Each view's load
    /// ages are advanced by the time since it was applied.
    pub fn load(path: &Path, now_unix: f64) -> std::io::Result<Held> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Held::default()),
            Err(e) => return Err(e),
        };
        let mut held: Held = serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        for h in held.apps.values_mut() {
            let since = (now_unix - h.applied_unix).max(0.0);
            for s in &mut h.view.servers {
                s.load_age_secs += since;
            }
            h.applied_unix = now_unix;
        }
        Ok(held)
    }

    /// Writes the hold to `path` (mode 0600) through a temporary file and a
    /// rename, so a crash leaves the old file or the new one.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(crate::token::PRIVATE_MODE)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_core::{AppMode, ServerView};

    const NOW_MS: u64 = 1_704_067_200_000;

    fn snapshot(version: u64, app: &str) -> Snapshot {
        Snapshot {
            version,
            apps: vec![AppView {
                name: app.into(),
                enabled: true,
                mode: AppMode::Proxy,
                epsilon: 0.0,
                obsolescence_secs: 1200.0,
                sorry_page: None,
                servers: vec![ServerView {
                    name: "a".into(),
                    url: "http://127.0.0.1:9001".into(),
                    capacity: 5,
                    dynamic_load: Some(4000),
                    load_age_secs: 1.0,
                    available: true,
                    ..Default::default()
                }],
            }],
            orders: None,
        }
    }

    fn served() -> Vec<String> {
        vec!["shop".into(), "blog".into()]
    }

    #[test]
    fn versions_are_kept_per_app() {
        let mut h = Held::default();
        assert_eq!(
            h.apply(snapshot(NOW_MS, "shop"), &served(), NOW_MS),
            Ok(vec!["shop".into()])
        );
        // The other app's older version is still news to that app.
        assert!(h
            .apply(snapshot(NOW_MS - 5, "blog"), &served(), NOW_MS)
            .is_ok());
        let stale = h.apply(snapshot(NOW_MS - 1, "shop"), &served(), NOW_MS);
        assert_eq!(
            stale.map_err(|r| (r.status, r.reply.stale_current())),
            Err((409, Some(NOW_MS)))
        );
        assert_eq!(h.apps["shop"].version, NOW_MS);
        assert_eq!(h.apps["blog"].version, NOW_MS - 5);
    }

    #[test]
    fn refusals_name_the_problem_and_change_nothing() {
        let mut h = Held::default();
        let r = h
            .apply(snapshot(NOW_MS, "other"), &served(), NOW_MS)
            .expect_err("unserved");
        assert_eq!(r.status, 400);
        assert!(r.reply.error.contains("\"other\""), "{}", r.reply.error);
        let mut s = snapshot(NOW_MS, "shop");
        s.orders = Some(Default::default());
        assert_eq!(
            h.apply(s, &served(), NOW_MS).map_err(|r| r.status),
            Err(400)
        );
        let far = h
            .apply(snapshot(u64::MAX, "shop"), &served(), NOW_MS)
            .expect_err("far");
        assert_eq!(far.status, 400);
        assert!(
            far.reply.error.starts_with("snapshot.version"),
            "{}",
            far.reply.error
        );
        assert_eq!(h, Held::default());
    }

    #[test]
    fn a_saved_hold_reloads_aged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("held.json");
        let mut h = Held::default();
        h.apply(snapshot(NOW_MS, "shop"), &served(), NOW_MS)
            .expect("apply");
        h.save(&path).expect("save");
        let mode = std::fs::metadata(&path).map(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o777
        });
        assert_eq!(mode.ok(), Some(0o600));
        let back = Held::load(&path, NOW_MS as f64 / 1000.0 + 30.0).expect("load");
        let age = back.apps["shop"].view.servers[0].load_age_secs;
        assert!((age - 31.0).abs() < 1e-9, "{age}");
        assert_eq!(back.apps["shop"].version, NOW_MS);
        assert_eq!(
            Held::load(&dir.path().join("none"), 0.0).expect("missing"),
            Held::default()
        );
    }
}
