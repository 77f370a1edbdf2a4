//! Logs an event when an application enters or leaves panic (fewer than
//! its threshold share of enabled servers in rotation, see
//! [`crate::views::in_panic`]). The front doors act on panic through their
//! snapshots; this task only tells the operator.

use std::collections::BTreeSet;

use crate::manager::Manager;
use usher_core::channel::event_type;

use crate::live::LiveView;
use crate::store::Store;
use crate::views::in_panic;

/// Starts the watcher; it runs while the store and the live view exist.
pub fn start(store: &Store, live: &LiveView, manager: Manager) {
    let mut fleet_rx = store.subscribe();
    let mut live_rx = live.subscribe();
    tokio::spawn(async move {
        let mut panicking: BTreeSet<String> = BTreeSet::new();
        loop {
            let fleet = fleet_rx.borrow_and_update().clone();
            let picture = live_rx.borrow_and_update().clone();
            let now: BTreeSet<String> = fleet
                .apps
                .iter()
                .filter(|a| in_panic(&fleet, &picture, a))
                .map(|a| a.name.clone())
                .collect();
            for app in now.difference(&panicking) {
                manager
                    .raise_event(
                        app,
                        event_type::APP_PANIC,
                        format!(
                            "app {app}: too few servers in rotation; the front doors use every enabled server"
                        ),
                    )
                    .await;
            }
            for app in panicking.difference(&now) {
                if fleet.app(app).is_some() {
                    manager
                        .raise_event(
                            app,
                            event_type::APP_PANIC_OVER,
                            format!("app {app}: enough servers in rotation again"),
                        )
                        .await;
                }
            }
            panicking = now;
            tokio::select! {
                changed = fleet_rx.changed() => if changed.is_err() { return },
                changed = live_rx.changed() => if changed.is_err() { return },
            }
        }
    });
}
