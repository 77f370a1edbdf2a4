//! The control plane pushing to a real web server interface: Debian's nginx
//! with the usher module (server role, `nginx/web-server.conf`) in front of
//! a demo app. A redirect order given with `usher ctl` is applied by every
//! nginx worker within 1 s; stateful pages stay served; `--off` ends it.

use std::time::{Duration, Instant};

use usher_integration::{
    call, eventually, free_port, http, repo_root, ControlPlane, DemoApp, Nginx, NginxPrefix,
};

/// Starts nginx from the shipped `nginx/web-server.conf`, moved to free
/// ports and a private ring file.
fn nginx(app_url: &str, token: &str) -> Nginx {
    let prefix = NginxPrefix::new();
    prefix.install_module();
    std::fs::write(prefix.path().join("conf/usher.token"), format!("{token}\n")).expect("token");
    let port = prefix.port;
    let upstream = app_url.trim_start_matches("http://");
    let conf = std::fs::read_to_string(repo_root().join("nginx/web-server.conf"))
        .expect("nginx/web-server.conf")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:8081", upstream)
        .replace(
            "/dev/shm/usher-nginx-8080.ring",
            &prefix.ring.display().to_string(),
        );
    assert!(
        conf.contains(&format!("127.0.0.1:{port}")),
        "nginx/web-server.conf changed shape"
    );
    prefix.write_conf(&conf);
    prefix.start(Some("daemon off;"))
}

#[test]
fn usher_ctl_redirect_reaches_every_nginx_worker_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = DemoApp::spec("alpha")
        .workers(4)
        .service_ms(1)
        .log_dir(dir.path())
        .start();
    let app_url = app.url();
    let token = "cp-nginx-token-42";
    let nginx = nginx(&app_url, token);
    let port = nginx.port;
    let other = "http://127.0.0.1:20601";
    let front = free_port();
    let cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nstateful = [\"/cart\"]\nsession_cookie = \"usher_session\"\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{port}\"\ncapacity = 5\n\
         [[servers]]\nname = \"b\"\napp = \"shop\"\nurl = \"{other}\"\ncapacity = 5\n\
         [[wsis]]\nname = \"ngx-a\"\nurl = \"http://127.0.0.1:{port}/usher/command\"\nrole = \"server\"\napp = \"shop\"\nserver = \"a\"\ntoken = \"{token}\"\n"
    );
    let cp = ControlPlane::start(&cfg, &[]);
    let counters = || {
        call(
            http()
                .get(&format!("http://127.0.0.1:{port}/usher/command"))
                .set("Authorization", &format!("Bearer {token}")),
            None,
        )
        .json()
    };
    // The first snapshot arrives and every worker applies it.
    let applied = eventually(Duration::from_secs(5), || {
        counters()["version"].as_u64().unwrap_or(0) > 0
    });
    assert!(applied.is_some(), "no snapshot applied: {}", counters());
    let page = |path: &str| call(http().get(&format!("http://127.0.0.1:{port}{path}")), None);
    assert_eq!(page("/").status, 200);

    // Redirect order: within 1 s every request that may move is sent to b,
    // on every worker (many requests, spread over nginx's workers).
    let t = Instant::now();
    let o = cp.ctl(&["server", "redirect", "a", "b"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let took = eventually(Duration::from_secs(3), || {
        (0..20).all(|_| page("/x?y=1").location.as_deref() == Some(&format!("{other}/x?y=1")))
    })
    .map(|_| t.elapsed());
    assert!(
        took.is_some_and(|d| d < Duration::from_secs(1)),
        "redirect took {took:?}"
    );
    let c = counters();
    let version = c["version"].as_u64().expect("version");
    let workers = c["workers_applied"].as_array().cloned().unwrap_or_default();
    assert!(
        workers.iter().all(|w| w.as_u64() == Some(version)),
        "not every worker applied {version}: {c}"
    );
    // Stateful page and cookie-marked users stay.
    assert_eq!(page("/cart").status, 200);
    let r = call(
        http()
            .get(&format!("http://127.0.0.1:{port}/"))
            .set("Cookie", "usher_session=abc"),
        None,
    );
    assert_eq!(r.status, 200);

    // Order off: served again within 1 s.
    let t = Instant::now();
    assert!(cp
        .ctl(&["server", "redirect", "a", "--off"])
        .status
        .success());
    let took = eventually(Duration::from_secs(3), || {
        (0..20).all(|_| page("/").status == 200)
    })
    .map(|_| t.elapsed());
    assert!(
        took.is_some_and(|d| d < Duration::from_secs(1)),
        "redirect off took {took:?}"
    );
    // The control plane shows the push as applied.
    let wsis = cp.api_ok("GET", "/api/v1/wsis", None);
    assert!(
        wsis[0]["push"]["applied_version"].as_u64().is_some(),
        "{wsis}"
    );
}
