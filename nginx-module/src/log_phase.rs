//! LOG phase of the server role: learn a page that marked itself stateful
//! (`self_mark`), then build the request record with the selected fields,
//! encode it with `usher-core` and push it into this worker's ring.
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
use crate::net;
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
    // SAFETY: the caller's contract.
    let self_marked = unsafe { crate::self_mark::response_marks_stateful(r) };
    // `None` only on re-entry: nothing to record then.
    crate::worker::with(|w| {
        if self_marked {
            crate::self_mark::learn(w, uri);
        }
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
        unsafe { fill(&mut w.record, &mut w.conn_cache, r, mask, start, end) };
        let mut buf = std::mem::take(&mut w.scratch);
        buf.clear();
        w.record.encode_into(mask, &mut buf);
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

/// The request headers a record may need (borrowed from the request).
#[derive(Default)]
struct Headers<'a> {
    accept: &'a [u8],
    user_agent: &'a [u8],
    connection: &'a [u8],
    pragma: &'a [u8],
    referer: &'a [u8],
    authorization: &'a [u8],
}

/// # Safety
/// `r` must be a valid request; the result borrows its header memory.
unsafe fn scan_headers<'a>(r: *mut ngx_http_request_t, mask: FieldMask) -> Headers<'a> {
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
            let slot = match key.len() {
                6 if key.eq_ignore_ascii_case(b"accept") => &mut h.accept,
                6 if key.eq_ignore_ascii_case(b"pragma") => &mut h.pragma,
                7 if key.eq_ignore_ascii_case(b"referer") => &mut h.referer,
                10 if key.eq_ignore_ascii_case(b"user-agent") => &mut h.user_agent,
                10 if key.eq_ignore_ascii_case(b"connection") => &mut h.connection,
                13 if key.eq_ignore_ascii_case(b"authorization") => &mut h.authorization,
                _ => continue,
            };
            if slot.is_empty() {
                // SAFETY: header values live in the request pool for the
                // whole request, longer than the record built from them.
                *slot = unsafe { std::slice::from_raw_parts(e.value.data, e.value.len) };
            }
        }
        // SAFETY: `next` is null or the next part of the same list.
        part = unsafe { (*part).next };
    }
    h
}

/// Which connection the address fields of the reused record describe.
#[derive(Debug, Default)]
pub struct ConnCache {
    /// (nginx connection number, field mask) of the last record.
    last: Option<(u64, u32)>,
}

/// Sets a text field, reusing its buffer (no allocation once warm).
fn set_text(slot: &mut Option<String>, value: &[u8]) {
    let s = slot.get_or_insert_with(String::new);
    s.clear();
    match std::str::from_utf8(value) {
        Ok(v) => s.push_str(v),
        Err(_) => s.push_str(&String::from_utf8_lossy(value)),
    }
}

/// Sets a text field to a formatted socket address, reusing its buffer.
/// IPv4 is formatted by hand: `fmt` costs more than the rest of a record.
fn set_addr(slot: &mut Option<String>, addr: Option<std::net::SocketAddr>) {
    let s = slot.get_or_insert_with(String::new);
    s.clear();
    match addr {
        Some(std::net::SocketAddr::V4(a)) => {
            for (i, octet) in a.ip().octets().iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_decimal(s, u64::from(*octet));
            }
            s.push(':');
            push_decimal(s, u64::from(a.port()));
        }
        Some(a) => {
            use std::fmt::Write;
            // Writing into a String cannot fail.
            write!(s, "{a}").ok();
        }
        None => {}
    }
}

fn push_decimal(s: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        s.push(char::from(*d));
    }
}

