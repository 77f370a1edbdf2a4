//! Configuration: every ready config in nginx/ passes `nginx -t` with the
//! module loaded, and a bad directive fails `nginx -t` with a message naming
//! the directive and the bad value.

use std::process::Command;

use usher_integration::{nginx_t, repo_root, Artifact};

#[test]
fn ready_configs_pass_nginx_t() {
    Artifact::NginxModule.path();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/validate-nginx-configs.sh"))
        .output()
        .expect("run validate-nginx-configs.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for conf in ["web-server.conf", "front-door.conf"] {
        assert!(
            text.contains(&format!("ok      nginx/{conf}")),
            "{conf} checked: {text}"
        );
    }
}

#[test]
fn good_directives_pass() {
    let (ok, out) = nginx_t(
        "usher_ring /dev/shm/usher-test-never-created.ring 64k; usher_random_seed 7;",
        "usher_role server; usher_app shop; usher_record status method processing_time;
         usher_stateful /cart /basket; usher_stateful_prefix /checkout/; usher_allow / /static/*;
         usher_session_cookie usher_session;
         location / { return 200; }
         location /front { usher_role interceptor; usher_server a http://127.0.0.1:1 3; usher_mode proxy;
                           usher_obsolescence 600s; proxy_pass $usher_upstream; }",
    );
    assert!(ok, "{out}");
    assert!(
        !std::path::Path::new("/dev/shm/usher-test-never-created.ring").exists(),
        "nginx -t creates no ring file"
    );
}

#[test]
fn bad_directive_fails_nginx_t_naming_it() {
    let cases = [
        (
            "",
            "usher_role boss;",
            "\"usher_role\": unknown role \"boss\"",
        ),
        (
            "",
            "usher_record status colour;",
            "\"usher_record\": unknown field \"colour\"",
        ),
        (
            "",
            "usher_app \"bad name\";",
            "\"usher_app\": bad application name \"bad name\"",
        ),
        (
            "usher_ring relative/path.ring;",
            "",
            "\"usher_ring\": ring file \"relative/path.ring\"",
        ),
        (
            "usher_ring /dev/shm/x.ring 1000;",
            "",
            "\"usher_ring\": bad ring size \"1000\"",
        ),
        (
            "",
            "usher_stateful cart;",
            "\"usher_stateful\": bad path \"cart\"",
        ),
        (
            "",
            "usher_session_cookie a=b;",
            "\"usher_session_cookie\": bad cookie name \"a=b\"",
        ),
        (
            "",
            "usher_server a ftp://x 5;",
            "\"usher_server\": bad URL \"ftp://x\"",
        ),
        (
            "",
            "usher_server a http://127.0.0.1:1 11;",
            "\"usher_server\": bad capacity \"11\"",
        ),
        (
            "",
            "usher_mode teleport;",
            "\"usher_mode\": unknown mode \"teleport\"",
        ),
        (
            "",
            "usher_sorry_page /nonexistent/sorry.html;",
            "\"usher_sorry_page\": cannot read \"/nonexistent/sorry.html\"",
        ),
        (
            "",
            "usher_command_token short;",
            "\"usher_command_token\": the token must be at least 8",
        ),
        (
            "",
            "usher_role interceptor;",
            "\"usher_role interceptor\" needs \"usher_app NAME\"",
        ),
        (
            "usher_random_seed -1;",
            "",
            "\"usher_random_seed\": bad seed \"-1\"",
        ),
    ];
    for (http_extra, server, want) in cases {
        let (ok, out) = nginx_t(
            http_extra,
            &format!("{server}\n location / {{ return 200; }}"),
        );
        assert!(!ok, "{server} {http_extra} must fail nginx -t:\n{out}");
        assert!(
            out.contains(want),
            "{server} {http_extra}: expected {want:?} in:\n{out}"
        );
        assert!(out.contains("test failed"), "{out}");
    }
}
