//! The command endpoint (`usher_command` location): loopback clients with the
//! token push snapshots and echo tests (`POST`) and read counters (`GET`).
//!
//! Protocol (the same for the Envoy filter; the types are in
//! `usher_core::command`): `POST` a JSON `Command` with
//! `Authorization: Bearer <token>`; 200 `Applied` `{"applied":v}` /
//! `Echoed` `{"echo":..,"pid":..}`; 400 for bad JSON or an invalid snapshot
//! (nothing changes); 401 without the right token; 403 from a non-loopback
//! client; 409 `ErrorReply::stale` `{"error":"stale version","current":n}`.
//! Versions follow `usher_core::version::admit` against the system clock:
//! one more than 24 h ahead is refused (400 naming `snapshot.version`), and
//! one within that bound replaces an applied version beyond it.

use ngx::ffi::{
    ngx_http_discard_request_body, ngx_http_finalize_request, ngx_http_read_client_request_body,
    ngx_http_request_t, ngx_int_t, ngx_pid, NGX_DONE, NGX_ERROR, NGX_HTTP_GET, NGX_HTTP_HEAD,
    NGX_HTTP_POST, NGX_HTTP_SPECIAL_RESPONSE, NGX_LOG_WARN,
};
use ngx::http::HttpModuleLocationConf;
use ngx::ngx_log_error;
use usher_core::command::{self, Applied, Command, Echoed};
use usher_core::snapshot::MAX_SNAPSHOT_BYTES;
use usher_core::version::Accepted;

use crate::module::Module;
use crate::net;
use crate::shared::{self, Counter, PublishError};

/// Largest command body: a maximal snapshot plus its envelope.
const MAX_BODY: usize = MAX_SNAPSHOT_BYTES + 1024;

/// Content handler of the command location.
///
/// # Safety
/// nginx calls it with a valid request.
pub unsafe extern "C" fn command_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    crate::guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx passes a valid request.
        unsafe { handle(r) }
    })
}

/// # Safety
/// `r` must be a valid request.
unsafe fn handle(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: the caller's contract.
    unsafe {
        if !net::client_is_loopback(r) {
            return answer(
                r,
                403,
                &crate::respond::error_json("the command endpoint only answers loopback clients"),
            );
        }
        let Some(conf) = Module::location_conf(&*r) else {
            return NGX_ERROR as ngx_int_t;
        };
        let token = conf.token.as_deref().unwrap_or("");
        if !authorized(r, token) {
            return answer(
                r,
                401,
                &crate::respond::error_json("missing or wrong bearer token"),
            );
        }
        let method = (*r).method as u32;
        if method == NGX_HTTP_GET || method == NGX_HTTP_HEAD {
            return answer(r, 200, &counters());
        }
        if method != NGX_HTTP_POST {
            return answer(r, 405, &crate::respond::error_json("use GET or POST"));
        }
        if (*r).headers_in.content_length_n > MAX_BODY as i64 {
            return answer(
                r,
                413,
                &crate::respond::error_json("command body too large"),
            );
        }
        let rc = ngx_http_read_client_request_body(r, Some(body_read));
        if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            return rc;
        }
        NGX_DONE as ngx_int_t
    }
}

/// Checks `Authorization: Bearer <token>` (compared in constant time by
/// `usher_core::token`, as every usher host does).
///
/// # Safety
/// `r` must be a valid request.
unsafe fn authorized(r: *mut ngx_http_request_t, token: &str) -> bool {
    // SAFETY: the caller's contract.
    let value = unsafe { net::header((*r).headers_in.authorization) };
    usher_core::token::bearer_matches(value, token.as_bytes())
}

/// Called by nginx once the whole body is read.
unsafe extern "C" fn body_read(r: *mut ngx_http_request_t) {
    let rc = crate::guard(NGX_ERROR as ngx_int_t, || {
        // SAFETY: nginx passes the request whose body it read.
        unsafe {
            match read_body(r) {
                Ok(body) => {
                    let (status, json) = apply(&body);
                    answer(r, status, &json)
                }
                Err(msg) => answer(r, 400, &crate::respond::error_json(&msg)),
            }
        }
    });
    // SAFETY: the body handler must finalize the request it was given.
    unsafe { ngx_http_finalize_request(r, rc) };
}

