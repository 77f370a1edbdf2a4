//! ACCESS phase: the redirect of the server role and the pick of the
//! interceptor role.
//!
//! Server role: when the current snapshot orders a redirect and the rules
//! allow it for this request (`RedirectRules::may_redirect`, checked against
//! both the configured and the pushed rules) and this worker has not seen the
//! page mark itself stateful (`Usher-Stateful: 1`, learned in the log phase:
//! `self_mark`), answer 302 to the target joined with the request's own path
//! and query; otherwise serve. Only `GET` and `HEAD` are ever redirected
//! (`usher_core::rules::redirectable_method`), and never an agent probe
//! (`usher_core::probe::is_probe`): those are served where they landed.
//!
//! Interceptor role: pick a server with the application's `FrontDoor` and a
//! per-worker random draw, then 302 to it (307 for methods other than `GET`
//! and `HEAD`, so the method and body are kept) in redirect mode, or hand its
//! URL to `proxy_pass $usher_upstream` (proxy mode: the request counts as
//! in flight at that server until nginx frees it, `in_flight`); a disabled application
//! or one without an available server gets the sorry page with 503 (the
//! snapshot's page, else `usher_sorry_page`, else the built-in page shared
//! by every usher front door, `usher_core::BUILT_IN_SORRY_PAGE`).

use ngx::ffi::{
    ngx_http_discard_request_body, ngx_http_finalize_request, ngx_http_request_t, ngx_int_t,
    NGX_DECLINED, NGX_DONE, NGX_HTTP_SERVICE_UNAVAILABLE,
};
use ngx::http::HttpModuleLocationConf;
use usher_core::model::{join_url, AppMode};
use usher_core::probe::is_probe;
use usher_core::rules::{front_door_redirect_status, redirectable_method};
use usher_core::{Pick, SteeringOutcome, BUILT_IN_SORRY_PAGE};

use crate::conf::{LocConf, Role};
use crate::module::Module;
use crate::net;
use crate::shared::{count, Counter};

const DECLINED: ngx_int_t = NGX_DECLINED as ngx_int_t;

/// ACCESS phase handler.
///
/// # Safety
/// nginx calls it with a valid request.
pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    crate::guard(DECLINED, || {
        // SAFETY: nginx passes a valid request; its location configuration
        // is this module's `LocConf`.
        unsafe {
            if !std::ptr::eq(r, (*r).main) {
                return DECLINED;
            }
            let Some(conf) = Module::location_conf(&*r) else {
                return DECLINED;
            };
            if conf.command {
                return DECLINED;
            }
            match conf.role() {
                Role::Off => DECLINED,
                Role::Server => server(r, conf),
                Role::Interceptor => interceptor(r, conf),
            }
        }
    })
}

/// The path and query as the client sent them.
fn unparsed_uri(r: &ngx_http_request_t) -> String {
    net::text(&r.unparsed_uri)
}

/// The request method as sent (`GET`, `POST`, …; empty if not text).
fn method(r: &ngx_http_request_t) -> &str {
    std::str::from_utf8(net::bytes(&r.method_name)).unwrap_or("")
}

/// True when the server role may answer this request with a redirect at
/// all: a `GET` or `HEAD` that is not an agent probe.
fn movable(r: &ngx_http_request_t) -> bool {
    redirectable_method(method(r)) && !is_probe(&String::from_utf8_lossy(net::bytes(&r.args)))
}

/// # Safety
/// `r` must be a valid main request.
unsafe fn server(r: *mut ngx_http_request_t, conf: &LocConf) -> ngx_int_t {
    // SAFETY: the caller's contract.
    let req = unsafe { &*r };
    // Decided inside the worker state (no copy of the rules); nginx is only
    // called once the state is released.
    let location = crate::worker::with(|w| {
        w.refresh();
        let orders = w.snapshot.as_ref()?.orders.as_ref()?;
        let target = &orders.redirect.as_ref()?.target;
        if !movable(req) {
            return None;
        }
        let path = String::from_utf8_lossy(net::bytes(&req.uri));
        if w.self_marked.contains(&path) {
            return None;
        }
        // SAFETY: a valid request.
        let cookies = unsafe { net::cookies(r) };
        let cookie = cookies.as_deref();
        let allowed =
            conf.rules.may_redirect(&path, cookie) && orders.rules.may_redirect(&path, cookie);
        allowed.then(|| join_url(target, &unparsed_uri(req)))
    })
    .flatten();
    let Some(location) = location else {
        return DECLINED;
    };
    count(Counter::Redirects);
    // SAFETY: a valid request whose header was not sent.
    unsafe { crate::respond::redirect(r, 302, &location) }
}

enum Decision {
    Redirect(String),
    /// Proxy to the server at this URL, picked at this worker time.
    Proxy {
        url: String,
        server: String,
        picked_at: f64,
    },
    Sorry(Option<String>),
}

/// # Safety
/// `r` must be a valid main request.
unsafe fn interceptor(r: *mut ngx_http_request_t, conf: &LocConf) -> ngx_int_t {
    let Some(app) = conf.app.as_deref() else {
        return DECLINED;
    };
    let decision = crate::worker::with(|w| {
        w.refresh();
        let now = w.now_secs();
        let draws = [w.draw(), w.draw()];
        let door = w.door(app, conf.static_app.as_ref())?;
        Some(match door.pick(now, draws) {
            Pick::Server(i) => {
                let server = door.servers().get(i)?;
                match door.mode {
                    AppMode::Redirect => Decision::Redirect(server.url.clone()),
                    AppMode::Proxy => Decision::Proxy {
                        url: server.url.clone(),
                        server: server.name.clone(),
                        picked_at: now,
                    },
                }
            }
            Pick::Disabled | Pick::NoServer => Decision::Sorry(door.sorry_page.clone()),
        })
    })
    .flatten();
    // SAFETY: the caller's contract.
    let req = unsafe { &*r };
    match decision {
        None => DECLINED,
        Some(Decision::Redirect(url)) => {
            count(Counter::Picks);
            let status = front_door_redirect_status(method(req));
            // SAFETY: a valid request whose header was not sent.
            unsafe { crate::respond::redirect(r, status, &join_url(&url, &unparsed_uri(req))) }
        }
        Some(Decision::Proxy {
            url,
            server,
            picked_at,
        }) => {
            count(Counter::Picks);
            // SAFETY: a valid main request.
            let held = unsafe { crate::in_flight::hold(r, app, &server, picked_at) };
            if !held {
                crate::worker::with(|w| {
                    w.finished(app, &server, picked_at, 0.0, SteeringOutcome::Abandoned)
                });
            }
            // SAFETY: a valid request.
            unsafe { crate::variable::set_upstream(r, url.trim_end_matches('/')) };
            DECLINED
        }
        Some(Decision::Sorry(page)) => {
            count(Counter::Sorry);
            // The snapshot's page, else the configured one, else built-in.
            let body = page
                .as_deref()
                .or(conf.sorry_page.as_deref())
                .unwrap_or(BUILT_IN_SORRY_PAGE);
            // SAFETY: a valid request; we answer it completely here and
            // finalize it ourselves, so the phase engine must stop (NGX_DONE).
            unsafe {
                ngx_http_discard_request_body(r);
                let rc = crate::respond::send(
                    r,
                    NGX_HTTP_SERVICE_UNAVAILABLE as usize,
                    "text/html; charset=utf-8",
                    body.as_bytes(),
                );
                ngx_http_finalize_request(r, rc);
            }
            NGX_DONE as ngx_int_t
        }
    }
}
