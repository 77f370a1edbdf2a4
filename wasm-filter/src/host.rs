//! Thin wrappers over the proxy-wasm host calls. Each returns an `Option`
//! or a `Result` and logs what failed; none unwraps (the SDK's trait
//! methods do, and a panic here would abort the VM of a whole worker).

use std::time::{Duration, UNIX_EPOCH};

use log::warn;
use proxy_wasm::hostcalls as hc;
use proxy_wasm::types::{BufferType, MapType, MetricType, Status};

use crate::fields::HeaderPairs;

/// Wall-clock time in microseconds since the Unix epoch (0 if unavailable).
pub fn now_us() -> u64 {
    hc::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros() as u64)
}

/// A request header.
pub fn request_header(name: &str) -> Option<String> {
    hc::get_map_value(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}

/// A response header.
pub fn response_header(name: &str) -> Option<String> {
    hc::get_map_value(MapType::HttpResponseHeaders, name)
        .ok()
        .flatten()
}

#[link(wasm_import_module = "env")]
extern "C" {
    // The same import the SDK declares privately (it only offers the map
    // decoded into one `String` per key and value); statuses as plain `u32`
    // so an unexpected value cannot be an invalid enum.
    fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// `MapType::HttpRequestHeaders` / `HttpResponseHeaders` in the ABI.
const REQUEST_HEADERS: u32 = 0;
const RESPONSE_HEADERS: u32 = 2;

/// A whole header map in its serialized form, in one host call (one buffer
/// the host allocates in the VM; nothing decoded). `None` when the map is
/// absent (e.g. no response was produced) or the call failed.
fn header_map(map_type: u32) -> Option<HeaderPairs> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: both out-pointers point to live locals; on success the host
    // writes a buffer it allocated through `proxy_on_memory_allocate`.
    let status = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
    if status != 0 || data.is_null() {
        return None;
    }
    // SAFETY: the SDK's `proxy_on_memory_allocate` allocated `data` as a
    // `Vec<u8>` with capacity `size` and forgot it; the host filled `size`
    // bytes. Taking it back as that Vec frees it when dropped (the SDK's own
    // `get_map` does the same).
    let bytes = unsafe { Vec::from_raw_parts(data, size, size) };
    Some(HeaderPairs::new(bytes))
}

/// Every request header, in one host call.
pub fn request_headers() -> Option<HeaderPairs> {
    header_map(REQUEST_HEADERS)
}

/// Every response header, in one host call (`None` when there is no
/// response, e.g. the client went away first).
pub fn response_headers() -> Option<HeaderPairs> {
    header_map(RESPONSE_HEADERS)
}

/// Sets (replaces) a request header.
pub fn set_request_header(name: &str, value: &str) -> bool {
    match hc::set_map_value(MapType::HttpRequestHeaders, name, Some(value)) {
        Ok(()) => true,
        Err(e) => {
            warn!("cannot set request header {name}: {e:?}");
            false
        }
    }
}

/// A property (e.g. `["source", "address"]`) as text.
pub fn property(path: &[&str]) -> Option<String> {
    let bytes = hc::get_property(path.to_vec()).ok().flatten()?;
    String::from_utf8(bytes).ok()
}

/// Answers the request locally.
pub fn send_response(status: u32, headers: &[(&str, &str)], body: Option<&[u8]>) {
    if let Err(e) = hc::send_http_response(status, headers.to_vec(), body) {
        warn!("cannot send local response {status}: {e:?}");
    }
}

/// The request body received so far (up to `size` bytes).
pub fn request_body(size: usize) -> Option<Vec<u8>> {
    hc::get_buffer(BufferType::HttpRequestBody, 0, size)
        .ok()
        .flatten()
}

/// The plugin configuration bytes.
pub fn plugin_configuration() -> Option<Vec<u8>> {
    hc::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
}

/// The `:status` of an HTTP call's answer.
pub fn call_status() -> Option<u32> {
    hc::get_map_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| s.parse().ok())
}

/// A shared-data value and its CAS token (None, None when absent).
pub fn shared_get(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    hc::get_shared_data(key).unwrap_or((None, None))
}

/// Writes a shared-data value, with compare-and-swap when `cas` is given.
pub fn shared_set(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    hc::set_shared_data(key, Some(value), cas)
}

/// POSTs `body` to `cluster`; returns the call's token.
pub fn post(
    cluster: &str,
    authority: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<u32, Status> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/octet-stream"),
    ];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    hc::dispatch_http_call(cluster, headers, Some(body), vec![], Duration::from_secs(2))
}

/// Sets the root context's tick period.
pub fn set_tick(period: Duration) {
    if let Err(e) = hc::set_tick_period(period) {
        warn!("cannot set tick period: {e:?}");
    }
}

/// A counter metric (same name, same stat in every worker).
pub fn counter(name: &str) -> Option<u32> {
    match hc::define_metric(MetricType::Counter, name) {
        Ok(id) => Some(id),
        Err(e) => {
            warn!("cannot define metric {name}: {e:?}");
            None
        }
    }
}

/// Adds `n` to a counter.
pub fn add(metric: Option<u32>, n: u64) {
    if let (Some(id), true) = (metric, n > 0) {
        if let Err(e) = hc::increment_metric(id, n as i64) {
            warn!("cannot increment metric {id}: {e:?}");
        }
    }
}

/// A counter's value (the sum over all workers).
pub fn read(metric: Option<u32>) -> u64 {
    metric.and_then(|id| hc::get_metric(id).ok()).unwrap_or(0)
}
