//! Answering one request at a front door: 302, proxy, sorry page or 503.
//! No database access and no locks beyond the door's pick.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Body, Request, Response, StatusCode};

use super::door::{Decision, Door};
use super::proxy::{forward, Client};
use super::sorry::{BUSY_BODY, NO_SERVER_BODY};

fn plain_503(body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn sorry(html: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::from(html));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// Handles one request for the door's application.
pub async fn handle(
    door: Arc<Door>,
    client: Client,
    remote: SocketAddr,
    req: Request<Body>,
) -> Result<Response<Body>, Infallible> {
    let Some(slot) = door.admit() else {
        return Ok(plain_503(BUSY_BODY));
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let decision = door.decide(pq, rand::random::<f64>());
    Ok(match decision {
        Decision::Redirect(url) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::FOUND;
            match HeaderValue::try_from(url) {
                Ok(v) => {
                    r.headers_mut().insert(LOCATION, v);
                }
                Err(_) => return Ok(plain_503(NO_SERVER_BODY)),
            }
            drop(slot);
            r
        }
        Decision::Proxy { server, base } => {
            forward(&client, &server, &base, remote, req, slot).await
        }
        Decision::Sorry(html) => sorry(html),
        Decision::NoServer => plain_503(NO_SERVER_BODY),
    })
}
