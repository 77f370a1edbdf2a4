//! Interceptor role, per request: the worker's front door picks a server
//! (one random draw, one binary search, no lock) and the request gets a 302
//! to it (307 for methods other than `GET` and `HEAD`, which keeps the
//! method and body; `:method` is read only then), or, in proxy mode, the steering header the cluster's
//! `override_host` load balancer reads (it can only choose the cluster's own
//! endpoints), or the sorry page / 503.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use usher_core::rules::front_door_redirect_status;

use crate::host;
use crate::view::Decision;
use crate::worker::Shared;

pub struct InterceptorCtx {
    worker: Shared,
}

impl InterceptorCtx {
    pub fn new(worker: Shared) -> InterceptorCtx {
        InterceptorCtx { worker }
    }
}

impl Context for InterceptorCtx {}

impl HttpContext for InterceptorCtx {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let path = host::request_header(":path").unwrap_or_else(|| "/".to_string());
        let now = host::now_us() as f64 / 1e6;
        let (decision, header, id) = {
            let mut guard = self.worker.borrow_mut();
            let w = &mut *guard;
            let draw = w.rng.draw();
            let decision = match w.view.door.as_mut() {
                Some(door) => door.decide(now, draw, &path, w.settings.sorry_page.as_deref()),
                None => Decision::Unavailable,
            };
            if matches!(decision, Decision::Redirect(_)) {
                w.redirects += 1;
            }
            (decision, w.settings.host_header.clone(), w.id.clone())
        };
        match decision {
            Decision::Proxy(h) => {
                host::set_request_header(&header, &h);
                return Action::Continue;
            }
            Decision::Redirect(location) => {
                let method = host::request_header(":method").unwrap_or_default();
                host::send_response(
                    u32::from(front_door_redirect_status(&method)),
                    &[("location", &location), ("x-usher-worker", &id)],
                    None,
                );
            }
            Decision::Sorry(page) => {
                host::send_response(
                    503,
                    &[
                        ("content-type", "text/html; charset=utf-8"),
                        ("x-usher-worker", &id),
                    ],
                    Some(page.as_bytes()),
                );
            }
            Decision::Unavailable => {
                host::send_response(
                    503,
                    &[("content-type", "text/plain"), ("x-usher-worker", &id)],
                    Some(b"no server available\n"),
                );
            }
        }
        Action::Pause
    }
}
