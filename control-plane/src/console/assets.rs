//! The console page's files, compiled into the binary (no build step, no
//! asset from the internet): one HTML page, one script, one style sheet.

use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Reply;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// The file at `tail` (below `/console/`), with its content type.
pub fn file(tail: &str) -> Option<(&'static str, &'static str)> {
    match tail {
        "" | "index.html" => Some((INDEX, "text/html; charset=utf-8")),
        "console.js" => Some((SCRIPT, "text/javascript; charset=utf-8")),
        "console.css" => Some((STYLE, "text/css; charset=utf-8")),
        _ => None,
    }
}

/// The answer for `tail`, or `None` (404).
pub fn answer(tail: &str) -> Option<Response> {
    let (body, kind) = file(tail)?;
    let mut r = warp::reply::Response::new(body.into());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r.into_response())
}

/// Bytes the browser downloads for the page (uncompressed).
pub fn total_bytes() -> usize {
    INDEX.len() + SCRIPT.len() + STYLE.len()
}
