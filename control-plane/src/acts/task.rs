//! Runs the [`Engine`](super::Engine) every manager interval: figures in
//! from the manager's latest statuses and the configured fleet, picture out
//! into the live view, events into the logging database, actions out
//! through the agents. Also refreshes each server's long-term load (the
//! front doors' static default) every `long_term_every_s`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use usher_core::channel::CommandKind;

use super::engine::{Action, ActionKind, Figures};
use super::{Acts, Policy};
use crate::live::LiveView;
use crate::manager::{Manager, ServerStatus};
use crate::model::Fleet;
use crate::store::Store;
use crate::views::now_unix;

/// How long an agent may take to restart or stop a server.
const ACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Each configured server's figures from the latest statuses.
fn figures(fleet: &Fleet, statuses: &[ServerStatus], live: &crate::live::Live) -> Vec<Figures> {
    let by_name: HashMap<&str, &ServerStatus> =
        statuses.iter().map(|s| (s.server.as_str(), s)).collect();
    fleet
        .servers
        .iter()
        .map(|s| {
            let st = by_name.get(s.name.as_str());
            Figures {
                server: s.name.clone(),
                app: s.app.clone(),
                enabled: s.enabled,
                failed: live.failed(&s.name).is_some(),
                process_known: live.server(&s.name).is_some_and(|l| l.pid.is_some()),
                delay_ms: st.and_then(|st| st.delay_us).map(|d| d as f64 / 1000.0),
                queue_length: st.and_then(|st| st.queue_length),
                cpu_pct: st.and_then(|st| st.host_cpu_pct),
                mem_pct: st.and_then(|st| st.host_mem_pct),
                requests: st.map_or(0, |st| st.requests),
                errors: st.map_or(0, |st| st.errors),
                report_at: st.and_then(|st| st.measured_at_unix),
            }
        })
        .collect()
}

/// Starts the task (and the long-term refresher); they run for the life of
/// the process.
pub fn start(acts: &Acts, store: &Store, live: &LiveView, manager: Manager) {
    let interval = Duration::from_millis(manager.config().interval_ms.max(50));
    let (acts, store, live) = (acts.clone(), store.clone(), live.clone());
    let long_term = (live.clone(), manager.clone());
    let window = Duration::from_secs(manager.config().long_term_window_s);
    let every = Duration::from_secs(manager.config().long_term_every_s);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = acts.wake.notified() => {}
            }
            run_once(&acts, &store, &live, &manager).await;
        }
    });
    tokio::spawn(async move {
        let (live, manager) = long_term;
        loop {
            refresh_long_term(&live, &manager, window).await;
            tokio::time::sleep(every).await;
        }
    });
}

async fn run_once(acts: &Acts, store: &Store, live: &LiveView, manager: &Manager) {
    let fleet = store.fleet();
    let picture = live.get();
    let policies: BTreeMap<String, Policy> = fleet
        .apps
        .iter()
        .map(|a| (a.name.clone(), a.policy.clone()))
        .collect();
    let figs = figures(&fleet, &manager.statuses(), &picture);
    let now = now_unix();
    let (events, actions, (servers, swamped, system)) = {
        let mut engine = acts.lock();
        let (events, actions) = engine.tick(now, &policies, &figs);
        (events, actions, engine.picture())
    };
    live.update(|l| {
        let mut changed = false;
        for (name, a) in &servers {
            let entry = l.servers.entry(name.clone()).or_default();
            if entry.acts != *a {
                entry.acts = a.clone();
                changed = true;
            }
        }
        for (name, entry) in l.servers.iter_mut() {
            if !servers.contains_key(name) && entry.acts != Default::default() {
                entry.acts = Default::default();
                changed = true;
            }
        }
        if l.swamped != swamped || l.system_swamped != system {
            l.swamped = swamped.clone();
            l.system_swamped = system;
            changed = true;
        }
        changed
    });
    for e in events {
        // Every server event names its app too (the origin is the server).
        let text = match fleet.server(&e.origin) {
            Some(s) => format!("{} (app {})", e.text, s.app),
            None => e.text,
        };
        manager.raise_event(&e.origin, e.kind, text).await;
    }
    for action in actions {
        tokio::spawn(carry_out(
            acts.clone(),
            live.clone(),
            manager.clone(),
            action,
        ));
    }
}

/// Sends one action to the server's agent and tells the engine how it went.
async fn carry_out(acts: Acts, live: LiveView, manager: Manager, action: Action) {
    let server = action.server.clone();
    let kind = match action.kind {
        ActionKind::Restart => CommandKind::RestartServer {
            server: server.clone(),
        },
        ActionKind::Stop => CommandKind::StopServer {
            server: server.clone(),
            signal: None,
        },
    };
    let result = match manager.command_server(kind, ACTION_TIMEOUT).await {
        Ok(r) if r.ok => {
            live.set_pid(&server, r.pid);
            if action.kind == ActionKind::Restart {
                manager.forget_errors(&server);
            }
            Ok(())
        }
        Ok(r) => Err(r.text),
        Err(e) => Err(e.to_string()),
    };
    acts.lock().action_done(&server, action.kind, result);
    acts.wake.notify_one();
}

/// Each server's mean load value over `window`, into the live view.
async fn refresh_long_term(live: &LiveView, manager: &Manager, window: Duration) {
    let loads = match manager.long_term_loads(window).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("long-term loads not read: {e}");
            return;
        }
    };
    live.update(|l| {
        let mut changed = false;
        for (server, mean) in &loads {
            let value = Some(
                mean.round()
                    .clamp(0.0, f64::from(usher_core::DYNAMIC_LOAD_MAX)) as u32,
            );
            let entry = l.servers.entry(server.clone()).or_default();
            if entry.long_term_load != value {
                entry.long_term_load = value;
                changed = true;
            }
        }
        changed
    });
}
