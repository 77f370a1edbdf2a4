//! What each front door and WSI sees of the fleet: `usher-core` snapshot
//! types built from a [`Fleet`] picture.

use usher_core::{AppView, RedirectOrder, ServerView, Snapshot, WsiOrders};

use crate::model::{App, Fleet, Wsi, WsiRole, FRONT_DOOR_TARGET};

/// Seconds since the Unix epoch.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One application as a front door sees it at `now_unix`.
pub fn app_view(fleet: &Fleet, app: &App, now_unix: f64) -> AppView {
    AppView {
        name: app.name.clone(),
        enabled: app.enabled,
        mode: app.mode,
        epsilon: app.epsilon,
        obsolescence_secs: app.obsolescence_secs,
        sorry_page: app.sorry_page.as_ref().map(|s| s.html.clone()),
        servers: fleet
            .servers_of(&app.name)
            .map(|s| ServerView {
                name: s.name.clone(),
                url: s.url.clone(),
                capacity: s.capacity,
                dynamic_load: s.dynamic_load,
                load_age_secs: s
                    .load_updated_unix
                    .map(|t| (now_unix - t).max(0.0))
                    .unwrap_or(0.0),
                available: s.enabled && s.failed.is_none(),
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

/// The snapshot for one WSI, or `None` when its app is gone.
pub fn wsi_snapshot(fleet: &Fleet, wsi: &Wsi, version: u64, now_unix: f64) -> Option<Snapshot> {
    let app = fleet.app(&wsi.app)?;
    Some(match wsi.role {
        WsiRole::Interceptor => Snapshot {
            version,
            apps: vec![app_view(fleet, app, now_unix)],
            orders: None,
        },
        WsiRole::Server => {
            let server = wsi.server.as_deref().and_then(|s| fleet.server(s));
            let redirect = server
                .and_then(|s| s.redirect.as_deref())
                .and_then(|t| resolve_target(fleet, app, t))
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
token = "t"
role = "server"
app = "shop"
server = "a"
[[wsis]]
name = "door"
url = "http://127.0.0.1:8182/usher/command"
token = "t"
role = "interceptor"
app = "shop"
"#;
        let c = Config::parse(std::path::Path::new("/tmp/usher.toml"), text).expect("config");
        let mut fleet = Fleet {
            generation: 1,
            apps: c.apps,
            servers: c.servers,
            wsis: c.wsis,
        };
        fleet.servers[1].dynamic_load = Some(700);
        fleet.servers[1].load_updated_unix = Some(100.0);
        fleet.servers[1].enabled = false;

        let door = wsi_snapshot(&fleet, &fleet.wsis[1], 7, 130.0).expect("door");
        door.validate().expect("valid");
        let b = &door.apps[0].servers[1];
        assert_eq!(
            (b.dynamic_load, b.load_age_secs, b.available),
            (Some(700), 30.0, false)
        );
        assert!(door.orders.is_none());

        let ngx = wsi_snapshot(&fleet, &fleet.wsis[0], 8, 130.0).expect("ngx");
        ngx.validate().expect("valid");
        let orders = ngx.orders.clone().expect("orders");
        assert!(orders.redirect.is_none());
        assert_eq!(orders.rules.stateful, vec!["/cart"]);

        fleet.servers[0].redirect = Some("b".into());
        let ngx = wsi_snapshot(&fleet, &fleet.wsis[0], 9, 130.0).expect("ngx");
        let target = ngx.orders.and_then(|o| o.redirect).map(|r| r.target);
        assert_eq!(target.as_deref(), Some("http://127.0.0.1:18082"));
        fleet.servers[0].redirect = Some(FRONT_DOOR_TARGET.into());
        let ngx = wsi_snapshot(&fleet, &fleet.wsis[0], 10, 130.0).expect("ngx");
        let target = ngx.orders.and_then(|o| o.redirect).map(|r| r.target);
        assert_eq!(target.as_deref(), Some("http://shop.example"));
    }
}
