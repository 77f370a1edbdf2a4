//! What each front door and WSI sees of the fleet: `usher-core` snapshot
//! types built from a [`Fleet`] picture.

use usher_core::{AppView, RedirectOrder, ServerView, Snapshot, WsiOrders};

use crate::acts::{OffloadTo, SwampedAction};
use crate::live::Live;
use crate::model::{App, Fleet, Server, Wsi, WsiRole, FRONT_DOOR_TARGET};

/// A load value counts as changed for a push when it moved by at least
/// this fraction…
const MIN_RELATIVE_CHANGE: f64 = 0.02;
/// …or by at least this many units (of 10000).
const MIN_ABSOLUTE_CHANGE: u32 = 50;

/// Seconds since the Unix epoch.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The load value a front door should use for `server` at `now_unix`,
/// with its age: the operator's pin (age 0) while it holds, else the latest
/// measurement (aged from when the agent measured it).
pub fn effective_load(server: &Server, live: &Live, now_unix: f64) -> (Option<u32>, Option<f64>) {
    if let Some(pin) = server.pin_at(now_unix) {
        return (Some(pin), Some(0.0));
    }
    let measured = live.server(&server.name);
    match measured.and_then(|m| m.measured_load) {
        Some(l) => {
            let age = measured
                .and_then(|m| m.measured_at_unix)
                .map(|t| (now_unix - t).max(0.0))
                .unwrap_or(0.0);
            (Some(l), Some(age))
        }
        None => (None, None),
    }
}

/// Whether `app` is in panic: fewer than its threshold share of its enabled
/// servers are in rotation (and at least one is enabled). In panic the front
/// doors use every enabled server, failed or not, rather than turn every
/// user away on what may be a fault of usher's own view.
pub fn in_panic(fleet: &Fleet, live: &Live, app: &App) -> bool {
    let enabled: Vec<&Server> = fleet.servers_of(&app.name).filter(|s| s.enabled).collect();
    let healthy = enabled
        .iter()
        .filter(|s| live.failed(&s.name).is_none())
        .count();
    !enabled.is_empty() && (healthy as f64) < app.panic_threshold_pct / 100.0 * enabled.len() as f64
}

/// One application as a front door sees it at `now_unix`: configured
/// objects from `fleet`, loads and verdicts from `live`.
///
/// The manager's decisions shape it too: a heavily loaded server gets no
/// new users (unless its app is swamped: then every available server is
/// back), a draining, restarting or held-out server none at all; a server
/// in slow start carries what is left of its ramp, every server its
/// long-term load value; a swamped app with `swamped_action = "sorry"` is
/// shown disabled (new users get the sorry page).
pub fn app_view(fleet: &Fleet, live: &Live, app: &App, now_unix: f64) -> AppView {
    let panic = in_panic(fleet, live, app);
    let swamped = live.swamped(&app.name).is_some();
    AppView {
        name: app.name.clone(),
        enabled: app.enabled && (!swamped || app.policy.swamped_action != SwampedAction::Sorry),
        mode: app.mode,
        epsilon: app.epsilon,
        obsolescence_secs: app.obsolescence_secs,
        sorry_page: app.sorry_page.as_ref().map(|s| s.html.clone()),
        servers: fleet
            .servers_of(&app.name)
            .map(|s| {
                let (load, age) = effective_load(s, live, now_unix);
                let acts = live.acts(&s.name);
                let ramp_left = acts.slow_start_until_unix.map_or(0.0, |until| {
                    (until - now_unix).clamp(0.0, acts.slow_start_secs)
                });
                ServerView {
                    name: s.name.clone(),
                    url: s.url.clone(),
                    capacity: s.capacity,
                    dynamic_load: load,
                    load_age_secs: age.unwrap_or(0.0),
                    available: s.enabled
                        && (panic || live.failed(&s.name).is_none())
                        && !acts.held_back()
                        && (!acts.heavy || swamped),
                    static_load: live.server(&s.name).and_then(|l| l.long_term_load),
                    slow_start_left_secs: ramp_left,
                    slow_start_secs: if ramp_left > 0.0 {
                        acts.slow_start_secs
                    } else {
                        0.0
                    },
                }
            })
            .collect(),
    }
}

