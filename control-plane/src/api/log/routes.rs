//! The log routes as warp filters: inside the admin API (which adds the
//! `/api/v1` prefix and the token check), or alone for the
//! `fixture-manager` test binary.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use warp::reply::Response;
use warp::{Filter, Rejection};

use super::handlers as h;
use super::query::LogQuery;
use crate::api::errors::{recover, reply, ApiError};
use crate::manager::Manager;

/// Checks the `Authorization` header value (None when absent).
pub type AuthCheck = Arc<dyn Fn(Option<&str>) -> bool + Send + Sync>;

fn query() -> impl Filter<Extract = (LogQuery,), Error = Rejection> + Clone {
    warp::query::<HashMap<String, String>>().map(LogQuery)
}

/// `GET {hosts,agents,metrics,events,requests}` below the API prefix.
pub fn areas(
    m: Manager,
) -> impl Filter<Extract = (Result<Response, ApiError>,), Error = Rejection> + Clone {
    let m = warp::any().map(move || m.clone());
    let get = || warp::get().and(m.clone()).and(query());
    warp::path!("hosts")
        .and(get())
        .then(h::hosts)
        .or(warp::path!("agents").and(get()).then(h::agents))
        .unify()
        .or(warp::path!("metrics").and(get()).then(h::metrics))
        .unify()
        .or(warp::path!("events").and(get()).then(h::events))
        .unify()
        .or(warp::path!("requests").and(get()).then(h::requests))
        .unify()
}

/// The log routes alone under `/api/v1/`, with their own token check and
/// the admin API's error answers.
pub fn log_routes(
    m: Manager,
    auth: AuthCheck,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let check = warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let ok = auth(header.as_deref());
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(warp::reject::custom(ApiError::Unauthorized))
                }
            }
        })
        .untuple_one();
    warp::path("api")
        .and(warp::path("v1"))
        .and(check)
        .and(areas(m))
        .map(reply)
        .recover(recover)
        .unify()
}
