//! Command role: the command endpoint on a loopback listener. `POST` with
//! the bearer token and a `Command` applies a snapshot (published in shared
//! data for every worker) or echoes; `GET` answers the counters. Replies are
//! JSON; a bad body changes nothing. Snapshot versions follow
//! `usher_core::version::admit` against the host's `get_current_time`: one
//! more than 24 h ahead gets 400 naming `snapshot.version`.
//!
//! The listener's filter chain must have `envoy.filters.http.buffer` right
//! after this filter (see envoy/*.yaml): it keeps the request headers from
//! the router until the body is read.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use usher_core::command::{Applied, Command, Echoed};

use crate::protocol::{bearer_ok, parse_command, Counters, Reply, MAX_COMMAND_BYTES};
use crate::shared::{self, Publish};
use crate::worker::{Metrics, Shared};
use crate::{fields, host};

pub struct CommandCtx {
    worker: Shared,
    metrics: Metrics,
    awaiting_body: bool,
}

impl CommandCtx {
    pub fn new(worker: Shared, metrics: Metrics) -> CommandCtx {
        CommandCtx {
            worker,
            metrics,
            awaiting_body: false,
        }
    }

    fn reply(&self, r: Reply) -> Action {
        host::send_response(
            r.status,
            &[("content-type", "application/json")],
            Some(r.body.as_bytes()),
        );
        Action::Pause
    }

    fn counters(&self) -> Reply {
        Reply::json(
            200,
            &Counters {
                version: shared::current_version(),
                records_written: host::read(self.metrics.written),
                records_dropped: host::read(self.metrics.dropped),
                redirects: host::read(self.metrics.redirects),
                self_marked: host::read(self.metrics.self_marked),
                proxied: host::read(self.metrics.proxied),
                // Done is read first, so a tick between the reads can
                // never make the difference negative.
                in_flight: {
                    let done = host::read(self.metrics.proxied_done);
                    host::read(self.metrics.proxied).saturating_sub(done)
                },
                snapshot: shared::load_changed(0),
                workers_applied: shared::workers(now_ms()),
            },
        )
    }

    fn handle(&self, body: &[u8]) -> Reply {
        match parse_command(body) {
            Err(r) => r,
            Ok(Command::Echo { text }) => {
                // A wasm VM cannot see Envoy's process id: `pid` is 0.
                let echoed = Echoed {
                    echo: text,
                    pid: 0,
                    worker: Some(self.worker.borrow().id.clone()),
                };
                Reply::json(200, &echoed)
            }
            Ok(Command::Snapshot { snapshot }) => match shared::publish(&snapshot, now_ms()) {
                Publish::Applied(v) => Reply::json(200, &Applied { applied: v }),
                Publish::Refused(r) => Reply::json(u32::from(r.status()), &r.reply()),
                Publish::Failed(e) => Reply::error(500, &e),
            },
        }
    }
}

/// The proxy-wasm host's wall clock in unix milliseconds (0 if it cannot
/// tell, which refuses every version: safer than accepting any).
fn now_ms() -> u64 {
    host::now_us() / 1000
}

impl Context for CommandCtx {}

impl HttpContext for CommandCtx {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let path = host::request_header(":path").unwrap_or_default();
        let (expected_path, token) = {
            let w = self.worker.borrow();
            (
                w.settings.command_path.clone(),
                w.settings.command_token.clone(),
            )
        };
        if fields::content_path(&path) != expected_path {
            return self.reply(Reply::error(404, "not found"));
        }
        if !bearer_ok(host::request_header("authorization").as_deref(), &token) {
            return self.reply(Reply::error(401, "missing or wrong bearer token"));
        }
        match host::request_header(":method").as_deref() {
            Some("GET") => self.reply(self.counters()),
            Some("POST") if end_of_stream => self.reply(self.handle(b"")),
            Some("POST") => {
                // Pausing here would stop the body callbacks too (Envoy maps
                // it to StopAllIteration): let the headers go on to the
                // buffer filter that follows, which holds them until we reply.
                self.awaiting_body = true;
                Action::Continue
            }
            _ => self.reply(Reply::error(405, "use GET or POST")),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.awaiting_body {
            return Action::Continue;
        }
        if body_size > MAX_COMMAND_BYTES {
            self.awaiting_body = false;
            return self.reply(Reply::error(413, "command body too large"));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.awaiting_body = false;
        let body = host::request_body(body_size).unwrap_or_default();
        self.reply(self.handle(&body))
    }
}
