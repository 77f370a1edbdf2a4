//! Sends what `usher watch` recorded on this host to the manager: every
//! second, the new complete lines of each `watch_events` file become events
//! in the outbox (spooled, so they survive the control plane being away),
//! with origin this agent and the watched component's name.
//!
//! How far each file was read is kept in `<data_dir>/spool/watch.offsets`
//! (JSON, mode 0600, replaced whole by rename), written after the lines
//! are handed to the outbox: a `kill -9` between the two sends the last
//! second's lines again after the restart (twice, never lost). This is how
//! the events of a watcher whose component is the agent itself — "agent
//! exited, killed by signal 9", "agent started" — reach the manager: the
//! restarted agent reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use usher_core::channel::Event;
use usher_core::watch_events::{NewLines, Tail};

use std::sync::Arc;

use crate::outbox::Outbox;

/// The offsets file's name inside the spool folder.
pub const FILE: &str = "watch.offsets";

/// How often the files are read.
pub const EVERY: Duration = Duration::from_secs(1);

/// Reads the saved offsets (path → bytes read); missing or unreadable:
/// none (each file is then read from its start: sent twice, never lost).
fn load(path: &Path) -> BTreeMap<PathBuf, u64> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: {e}; reading watch events from the start",
                path.display()
            );
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    }
}

/// One pass over every file: new lines to the outbox, offsets saved when
/// they moved. Blocking file IO (small files; called on a blocking thread).
pub fn pass(tails: &mut [Tail], outbox: &Outbox, agent_id: &str, offsets_file: &Path) {
    let mut moved = false;
    for tail in tails.iter_mut() {
        let before = tail.offset();
        match tail.read_new() {
            Ok(NewLines { lines, skipped }) => {
                if skipped > 0 {
                    tracing::warn!(
                        "{}: {skipped} line(s) are not watcher events; skipped",
                        tail.path().display()
                    );
                }
                for l in lines {
                    let mut event =
                        Event::new(0, agent_id, (l.code, &l.type_name), l.text(), l.time_us);
                    event.origin_name = l.component.clone();
                    outbox.forward_event(event);
                }
            }
            Err(e) => tracing::warn!("watch events {}: {e}", tail.path().display()),
        }
        moved |= tail.offset() != before;
    }
    if moved {
        let offsets: BTreeMap<&Path, u64> = tails.iter().map(|t| (t.path(), t.offset())).collect();
        let saved = serde_json::to_vec(&offsets)
            .map_err(|e| (offsets_file.to_path_buf(), e.into()))
            .and_then(|bytes| crate::util::write_private_atomically(offsets_file, &bytes));
        if let Err((path, e)) = saved {
            tracing::warn!("watch offsets {}: {e}", path.display());
        }
    }
}

/// Runs until `stop` resolves, then reads once more.
pub async fn run(
    files: Vec<PathBuf>,
    spool_dir: PathBuf,
    outbox: Arc<Outbox>,
    agent_id: String,
    stop: impl std::future::Future<Output = ()>,
) {
    let offsets_file = spool_dir.join(FILE);
    let saved = load(&offsets_file);
    let tails: Vec<Tail> = files
        .iter()
        .map(|f| Tail::new(f, saved.get(f).copied().unwrap_or(0)))
        .collect();
    let state = std::sync::Arc::new(std::sync::Mutex::new(tails));
    let once = |state: std::sync::Arc<std::sync::Mutex<Vec<Tail>>>| {
        let (outbox, agent_id, offsets_file) =
            (outbox.clone(), agent_id.clone(), offsets_file.clone());
        tokio::task::spawn_blocking(move || {
            let mut tails = crate::util::lock(&state);
            pass(&mut tails, &outbox, &agent_id, &offsets_file);
        })
    };
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                if once(state.clone()).await.is_err() {
                    tracing::warn!("watch events: a pass failed");
                }
            }
        }
    }
    if once(state).await.is_err() {
        tracing::warn!("watch events: the last pass failed");
    }
}
