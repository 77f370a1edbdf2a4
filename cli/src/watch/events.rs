//! What `usher watch` records: its event types, and the log that writes each
//! event to stderr (through `tracing`, like every other subcommand) and, with
//! `--events-file`, as one JSON line to a file.
//!
//! The codes sit in the host-side range (1xx) beside the agent's
//! (`usher_core::channel::event_type`: 100–133), so that when the watcher's
//! events reach the manager they need no renumbering; 140–145 are free there.
//!
//! The file is appended to with one `write` per line (`O_APPEND`), so lines
//! of several watchers sharing a file do not interleave. Writing is a small
//! blocking call on the watcher's only thread; the watcher has nothing else
//! to do in the meantime, so it needs no thread of its own. A failed write
//! is logged and the watcher carries on: supervision matters more than the
//! record of it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// An event type: (code, name), as in `usher_core::channel::event_type`.
pub type Kind = (u32, &'static str);

/// The watcher started (detail: the command and the back-off settings).
pub const WATCH_STARTED: Kind = (140, "watch_started");
/// The component could not be started at all (spawn failed: no such
/// program, not executable, ...); detail says why and the next wait.
pub const COMPONENT_START_FAILED: Kind = (141, "component_start_failed");
/// The component was started (pid: its PID).
pub const COMPONENT_STARTED: Kind = (142, "component_started");
/// The component exited with a non-zero status or was killed by a signal
/// without the watcher asking: it is restarted after the back-off wait.
pub const COMPONENT_EXITED: Kind = (143, "component_exited");
/// The component exited with status 0: the watcher exits 0 too.
pub const COMPONENT_DONE: Kind = (144, "component_done");
/// The watcher got SIGTERM or SIGINT: it forwarded it to the component,
/// waited for it, and exits.
pub const WATCH_SIGNALLED: Kind = (145, "watch_signalled");

/// The events file could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("--events-file {}: {source}", path.display())]
pub struct OpenError {
    path: PathBuf,
    source: std::io::Error,
}

/// One line of the events file.
#[derive(Debug, Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    type_name: &'a str,
    code: u32,
    /// Unix time, microseconds (as `usher_core::channel::Event`).
    time_us: u64,
    /// The component's name (`--name`).
    component: &'a str,
    /// The component's PID for `component_*` events once it has one; the
    /// watcher's for `watch_*`; `null` when it could not be started.
    pid: Option<u32>,
    watcher_pid: u32,
    detail: &'a str,
}

/// Where events go.
#[derive(Debug)]
pub struct EventLog {
    file: Option<(PathBuf, File)>,
    component: String,
    watcher_pid: u32,
}

impl EventLog {
    /// Opens (appends to, or creates with mode 0600) the events file, if any.
    pub fn open(path: Option<&Path>, component: &str) -> Result<EventLog, OpenError> {
        let file = match path {
            None => None,
            Some(path) => {
                let f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|source| OpenError {
                        path: path.to_path_buf(),
                        source,
                    })?;
                Some((path.to_path_buf(), f))
            }
        };
        Ok(EventLog {
            file,
            component: component.to_string(),
            watcher_pid: std::process::id(),
        })
    }

    /// The watcher's own PID (the `pid` of `watch_*` events).
    pub fn watcher_pid(&self) -> u32 {
        self.watcher_pid
    }

    /// Records one event: to stderr, and to the file when there is one.
    pub fn record(&mut self, kind: Kind, pid: Option<u32>, detail: &str) {
        let (code, name) = kind;
        let component = &self.component;
        match kind {
            COMPONENT_START_FAILED | COMPONENT_EXITED => {
                tracing::warn!(code, event = name, pid, "{component}: {detail}")
            }
            _ => tracing::info!(code, event = name, pid, "{component}: {detail}"),
        }
        let Some((path, file)) = &mut self.file else {
            return;
        };
        let line = encode(&Line {
            type_name: name,
            code,
            time_us: now_us(),
            component,
            pid,
            watcher_pid: self.watcher_pid,
            detail,
        });
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::error!("--events-file {}: cannot write {name}: {e}", path.display());
        }
    }
}

/// One JSON object and its newline.
fn encode(line: &Line<'_>) -> String {
    // A struct of strings and integers always serialises; the fallback only
    // keeps this free of a panic.
    let mut s = serde_json::to_string(line).unwrap_or_else(|e| {
        format!(
            "{{\"type\":\"{}\",\"code\":{},\"detail\":\"unencodable: {e}\"}}",
            line.type_name, line.code
        )
    });
    s.push('\n');
    s
}

/// Unix time in microseconds (0 if the clock is before 1970).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event type the watcher records.
    const ALL: [Kind; 6] = [
        WATCH_STARTED,
        COMPONENT_START_FAILED,
        COMPONENT_STARTED,
        COMPONENT_EXITED,
        COMPONENT_DONE,
        WATCH_SIGNALLED,
    ];

    #[test]
    fn codes_and_names_are_unique_and_beside_the_agents() {
        for (i, (code, name)) in ALL.iter().enumerate() {
            assert!((140..150).contains(code), "{name}");
            for (other_code, other_name) in &ALL[i + 1..] {
                assert_ne!(code, other_code);
                assert_ne!(name, other_name);
            }
        }
        // Not taken by the agent's own event types.
        use usher_core::channel::event_type as agent;
        for taken in [agent::RECORDS_DROPPED, agent::RING_OVERFLOW] {
            assert!(taken.0 < 140, "{taken:?}");
        }
    }

    #[test]
    fn lines_are_appended_as_json() {
        let dir = std::env::temp_dir().join(format!("usher-watch-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("events.jsonl");
        std::fs::write(&path, "{\"earlier\":true}\n").expect("seed");
        let mut log = EventLog::open(Some(&path), "cp").expect("open");
        log.record(COMPONENT_STARTED, Some(42), "started \"x\"");
        log.record(COMPONENT_START_FAILED, None, "cannot start");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 3, "appended, not truncated: {text}");
        assert_eq!(lines[1]["type"], "component_started");
        assert_eq!(lines[1]["code"], 142);
        assert_eq!(lines[1]["pid"], 42);
        assert_eq!(lines[1]["component"], "cp");
        assert_eq!(lines[1]["detail"], "started \"x\"");
        assert_eq!(lines[1]["watcher_pid"], std::process::id());
        assert!(lines[1]["time_us"].as_u64().unwrap_or(0) > 1_600_000_000_000_000);
        assert!(lines[2]["pid"].is_null());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_new_file_is_private_and_a_bad_path_names_the_option() {
        let dir = std::env::temp_dir().join(format!("usher-watch-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("events.jsonl");
        EventLog::open(Some(&path), "x").expect("open");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = EventLog::open(Some(&dir.join("no/such/dir/e.jsonl")), "x").expect_err("bad");
        assert!(err.to_string().starts_with("--events-file "), "{err}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