/// Fills `rec` with the fields in `mask`, in place: the worker reuses one
/// record so its strings keep their capacity. A selected field the request
/// does not have is reported empty (or 0), so every record holds exactly the
/// selected fields; fields outside `mask` keep old values, which the encoder
/// leaves out. `queue_delay` is never known to nginx and stays unset.
///
/// # Safety
/// `r` must be a valid request.
unsafe fn fill(
    rec: &mut RequestRecord,
    conn_cache: &mut ConnCache,
    r: *mut ngx_http_request_t,
    mask: FieldMask,
    start: u64,
    end: u64,
) {
    // SAFETY: the caller's contract: the request, its connection and its
    // header structures are valid for the whole log phase.
    unsafe {
        let req = &*r;
        let c = &*req.connection;
        let want = |f: Field| mask.has(f);
        let hdr = scan_headers(r, mask);
        // The addresses are those of the connection: format them once per
        // connection (keep-alive requests reuse the text already in `rec`).
        let conn = (c.number, mask.0);
        if conn_cache.last != Some(conn) {
            conn_cache.last = Some(conn);
            if want(Field::ServerEndpoint) {
                ngx_connection_local_sockaddr(req.connection, std::ptr::null_mut(), 0);
                set_addr(&mut rec.server_endpoint, net::sockaddr(c.local_sockaddr));
            }
            if want(Field::ClientEndpoint) {
                set_addr(&mut rec.client_endpoint, net::sockaddr(c.sockaddr));
            }
            if want(Field::ClientHost) {
                set_text(&mut rec.client_host, net::bytes(&c.addr_text));
            }
        }
        if want(Field::UserName) {
            set_text(&mut rec.user_name, net::bytes(&req.headers_in.user));
        }
        if want(Field::AuthType) {
            let scheme = hdr
                .authorization
                .split(|b| *b == b' ')
                .next()
                .unwrap_or_default();
            set_text(&mut rec.auth_type, scheme);
        }
        if want(Field::AuthDbPath) {
            set_text(&mut rec.auth_db_path, b"");
        }
        if want(Field::RequestLine) {
            set_text(&mut rec.request_line, net::bytes(&req.request_line));
        }
        if want(Field::ContentPath) {
            set_text(&mut rec.content_path, net::bytes(&req.uri));
        }
        if want(Field::Accept) {
            set_text(&mut rec.accept, hdr.accept);
        }
        if want(Field::Method) {
            set_text(&mut rec.method, net::bytes(&req.method_name));
        }
        if want(Field::UserAgent) {
            set_text(&mut rec.user_agent, hdr.user_agent);
        }
        if want(Field::Connection) {
            set_text(&mut rec.connection, hdr.connection);
        }
        if want(Field::Pragma) {
            set_text(&mut rec.pragma, hdr.pragma);
        }
        if want(Field::Status) {
            rec.status = Some(req.headers_out.status as u64);
        }
        if want(Field::Protocol) {
            set_text(&mut rec.protocol, net::bytes(&req.http_protocol));
        }
        if want(Field::LastModified) {
            rec.last_modified = Some(req.headers_out.last_modified_time.max(0) as u64);
        }
        if want(Field::ContentLength) {
            let n = req.headers_out.content_length_n;
            let sent = c.sent.saturating_sub(req.header_size as i64);
            rec.content_length = Some(if n >= 0 { n as u64 } else { sent.max(0) as u64 });
        }
        if want(Field::ContentType) {
            set_text(
                &mut rec.content_type,
                net::bytes(&req.headers_out.content_type),
            );
        }
        if want(Field::StartTime) {
            rec.start_time_us = Some(start);
        }
        if want(Field::ProcessingTime) {
            rec.processing_time_us = Some(end.saturating_sub(start));
        }
        if want(Field::Cookies) {
            match net::cookies(r) {
                Some(v) => set_text(&mut rec.cookies, v.as_bytes()),
                None => set_text(&mut rec.cookies, b""),
            }
        }
        if want(Field::Referer) {
            set_text(&mut rec.referer, hdr.referer);
        }
        if want(Field::RedirectLocation) {
            set_text(
                &mut rec.redirect_location,
                net::header(req.headers_out.location).unwrap_or_default(),
            );
        }
        if want(Field::Aborted) {
            rec.aborted = Some(c.error() != 0 || req.headers_out.status == 499);
        }
        if want(Field::LoggedAt) {
            rec.logged_at_us = Some(end);
        }
    }
}
