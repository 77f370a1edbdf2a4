//! Answers made by the module itself: small bodies (JSON, sorry pages) and
//! redirects.

use ngx::ffi::{
    ngx_chain_t, ngx_create_temp_buf, ngx_http_output_filter, ngx_http_request_t,
    ngx_http_send_header, ngx_int_t, ngx_list_push, ngx_pnalloc, ngx_str_t, ngx_table_elt_t,
    NGX_ERROR, NGX_HTTP_MOVED_TEMPORARILY, NGX_HTTP_TEMPORARY_REDIRECT, NGX_OK,
};

/// Copies `s` into the request pool.
///
/// # Safety
/// `r` must be a valid request.
unsafe fn pool_str(r: *mut ngx_http_request_t, s: &[u8]) -> Option<ngx_str_t> {
    // SAFETY: the pool belongs to the request; the copy lives as long as it.
    unsafe {
        let p = ngx_pnalloc((*r).pool, s.len().max(1)).cast::<u8>();
        if p.is_null() {
            return None;
        }
        std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
        Some(ngx_str_t {
            len: s.len(),
            data: p,
        })
    }
}

/// Sends a complete answer with `status`, `content_type` and `body`.
/// Returns what the content phase expects (pass it to finalize).
///
/// # Safety
/// `r` must be a valid request whose header was not sent yet.
pub unsafe fn send(
    r: *mut ngx_http_request_t,
    status: usize,
    content_type: &str,
    body: &[u8],
) -> ngx_int_t {
    // SAFETY: a valid request; all memory comes from its pool.
    unsafe {
        let Some(ct) = pool_str(r, content_type.as_bytes()) else {
            return NGX_ERROR as ngx_int_t;
        };
        (*r).headers_out.status = status;
        (*r).headers_out.content_type_len = ct.len;
        (*r).headers_out.content_type = ct;
        (*r).headers_out.content_type_lowcase = std::ptr::null_mut();
        (*r).headers_out.content_length_n = body.len() as _;
        let rc = ngx_http_send_header(r);
        if rc == NGX_ERROR as ngx_int_t
            || rc > NGX_OK as ngx_int_t
            || (*r).header_only() != 0
            || body.is_empty()
        {
            return rc;
        }
        let b = ngx_create_temp_buf((*r).pool, body.len());
        if b.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        std::ptr::copy_nonoverlapping(body.as_ptr(), (*b).last, body.len());
        (*b).last = (*b).last.add(body.len());
        (*b).set_last_buf(if std::ptr::eq(r, (*r).main) { 1 } else { 0 });
        (*b).set_last_in_chain(1);
        let mut out = ngx_chain_t {
            buf: b,
            next: std::ptr::null_mut(),
        };
        ngx_http_output_filter(r, &mut out)
    }
}

/// Sets `Location: url` and returns `status` (302 or 307) for nginx to
/// answer (from an access or content handler); nginx writes the small body
/// and discards a request body.
///
/// # Safety
/// `r` must be a valid request whose header was not sent yet.
pub unsafe fn redirect(r: *mut ngx_http_request_t, status: u16, url: &str) -> ngx_int_t {
    // SAFETY: a valid request; the header element and its strings are
    // allocated from the request's header list and pool.
    unsafe {
        let Some(value) = pool_str(r, url.as_bytes()) else {
            return NGX_ERROR as ngx_int_t;
        };
        let h = ngx_list_push(&mut (*r).headers_out.headers).cast::<ngx_table_elt_t>();
        if h.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        (*h).hash = 1;
        (*h).key = ngx_str_t {
            len: 8,
            data: c"Location".as_ptr().cast_mut().cast(),
        };
        (*h).value = value;
        (*h).lowcase_key = std::ptr::null_mut();
        (*r).headers_out.location = h;
        if status == NGX_HTTP_TEMPORARY_REDIRECT as u16 {
            NGX_HTTP_TEMPORARY_REDIRECT as ngx_int_t
        } else {
            NGX_HTTP_MOVED_TEMPORARILY as ngx_int_t
        }
    }
}

/// A JSON body `{"error": msg}` (`usher_core::command::ErrorReply`).
pub fn error_json(msg: &str) -> Vec<u8> {
    usher_core::command::to_json(&usher_core::command::ErrorReply::new(msg))
}
