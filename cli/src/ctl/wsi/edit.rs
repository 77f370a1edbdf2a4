//! The next snapshot for one WSI, built from the one it holds and one
//! change (pure: no I/O, so every rule is tested here).
//!
//! The version is the wall clock in Unix milliseconds, like the control
//! plane's, or one above the WSI's when that is ahead: the WSI refuses a
//! version not above its own (`usher_core::version`), and a control plane
//! that comes back later still pushes over it (its versions are the clock).

use usher_core::model::{validate_base_url, AppMode};
use usher_core::snapshot::{AppView, RedirectOrder, ServerView, Snapshot, WsiOrders};

/// One change an operator asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    AppEnabled {
        app: String,
        enabled: bool,
    },
    AppMode {
        app: String,
        mode: AppMode,
    },
    ServerAdd {
        name: String,
        app: String,
        url: String,
        capacity: u32,
    },
    ServerRemove {
        name: String,
    },
    ServerAvailable {
        name: String,
        available: bool,
    },
    /// A load value to act on (`None`: back to the static capacity).
    ServerLoad {
        name: String,
        load: Option<u32>,
    },
    /// Server role: redirect users to this base URL (`None`: stop).
    Redirect {
        target: Option<String>,
    },
}

/// The apps of `s`, by name, for error messages.
fn app_names(s: &Snapshot) -> String {
    let names: Vec<&str> = s.apps.iter().map(|a| a.name.as_str()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn app_mut<'a>(s: &'a mut Snapshot, app: &str) -> Result<&'a mut AppView, String> {
    let known = app_names(s);
    s.apps
        .iter_mut()
        .find(|a| a.name == app)
        .ok_or_else(|| format!("the WSI's snapshot has no app {app} (apps: {known})"))
}

/// Every view of server `name` (a server belongs to one app, but nothing
/// stops a hand-made snapshot from naming it twice); an error when none.
fn servers_mut<'a>(s: &'a mut Snapshot, name: &str) -> Result<Vec<&'a mut ServerView>, String> {
    let found: Vec<&mut ServerView> = s
        .apps
        .iter_mut()
        .flat_map(|a| a.servers.iter_mut())
        .filter(|v| v.name == name)
        .collect();
    if found.is_empty() {
        Err(format!("the WSI's snapshot has no server {name}"))
    } else {
        Ok(found)
    }
}

