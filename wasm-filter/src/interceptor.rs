//! Interceptor role, per request: the worker's front door picks a server
//! (one random draw, one binary search, no lock) and the request gets a 302
//! to it (307 for methods other than `GET` and `HEAD`, which keeps the
//! method and body; `:method` is read only then), or, in proxy mode, the steering header the cluster's
//! `override_host` load balancer reads (it can only choose the cluster's own
//! endpoints), or the sorry page / 503.
//!
//! A request let through stays counted in flight at its server, in this
//! worker's front door, until its stream ends (`on_log`, which Envoy calls
//! for every stream: answered, reset, or abandoned by the client); the door
//! learns the time from the pick to the end of the answer and whether it
//! failed (the status, read in `on_log`).

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use usher_core::rules::front_door_redirect_status;
use usher_core::SteeringOutcome;

use crate::host;
use crate::view::Decision;
use crate::worker::Shared;

pub struct InterceptorCtx {
    worker: Shared,
    /// The request let through: its server and when it was picked.
    in_flight: Option<(String, f64)>,
}

impl InterceptorCtx {
    pub fn new(worker: Shared) -> InterceptorCtx {
        InterceptorCtx {
            worker,
            in_flight: None,
        }
    }
}

fn now_secs() -> f64 {
    host::now_us() as f64 / 1e6
}

impl Context for InterceptorCtx {}

impl HttpContext for InterceptorCtx {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let path = host::request_header(":path").unwrap_or_else(|| "/".to_string());
        let now = now_secs();
        let (decision, header, id) = {
            let mut guard = self.worker.borrow_mut();
            let w = &mut *guard;
            let draws = [w.rng.draw(), w.rng.draw()];
            let decision = match w.view.door.as_mut() {
                Some(door) => door.decide(now, draws, &path, w.settings.sorry_page.as_deref()),
                None => Decision::Unavailable,
            };
            match decision {
                Decision::Redirect(_) => w.redirects += 1,
                Decision::Proxy { .. } => w.proxied += 1,
                _ => {}
            }
            (decision, w.settings.host_header.clone(), w.id.clone())
        };
        match decision {
            Decision::Proxy { host: h, server } => {
                self.in_flight = Some((server, now));
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

    fn on_log(&mut self) {
        let Some((server, picked_at)) = self.in_flight.take() else {
            return;
        };
        let now = now_secs();
        // The answer's status, read here rather than in a response-headers
        // callback: the build prunes that export (one VM call fewer per
        // request), and the whole answer's time is the estimate's input.
        // No response at all: the client went away first.
        let how = match host::response_header(":status") {
            Some(s) => SteeringOutcome::of_status(s.parse::<u16>().unwrap_or(0)),
            None => SteeringOutcome::Abandoned,
        };
        let mut w = self.worker.borrow_mut();
        w.proxied_done += 1;
        if let Some(door) = w.view.door.as_mut() {
            door.finished(&server, now, now - picked_at, how);
        }
    }
}
