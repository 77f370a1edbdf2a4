//! `GET /metrics` on the admin listener: the fleet as Prometheus scrapes
//! it. Every figure comes from what the API already shows (the live view,
//! the manager's latest statuses, the store), read at scrape time; nothing
//! here is kept or computed in the background.
//!
//! Names follow Prometheus conventions: `usher_` prefix, base units in the
//! name (`_seconds`, `_bytes`), `_total` for counters, an enum as one 0/1
//! series per possible state. The page needs the admin token unless
//! `[control] metrics_public = true`.

pub mod exposition;
pub mod process;

use std::collections::HashMap;

use warp::http::header::CONTENT_TYPE;
use warp::reply::Response;

use self::exposition::{Exposition, Kind};
use self::process::ProcessFigures;
use crate::api::models::{servers_out, ServerOut};
use crate::state::AppState;
use crate::views::now_unix;

/// Every state a server can be in, as `GET /api/v1/servers` names it.
pub const SERVER_STATES: [&str; 11] = [
    "ok",
    "disabled",
    "failed",
    "held-out",
    "restarting",
    "drained",
    "draining",
    "offloading",
    "heavy",
    "slow-start",
    "pinned",
];

/// The metrics page for the control plane `st` right now.
pub fn page(st: &AppState) -> String {
    let fleet = st.store.fleet();
    let live = st.live.get();
    let now = now_unix();
    let servers = servers_out(&fleet, &live, now);
    let statuses: HashMap<String, _> = st
        .manager
        .statuses()
        .into_iter()
        .map(|s| (s.server.clone(), s))
        .collect();
    let totals = st.manager.request_totals();
    let mut e = Exposition::new();

    e.family(
        "usher_build_info",
        Kind::Gauge,
        "Always 1; the usher version as a label.",
    );
    e.sample(
        "usher_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );

    // Per server: one family at a time, every server in it.
    type Figure<'f> = &'f dyn Fn(&ServerOut<'_>) -> Option<f64>;
    let family = |e: &mut Exposition, name: &str, kind: Kind, help: &str, value: Figure<'_>| {
        e.family(name, kind, help);
        for s in &servers {
            if let Some(v) = value(s) {
                e.sample(
                    name,
                    &[("app", &s.server.app), ("server", &s.server.name)],
                    v,
                );
            }
        }
    };
    family(
        &mut e,
        "usher_server_weight",
        Kind::Gauge,
        "Load metric: the server's weight at the front doors now (0 when out of rotation).",
        &|s| Some(s.load_metric),
    );
    family(
        &mut e,
        "usher_server_share_ratio",
        Kind::Gauge,
        "Share (0..1) of its app's new users the server gets now.",
        &|s| Some(s.share),
    );
    family(
        &mut e,
        "usher_server_dynamic_load",
        Kind::Gauge,
        "Load value the front doors use (pinned or measured), 0..10000; absent when unknown.",
        &|s| s.load.map(f64::from),
    );
    family(
        &mut e,
        "usher_server_load_age_seconds",
        Kind::Gauge,
        "Age of the load value: since the agent measured it (0 while pinned).",
        &|s| s.load_age_secs,
    );
    family(
        &mut e,
        "usher_server_queue_delay_seconds",
        Kind::Gauge,
        "Delay the latest load value came from (probe queue delay or processing time).",
        &|s| {
            statuses
                .get(&s.server.name)
                .and_then(|st| st.delay_us)
                .map(|us| us as f64 / 1e6)
        },
    );
    family(
        &mut e,
        "usher_server_probe_queue_length",
        Kind::Gauge,
        "Queue length the agent's probe measured in its latest report.",
        &|s| {
            statuses
                .get(&s.server.name)
                .and_then(|st| st.queue_length)
                .map(f64::from)
        },
    );
    family(
        &mut e,
        "usher_server_error_ratio",
        Kind::Gauge,
        "Share (0..1) of users' answers that were 5xx or 429, latest report.",
        &|s| statuses.get(&s.server.name).map(|st| st.error_share),
    );
    family(
        &mut e,
        "usher_server_requests_total",
        Kind::Counter,
        "Users' requests (not probes) the agents reported since the control plane started.",
        &|s| Some(totals.get(&s.server.name).map_or(0, |t| t.0) as f64),
    );
    family(
        &mut e,
        "usher_server_errors_total",
        Kind::Counter,
        "Of those, answers that were 5xx or 429.",
        &|s| Some(totals.get(&s.server.name).map_or(0, |t| t.1) as f64),
    );
    family(
        &mut e,
        "usher_server_pid",
        Kind::Gauge,
        "PID of the server's process as its agent last reported it; absent when unknown.",
        &|s| s.pid.map(f64::from),
    );
    e.family(
        "usher_server_state",
        Kind::Gauge,
        "1 for the server's state now, 0 for every other state.",
    );
    for s in &servers {
        for state in SERVER_STATES {
            e.sample(
                "usher_server_state",
                &[
                    ("app", &s.server.app),
                    ("server", &s.server.name),
                    ("state", state),
                ],
                f64::from(u8::from(s.state == state)),
            );
        }
    }

    // Per app.
    e.family(
        "usher_app_enabled",
        Kind::Gauge,
        "1 when the app takes new users.",
    );
    for a in &fleet.apps {
        e.sample(
            "usher_app_enabled",
            &[("app", &a.name)],
            f64::from(u8::from(a.enabled)),
        );
    }
    e.family(
        "usher_app_swamped",
        Kind::Gauge,
        "1 while the manager holds the app swamped (every server heavily loaded).",
    );
    for a in &fleet.apps {
        e.sample(
            "usher_app_swamped",
            &[("app", &a.name)],
            f64::from(u8::from(live.swamped(&a.name).is_some())),
        );
    }

    // Per agent: every agent heard since the control plane started, and
    // every agent with its own token.
    let connected = st.manager.connected_agents();
    let heard = st.manager.last_heard();
    let mut agents: Vec<String> = heard.keys().cloned().collect();
    let identities = st.manager.identities();
    agents.extend(identities.ids().map(String::from));
    agents.extend(connected.iter().cloned());
    agents.sort();
    agents.dedup();
    e.family(
        "usher_agent_connected",
        Kind::Gauge,
        "1 while the agent's channel is open.",
    );
    for id in &agents {
        e.sample(
            "usher_agent_connected",
            &[("agent", id)],
            f64::from(u8::from(connected.contains(id))),
        );
    }
    e.family(
        "usher_agent_last_report_age_seconds",
        Kind::Gauge,
        "Since the agent was last heard; absent when never heard since the control plane started.",
    );
    for id in &agents {
        if let Some(age) = heard.get(id) {
            e.sample(
                "usher_agent_last_report_age_seconds",
                &[("agent", id)],
                age.as_secs_f64(),
            );
        }
    }

    process_families(&mut e, &ProcessFigures::read());
    e.finish()
}

fn process_families(e: &mut Exposition, p: &ProcessFigures) {
    let one = |e: &mut Exposition, name: &str, kind: Kind, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            e.family(name, kind, help);
            e.sample(name, &[], v);
        }
    };
    one(
        e,
        "process_cpu_seconds_total",
        Kind::Counter,
        "User and system CPU time of usher control, seconds.",
        p.cpu_seconds,
    );
    one(
        e,
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory of usher control, bytes.",
        p.resident_bytes,
    );
    one(
        e,
        "process_start_time_seconds",
        Kind::Gauge,
        "Start time of usher control, unix seconds.",
        p.start_time_unix,
    );
    one(
        e,
        "process_open_fds",
        Kind::Gauge,
        "Open file descriptors of usher control.",
        p.open_fds,
    );
    one(
        e,
        "process_threads",
        Kind::Gauge,
        "Threads of usher control.",
        p.threads,
    );
}

/// The `GET /metrics` answer.
pub fn reply(st: &AppState) -> Response {
    let mut r = Response::new(page(st).into());
    r.headers_mut().insert(
        CONTENT_TYPE,
        warp::http::HeaderValue::from_static(exposition::CONTENT_TYPE),
    );
    r
}
