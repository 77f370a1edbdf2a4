//! Request timing in microseconds. The start time is kept in a pool cleanup
//! entry of the request (as nginx's realip module keeps its data), because an
//! internal redirect wipes the per-request module context but not the pool.
//! Requests refused before the phases run (e.g. 400) fall back to nginx's
//! own millisecond start time.

use std::ffi::c_void;
use std::time::{SystemTime, UNIX_EPOCH};

use ngx::ffi::{ngx_http_request_t, ngx_int_t, ngx_pool_cleanup_add, NGX_DECLINED};
use ngx::http::HttpModuleMainConf;

use crate::module::Module;

/// Microseconds since the Unix epoch.
#[inline]
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Milliseconds since the Unix epoch (the wall clock snapshot versions are
/// checked against).
pub fn unix_ms() -> u64 {
    now_us() / 1000
}

/// First word of our cleanup entry's data.
const MAGIC: u64 = u64::from_le_bytes(*b"usherT0\0");

/// Marks our cleanup entry; it has nothing to free. Exported under a unique
/// name so that every use sees one address (a private function may be copied
/// into several codegen units, and the copies have different addresses).
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn ngx_http_usher_start_marker(_data: *mut c_void) {}

use ngx_http_usher_start_marker as start_marker;

/// POST_READ phase: remember when the request started (once per request).
///
/// # Safety
/// nginx calls it with a valid request.
pub unsafe extern "C" fn post_read_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    crate::guard(NGX_DECLINED as ngx_int_t, || {
        // SAFETY: nginx passes a valid request.
        unsafe {
            let timed = Module::main_conf(&*r).is_some_and(|m| m.server_role);
            if timed && start_of(r).is_none() {
                let now = now_us();
                let cln = ngx_pool_cleanup_add((*r).pool, std::mem::size_of::<[u64; 2]>());
                if !cln.is_null() {
                    (*cln).data.cast::<[u64; 2]>().write([MAGIC, now]);
                    (*cln).handler = Some(start_marker);
                }
            }
        }
        NGX_DECLINED as ngx_int_t
    })
}

/// The start time kept by `post_read_handler`, if it ran for this request.
///
/// # Safety
/// `r` must be a valid request.
unsafe fn start_of(r: *mut ngx_http_request_t) -> Option<u64> {
    // SAFETY: the request's pool and its cleanup list are valid; entries
    // with our marker handler hold two u64 we wrote.
    unsafe {
        let mut cln = (*(*r).pool).cleanup;
        while !cln.is_null() {
            let ours = (*cln).handler.is_some_and(|h| {
                std::ptr::fn_addr_eq(h, start_marker as unsafe extern "C" fn(*mut c_void))
            });
            if ours {
                // The magic word guards against another handler at the same
                // address (identical functions may be merged).
                let [magic, start] = (*cln).data.cast::<[u64; 2]>().read();
                if magic == MAGIC {
                    return Some(start);
                }
            }
            cln = (*cln).next;
        }
    }
    None
}

/// Start of the request in µs since the epoch: ours, else nginx's.
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn start_us(r: *mut ngx_http_request_t) -> u64 {
    // SAFETY: forwarded.
    unsafe {
        start_of(r).unwrap_or_else(|| {
            ((*r).start_sec as u64).saturating_mul(1_000_000) + ((*r).start_msec as u64) * 1000
        })
    }
}
