//! Small helpers shared by the agent's modules.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Locks a mutex, recovering the data of a poisoned one.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Now as Unix microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Reads a whole HTTP body, refusing one larger than `cap` bytes (a peer
/// must not be able to make us buffer without bound).
pub async fn read_capped(mut body: hyper::Body, cap: usize) -> Result<Vec<u8>, String> {
    use hyper::body::HttpBody;
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if out.len() + chunk.len() > cap {
            return Err(format!("answer larger than {cap} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one, never half of one: to `<path>.tmp` (mode 0600, synced), then
/// renamed over `path`. An error names the file it concerns.
pub fn write_private_atomically(
    path: &Path,
    bytes: &[u8],
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    const PRIVATE: u32 = 0o600;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let err = |e| (tmp.clone(), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE)
        .open(&tmp)
        .map_err(err)?;
    f.set_permissions(std::fs::Permissions::from_mode(PRIVATE))
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| (path.to_path_buf(), e))
}
