//! `--pid-file`: the running component's PID, for scripts and operators
//! that signal the component itself (e.g. `kill -9 $(cat control.pid)` in
//! `make demo`) rather than the watcher.
//!
//! Written when the component starts (to `<path>.tmp`, then renamed over
//! the file, so a reader never sees half a number) and removed when it
//! exits; a failure is logged and the watcher carries on.

use std::path::{Path, PathBuf};

/// Writes `pid` to `path` (one line).
pub fn write(path: &Path, pid: u32) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written =
        std::fs::write(&tmp, format!("{pid}\n")).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!("--pid-file {}: {e}", path.display());
    }
}

/// Removes the file (the component is not running).
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("--pid-file {}: {e}", path.display())
        }
        _ => {}
    }
}
