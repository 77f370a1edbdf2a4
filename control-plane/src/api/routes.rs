//! The admin API's routes (warp filters). Every `/api/v1` route needs the
//! bearer token (or a signed-in console: `crate::console::guard`); `/healthz` does not; `/metrics` does unless
//! `[control] metrics_public = true`.

use warp::reply::Response;
use warp::{Filter, Rejection};

use super::errors::{method_not_allowed, recover, reply, ApiError, MAX_BODY_BYTES};
use super::handlers as h;
use crate::state::AppState;
use crate::token::bearer_matches;

fn with_state(
    st: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || st.clone())
}

/// The admin token, unless `open` (`GET /metrics` with
/// `[control] metrics_public`).
fn token_unless(st: AppState, open: bool) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |h: Option<String>| {
            let ok = open || bearer_matches(h.as_deref(), &st.token);
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

/// A body that may be left out: none at all (no `Content-Length`, no
/// `Transfer-Encoding`) reads as empty; one that is sent is capped as
/// [`body`] (413, and 411 for a chunked one).
fn optional_body() -> impl Filter<Extract = (bytes::Bytes,), Error = Rejection> + Clone {
    let none = warp::header::optional::<String>("content-length")
        .and(warp::header::optional::<String>("transfer-encoding"))
        .and_then(|len: Option<String>, te: Option<String>| async move {
            match (len, te) {
                (None, None) => Ok(bytes::Bytes::new()),
                _ => Err(warp::reject::not_found()),
            }
        });
    body().or(none).unify()
}

/// A known path asked with a method it does not take: `405` with `Allow`
/// (the methods from the route index). Under `/api` only with the admin
/// token, so a caller without it still gets `401` and learns nothing. Any
/// other request passes on as "not found", which loses to every other
/// rejection (401, 411, 413, ...), so this only decides what would have
/// been a bare 404 or 405.
fn wrong_method(st: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::full()
        .and(warp::method())
        .and(warp::header::optional::<String>("authorization"))
        .and_then(
            move |path: warp::path::FullPath, method: warp::http::Method, auth: Option<String>| {
                let path = path.as_str().to_string();
                let allowed = super::index::allowed_methods(&path).filter(|allow| {
                    !allow.contains(&method.as_str())
                        && (!path.starts_with("/api") || bearer_matches(auth.as_deref(), &st.token))
                });
                async move {
                    match allowed {
                        Some(allow) => Ok(method_not_allowed(method.as_str(), &path, &allow)),
                        None => Err(warp::reject::not_found()),
                    }
                }
            },
        )
}

/// `GET /api/v1/agent/channel` that is not a WebSocket upgrade (the
/// upgrade itself is answered by `crate::manager::channel_route`, which
/// comes first): say what the route is for instead of "no such route".
async fn channel_without_upgrade() -> Result<Response, ApiError> {
    Err(ApiError::bad(
        "upgrade",
        "upgrade: /api/v1/agent/channel is the agents' WebSocket: send a WebSocket \
         upgrade with the agent token (<data_dir>/agent.token)",
    ))
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

    // Process control through the server's agent (api/process.rs).
    let process = {
        use super::process::{order, Action};
        let one = move |action: Action| {
            warp::path("servers")
                .and(warp::path::param::<String>())
                .and(warp::path(action.name()))
                .and(warp::path::end())
                .and(warp::post())
                .and(s())
                .and(optional_body())
                .then(move |n, st, b| order(n, action, st, b))
        };
        one(Action::Start)
            .or(one(Action::Stop))
            .unify()
            .or(one(Action::Restart))
            .unify()
    };

    // The manager's decisions: drain, undrain, an app's policy (api/acts.rs).
    let acts = warp::path!("servers" / String / "drain")
        .and(warp::post())
        .and(s())
        .and(optional_body())
        .then(super::acts::drain)
        .or(warp::path!("servers" / String / "undrain")
            .and(warp::post())
            .and(s())
            .and(optional_body())
            .then(super::acts::undrain))
        .unify()
        .or(warp::path!("apps" / String / "policy")
            .and(warp::get())
            .and(s())
            .then(super::acts::get_policy))
        .unify()
        .or(warp::path!("apps" / String / "policy")
            .and(warp::put())
            .and(s())
            .and(body())
            .then(super::acts::set_policy))
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

    // `GET /agents` is a log route (`super::log`); these change the store.
    let agents = warp::path!("agents")
        .and(warp::post())
        .and(s())
        .and(body())
        .then(super::agents::add_agent)
        .or(warp::path!("agents" / String)
            .and(warp::delete())
            .and(s())
            .then(super::agents::remove_agent))
        .unify();

    // `/api/v1/` and `/api/v1` (warp's path end matches both).
    let index = warp::path::end()
        .and(warp::get())
        .then(super::index::index)
        .or(warp::path!("agent" / "channel")
            .and(warp::get())
            .then(channel_without_upgrade))
        .unify();

    let api = warp::path("api")
        .and(warp::path("v1"))
        .and(crate::console::guard::admin_or_session(st.clone()))
        .and(
            apps.or(servers)
                .unify()
                .or(process)
                .unify()
                .or(acts)
                .unify()
                .or(wsis)
                .unify()
                .or(agents)
                .unify()
                .or(super::log::areas(st.manager.clone()))
                .unify()
                .or(index)
                .unify(),
        )
        .map(reply);

    // Prometheus: the admin token unless `[control] metrics_public`.
    let metrics = {
        let st = st.clone();
        warp::path!("metrics")
            .and(warp::get())
            .and(token_unless(st.clone(), st.metrics_public))
            .map(move || crate::metrics::reply(&st))
    };

    healthz
        .or(metrics)
        .unify()
        .or(crate::console::routes(st.clone()))
        .unify()
        .or(api)
        .unify()
        .or(wrong_method(st))
        .unify()
        .recover(recover)
        .unify()
}
