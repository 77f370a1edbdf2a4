//! LOG phase of the server role: build the request record with the selected
//! fields, encode it with `usher-core` and push it into this worker's ring.
//! A full ring (no reader, or a slow one) drops the record, counts it and
//! logs at most once a second; the request is never held up.

use ngx::ffi::{
    ngx_connection_local_sockaddr, ngx_http_request_t, ngx_int_t, ngx_table_elt_t, NGX_LOG_WARN,
    NGX_OK,
};
use ngx::http::HttpModuleLocationConf;
use ngx::ngx_log_error;
use usher_core::{Field, FieldMask, RequestRecord};

use crate::conf::Role;
use crate::module::Module;
use crate::net::{self, text};
use crate::shared::{count, Counter};

/// LOG phase handler.
///
/// # Safety
/// nginx calls it with a valid request.
pub unsafe extern "C" fn log_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    crate::guard(NGX_OK as ngx_int_t, || {
        // SAFETY: nginx passes a valid (main) request in the log phase.
        unsafe { log(r) };
        NGX_OK as ngx_int_t
    })
}

/// # Safety
/// `r` must be a valid request.
unsafe fn log(r: *mut ngx_http_request_t) {
    // SAFETY: the caller's contract.
    let Some(conf) = Module::location_conf(unsafe { &*r }) else {
        return;
    };
    if conf.role() != Role::Server || conf.command {
        return;
    }
    let end = crate::timing::now_us();
    // SAFETY: the caller's contract.
    let start = unsafe { crate::timing::start_us(r) };
    let configured = conf.record_mask();
    // SAFETY: the caller's contract.
    let uri = net::bytes(unsafe { &(*r).uri });
    // `None` only on re-entry: nothing to record then.
    crate::worker::with(|w| {
        w.refresh();
        let orders = w.snapshot.as_ref().and_then(|s| s.orders.as_ref());
        let mask = orders.and_then(|o| o.field_mask).unwrap_or(configured);
        if let Some(o) = orders {
            if !o.report_pages.is_empty()
                && !o.report_pages.iter().any(|p| uri.starts_with(p.as_bytes()))
            {
                return;
            }
        }
        // SAFETY: the caller's contract.
        let rec = unsafe { build(r, mask, start, end) };
        let mut buf = std::mem::take(&mut w.scratch);
        buf.clear();
        rec.encode_into(mask, &mut buf);
        let pushed = match &w.ring {
            Some(ring) => ring.push(&buf),
            None => {
                count(Counter::NoRingDrops);
                false
            }
        };
        w.scratch = buf;
        if !pushed && end / 1_000_000 != w.last_drop_log {
            w.last_drop_log = end / 1_000_000;
            let why = if w.ring.is_some() {
                "record ring full"
            } else {
                "no record ring (usher_ring)"
            };
            // SAFETY: the caller's contract.
            let log = unsafe { (*(*r).connection).log };
            ngx_log_error!(
                NGX_LOG_WARN,
                log,
                "usher: {}: request record dropped (counted)",
                why
            );
        }
    });
}

/// Everything a header scan finds.
#[derive(Default)]
struct Headers {
    accept: Option<String>,
    user_agent: Option<String>,
    connection: Option<String>,
    pragma: Option<String>,
    referer: Option<String>,
    auth_type: Option<String>,
}

/// # Safety
/// `r` must be a valid request.
unsafe fn scan_headers(r: *mut ngx_http_request_t, mask: FieldMask) -> Headers {
    let mut h = Headers::default();
    let wanted = [
        Field::Accept,
        Field::UserAgent,
        Field::Connection,
        Field::Pragma,
        Field::Referer,
        Field::AuthType,
    ];
    if !wanted.iter().any(|f| mask.has(*f)) {
        return h;
    }
    // SAFETY: the header list of a valid request.
    let mut part = unsafe { &(*r).headers_in.headers.part as *const ngx::ffi::ngx_list_part_t };
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
            let key = net::bytes(&e.key);
            let value = || text(&e.value);
            let slot = if key.eq_ignore_ascii_case(b"accept") {
                &mut h.accept
            } else if key.eq_ignore_ascii_case(b"user-agent") {
                &mut h.user_agent
            } else if key.eq_ignore_ascii_case(b"connection") {
                &mut h.connection
            } else if key.eq_ignore_ascii_case(b"pragma") {
                &mut h.pragma
            } else if key.eq_ignore_ascii_case(b"referer") {
                &mut h.referer
            } else if key.eq_ignore_ascii_case(b"authorization") {
                h.auth_type = Some(value().split(' ').next().unwrap_or("").to_string());
                continue;
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(value());
            }
        }
        // SAFETY: `next` is null or the next part of the same list.
        part = unsafe { (*part).next };
    }
    h
}

