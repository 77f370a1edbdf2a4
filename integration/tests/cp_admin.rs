//! The admin API against the real `usher control`: token on every route,
//! 400 naming the field with state unchanged, 404/409/413, adding and
//! removing apps and servers (front doors follow), and persistence across
//! a restart.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use usher_integration::{call, eventually, free_port, http, wait_for_port, ControlPlane};

fn config(front: u16) -> String {
    format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nstateful = [\"/cart\"]\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20201\"\ncapacity = 5\n\
         [[servers]]\nname = \"b\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20202\"\ncapacity = 2\n"
    )
}

#[test]
fn every_admin_route_needs_the_token() {
    let front = free_port();
    let cp = ControlPlane::start(&config(front), &[]);
    let mode = std::fs::metadata(cp.dir.path().join("var/admin.token"))
        .expect("token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin.token mode {mode:o}");

    let routes = [
        ("GET", "/api/v1/apps", None),
        (
            "POST",
            "/api/v1/apps",
            Some(r#"{"name":"x","listen":"127.0.0.1:1"}"#),
        ),
        ("DELETE", "/api/v1/apps/shop", None),
        ("POST", "/api/v1/apps/shop/enable", None),
        ("POST", "/api/v1/apps/shop/disable", None),
        ("GET", "/api/v1/servers", None),
        (
            "POST",
            "/api/v1/servers",
            Some(r#"{"name":"c","app":"shop","url":"http://127.0.0.1:1","capacity":1}"#),
        ),
        ("DELETE", "/api/v1/servers/a", None),
        ("POST", "/api/v1/servers/a/enable", None),
        ("POST", "/api/v1/servers/a/disable", None),
        ("PUT", "/api/v1/servers/a/load", Some(r#"{"value":5}"#)),
        (
            "PUT",
            "/api/v1/servers/a/redirect",
            Some(r#"{"target":"b"}"#),
        ),
        ("GET", "/api/v1/wsis", None),
        ("POST", "/api/v1/wsis", Some("{}")),
        ("DELETE", "/api/v1/wsis/x", None),
        ("GET", "/api/v1/no-such-route", None),
    ];
    let before = cp.api_ok("GET", "/api/v1/servers", None);
    for (method, path, body) in routes {
        for auth in [None, Some("Bearer wrong"), Some(cp.token.as_str())] {
            if auth == Some(cp.token.as_str()) {
                continue; // the token itself is exercised everywhere else
            }
            let mut req = http().request(method, &format!("{}{path}", cp.admin_url()));
            if let Some(a) = auth {
                req = req.set("Authorization", a);
            }
            let r = call(req, body);
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.body);
            assert!(r.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("token")));
        }
    }
    // Nothing changed.
    assert_eq!(cp.api_ok("GET", "/api/v1/servers", None), before);
    assert_eq!(cp.api_ok("GET", "/api/v1/apps", None)[0]["enabled"], true);
    // The health check needs none.
    let r = call(http().get(&format!("{}/healthz", cp.admin_url())), None);
    assert_eq!(r.status, 200);
}

#[test]
fn bad_bodies_are_refused_naming_the_field_and_change_nothing() {
    let front = free_port();
    let cp = ControlPlane::start(&config(front), &[]);
    cp.api_ok("PUT", "/api/v1/servers/a/load", Some(r#"{"value":4000}"#));
    let before_servers = cp.api_ok("GET", "/api/v1/servers", None);
    let before_apps = cp.api_ok("GET", "/api/v1/apps", None);

    let cases: [(&str, &str, &str, &str); 12] = [
        (
            "PUT",
            "/api/v1/servers/a/load",
            r#"{"value":10001}"#,
            "value",
        ),
        ("PUT", "/api/v1/servers/a/load", r#"{"value":-5}"#, "value"),
        (
            "PUT",
            "/api/v1/servers/a/load",
            r#"{"value":"high"}"#,
            "value",
        ),
        ("PUT", "/api/v1/servers/a/load", r#"{"value":1"#, "body"),
        ("PUT", "/api/v1/servers/a/load", r#"{"valeu":1}"#, "valeu"),
        (
            "PUT",
            "/api/v1/servers/a/redirect",
            r#"{"target":"nowhere"}"#,
            "target",
        ),
        (
            "PUT",
            "/api/v1/servers/a/redirect",
            r#"{"target":"http://evil.example"}"#,
            "target",
        ),
        (
            "POST",
            "/api/v1/servers",
            r#"{"name":"c","app":"shop","url":"ftp://x","capacity":3}"#,
            "url",
        ),
        (
            "POST",
            "/api/v1/servers",
            r#"{"name":"c","app":"shop","url":"http://127.0.0.1:9","capacity":11}"#,
            "capacity",
        ),
        (
            "POST",
            "/api/v1/servers",
            r#"{"name":"c","app":"nope","url":"http://127.0.0.1:9","capacity":1}"#,
            "app",
        ),
        (
            "POST",
            "/api/v1/apps",
            r#"{"name":"new","listen":"127.0.0.1:1","mode":"teleport"}"#,
            "mode",
        ),
        (
            "POST",
            "/api/v1/apps",
            r#"{"name":"new","listen":"127.0.0.1:1","stateful":["cart"]}"#,
            "stateful[0]",
        ),
    ];
    for (method, path, body, field) in cases {
        let r = cp.api(method, path, Some(body));
        assert_eq!(r.status, 400, "{method} {path} {body}: {}", r.body);
        let j = r.json();
        assert_eq!(j["field"], field, "{method} {path} {body}: {}", r.body);
        assert!(
            j["error"].as_str().is_some_and(|e| e.contains(field)),
            "{}",
            r.body
        );
    }
    // An address another process holds: 400 on `listen`, nothing added.
    let r = cp.api(
        "POST",
        "/api/v1/apps",
        Some(&format!(
            r#"{{"name":"new","listen":"127.0.0.1:{}"}}"#,
            cp.admin_port
        )),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["field"], "listen");
    // Unknown names: 404 JSON.
    for (method, path, body) in [
        ("PUT", "/api/v1/servers/zz/load", Some(r#"{"value":1}"#)),
        ("POST", "/api/v1/servers/zz/disable", None),
        ("POST", "/api/v1/apps/zz/enable", None),
        ("DELETE", "/api/v1/servers/zz", None),
        ("DELETE", "/api/v1/wsis/zz", None),
    ] {
        let r = cp.api(method, path, body);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("\"zz\"")),
            "{}",
            r.body
        );
    }
    // Too large: 413; duplicate: 409; app with servers: 409.
    // (sent raw: the answer comes from the declared length, before any body)
    let (status, _, body) = usher_integration::raw_request(
        cp.admin_port,
        &format!(
            "PUT /api/v1/servers/a/load HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"value\":1",
            cp.token,
            70 * 1024
        ),
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than 65536 bytes"), "{body}");
    let r = cp.api(
        "POST",
        "/api/v1/servers",
        Some(r#"{"name":"a","app":"shop","url":"http://127.0.0.1:9","capacity":1}"#),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(cp.api("DELETE", "/api/v1/apps/shop", None).status, 409);

    assert_eq!(cp.api_ok("GET", "/api/v1/servers", None), before_servers);
    assert_eq!(cp.api_ok("GET", "/api/v1/apps", None), before_apps);
}

#[test]
fn api_changes_survive_a_restart_and_front_doors_follow_apps() {
    let front = free_port();
    let mut cp = ControlPlane::start(&config(front), &[]);
    wait_for_port(front, Duration::from_secs(5));

    // Add an app and a server through the API: its front door starts.
    let new_front = free_port();
    cp.api_ok(
        "POST",
        "/api/v1/apps",
        Some(&format!(
            r#"{{"name":"blog","listen":"127.0.0.1:{new_front}","stateful":["/edit"]}}"#
        )),
    );
    cp.api_ok(
        "POST",
        "/api/v1/servers",
        Some(r#"{"name":"c","app":"blog","url":"http://127.0.0.1:20203","capacity":4}"#),
    );
    wait_for_port(new_front, Duration::from_secs(5));
    let r = call(
        http().get(&format!("http://127.0.0.1:{new_front}/post/1")),
        None,
    );
    assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:20203/post/1"));

    cp.api_ok("PUT", "/api/v1/servers/a/load", Some(r#"{"value":1234}"#));
    cp.api_ok("POST", "/api/v1/servers/b/disable", None);
    cp.api_ok(
        "PUT",
        "/api/v1/servers/a/redirect",
        Some(r#"{"target":"front-door"}"#),
    );
    cp.api_ok("POST", "/api/v1/apps/shop/disable", None);

    cp.restart();
    wait_for_port(front, Duration::from_secs(5));
    wait_for_port(new_front, Duration::from_secs(5));
    let servers = cp.api_ok("GET", "/api/v1/servers", None);
    let find = |n: &str| {
        servers
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == n).cloned())
            .expect(n)
    };
    assert_eq!(find("a")["dynamic_load"], 1234);
    assert_eq!(find("a")["redirect"], "front-door");
    assert_eq!(find("b")["enabled"], false);
    assert_eq!(find("c")["app"], "blog");
    let apps = cp.api_ok("GET", "/api/v1/apps", None);
    assert_eq!(apps.as_array().map(Vec::len), Some(2));
    assert_eq!(apps[1]["name"], "shop");
    assert_eq!(apps[1]["enabled"], false);
    assert_eq!(
        call(http().get(&format!("http://127.0.0.1:{front}/")), None).status,
        503
    );
    assert_eq!(
        call(http().get(&format!("http://127.0.0.1:{new_front}/x")), None)
            .location
            .as_deref(),
        Some("http://127.0.0.1:20203/x")
    );

    // Removing the app (after its server) stops its front door.
    cp.api_ok("DELETE", "/api/v1/servers/c", None);
    cp.api_ok("DELETE", "/api/v1/apps/blog", None);
    let closed = eventually(Duration::from_secs(3), || {
        std::net::TcpStream::connect(("127.0.0.1", new_front)).is_err()
    });
    assert!(
        closed.is_some(),
        "front door of a removed app still listens"
    );
    cp.restart();
    assert_eq!(
        cp.api_ok("GET", "/api/v1/apps", None)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn a_bad_config_names_file_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("usher.toml");
    std::fs::write(
        &path,
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:1\"\nmode = \"teleport\"\n",
    )
    .expect("write");
    let out = std::process::Command::new(usher_integration::usher_bin())
        .args(["control", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("usher.toml: line 4: apps[0].mode: unknown variant `teleport`"),
        "{err}"
    );
}
