//! The record channel: one shared-memory file per nginx instance, split into
//! single-producer rings (layout and push in `usher_core::ring`).
//!
//! The master creates the file at configuration time (never under
//! `nginx -t`), sized with `area_bytes`, and maps it; the workers inherit the
//! mapping. There are two rings per worker: the workers of one configuration
//! generation write to one half, so after a reload the new workers never
//! share a ring with old workers still finishing their requests. When the
//! layout changes, a new file is written and renamed over the path (the
//! agent notices the new inode and re-attaches). The file is mode 0600,
//! owned by the user that starts nginx.

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use memmap2::MmapMut;
use ngx::ffi::{
    ngx_core_conf_t, ngx_core_module, ngx_cycle_t, ngx_int_t, ngx_test_config, NGX_LOG_EMERG,
    NGX_LOG_NOTICE,
};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_log_error;
use usher_core::ring::{area_bytes, Ring, RingArea};

use crate::module::Module;

/// One mapped ring file.
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    pub area: RingArea<'static>,
    pub workers: usize,
}

#[derive(Debug)]
struct Current {
    path: String,
    workers: usize,
    ring_words: usize,
    channel: Channel,
}

static CURRENT: Mutex<Option<Current>> = Mutex::new(None);
/// Configuration generation (master): flips the half of the rings in use.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// `worker_processes` of the current configuration.
static WORKERS: AtomicUsize = AtomicUsize::new(0);

/// `worker_processes` of the current configuration, once known.
pub fn worker_count() -> Option<usize> {
    match WORKERS.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// `init_module`: sets up the shared snapshot area and the ring file.
///
/// # Safety
/// `cycle` must be the cycle nginx is initialising.
pub unsafe fn init_module(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: the caller passes a valid cycle.
    let cycle = unsafe { &*cycle };
    let ok: ngx_int_t = ngx::core::Status::NGX_OK.into();
    let Some(main) = Module::main_conf(cycle) else {
        return ok;
    };
    if !main.used {
        return ok;
    }
    // SAFETY: reading a global nginx sets before configuration.
    if unsafe { ngx_test_config } != 0 {
        return ok; // `nginx -t` must not touch a running instance's files
    }
    if let Err(e) = crate::shared::init() {
        ngx_log_error!(NGX_LOG_EMERG, cycle.log, "usher: {}", e);
        return ngx::core::Status::NGX_ERROR.into();
    }
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the core module's configuration is set for every cycle.
    let workers = unsafe {
        let ccf = (*cycle.conf_ctx.add(ngx_core_module.index)).cast::<ngx_core_conf_t>();
        ccf.as_ref()
            .map_or(1, |c| c.worker_processes.max(1) as usize)
    };
    WORKERS.store(workers, Ordering::Relaxed);
    let Some(path) = main.ring_path.clone() else {
        *lock() = None;
        return ok;
    };
    let ring_words = main.ring_bytes / 8;
    let mut current = lock();
    if let Some(c) = current.as_ref() {
        if c.path == path
            && c.workers == workers
            && c.ring_words == ring_words
            && file_is_ours(&path)
        {
            return ok;
        }
    }
    match create(&path, workers, ring_words) {
        Ok(channel) => {
            ngx_log_error!(
                NGX_LOG_NOTICE,
                cycle.log,
                "usher: record ring file {} ({} rings of {} bytes)",
                path,
                workers * 2,
                ring_words * 8
            );
            *current = Some(Current {
                path,
                workers,
                ring_words,
                channel,
            });
            ok
        }
        Err(e) => {
            ngx_log_error!(
                NGX_LOG_EMERG,
                cycle.log,
                "usher: ring file \"{}\": {}",
                path,
                e
            );
            ngx::core::Status::NGX_ERROR.into()
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<Current>> {
    CURRENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn file_is_ours(path: &str) -> bool {
    std::path::Path::new(path).exists()
}

/// Mode of the ring file: owner only. Records may hold request lines (and
/// cookie values, when `usher_record` names `cookies`). The owner is the
/// user that starts nginx (the master creates it); the workers use the
/// mapping they inherit, so they need no access to the file itself.
const RING_MODE: u32 = 0o600;

/// Writes a fresh area to a temporary file (mode [`RING_MODE`]), maps it,
/// then renames it over `path`.
fn create(path: &str, workers: usize, ring_words: usize) -> Result<Channel, String> {
    let rings = workers * 2;
    let bytes = area_bytes(rings, ring_words);
    let tmp = format!("{path}.tmp{}", std::process::id());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(RING_MODE)
        .open(&tmp)
        .map_err(|e| format!("create {tmp}: {e}"))?;
    // Also when a leftover temp file of this pid existed with another mode.
    file.set_permissions(Permissions::from_mode(RING_MODE))
        .map_err(|e| format!("chmod {tmp}: {e}"))?;
    file.set_len(bytes as u64)
        .map_err(|e| format!("size {tmp}: {e}"))?;
    // SAFETY: a file we just created and sized; nobody else maps it yet. It
    // is never truncated while mapped (a new layout gets a new file).
    let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| format!("map {tmp}: {e}"))?;
    // The mapping is kept for the life of the process: workers forked later
    // inherit it and a `'static` view of it stays valid.
    let map: &'static mut MmapMut = Box::leak(Box::new(map));
    // SAFETY: the mapping is page-aligned, `bytes` long, zero-filled and
    // never unmapped (leaked above); every process touches it only through
    // `AtomicU64` operations.
    let words: &'static [AtomicU64] =
        unsafe { std::slice::from_raw_parts(map.as_mut_ptr().cast::<AtomicU64>(), bytes / 8) };
    let area = RingArea::init(words, rings, ring_words).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename {tmp}: {e}"))?;
    Ok(Channel { area, workers })
}

/// This worker's ring: generation half × workers + worker index.
pub fn worker_ring(worker: usize) -> Option<Ring<'static>> {
    let current = lock();
    let c = current.as_ref()?;
    if worker >= c.channel.workers {
        return None;
    }
    let half = (GENERATION.load(Ordering::Relaxed) % 2) as usize;
    c.channel.area.ring(half * c.channel.workers + worker)
}

/// Records written and dropped over all rings (every worker's).
pub fn totals() -> (u64, u64) {
    let current = lock();
    let Some(c) = current.as_ref() else {
        return (0, 0);
    };
    let area = c.channel.area;
    (0..area.ring_count())
        .filter_map(|i| area.ring(i))
        .map(|r| r.stats())
        .fold((0, 0), |(w, d), s| (w + s.written, d + s.dropped))
}
