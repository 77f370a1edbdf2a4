//! The control plane's side of the manager's load loop: a
//! [`LoadListener`] that turns what the manager computes into store
//! changes, so the existing machinery (built-in front doors, snapshot pushes
//! to every WSI) carries them out.
//!
//! * `statuses` (every interval) → the dynamic load values that changed
//!   meaningfully, all in one transaction;
//! * `server_failed` / `server_recovered` → the server's `failed` verdict
//!   (out of rotation / back), at once, in its own transaction;
//! * `agent_hello` → logged only: agents, hosts and their facts live in the
//!   manager's logging database (`/api/v1/agents`, `/api/v1/hosts`).
//!
//! The listener itself never blocks: it queues the news on a channel; one
//! task applies it, folding whatever queued up meanwhile into one change.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use usher_core::channel::Hello;
use usher_manager::{LoadListener, ServerStatus};

use crate::model::Fleet;
use crate::store::{self, Store, StoreError};
use crate::views::now_unix;

/// A load value is written again when it moved by at least this fraction…
const MIN_RELATIVE_CHANGE: f64 = 0.02;
/// …or by at least this many units (of 10000)…
const MIN_ABSOLUTE_CHANGE: u32 = 50;
/// …or when the stored one is older than this (seconds), so it never ages
/// towards the static capacity while the agent keeps reporting.
const REFRESH_SECS: f64 = 30.0;

enum News {
    Statuses(Vec<ServerStatus>),
    Failed(String, String),
    Recovered(String),
}

/// The [`LoadListener`] the control plane hands to the manager.
#[derive(Debug)]
pub struct StoreListener {
    tx: mpsc::UnboundedSender<News>,
}

impl StoreListener {
    /// Starts the task that applies the manager's news to `store`.
    pub fn start(store: Store) -> Arc<StoreListener> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(apply_loop(store, rx));
        Arc::new(StoreListener { tx })
    }

    fn send(&self, news: News) {
        if self.tx.send(news).is_err() {
            tracing::debug!("manager news dropped: the store task has stopped");
        }
    }
}

impl LoadListener for StoreListener {
    fn statuses(&self, statuses: &[ServerStatus]) {
        self.send(News::Statuses(statuses.to_vec()));
    }

    fn server_failed(&self, server: &str, reason: &str) {
        self.send(News::Failed(server.to_string(), reason.to_string()));
    }

    fn server_recovered(&self, server: &str) {
        self.send(News::Recovered(server.to_string()));
    }