/// Builds the record with (at least) the fields in `mask`; a selected field
/// the request does not have is reported empty (or 0), so every record holds
/// exactly the selected fields. `queue_delay` is never known to nginx.
///
/// # Safety
/// `r` must be a valid request.
unsafe fn build(
    r: *mut ngx_http_request_t,
    mask: FieldMask,
    start: u64,
    end: u64,
) -> RequestRecord {
    // SAFETY: the caller's contract: the request, its connection and its
    // header structures are valid for the whole log phase.
    unsafe {
        let req = &*r;
        let c = &*req.connection;
        let want = |f: Field| mask.has(f);
        let hdr = scan_headers(r, mask);
        let or_empty = |v: Option<String>| Some(v.unwrap_or_default());
        let mut rec = RequestRecord::default();
        if want(Field::ServerEndpoint) {
            ngx_connection_local_sockaddr(req.connection, std::ptr::null_mut(), 0);
            rec.server_endpoint = Some(
                net::sockaddr(c.local_sockaddr)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            );
        }
        if want(Field::ClientEndpoint) {
            rec.client_endpoint = Some(
                net::sockaddr(c.sockaddr)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            );
        }
        if want(Field::ClientHost) {
            rec.client_host = Some(text(&c.addr_text));
        }
        if want(Field::UserName) {
            rec.user_name = Some(text(&req.headers_in.user));
        }
        if want(Field::AuthType) {
            rec.auth_type = or_empty(hdr.auth_type);
        }
        if want(Field::AuthDbPath) {
            rec.auth_db_path = Some(String::new());
        }
        if want(Field::RequestLine) {
            rec.request_line = Some(text(&req.request_line));
        }
        if want(Field::ContentPath) {
            rec.content_path = Some(text(&req.uri));
        }
        if want(Field::Accept) {
            rec.accept = or_empty(hdr.accept);
        }
        if want(Field::Method) {
            rec.method = Some(text(&req.method_name));
        }
        if want(Field::UserAgent) {
            rec.user_agent = or_empty(hdr.user_agent);
        }
        if want(Field::Connection) {
            rec.connection = or_empty(hdr.connection);
        }
        if want(Field::Pragma) {
            rec.pragma = or_empty(hdr.pragma);
        }
        if want(Field::Status) {
            rec.status = Some(req.headers_out.status as u64);
        }
        if want(Field::Protocol) {
            rec.protocol = Some(text(&req.http_protocol));
        }
        if want(Field::LastModified) {
            rec.last_modified = Some(req.headers_out.last_modified_time.max(0) as u64);
        }
        if want(Field::ContentLength) {
            let n = req.headers_out.content_length_n;
            let sent = (c.sent as i64).saturating_sub(req.header_size as i64);
            rec.content_length = Some(if n >= 0 { n as u64 } else { sent.max(0) as u64 });
        }
        if want(Field::ContentType) {
            rec.content_type = Some(text(&req.headers_out.content_type));
        }
        if want(Field::StartTime) {
            rec.start_time_us = Some(start);
        }
        if want(Field::ProcessingTime) {
            rec.processing_time_us = Some(end.saturating_sub(start));
        }
        if want(Field::Cookies) {
            rec.cookies = or_empty(net::cookies(r));
        }
        if want(Field::Referer) {
            rec.referer = or_empty(hdr.referer);
        }
        if want(Field::RedirectLocation) {
            rec.redirect_location = Some(
                net::header(req.headers_out.location)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default(),
            );
        }
        if want(Field::Aborted) {
            rec.aborted = Some(c.error() != 0 || req.headers_out.status == 499);
        }
        if want(Field::LoggedAt) {
            rec.logged_at_us = Some(end);
        }
        rec
    }
}
