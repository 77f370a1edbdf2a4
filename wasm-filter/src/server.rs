//! Server role, per request: microsecond timing from the request headers to
//! the log phase, the selected record fields, and the redirect the snapshot
//! orders unless the page is stateful (listed, or marked by its own earlier
//! response on this worker), the user carries the session cookie, the method
//! is not `GET`/`HEAD` or the request is an agent probe (those are served
//! where they landed). No request header is written. Host calls
//! are what cost here, so the request phase only reads the clock, plus
//! `:path` (and `:method` and the cookie) when a redirect or the report
//! pages must look at it; every recorded
//! field is read in the log phase, where Envoy still holds both header maps.
//! A phase that needs one header value asks for it alone, one that needs
//! more fetches the whole header map once (read in place); unselected fields
//! cost nothing. The filter has no response-headers callback (its export is
//! removed by `build-wasm.sh`), and the record is assembled in the worker's
//! reusable record (string buffers kept from one request to the next).
//!
//! A page marks itself stateful with the response header `Usher-Stateful: 1`
//! (or `true`): the log phase looks for it (one host call, or none when the
//! record already fetches the response map) and the worker remembers the
//! path (`usher_core::SelfMarked`). Envoy runs the log phase on the worker
//! as the stream completes, before that worker handles another request, so
//! the memory is up to date for the next one. It is per worker (each VM
//! learns from what it served): a worker that never served the page still
//! redirects it while a redirect order is in force.

use std::borrow::Cow;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use usher_core::{marks_stateful, Field, FieldMask, SELF_MARK_HEADER};

use crate::fields::{auth_type, content_path, http_date_secs, HeaderPairs};
use crate::host;
use crate::worker::Shared;

pub struct ServerCtx {
    worker: Shared,
    mask: FieldMask,
    recording: bool,
    start_us: u64,
    /// `:path`, when the request phase already read it.
    path: Option<String>,
    /// The request header map, when the request phase already fetched it.
    headers: Option<HeaderPairs>,
    /// `Location` of the redirect this filter answered with.
    redirected: Option<String>,
}

impl ServerCtx {
    pub fn new(worker: Shared) -> ServerCtx {
        ServerCtx {
            worker,
            mask: FieldMask(0),
            recording: false,
            start_us: 0,
            path: None,
            headers: None,
            redirected: None,
        }
    }
}

/// Request-header values this request needs from the recorded fields.
fn request_values(m: FieldMask) -> usize {
    [
        m.has(Field::Method) || m.has(Field::RequestLine),
        m.has(Field::Accept),
        m.has(Field::UserAgent),
        m.has(Field::Connection),
        m.has(Field::Pragma),
        m.has(Field::Cookies),
        m.has(Field::Referer),
        m.has(Field::AuthType),
    ]
    .iter()
    .filter(|b| **b)
    .count()
}

/// From this many values on, a phase fetches the whole header map (one
/// call and one buffer instead of a call and a buffer per value: two
/// separate lookups measured about 2.5 µs dearer per request than one map).
const MAP_FROM: usize = 2;

/// Header values of one phase: the whole map fetched once (serialized,
/// read in place), or one value per call when at most one is needed.
enum Lookup {
    Map(Option<HeaderPairs>),
    EachRequest,
    EachResponse,
}

impl Lookup {
    fn request(wanted: usize) -> Lookup {
        if wanted >= MAP_FROM {
            Lookup::Map(host::request_headers())
        } else {
            Lookup::EachRequest
        }
    }

    fn response(wanted: usize) -> Lookup {
        if wanted >= MAP_FROM {
            Lookup::Map(host::response_headers())
        } else {
            Lookup::EachResponse
        }
    }

    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        match self {
            Lookup::Map(m) => m.as_ref()?.get(name).map(Cow::Borrowed),
            Lookup::EachRequest => host::request_header(name).map(Cow::Owned),
            Lookup::EachResponse => host::response_header(name).map(Cow::Owned),
        }
    }

    /// `name`'s value when `on`, else nothing (and no host call).
    fn when(&self, on: bool, name: &str) -> Option<Cow<'_, str>> {
        if on {
            self.get(name)
        } else {
            None
        }
    }
}

