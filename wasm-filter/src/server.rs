//! Server role, per request: microsecond timing from the request headers to
//! the log phase, the selected record fields, and the redirect the snapshot
//! orders unless the page is stateful or the user carries the session
//! cookie. No request header is written. Host calls are what cost here: a
//! phase that needs one header value asks for it alone, one that needs more
//! fetches the whole header map once (read in place); unselected fields cost
//! nothing. Response fields are read in the log phase, so the filter has no
//! response-headers callback (its export is removed by `build-wasm.sh`).

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use usher_core::{Field, FieldMask, RequestRecord};

use crate::fields::{auth_type, content_path, http_date_secs, HeaderPairs};
use crate::host;
use crate::root::Shared;

pub struct ServerCtx {
    worker: Shared,
    mask: FieldMask,
    recording: bool,
    start_us: u64,
    record: RequestRecord,
}

impl ServerCtx {
    pub fn new(worker: Shared) -> ServerCtx {
        ServerCtx {
            worker,
            mask: FieldMask(0),
            recording: false,
            start_us: 0,
            record: RequestRecord::default(),
        }
    }

    fn wants(&self, f: Field) -> bool {
        self.mask.has(f)
    }

    fn capture_request(&mut self, headers: &Lookup, path: Option<&str>) {
        let m = self.mask;
        let header = |on: bool, name: &str| if on { headers.get(name) } else { None };
        let r = &mut self.record;
        r.method = header(m.has(Field::Method) || m.has(Field::RequestLine), ":method");
        if m.has(Field::Protocol) || m.has(Field::RequestLine) {
            r.protocol = host::property(&["request", "protocol"]);
        }
        if m.has(Field::RequestLine) {
            r.request_line = Some(format!(
                "{} {} {}",
                r.method.as_deref().unwrap_or("-"),
                path.unwrap_or("-"),
                r.protocol.as_deref().unwrap_or("-")
            ));
        }
        if !m.has(Field::Method) {
            r.method = None;
        }
        if !m.has(Field::Protocol) {
            r.protocol = None;
        }
        if m.has(Field::ContentPath) {
            r.content_path = path.map(|p| content_path(p).to_string());
        }
        if m.has(Field::ServerEndpoint) {
            r.server_endpoint = host::property(&["destination", "address"]);
        }
        if m.has(Field::ClientEndpoint) {
            r.client_endpoint = host::property(&["source", "address"]);
        }
        r.accept = header(m.has(Field::Accept), "accept");
        r.user_agent = header(m.has(Field::UserAgent), "user-agent");
        r.connection = header(m.has(Field::Connection), "connection");
        r.pragma = header(m.has(Field::Pragma), "pragma");
        r.cookies = header(m.has(Field::Cookies), "cookie");
        r.referer = header(m.has(Field::Referer), "referer");
        if m.has(Field::AuthType) {
            r.auth_type = headers.get("authorization").and_then(|a| auth_type(&a));
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

    fn get(&self, name: &str) -> Option<String> {
        match self {
            Lookup::Map(m) => m.as_ref()?.get(name).map(str::to_owned),
            Lookup::EachRequest => host::request_header(name),
            Lookup::EachResponse => host::response_header(name),
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
            let needs_path = redirecting
                || !v.report_pages.is_empty()
                || self.mask.has(Field::ContentPath)
                || self.mask.has(Field::RequestLine);
            (redirecting, needs_path, v.rules.session_cookie.is_some())
        };
        let want_cookie = redirecting && session_cookie;
        let wanted = usize::from(needs_path) + usize::from(want_cookie) + request_values(self.mask);
        let headers = Lookup::request(wanted);
        let path = if needs_path {
            headers.get(":path")
        } else {
            None
        };
        self.recording = self.mask.0 != 0 && {
            let w = self.worker.borrow();
            path.as_deref().map_or(w.view.report_pages.is_empty(), |p| {
                w.view.reports(content_path(p))
            })
        };
        if self.recording {
            self.capture_request(&headers, path.as_deref());
        }
        if !redirecting {
            return Action::Continue;
        }
        let cookie = if want_cookie {
            headers.get("cookie")
        } else {
            None
        };
        let target = path
            .as_deref()
            .and_then(|p| self.worker.borrow().view.redirect_for(p, cookie.as_deref()));
        let Some(location) = target else {
            return Action::Continue;
        };
        let id = {
            let mut w = self.worker.borrow_mut();
            w.redirects += 1;
            w.id.clone()
        };
        if self.wants(Field::RedirectLocation) {
            self.record.redirect_location = Some(location.clone());
        }
        if self.wants(Field::Status) {
            self.record.status = Some(302);
        }
        host::send_response(
            302,
            &[("location", &location), ("x-usher-worker", &id)],
            None,
        );
        Action::Pause
    }

    fn on_log(&mut self) {
        if !self.recording {
            return;
        }
        let end_us = host::now_us();
        let m = self.mask;
        // Response fields are read here, in the log phase, where Envoy still
        // holds the response headers: the filter has no response-headers
        // callback at all (one call into the VM less per request).
        let wanted = [
            Field::Status,
            Field::ContentLength,
            Field::ContentType,
            Field::LastModified,
            Field::RedirectLocation,
            Field::Aborted,
        ]
        .iter()
        .filter(|f| m.has(**f))
        .count();
        let r = &mut self.record;
        if wanted > 0 {
            let headers = Lookup::response(wanted);
            let header = |on: bool, name: &str| if on { headers.get(name) } else { None };
            let status = header(m.has(Field::Status) || m.has(Field::Aborted), ":status");
            if m.has(Field::Aborted) {
                // No response headers reached the filter: the client went away.
                r.aborted = Some(status.is_none());
            }
            if m.has(Field::Status) {
                r.status = status.and_then(|s| s.parse().ok()).or(r.status);
            }
            r.content_length =
                header(m.has(Field::ContentLength), "content-length").and_then(|s| s.parse().ok());
            r.content_type = header(m.has(Field::ContentType), "content-type");
            r.last_modified = header(m.has(Field::LastModified), "last-modified")
                .and_then(|d| http_date_secs(&d));
            if r.redirect_location.is_none() {
                r.redirect_location = header(m.has(Field::RedirectLocation), "location");
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
        self.worker
            .borrow_mut()
            .records
            .push(&self.record, m, end_us);
    }
}
