//! One error shape on every `/api/v1` route: the test walks the route index
//! (`GET /api/v1/`) of the real control plane and calls each route with no
//! token, with a wrong token and — where it takes a body or query — with a
//! malformed one. Every answer must be the expected 4xx with a JSON object
//! whose `error` is a non-empty string, and nothing may change.

use serde_json::Value;
use usher_integration::{call, free_port, http, ControlPlane, Response};

fn config(front: u16) -> String {
    format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20701\"\ncapacity = 5\n\
         [[wsis]]\nname = \"w\"\nurl = \"http://127.0.0.1:20702/usher/command\"\ntoken = \"t-w-token\"\nrole = \"interceptor\"\napp = \"shop\"\n"
    )
}

/// The route's path with an existing object's name in place of `{name}`.
fn concrete(path: &str) -> String {
    let name = if path.starts_with("/api/v1/apps/") {
        "shop"
    } else if path.starts_with("/api/v1/servers/") {
        "a"
    } else {
        "w"
    };
    path.replace("{name}", name)
}

fn assert_error_shape(what: &str, r: &Response, status: u16) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {}", r.body));
    assert!(
        v.get("error")
            .and_then(Value::as_str)
            .is_some_and(|e| !e.is_empty()),
        "{what}: no error text: {v}"
    );
}

#[test]
fn every_route_answers_errors_in_one_json_shape() {
    let front = free_port();
    let cp = ControlPlane::start(&config(front), &[]);
    let index = cp.api_ok("GET", "/api/v1/", None);
    let routes: Vec<(String, String)> = index["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or("").to_string(),
                r["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(routes.len() >= 20, "the index lists the routes: {index}");
    // What the refused requests must not change (push status and live
    // figures move on their own, so only configured objects are compared).
    let configured = || {
        let servers = cp.api_ok("GET", "/api/v1/servers", None);
        let servers: Vec<(Value, Value, Value, Value)> = servers
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let f = |k: &str| s[k].clone();
                        (f("name"), f("capacity"), f("enabled"), f("pinned_load"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        (cp.api_ok("GET", "/api/v1/apps", None), servers)
    };
    let before = configured();

    let mut walked = 0;
    for (method, path) in &routes {
        let url = format!("{}{}", cp.admin_url(), concrete(path));
        let body = matches!(method.as_str(), "POST" | "PUT").then_some("{}");
        // No token, then a wrong one: 401, one shape.
        let r = call(http().request(method, &url), body);
        assert_error_shape(&format!("{method} {path} without a token"), &r, 401);
        let r = call(
            http()
                .request(method, &url)
                .set("Authorization", "Bearer wrong-token"),
            body,
        );
        assert_error_shape(&format!("{method} {path} with a wrong token"), &r, 401);
        walked += 1;

        // Malformed input, with the right token.
        let takes_body = matches!(method.as_str(), "PUT")
            || (method == "POST" && !path.ends_with("/enable") && !path.ends_with("/disable"));
        if takes_body {
            let r = cp.api(method, &concrete(path), Some("{\"broken\": "));
            assert_error_shape(&format!("{method} {path} with broken JSON"), &r, 400);
            let r = cp.api(method, &concrete(path), Some("{\"no_such_key\": 1}"));
            assert_error_shape(&format!("{method} {path} with an unknown key"), &r, 400);
        }
        let takes_query = method == "GET"
            && ["metrics", "events", "requests"]
                .iter()
                .any(|q| path.ends_with(q));
        if takes_query {
            let r = cp.api("GET", &format!("{path}?limit=many"), None);
            assert_error_shape(&format!("GET {path}?limit=many"), &r, 400);
            let r = cp.api("GET", &format!("{path}?no_such_parameter=1"), None);
            assert_error_shape(&format!("GET {path}?no_such_parameter=1"), &r, 400);
        }
    }
    assert_eq!(walked, routes.len());
    // An unknown route and a wrong method answer in the same shape.
    let r = cp.api("GET", "/api/v1/no-such-thing", None);
    assert_error_shape("GET /api/v1/no-such-thing", &r, 404);

    assert_eq!(before, configured(), "refused requests changed nothing");
}

/// A known path asked with a method it does not take answers 405 with
/// `Allow` listing exactly the methods the route index gives that path, and
/// the JSON error body; TRACE included. An unknown path stays 404 JSON.
/// Without the token, a wrong method is 401 like everything under /api/v1.
#[test]
fn wrong_methods_get_405_with_allow() {
    let front = free_port();
    let cp = ControlPlane::start(&config(front), &[]);
    let index = cp.api_ok("GET", "/api/v1/", None);
    let mut by_path: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in index["routes"].as_array().expect("routes") {
        by_path
            .entry(concrete(r["path"].as_str().unwrap_or("")))
            .or_default()
            .push(r["method"].as_str().unwrap_or("").to_string());
    }
    by_path.insert("/healthz".into(), vec!["GET".into()]);
    let mut checked = 0;
    for (path, methods) in &by_path {
        for method in ["TRACE", "GET", "POST", "PUT", "DELETE", "PATCH"] {
            if methods.iter().any(|m| m == method) {
                continue;
            }
            let r = http()
                .request(method, &format!("{}{path}", cp.admin_url()))
                .set("Authorization", &format!("Bearer {}", cp.token))
                .call();
            let r = match r {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(e) => panic!("{method} {path}: {e}"),
            };
            assert_eq!(r.status(), 405, "{method} {path}");
            let allow = r.header("allow").unwrap_or("").to_string();
            let mut got: Vec<&str> = allow.split(", ").collect();
            let mut want: Vec<&str> = methods.iter().map(String::as_str).collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "{method} {path}: Allow {allow:?}");
            let body = Response {
                status: 405,
                location: None,
                content_type: r.header("content-type").map(str::to_string),
                body: r.into_string().unwrap_or_default(),
            };
            assert_error_shape(&format!("{method} {path}"), &body, 405);
            checked += 1;
        }
    }
    assert!(checked >= 60, "checked {checked} wrong methods");

    let r = cp.api("TRACE", "/api/v1/no-such-thing", None);
    assert_error_shape("TRACE /api/v1/no-such-thing", &r, 404);
    let r = call(
        http().request("TRACE", &format!("{}/api/v1/apps", cp.admin_url())),
        None,
    );
    assert_error_shape("TRACE /api/v1/apps without a token", &r, 401);
    // The agent channel without an upgrade says what it is for.
    let r = cp.api("GET", "/api/v1/agent/channel", None);
    assert_error_shape("GET /api/v1/agent/channel without an upgrade", &r, 400);
    assert!(r.body.contains("upgrade"), "{}", r.body);
}
