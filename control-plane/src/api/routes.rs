//! The admin API's routes (warp filters). Every `/api/v1` route needs the
//! bearer token; `/healthz` does not.

use warp::reply::Response;
use warp::{Filter, Rejection};

use super::errors::{recover, reply, ApiError, MAX_BODY_BYTES};
use super::handlers as h;
use crate::state::AppState;
use crate::token::bearer_matches;

fn with_state(
    st: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || st.clone())
}

fn auth(st: AppState) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |h: Option<String>| {
            let ok = bearer_matches(h.as_deref(), &st.token);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(warp::reject::custom(ApiError::Unauthorized))
                }
            }
        })
        .untuple_one()
}

fn body() -> impl Filter<Extract = (bytes::Bytes,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY_BYTES).and(warp::body::bytes())
}

/// Every route of the admin API, errors included.
pub fn routes(
    st: AppState,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let s = || with_state(st.clone());

    let healthz = warp::path!("healthz").and(warp::get()).then(h::healthz);

    let apps = warp::path!("apps")
        .and(warp::get())
        .and(s())
        .then(h::list_apps)
        .or(warp::path!("apps")
            .and(warp::post())
            .and(s())
            .and(body())
            .then(h::add_app))
        .unify()
        .or(warp::path!("apps" / String)
            .and(warp::get())
            .and(s())
            .then(h::get_app))
        .unify()
        .or(warp::path!("apps" / String)
            .and(warp::delete())
            .and(s())
            .then(h::remove_app))
        .unify()
        .or(warp::path!("apps" / String / "enable")
            .and(warp::post())
            .and(s())
            .then(|n, st| h::set_app_enabled(n, true, st)))
        .unify()
        .or(warp::path!("apps" / String / "disable")
            .and(warp::post())
            .and(s())
            .then(|n, st| h::set_app_enabled(n, false, st)))
        .unify();

    let servers = warp::path!("servers")
        .and(warp::get())
        .and(s())
        .then(h::list_servers)
        .or(warp::path!("servers")
            .and(warp::post())
            .and(s())
            .and(body())
            .then(h::add_server))
        .unify()
        .or(warp::path!("servers" / String)
            .and(warp::get())
            .and(s())
            .then(h::get_server))
        .unify()
        .or(warp::path!("servers" / String)
            .and(warp::delete())
            .and(s())
            .then(h::remove_server))
        .unify()
        .or(warp::path!("servers" / String / "enable")
            .and(warp::post())
            .and(s())
            .then(|n, st| h::set_server_enabled(n, true, st)))
        .unify()
        .or(warp::path!("servers" / String / "disable")
            .and(warp::post())
            .and(s())
            .then(|n, st| h::set_server_enabled(n, false, st)))
        .unify()
        .or(warp::path!("servers" / String / "load")
            .and(warp::put())
            .and(s())
            .and(body())
            .then(h::set_load))
        .unify()
        .or(warp::path!("servers" / String / "load")
            .and(warp::delete())
            .and(s())
            .then(h::clear_load))
        .unify()
        .or(warp::path!("servers" / String / "redirect")
            .and(warp::put())
            .and(s())
            .and(body())
            .then(h::set_redirect))
        .unify();

    let wsis = warp::path!("wsis")
        .and(warp::get())
        .and(s())
        .then(h::list_wsis)
        .or(warp::path!("wsis")
            .and(warp::post())
            .and(s())
            .and(body())
            .then(h::add_wsi))
        .unify()
        .or(warp::path!("wsis" / String)
            .and(warp::delete())
            .and(s())
            .then(h::remove_wsi))
        .unify();

    // `/api/v1/` and `/api/v1` (warp's path end matches both).
    let index = warp::path::end().and(warp::get()).then(super::index::index);

    let api = warp::path("api")
        .and(warp::path("v1"))
        .and(auth(st.clone()))
        .and(
            apps.or(servers)
                .unify()
                .or(wsis)
                .unify()
                .or(super::log::areas(st.manager.clone()))
                .unify()
                .or(index)
                .unify(),
        )
        .map(reply);

    healthz.or(api).unify().recover(recover).unify()
}
