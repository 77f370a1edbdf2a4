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
                available: s.enabled,
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