/// Puts `value` into a reused record field, keeping its string buffer.
fn put(slot: &mut Option<String>, value: Option<&str>) {
    match (slot.as_mut(), value) {
        (Some(s), Some(v)) => {
            s.clear();
            s.push_str(v);
        }
        (None, Some(v)) => *slot = Some(v.to_owned()),
        (_, None) => *slot = None,
    }
}

impl ServerCtx {
    /// Remembers this request's path on the worker when its response marked
    /// the page stateful (`Usher-Stateful: 1` or `true`).
    fn learn_self_mark(&self, resp: &Lookup) {
        let marked = resp
            .get(SELF_MARK_HEADER)
            .is_some_and(|v| marks_stateful(&v));
        if !marked {
            return;
        }
        let path = match &self.path {
            Some(p) => Cow::Borrowed(p.as_str()),
            None => match host::request_header(":path") {
                Some(p) => Cow::Owned(p),
                None => return,
            },
        };
        let mut w = self.worker.borrow_mut();
        if w.self_marked.remember(content_path(&path)) {
            w.self_marked_new += 1;
        }
    }
}

impl Context for ServerCtx {}

impl HttpContext for ServerCtx {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.start_us = host::now_us();
        let (redirecting, needs_path, session_cookie) = {
            let w = self.worker.borrow();
            let v = &w.view;
            self.mask = if w.settings.agent.is_some() {
                v.mask
            } else {
                FieldMask(0)
            };
            let redirecting = v.redirect_target.is_some();
            let needs_path = redirecting || (self.mask.0 != 0 && !v.report_pages.is_empty());
            (redirecting, needs_path, v.rules.session_cookie.is_some())
        };
        let want_cookie = redirecting && session_cookie;
        let mut cookie = None;
        let mut method = None;
        if needs_path {
            // Fetch the whole map when the log phase will want more values
            // from it anyway, and keep it for then. A redirect needs the
            // method too, so it always takes the map.
            let later = if self.mask.0 != 0 {
                request_values(self.mask)
            } else {
                0
            };
            let wanted = 1 + usize::from(redirecting) + usize::from(want_cookie) + later;
            match Lookup::request(wanted) {
                Lookup::Map(map) => {
                    if let Some(h) = &map {
                        self.path = h.get(":path").map(str::to_owned);
                        if redirecting {
                            method = h.get(":method").map(str::to_owned);
                        }
                        if want_cookie {
                            cookie = h.get("cookie").map(str::to_owned);
                        }
                    }
                    self.headers = map;
                }
                _ => self.path = host::request_header(":path"),
            }
        }
        self.recording = self.mask.0 != 0 && {
            let w = self.worker.borrow();
            self.path
                .as_deref()
                .map_or(w.view.report_pages.is_empty(), |p| {
                    w.view.reports(content_path(p))
                })
        };
        if !redirecting {
            return Action::Continue;
        }
        let target = self.path.as_deref().and_then(|p| {
            let method = method.as_deref().unwrap_or("");
            let w = self.worker.borrow();
            if w.self_marked.contains(p) {
                return None;
            }
            w.view.redirect_for(method, p, cookie.as_deref())
        });
        let Some(location) = target else {
            return Action::Continue;
        };
        let id = {
            let mut w = self.worker.borrow_mut();
            w.redirects += 1;
            w.id.clone()
        };
        host::send_response(
            302,
            &[("location", &location), ("x-usher-worker", &id)],
            None,
        );
        self.redirected = Some(location);
        Action::Pause
    }

    fn on_log(&mut self) {
        // The end of the request, before any work of this phase.
        let end_us = if self.recording { host::now_us() } else { 0 };
        let m = self.mask;
        // A response this filter answered itself (a redirect) marks nothing.
        let learn = self.redirected.is_none();
        let resp_wanted = if self.recording {
            [
                Field::Status,
                Field::ContentLength,
                Field::ContentType,
                Field::LastModified,
                Field::RedirectLocation,
                Field::Aborted,
            ]
            .iter()
            .filter(|f| m.has(**f))
            .count()
        } else {
            0
        };
        let resp = Lookup::response(resp_wanted + usize::from(learn));
        if learn {
            self.learn_self_mark(&resp);
        }
        if !self.recording {
            return;
        }
        let wants_path = m.has(Field::ContentPath) || m.has(Field::RequestLine);
        let req = match self.headers.take() {
            Some(map) => Lookup::Map(Some(map)),
            None => {
                Lookup::request(request_values(m) + usize::from(wants_path && self.path.is_none()))
            }
        };

        let mut guard = self.worker.borrow_mut();
        let w = &mut *guard;
        let r = &mut w.scratch;
        // Every field in the mask is set (or cleared) here; the encoder
        // ignores the others, so their stale values never leave.
        let path: Option<Cow<'_, str>> = match &self.path {
            Some(p) => Some(Cow::Borrowed(p.as_str())),
            None => req.when(wants_path, ":path"),
        };
        let method = req.when(m.has(Field::Method) || m.has(Field::RequestLine), ":method");
        let protocol = if m.has(Field::Protocol) || m.has(Field::RequestLine) {
            host::property(&["request", "protocol"])
        } else {
            None
        };
        if m.has(Field::RequestLine) {
            let line = r.request_line.get_or_insert_with(String::new);
            line.clear();
            for (n, part) in [method.as_deref(), path.as_deref(), protocol.as_deref()]
                .into_iter()
                .enumerate()
            {
                if n > 0 {
                    line.push(' ');
                }
                line.push_str(part.unwrap_or("-"));
            }
        }
        if m.has(Field::Method) {
            put(&mut r.method, method.as_deref());
        }
        if m.has(Field::Protocol) {
            r.protocol = protocol;
        }
        if m.has(Field::ContentPath) {
            put(&mut r.content_path, path.as_deref().map(content_path));
        }
        if m.has(Field::ServerEndpoint) {
            r.server_endpoint = host::property(&["destination", "address"]);
        }
        if m.has(Field::ClientEndpoint) {
            r.client_endpoint = host::property(&["source", "address"]);
        }
        let fields = [
            (Field::Accept, "accept", &mut r.accept),
            (Field::UserAgent, "user-agent", &mut r.user_agent),
            (Field::Connection, "connection", &mut r.connection),
            (Field::Pragma, "pragma", &mut r.pragma),
            (Field::Cookies, "cookie", &mut r.cookies),
            (Field::Referer, "referer", &mut r.referer),
        ];
        for (field, name, slot) in fields {
            if m.has(field) {
                put(slot, req.get(name).as_deref());
            }
        }
        if m.has(Field::AuthType) {
            r.auth_type = req.get("authorization").and_then(|a| auth_type(&a));
        }

        let status = resp.when(m.has(Field::Status) || m.has(Field::Aborted), ":status");
        if m.has(Field::Aborted) {
            // No response headers reached Envoy's log phase: the client
            // went away before a response.
            r.aborted = Some(status.is_none());
        }
        if m.has(Field::Status) {
            let local = self.redirected.as_ref().map(|_| 302);
            r.status = status.and_then(|s| s.parse().ok()).or(local);
        }
        if m.has(Field::ContentLength) {
            r.content_length = resp.get("content-length").and_then(|s| s.parse().ok());
        }
        if m.has(Field::ContentType) {
            put(&mut r.content_type, resp.get("content-type").as_deref());
        }
        if m.has(Field::LastModified) {
            r.last_modified = resp.get("last-modified").and_then(|d| http_date_secs(&d));
        }
        if m.has(Field::RedirectLocation) {
            match self.redirected.take() {
                Some(location) => r.redirect_location = Some(location),
                None => put(&mut r.redirect_location, resp.get("location").as_deref()),
            }
        }
        if m.has(Field::StartTime) {
            r.start_time_us = Some(self.start_us);
        }
        if m.has(Field::ProcessingTime) {
            r.processing_time_us = Some(end_us.saturating_sub(self.start_us));
        }
        if m.has(Field::LoggedAt) {
            r.logged_at_us = Some(end_us);
        }
        w.records.push(&w.scratch, m, end_us);
    }
}