/// Collects the request body from memory and temp-file buffers.
///
/// # Safety
/// `r` must be a valid request whose body was read.
unsafe fn read_body(r: *mut ngx_http_request_t) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    // SAFETY: the request body chain and its buffers belong to the request.
    unsafe {
        let rb = (*r).request_body;
        if rb.is_null() {
            return Ok(out);
        }
        let mut cl = (*rb).bufs;
        while !cl.is_null() {
            let b = (*cl).buf;
            if !b.is_null() {
                if (*b).in_file() != 0 && !(*b).file.is_null() {
                    let (from, to) = ((*b).file_pos, (*b).file_last);
                    let len =
                        usize::try_from(to - from).map_err(|_| "bad body buffer".to_string())?;
                    if out.len() + len > MAX_BODY {
                        return Err("command body too large".into());
                    }
                    let mut chunk = vec![0u8; len];
                    let n = libc::pread((*(*b).file).fd, chunk.as_mut_ptr().cast(), len, from);
                    if n != len as isize {
                        return Err("cannot read the buffered body".into());
                    }
                    out.extend_from_slice(&chunk);
                } else if !(*b).pos.is_null() && (*b).last >= (*b).pos {
                    let len = (*b).last.offset_from((*b).pos) as usize;
                    if out.len() + len > MAX_BODY {
                        return Err("command body too large".into());
                    }
                    out.extend_from_slice(std::slice::from_raw_parts((*b).pos, len));
                }
            }
            cl = (*cl).next;
        }
    }
    Ok(out)
}

/// Validates and applies a command; returns the status and JSON answer.
fn apply(body: &[u8]) -> (usize, Vec<u8>) {
    let command: Command = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => {
            return (
                400,
                crate::respond::error_json(&format!("bad command JSON: {e}")),
            )
        }
    };
    match command {
        Command::Echo { text } => {
            // SAFETY: reading nginx's own pid global.
            let pid = unsafe { ngx_pid };
            let echoed = Echoed {
                echo: text,
                pid: u32::try_from(pid).unwrap_or(0),
                worker: None,
            };
            (200, command::to_json(&echoed))
        }
        Command::Snapshot { snapshot } => {
            if let Err(e) = snapshot.validate() {
                return (400, crate::respond::error_json(&format!("snapshot.{e}")));
            }
            let json = match serde_json::to_vec(&snapshot) {
                Ok(j) => j,
                Err(e) => return (400, crate::respond::error_json(&e.to_string())),
            };
            match shared::publish(snapshot.version, &json, crate::timing::unix_ms()) {
                Ok(accepted) => {
                    if let Accepted::Recovers { from } = accepted {
                        ngx_log_error!(
                            NGX_LOG_WARN,
                            ngx::log::ngx_cycle_log().as_ptr(),
                            "usher: snapshot {} replaces version {}, which was more than 24 h ahead of the clock",
                            snapshot.version,
                            from
                        );
                    }
                    crate::worker::with(crate::worker::Worker::refresh);
                    let applied = Applied {
                        applied: snapshot.version,
                    };
                    (200, command::to_json(&applied))
                }
                Err(PublishError::Version(refused)) => (
                    usize::from(refused.status()),
                    command::to_json(&refused.reply()),
                ),
                Err(PublishError::TooLarge) => {
                    (400, crate::respond::error_json("snapshot too large"))
                }
                Err(PublishError::Busy) => (
                    503,
                    crate::respond::error_json("another update is in progress"),
                ),
                Err(PublishError::NoArea) => {
                    (500, crate::respond::error_json("shared zone missing"))
                }
            }
        }
    }
}

/// Counters as JSON.
fn counters() -> Vec<u8> {
    let (written, dropped) = crate::channel::totals();
    let workers = crate::channel::worker_count().unwrap_or(1);
    // Finished is read first: a request finishing between the two reads
    // can never make the difference negative.
    let finished = shared::get(Counter::ProxyFinished);
    let in_flight = shared::get(Counter::ProxyStarted).saturating_sub(finished);
    serde_json::json!({
        "version": shared::version(),
        "records_written": written,
        "records_dropped": dropped + shared::get(Counter::NoRingDrops),
        "redirects": shared::get(Counter::Redirects),
        "picks": shared::get(Counter::Picks),
        "sorry": shared::get(Counter::Sorry),
        "self_marked": shared::get(Counter::SelfMarked),
        "proxied": shared::get(Counter::ProxyStarted),
        "in_flight": in_flight,
        "workers_applied": shared::applied(workers),
        "pid": std::process::id(),
        // The snapshot in force (null before the first), so that `usher
        // ctl --wsi` can build the next one from it with no control plane.
        "snapshot": shared::read()
            .and_then(|(_, json)| serde_json::from_slice::<serde_json::Value>(&json).ok()),
    })
    .to_string()
    .into_bytes()
}

/// # Safety
/// `r` must be a valid request whose header was not sent.
unsafe fn answer(r: *mut ngx_http_request_t, status: usize, json: &[u8]) -> ngx_int_t {
    // SAFETY: the caller's contract. Discarding is a no-op once the body
    // was read; otherwise it keeps an unread body off the connection.
    unsafe {
        ngx_http_discard_request_body(r);
        crate::respond::send(r, status, "application/json", json)
    }
}