/// The URL a redirect order names (`front-door` or a server), resolved from
/// the configuration only.
pub fn resolve_target(fleet: &Fleet, app: &App, target: &str) -> Option<String> {
    if target == FRONT_DOOR_TARGET {
        Some(app.public_url.clone())
    } else {
        fleet.server(target).map(|s| s.url.clone())
    }
}

/// Where `server`'s WSI sends new stateless users, if anywhere: the
/// operator's redirect order first; else the manager's — a drain sends
/// them to the front door, maximum load (unless the app is swamped: then
/// nobody is redirected) to the front door or to the lightest other server
/// in rotation, as the app's policy says.
fn manager_or_operator_target(
    fleet: &Fleet,
    live: &Live,
    app: &App,
    server: &Server,
    now_unix: f64,
) -> Option<String> {
    if let Some(t) = server.redirect.as_deref() {
        return resolve_target(fleet, app, t);
    }
    let acts = live.acts(&server.name);
    if acts.drain.is_some() {
        return Some(app.public_url.clone());
    }
    if !acts.offloading || live.swamped(&app.name).is_some() {
        return None;
    }
    if app.policy.offload_to == OffloadTo::Lightest {
        let lightest = fleet
            .servers_of(&app.name)
            .filter(|s| s.name != server.name && s.enabled && live.failed(&s.name).is_none())
            .filter(|s| {
                let a = live.acts(&s.name);
                !a.held_back() && !a.heavy && !a.offloading
            })
            .max_by_key(|s| {
                let (load, _) = effective_load(s, live, now_unix);
                load.unwrap_or(0).saturating_mul(s.capacity)
            });
        if let Some(s) = lightest {
            return Some(s.url.clone());
        }
    }
    Some(app.public_url.clone())
}

/// The snapshot for one WSI, or `None` when its app is gone: a pure
/// function of the configured objects and the live view.
pub fn wsi_snapshot(
    fleet: &Fleet,
    live: &Live,
    wsi: &Wsi,
    version: u64,
    now_unix: f64,
) -> Option<Snapshot> {
    let app = fleet.app(&wsi.app)?;
    Some(match wsi.role {
        WsiRole::Interceptor => Snapshot {
            version,
            apps: vec![app_view(fleet, live, app, now_unix)],
            orders: None,
        },
        WsiRole::Server => {
            let server = wsi.server.as_deref().and_then(|s| fleet.server(s));
            let redirect = server
                .and_then(|s| manager_or_operator_target(fleet, live, app, s, now_unix))
                .map(|target| RedirectOrder { target });
            Snapshot {
                version,
                apps: Vec::new(),
                orders: Some(WsiOrders {
                    redirect,
                    rules: app.rules.clone(),
                    field_mask: None,
                    report_pages: Vec::new(),
                }),
            }
        }
    })
}

