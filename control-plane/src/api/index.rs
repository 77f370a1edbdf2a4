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
    r("POST", "/api/v1/servers/{name}/start", "start the server's process through its agent; answers its PID"),
    r("POST", "/api/v1/servers/{name}/stop", "stop the server's process through its agent (optional {\"signal\": \"KILL\"})"),
    r("POST", "/api/v1/servers/{name}/restart", "restart the server's process through its agent; answers the new PID"),
    r("POST", "/api/v1/servers/{name}/drain", "drain a server: no new users, stateless users moved away; body {quiet_s, then}"),
    r("POST", "/api/v1/servers/{name}/undrain", "end a drain (or a refused restart): back through slow start"),
    r("GET", "/api/v1/apps/{name}/policy", "an app's thresholds and timings the manager acts on"),
    r("PUT", "/api/v1/apps/{name}/policy", "replace an app's policy (keys left out take their defaults)"),
    r("GET", "/api/v1/wsis", "list web server interfaces and their last push"),
    r("POST", "/api/v1/wsis", "register a web server interface"),
    r("DELETE", "/api/v1/wsis/{name}", "remove a web server interface"),
    r("GET", "/api/v1/hosts", "hosts the agents run on (latest facts)"),
    r("GET", "/api/v1/agents", "agents: state (connected, silent, gone, never), bound servers, when last heard"),
    r("POST", "/api/v1/agents", "add an agent with its own token, bound to servers: {\"id\": id, \"servers\": [names]} (the token is answered once)"),
    r("DELETE", "/api/v1/agents/{id}", "revoke an agent's own token (disconnects it) and remove it from the list"),
    r("GET", "/api/v1/metrics", "metric samples; ?component= &metric= &from_us= &to_us= &limit="),
    r("GET", "/api/v1/events", "events; ?component= &type= &from_us= &to_us= &limit="),
    r("GET", "/api/v1/requests", "the request log without agent probes; ?probes=true &server= &status= &path= &from_us= &to_us= &limit="),
    r("GET", "/api/v1/agent/channel", "the agents' WebSocket (agent token, not the admin token)"),
];

/// The methods a path takes, from [`ROUTES`] (plus `GET /healthz` and
/// `GET /metrics`), in
/// the order listed; `None` when no route has that path. A `{...}`
/// segment in a route matches any one non-empty segment; one trailing `/` is ignored,
/// as warp's path matching ignores it.
pub fn allowed_methods(path: &str) -> Option<Vec<&'static str>> {
    let segments = |p: &str| -> Vec<String> {
        let p = p.strip_prefix('/').unwrap_or(p);
        let p = p.strip_suffix('/').unwrap_or(p);
        p.split('/').map(str::to_string).collect()
    };
    let asked = segments(path);
    let matches = |route: &str| {
        let want = segments(route);
        want.len() == asked.len()
            && want.iter().zip(&asked).all(|(w, a)| {
                if w.starts_with('{') {
                    !a.is_empty()
                } else {
                    w == a
                }
            })
    };
    let mut methods: Vec<&'static str> = ROUTES
        .iter()
        .filter(|r| matches(r.path))
        .map(|r| r.method)
        .collect();
    if matches("/healthz") || matches("/metrics") {
        methods.push("GET");
    }
    (!methods.is_empty()).then_some(methods)
}

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

    #[test]
    fn allowed_methods_follow_the_index() {
        assert_eq!(allowed_methods("/api/v1/apps"), Some(vec!["GET", "POST"]));
        assert_eq!(allowed_methods("/api/v1/apps/"), Some(vec!["GET", "POST"]));
        assert_eq!(
            allowed_methods("/api/v1/servers/a/load"),
            Some(vec!["PUT", "DELETE"])
        );
        for action in ["start", "stop", "restart"] {
            assert_eq!(
                allowed_methods(&format!("/api/v1/servers/a/{action}")),
                Some(vec!["POST"])
            );
        }
        assert_eq!(allowed_methods("/api/v1"), Some(vec!["GET"]));
        assert_eq!(allowed_methods("/api/v1/"), Some(vec!["GET"]));
        assert_eq!(allowed_methods("/healthz"), Some(vec!["GET"]));
        for unknown in [
            "/",
            "/api",
            "/api/v1/nope",
            "/api/v1/servers//load",
            "/api/v1/apps/a/b",
        ] {
            assert_eq!(allowed_methods(unknown), None, "{unknown}");
        }
    }
}
