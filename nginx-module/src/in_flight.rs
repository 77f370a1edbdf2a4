//! Proxy mode of the interceptor role: a request handed to
//! `proxy_pass $usher_upstream` stays counted in flight at its server, in
//! this worker's front door, until nginx frees the request. A cleanup on
//! the request pool closes it: nginx runs pool cleanups for every request
//! it frees — answered, failed (502/504), aborted by the client, or moved
//! by an internal redirect — so no count is ever left behind.
//!
//! The front door learns the time from the pick to the end of the request
//! and whether it failed (status 500 or above, nginx's own 502/504
//! included); a request with no status or 499 (the client went away) only
//! returns its count.

use std::ffi::c_void;

use ngx::ffi::{ngx_http_request_t, ngx_pool_cleanup_add};
use usher_core::SteeringOutcome;

use crate::shared::{count, Counter};

/// One request in flight: what the cleanup needs to close it.
struct Ticket {
    app: String,
    server: String,
    picked_at: f64,
    request: *mut ngx_http_request_t,
}

/// Registers the cleanup that closes the ticket of a request the worker's
/// front door for `app` just sent to `server` (counted there at `picked_at`,
/// the worker's clock). Returns false when nginx had no memory for it; the
/// caller then returns the count at once.
///
/// # Safety
/// `r` must be a valid main request.
pub unsafe fn hold(r: *mut ngx_http_request_t, app: &str, server: &str, picked_at: f64) -> bool {
    // SAFETY: the caller's contract: the request and its pool are valid.
    let cleanup = unsafe { ngx_pool_cleanup_add((*r).pool, 0) };
    if cleanup.is_null() {
        return false;
    }
    let ticket = Box::new(Ticket {
        app: app.to_string(),
        server: server.to_string(),
        picked_at,
        request: r,
    });
    // SAFETY: `cleanup` is a fresh cleanup entry of the request pool.
    unsafe {
        (*cleanup).handler = Some(close);
        (*cleanup).data = Box::into_raw(ticket).cast::<c_void>();
    }
    count(Counter::ProxyStarted);
    true
}

/// Pool cleanup: close the ticket.
///
/// # Safety
/// nginx calls it once, with the data `hold` stored, while destroying the
/// request pool: cleanups run before the pool's memory (which holds the
/// request itself) is freed, so the request is still readable.
unsafe extern "C" fn close(data: *mut c_void) {
    if data.is_null() {
        return;
    }
    // SAFETY: `data` is the box `hold` leaked, handed back exactly once.
    let ticket = unsafe { Box::from_raw(data.cast::<Ticket>()) };
    count(Counter::ProxyFinished);
    crate::guard((), || {
        // SAFETY: see above: the request is valid during its pool's cleanup.
        let status = unsafe { (*ticket.request).headers_out.status };
        let how = SteeringOutcome::of_status(u16::try_from(status).unwrap_or(0));
        crate::worker::with(|w| {
            let now = w.now_secs();
            w.finished(
                &ticket.app,
                &ticket.server,
                now,
                now - ticket.picked_at,
                how,
            );
        });
    });
}
