//! `GET /api/v1/`: the index of the admin API's routes, so the URL the
//! control plane prints answers with where to go next.

use serde::Serialize;
use warp::reply::Response;
use warp::Reply;

use super::errors::ApiError;

/// One route of the admin API.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    /// What it does, in a few words.
    pub what: &'static str,
}

const fn r(method: &'static str, path: &'static str, what: &'static str) -> RouteInfo {
    RouteInfo { method, path, what }
}

/// Every `/api/v1` route: this crate's (routes.rs) and the manager's
/// (`crate::manager::queries`, `crate::manager::channel_route`). Keep it in
/// step with them; integration/tests/cp_ctl.rs calls each one.
pub const ROUTES: &[RouteInfo] = &[
    r("GET", "/api/v1/", "this index of routes"),
    r("GET", "/api/v1/apps", "list applications"),
    r("POST", "/api/v1/apps", "add an application and start its front door"),
    r("GET", "/api/v1/apps/{name}", "one application"),
    r("DELETE", "/api/v1/apps/{name}", "remove an application (its servers and WSIs first)"),
    r("POST", "/api/v1/apps/{name}/enable", "let the front door send users to servers"),
    r("POST", "/api/v1/apps/{name}/disable", "answer every new user with the sorry page"),
    r("GET", "/api/v1/servers", "list servers with state, share of new users, load and its age"),
    r("POST", "/api/v1/servers", "add a server to an application"),
    r("GET", "/api/v1/servers/{name}", "one server"),
    r("DELETE", "/api/v1/servers/{name}", "remove a server"),
    r("POST", "/api/v1/servers/{name}/enable", "put a server back into rotation"),
    r("POST", "/api/v1/servers/{name}/disable", "take a server out of rotation"),
    r("PUT", "/api/v1/servers/{name}/load", "pin the dynamic load value: {\"value\": V} or {\"value\": V, \"for_secs\": S}"),
    r("DELETE", "/api/v1/servers/{name}/load", "clear the pinned load value (measurements apply again)"),
    r("PUT", "/api/v1/servers/{name}/redirect", "order the server's WSI to send its users elsewhere: {\"target\": name | \"front-door\" | null}"),
    r("GET", "/api/v1/wsis", "list web server interfaces and their last push"),
    r("POST", "/api/v1/wsis", "register a web server interface"),
    r("DELETE", "/api/v1/wsis/{name}", "remove a web server interface"),
    r("GET", "/api/v1/hosts", "hosts the agents run on (latest facts)"),
    r("GET", "/api/v1/agents", "registered agents, whether connected, when last heard"),
    r("GET", "/api/v1/metrics", "metric samples; ?component= &metric= &from_us= &to_us= &limit="),
    r("GET", "/api/v1/events", "events; ?component= &type= &from_us= &to_us= &limit="),
    r("GET", "/api/v1/requests", "the request log without agent probes; ?probes=true &server= &status= &path= &from_us= &to_us= &limit="),
    r("GET", "/api/v1/agent/channel", "the agents' WebSocket (agent token, not the admin token)"),
];

#[derive(Serialize)]
struct Index {
    routes: &'static [RouteInfo],
}

/// `GET /api/v1/` and `GET /api/v1`.
pub async fn index() -> Result<Response, ApiError> {
    Ok(warp::reply::json(&Index { routes: ROUTES }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_once_under_api_v1() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
            assert!(
                ["GET", "POST", "PUT", "DELETE"].contains(&r.method),
                "{}",
                r.method
            );
            assert!(!r.what.is_empty());
            assert!(
                seen.insert((r.method, r.path)),
                "twice: {} {}",
                r.method,
                r.path
            );
        }
        for want in ["/api/v1/servers", "/api/v1/events", "/api/v1/requests"] {
            assert!(ROUTES.iter().any(|r| r.path == want), "{want}");
        }
    }
}