    fn agent_hello(&self, hello: &Hello) {
        tracing::info!(
            "agent {} connected (host {}, servers {:?})",
            hello.agent_id,
            hello.facts.host_name,
            hello.servers.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    }
}

/// Whether `new` differs enough from the stored value to be written.
fn meaningful(old: Option<u32>, updated_unix: Option<f64>, new: u32, now: f64) -> bool {
    let Some(old) = old else { return true };
    let age = updated_unix.map(|t| now - t).unwrap_or(f64::INFINITY);
    let delta = old.abs_diff(new);
    let relative = f64::from(delta) / f64::from(old.max(1));
    delta >= MIN_ABSOLUTE_CHANGE || relative >= MIN_RELATIVE_CHANGE || age >= REFRESH_SECS
}

/// The changes one batch of news asks for, against the current picture.
#[derive(Debug, Default, PartialEq)]
struct Changes {
    loads: Vec<(String, u32)>,
    failed: Vec<(String, Option<String>)>,
}

fn plan(fleet: &Fleet, news: Vec<News>, now: f64) -> Changes {
    let mut latest: Option<Vec<ServerStatus>> = None;
    let mut verdicts: BTreeMap<String, Option<String>> = BTreeMap::new();
    for n in news {
        match n {
            News::Statuses(s) => latest = Some(s),
            News::Failed(server, reason) => {
                verdicts.insert(server, Some(reason));
            }
            News::Recovered(server) => {
                verdicts.insert(server, None);
            }
        }
    }
    let mut out = Changes::default();
    for (server, verdict) in verdicts {
        if let Some(s) = fleet.server(&server) {
            if s.failed.is_some() != verdict.is_some() {
                out.failed.push((server, verdict));
            }
        } else {
            tracing::debug!("manager reports on {server}, which the store does not know");
        }
    }
    for st in latest.unwrap_or_default() {
        let (Some(load), Some(s)) = (st.dynamic_load, fleet.server(&st.server)) else {
            continue;
        };
        if st.failed {
            continue;
        }
        if meaningful(s.dynamic_load, s.load_updated_unix, load, now) {
            out.loads.push((st.server, load));
        }
    }
    out
}

async fn apply_loop(store: Store, mut rx: mpsc::UnboundedReceiver<News>) {
    while let Some(first) = rx.recv().await {
        let mut news = vec![first];
        while let Ok(n) = rx.try_recv() {
            news.push(n);
        }
        let now = now_unix();
        let changes = plan(&store.fleet(), news, now);
        if changes.loads.is_empty() && changes.failed.is_empty() {
            continue;
        }
        for (server, verdict) in &changes.failed {
            match verdict {
                Some(r) => tracing::warn!("{server} leaves rotation: {r}"),
                None => tracing::info!("{server} is back in rotation"),
            }
        }
        let result = store
            .mutate(move |tx| {
                for (server, verdict) in &changes.failed {
                    skip_gone(store::set_failed(tx, server, verdict.as_deref()))?;
                }
                for (server, load) in &changes.loads {
                    skip_gone(store::set_load(tx, server, *load, now))?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::error!("manager news not applied: {e}");
        }
    }
}

/// A server removed meanwhile is no reason to refuse the rest.
fn skip_gone(r: Result<(), StoreError>) -> Result<(), StoreError> {
    match r {
        Err(StoreError::NotFound { .. }) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Origin, Server};

    fn server(name: &str, load: Option<u32>, failed: Option<&str>) -> Server {
        Server {
            name: name.into(),
            origin: Origin::Config,
            app: "shop".into(),
            url: "http://127.0.0.1:9".into(),
            capacity: 5,
            enabled: true,
            dynamic_load: load,
            load_updated_unix: Some(100.0),
            redirect: None,
            failed: failed.map(str::to_string),
        }
    }

    fn status(name: &str, load: u32, failed: bool) -> ServerStatus {
        ServerStatus {
            server: name.into(),
            agent_id: "a1".into(),
            dynamic_load: Some(load),
            delay_us: Some(1000),
            failed,
            reason: None,
        }
    }

    #[test]
    fn only_meaningful_changes_and_verdict_flips() {
        let fleet = Fleet {
            servers: vec![
                server("a", Some(5000), None),
                server("b", Some(5000), None),
                server("c", None, None),
                server("d", Some(5000), Some("probe failed")),
            ],
            ..Fleet::default()
        };
        let news = vec![
            News::Statuses(vec![status("a", 1000, false)]), // superseded
            News::Failed("a".into(), "first".into()),
            News::Recovered("a".into()), // a never failed: no change
            News::Recovered("d".into()), // d back
            News::Failed("x".into(), "?".into()), // unknown server
            News::Statuses(vec![
                status("a", 5010, false), // 10 units: not meaningful
                status("b", 4000, false), // meaningful
                status("c", 7000, false), // first value
                status("d", 3000, true),  // failed: load not written
                status("x", 3000, false), // unknown
            ]),
        ];
        let got = plan(&fleet, news, 110.0);
        assert_eq!(
            got,
            Changes {
                loads: vec![("b".into(), 4000), ("c".into(), 7000)],
                failed: vec![("d".into(), None)],
            }
        );
        // An old value is refreshed even when unchanged.
        let got = plan(
            &fleet,
            vec![News::Statuses(vec![status("a", 5000, false)])],
            100.0 + REFRESH_SECS,
        );
        assert_eq!(got.loads, vec![("a".into(), 5000)]);
    }
}