/// Whether a WSI holding `old` must get `new`: anything it acts on
/// differs. Versions and data ages do not count (the host ages values
/// itself; the periodic keep-alive push refreshes them), and a load value
/// counts only when it moved meaningfully (2 % or 50 units) or appeared or
/// disappeared, so a steady fleet's small jitter causes no pushes.
pub fn differs(old: &Snapshot, new: &Snapshot) -> bool {
    let loads = |s: &Snapshot| -> Vec<Option<u32>> {
        s.apps
            .iter()
            .flat_map(|a| a.servers.iter().map(|v| v.dynamic_load))
            .collect()
    };
    let shape = |s: &Snapshot| {
        let mut s = s.clone();
        s.version = 0;
        for app in &mut s.apps {
            for v in &mut app.servers {
                v.dynamic_load = v.dynamic_load.map(|_| 0);
                v.load_age_secs = 0.0;
                // A ramp counts down at the host: only its start matters.
                v.slow_start_left_secs = if v.slow_start_left_secs > 0.0 {
                    1.0
                } else {
                    0.0
                };
            }
        }
        s
    };
    if shape(old) != shape(new) {
        return true;
    }
    loads(old)
        .into_iter()
        .zip(loads(new))
        .any(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => {
                let delta = a.abs_diff(b);
                delta >= MIN_ABSOLUTE_CHANGE
                    || f64::from(delta) / f64::from(a.max(1)) >= MIN_RELATIVE_CHANGE
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn snapshots_validate_and_resolve_targets_from_config_only() {
        let text = r#"
[[apps]]
name = "shop"
listen = "127.0.0.1:18080"
public_url = "http://shop.example"
stateful = ["/cart"]
[[servers]]
name = "a"
app = "shop"
url = "http://127.0.0.1:18081"
capacity = 5
[[servers]]
name = "b"
app = "shop"
url = "http://127.0.0.1:18082"
capacity = 2
[[wsis]]
name = "ngx-a"
url = "http://127.0.0.1:8181/usher/command"
token = "test-token"
role = "server"
app = "shop"
server = "a"
[[wsis]]
name = "door"
url = "http://127.0.0.1:8182/usher/command"
token = "test-token"
role = "interceptor"
app = "shop"
"#;
        let c = Config::parse(std::path::Path::new("/tmp/usher.toml"), text).expect("config");
        let mut fleet = Fleet {
            generation: 1,
            apps: c.apps,
            servers: c.servers,
            wsis: c.wsis,
            agents: Vec::new(),
        };
        let live_view = crate::live::LiveView::new();
        live_view.update(|l| {
            l.servers.insert(
                "b".into(),
                crate::live::ServerLive {
                    measured_load: Some(700),
                    measured_at_unix: Some(100.0),
                    ..Default::default()
                },
            );
            true
        });
        let live = live_view.get();
        fleet.servers[1].enabled = false;

        let door = wsi_snapshot(&fleet, &live, &fleet.wsis[1], 7, 130.0).expect("door");
        door.validate().expect("valid");
        let b = &door.apps[0].servers[1];
        assert_eq!(
            (b.dynamic_load, b.load_age_secs, b.available),
            (Some(700), 30.0, false)
        );
        assert!(door.orders.is_none());

        let ngx = wsi_snapshot(&fleet, &live, &fleet.wsis[0], 8, 130.0).expect("ngx");
        ngx.validate().expect("valid");
        let orders = ngx.orders.clone().expect("orders");
        assert!(orders.redirect.is_none());
        assert_eq!(orders.rules.stateful, vec!["/cart"]);

        fleet.servers[0].redirect = Some("b".into());
        let ngx = wsi_snapshot(&fleet, &live, &fleet.wsis[0], 9, 130.0).expect("ngx");
        let target = ngx.orders.and_then(|o| o.redirect).map(|r| r.target);
        assert_eq!(target.as_deref(), Some("http://127.0.0.1:18082"));
        fleet.servers[0].redirect = Some(FRONT_DOOR_TARGET.into());
        let ngx = wsi_snapshot(&fleet, &live, &fleet.wsis[0], 10, 130.0).expect("ngx");
        let target = ngx.orders.and_then(|o| o.redirect).map(|r| r.target);
        assert_eq!(target.as_deref(), Some("http://shop.example"));

        // A pin wins over the measurement (age 0) until it ends.
        fleet.servers[1].pinned_load = Some(300);
        fleet.servers[1].pinned_until_unix = Some(140.0);
        let door = wsi_snapshot(&fleet, &live, &fleet.wsis[1], 11, 130.0).expect("door");
        let b = &door.apps[0].servers[1];
        assert_eq!((b.dynamic_load, b.load_age_secs), (Some(300), 0.0));
        let door = wsi_snapshot(&fleet, &live, &fleet.wsis[1], 12, 150.0).expect("door");
        let b = &door.apps[0].servers[1];
        assert_eq!((b.dynamic_load, b.load_age_secs), (Some(700), 50.0));
    }

    #[test]
    fn differs_ignores_versions_ages_and_jitter() {
        let view = |load: Option<u32>, age: f64, available: bool| Snapshot {
            version: 1,
            apps: vec![usher_core::AppView {
                name: "shop".into(),
                enabled: true,
                mode: usher_core::AppMode::Redirect,
                epsilon: 0.0,
                obsolescence_secs: 1200.0,
                sorry_page: None,
                servers: vec![usher_core::ServerView {
                    name: "a".into(),
                    url: "http://127.0.0.1:1".into(),
                    capacity: 5,
                    dynamic_load: load,
                    load_age_secs: age,
                    available,
                    ..Default::default()
                }],
            }],
            orders: None,
        };
        let base = view(Some(5000), 0.0, true);
        let mut later = view(Some(5040), 3.0, true);
        later.version = 9;
        assert!(!differs(&base, &later)); // 40 units, under 2 %
        assert!(differs(&base, &view(Some(5100), 0.0, true)));
        assert!(differs(&base, &view(None, 0.0, true)));
        assert!(differs(&base, &view(Some(5000), 0.0, false)));
    }
}
