//! Pages that mark themselves stateful (`Usher-Stateful: 1`), server role.
//!
//! The LOG phase looks for the header among the response headers (those of
//! the upstream that `proxy_pass` passed on, or added by `add_header`) and,
//! when it marks the page, this worker remembers the request's path
//! (`usher_core::SelfMarked`); the ACCESS phase never redirects a path this
//! worker remembers. The memory is per worker (nginx workers share nothing
//! here): a worker that never served a page does not know it, so while a
//! redirect order is in force such a worker still redirects that page's
//! first request it sees. The log phase runs before the next request of the
//! same connection is read, so that next request already knows the page.

use ngx::ffi::{ngx_http_request_t, ngx_list_part_t, ngx_table_elt_t};
use usher_core::marks_stateful;
use usher_core::self_marked::is_self_mark_header;

use crate::net;
use crate::shared::{count, Counter};
use crate::worker::Worker;

/// True when the response headers carry `Usher-Stateful` with a value that
/// marks the page stateful (`1` or `true`).
///
/// # Safety
/// `r` must be a valid request (in or after its header filter).
pub unsafe fn response_marks_stateful(r: *mut ngx_http_request_t) -> bool {
    // SAFETY: the response header list of a valid request; its parts and
    // elements live in the request pool for the whole request.
    let mut part = unsafe { &(*r).headers_out.headers.part as *const ngx_list_part_t };
    while !part.is_null() {
        // SAFETY: list parts hold `nelts` header elements.
        let elts: &[ngx_table_elt_t] = unsafe {
            let p = &*part;
            if p.elts.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(p.elts.cast::<ngx_table_elt_t>(), p.nelts)
            }
        };
        for e in elts {
            // nginx clears `hash` to delete a header from the list.
            if e.hash != 0 && is_self_mark_header(net::bytes(&e.key)) {
                return std::str::from_utf8(net::bytes(&e.value)).is_ok_and(marks_stateful);
            }
        }
        // SAFETY: `next` is null or the next part of the same list.
        part = unsafe { (*part).next };
    }
    false
}

/// Remembers `uri` (the request path, no query) on this worker; counts a
/// path the worker did not know yet.
pub fn learn(w: &mut Worker, uri: &[u8]) {
    let Ok(path) = std::str::from_utf8(uri) else {
        return;
    };
    if w.self_marked.remember(path) {
        count(Counter::SelfMarked);
    }
}
