//! Answering one request at a front door: 302 (307 for methods other than
//! GET and HEAD, so the method and body are kept), proxy, sorry page or 503.
//! No database access and no locks beyond the door's pick.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::future::{ready, Either, Ready};
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Body, Method, Request, Response, StatusCode};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use usher_core::rules::front_door_redirect_status;

use super::door::{Decision, Door};
use super::proxy::{forward, Proxy};
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

/// The future a request's answer comes from: ready at once for a
/// redirect, sorry page or 503 (the hot path allocates no boxed future);
/// boxed only when proxying.
pub type Answer = Either<
    Ready<Result<Response<Body>, Infallible>>,
    Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>,
>;

fn now(r: Response<Body>) -> Answer {
    Either::Left(ready(Ok(r)))
}

/// Handles one request for the door's application.
pub fn handle(door: &Arc<Door>, proxy: &Proxy, remote: SocketAddr, req: Request<Body>) -> Answer {
    let Some(slot) = door.admit() else {
        return now(plain_503(BUSY_BODY));
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    match door.decide(pq, draws()) {
        Decision::Redirect(url) => {
            drop(slot);
            let mut r = Response::new(Body::empty());
            *r.status_mut() = redirect_status(req.method());
            match HeaderValue::try_from(url) {
                Ok(v) => {
                    r.headers_mut().insert(LOCATION, v);
                    now(r)
                }
                Err(_) => now(plain_503(NO_SERVER_BODY)),
            }
        }
        Decision::Proxy(ticket) => {
            let (door, proxy) = (door.clone(), proxy.clone());
            Either::Right(Box::pin(async move {
                Ok(forward(&door, &proxy, ticket, remote, req, slot).await)
            }))
        }
        Decision::Sorry(html) => now(sorry(html)),
        Decision::NoServer => now(plain_503(NO_SERVER_BODY)),
    }
}

/// The status that sends a new user to the chosen server: 302 for GET and
/// HEAD, 307 for other methods (the client repeats the request with the
/// same method and body). The rule is `usher_core`'s, shared with the nginx
/// module and the Envoy filter.
fn redirect_status(method: &Method) -> StatusCode {
    StatusCode::from_u16(front_door_redirect_status(method.as_str())).unwrap_or(StatusCode::FOUND)
}

/// Two uniform draws in [0, 1) from a per-thread generator.
pub(super) fn draws() -> [f64; 2] {
    thread_local! {
        static RNG: std::cell::RefCell<SmallRng> = std::cell::RefCell::new(SmallRng::from_entropy());
    }
    RNG.with(|r| {
        let mut r = r.borrow_mut();
        [r.gen::<f64>(), r.gen::<f64>()]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_and_other_methods_get_307() {
        assert_eq!(redirect_status(&Method::GET), StatusCode::FOUND);
        assert_eq!(redirect_status(&Method::HEAD), StatusCode::FOUND);
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert_eq!(redirect_status(&m), StatusCode::TEMPORARY_REDIRECT, "{m}");
        }
    }
}