/// The snapshot after `change`, versioned above `current` and at least
/// `now_ms`, and valid (`Snapshot::validate`); or what is wrong, named.
pub fn apply(current: Option<&Snapshot>, change: &Change, now_ms: u64) -> Result<Snapshot, String> {
    let mut s = current.cloned().unwrap_or(Snapshot {
        version: 0,
        apps: Vec::new(),
        orders: None,
    });
    match change {
        Change::AppEnabled { app, enabled } => app_mut(&mut s, app)?.enabled = *enabled,
        Change::AppMode { app, mode } => app_mut(&mut s, app)?.mode = *mode,
        Change::ServerAdd {
            name,
            app,
            url,
            capacity,
        } => {
            if s.apps
                .iter()
                .flat_map(|a| &a.servers)
                .any(|v| &v.name == name)
            {
                return Err(format!("the WSI's snapshot has a server {name} already"));
            }
            if !s.apps.iter().any(|a| &a.name == app) {
                s.apps.push(AppView {
                    name: app.clone(),
                    enabled: true,
                    mode: AppMode::default(),
                    epsilon: 0.0,
                    obsolescence_secs: usher_core::snapshot::default_obsolescence_secs(),
                    sorry_page: None,
                    servers: Vec::new(),
                });
            }
            app_mut(&mut s, app)?.servers.push(ServerView {
                name: name.clone(),
                url: url.clone(),
                capacity: *capacity,
                available: true,
                ..ServerView::default()
            });
        }
        Change::ServerRemove { name } => {
            servers_mut(&mut s, name)?;
            for a in &mut s.apps {
                a.servers.retain(|v| &v.name != name);
            }
        }
        Change::ServerAvailable { name, available } => {
            for v in servers_mut(&mut s, name)? {
                v.available = *available;
            }
        }
        Change::ServerLoad { name, load } => {
            for v in servers_mut(&mut s, name)? {
                v.dynamic_load = *load;
                v.load_age_secs = 0.0;
            }
        }
        Change::Redirect { target } => {
            if let Some(t) = target {
                validate_base_url("target", t).map_err(|e| e.to_string())?;
            }
            let orders = s.orders.get_or_insert_with(WsiOrders::default);
            orders.redirect = target.clone().map(|target| RedirectOrder { target });
        }
    }
    s.version = now_ms.max(current.map_or(0, |c| c.version.saturating_add(1)));
    s.validate()
        .map_err(|e| format!("the new snapshot is not valid: {e}"))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn add(name: &str, app: &str, port: u16) -> Change {
        Change::ServerAdd {
            name: name.into(),
            app: app.into(),
            url: format!("http://127.0.0.1:{port}"),
            capacity: 5,
        }
    }

    #[test]
    fn builds_from_nothing_and_from_what_the_wsi_holds() {
        let one = apply(None, &add("a", "shop", 8081), NOW).expect("first");
        assert_eq!(one.version, NOW);
        assert_eq!(one.apps.len(), 1);
        assert!(one.apps[0].enabled && one.apps[0].servers[0].available);
        let two = apply(Some(&one), &add("b", "shop", 8082), NOW).expect("second");
        assert_eq!(
            two.version,
            NOW + 1,
            "one above when the clock did not move"
        );
        let off = apply(
            Some(&two),
            &Change::ServerAvailable {
                name: "a".into(),
                available: false,
            },
            NOW + 500,
        )
        .expect("disable");
        assert_eq!(off.version, NOW + 500);
        assert!(!off.apps[0].servers[0].available && off.apps[0].servers[1].available);
        let loaded = apply(
            Some(&off),
            &Change::ServerLoad {
                name: "b".into(),
                load: Some(1200),
            },
            NOW,
        )
        .expect("load");
        assert_eq!(loaded.apps[0].servers[1].dynamic_load, Some(1200));
        let proxy = apply(
            Some(&loaded),
            &Change::AppMode {
                app: "shop".into(),
                mode: AppMode::Proxy,
            },
            NOW,
        )
        .expect("mode");
        assert_eq!(proxy.apps[0].mode, AppMode::Proxy);
        let gone = apply(
            Some(&proxy),
            &Change::ServerRemove { name: "a".into() },
            NOW,
        )
        .expect("remove");
        assert_eq!(gone.apps[0].servers.len(), 1);
        let disabled = apply(
            Some(&gone),
            &Change::AppEnabled {
                app: "shop".into(),
                enabled: false,
            },
            NOW,
        )
        .expect("disable app");
        assert!(!disabled.apps[0].enabled);
        assert!(disabled.version > gone.version);
    }

    #[test]
    fn errors_name_what_is_missing_or_wrong() {
        let one = apply(None, &add("a", "shop", 8081), NOW).expect("first");
        let e = apply(
            Some(&one),
            &Change::AppEnabled {
                app: "blog".into(),
                enabled: true,
            },
            NOW,
        )
        .expect_err("no such app");
        assert_eq!(e, "the WSI's snapshot has no app blog (apps: shop)");
        let e = apply(Some(&one), &Change::ServerRemove { name: "z".into() }, NOW)
            .expect_err("no such server");
        assert_eq!(e, "the WSI's snapshot has no server z");
        let e = apply(Some(&one), &add("a", "shop", 9), NOW).expect_err("twice");
        assert!(e.contains("has a server a already"), "{e}");
        let e = apply(
            Some(&one),
            &Change::ServerAdd {
                name: "b".into(),
                app: "shop".into(),
                url: "ftp://x".into(),
                capacity: 5,
            },
            NOW,
        )
        .expect_err("bad url");
        assert!(e.starts_with("the new snapshot is not valid"), "{e}");
        let e = apply(
            None,
            &Change::Redirect {
                target: Some("not a url".into()),
            },
            NOW,
        )
        .expect_err("bad target");
        assert!(e.contains("target"), "{e}");
    }

    #[test]
    fn redirect_orders_come_and_go() {
        let on = apply(
            None,
            &Change::Redirect {
                target: Some("http://127.0.0.1:8080".into()),
            },
            NOW,
        )
        .expect("on");
        assert_eq!(
            on.orders
                .as_ref()
                .and_then(|o| o.redirect.as_ref())
                .map(|r| r.target.as_str()),
            Some("http://127.0.0.1:8080")
        );
        let off = apply(Some(&on), &Change::Redirect { target: None }, NOW).expect("off");
        assert_eq!(off.orders.and_then(|o| o.redirect), None);
    }
}
