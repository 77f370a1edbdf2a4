//! Admin API inputs and secrets at rest, against the real `usher control`:
//! sorry pages and token files only from the config folder and size-capped
//! (`/dev/zero` and a FIFO refused before any read, memory does not grow),
//! WSI URLs loopback only, WSI tokens of at least 8 characters, and the files that hold tokens, request lines
//! and cookies readable by their owner only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use usher_integration::{call, free_port, http, ControlPlane};

const APP: &str = "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\n\
                   [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20201\"\ncapacity = 5\n";

fn start() -> ControlPlane {
    let front = free_port();
    ControlPlane::start(&APP.replace("{front}", &front.to_string()), &[])
}

/// PID of the control plane started in `dir` (its command line names the
/// test's own config file, so no other process can match).
fn control_plane_pid(dir: &Path) -> u32 {
    let config = dir.join("usher.toml").display().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.contains(&b"control".as_slice()) && args.contains(&config.as_bytes())
            })
        })
        .expect("the control plane's process")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// POSTs `body` and asserts a 400 naming `field`, answered within 1 s.
fn refused(cp: &ControlPlane, path: &str, body: &str, field: &str) -> String {
    let start = Instant::now();
    let r = cp.api("POST", path, Some(body));
    let took = start.elapsed();
    assert_eq!(r.status, 400, "{body}: {}", r.body);
    assert!(took < Duration::from_secs(1), "{body}: took {took:?}");
    let j = r.json();
    assert_eq!(j["field"], field, "{body}: {}", r.body);
    j["error"].as_str().unwrap_or_default().to_string()
}

fn healthz(cp: &ControlPlane) -> u16 {
    call(http().get(&format!("{}/healthz", cp.admin_url())), None).status
}

#[test]
fn sorry_pages_only_from_the_config_folder_and_capped() {
    let cp = start();
    let dir = cp.dir.path();
    let pid = control_plane_pid(dir);
    let rss_before = rss_kib(pid);
    std::fs::write(dir.join("big.html"), vec![b'x'; 64 * 1024 + 1]).expect("write");
    std::fs::write(dir.join("good.html"), "<p>back soon</p>").expect("write");
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.html")).expect("symlink");
    let fifo = Command::new("mkfifo")
        .arg(dir.join("pipe.html"))
        .status()
        .expect("mkfifo");
    assert!(fifo.success());

    let app = |page: &str| {
        format!(
            r#"{{"name":"blog","listen":"127.0.0.1:{}","sorry_page":{page:?}}}"#,
            free_port()
        )
    };
    for (page, says) in [
        ("/etc/passwd", "outside the config folder"),
        ("../../../../../../etc/passwd", "outside the config folder"),
        ("/dev/zero", "outside the config folder"),
        ("zero.html", "outside the config folder"),
        ("pipe.html", "not a regular file"),
        ("var", "not a regular file"),
        ("big.html", "larger than 65536 bytes"),
    ] {
        let e = refused(&cp, "/api/v1/apps", &app(page), "sorry_page");
        assert!(e.contains(says), "{page}: {e}");
    }
    assert_eq!(healthz(&cp), 200);
    let grown = rss_kib(pid).saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
    assert!(cp
        .api_ok("GET", "/api/v1/apps", None)
        .as_array()
        .is_some_and(|a| a.len() == 1));

    let r = cp.api("POST", "/api/v1/apps", Some(&app("good.html")));
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn wsi_token_files_and_urls_are_checked() {
    let cp = start();
    std::fs::write(cp.dir.path().join("door.token"), "door-token-1234\n").expect("write");
    let wsi = |url: &str, token: &str| {
        format!(r#"{{"name":"door","url":"{url}","role":"interceptor","app":"shop",{token}}}"#)
    };
    let local = "http://127.0.0.1:8181/usher/command";

    let e = refused(
        &cp,
        "/api/v1/wsis",
        &wsi(local, r#""token_file":"/etc/hostname""#),
        "token_file",
    );
    assert!(e.contains("outside the config folder"), "{e}");
    let e = refused(
        &cp,
        "/api/v1/wsis",
        &wsi(
            "http://10.1.2.3:8181/usher/command",
            r#""token":"door-token-1234""#,
        ),
        "url",
    );
    assert!(e.contains("allow_remote_wsis"), "{e}");
    assert!(cp
        .api_ok("GET", "/api/v1/wsis", None)
        .as_array()
        .is_some_and(|a| a.is_empty()));

    let r = cp.api(
        "POST",
        "/api/v1/wsis",
        Some(&wsi(local, r#""token_file":"door.token""#)),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn short_wsi_tokens_are_refused_naming_the_field() {
    let cp = start();
    std::fs::write(cp.dir.path().join("short.token"), "1234567\n").expect("write");
    let wsi = |token: &str| {
        format!(
            r#"{{"name":"door","url":"http://127.0.0.1:8181/usher/command","role":"interceptor","app":"shop",{token}}}"#
        )
    };
    let rule = "the token must be at least 8 printable characters without spaces";
    for (token, field) in [
        (r#""token":"x""#, "token"),
        (r#""token":"1234567""#, "token"),
        (r#""token":"door token 1""#, "token"),
        (r#""token_file":"short.token""#, "token_file"),
    ] {
        let e = refused(&cp, "/api/v1/wsis", &wsi(token), field);
        assert_eq!(e, format!("{field}: {rule}"), "{token}");
    }
    assert!(
        cp.api_ok("GET", "/api/v1/wsis", None)
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "a refused WSI is not stored"
    );
    let r = cp.api("POST", "/api/v1/wsis", Some(&wsi(r#""token":"12345678""#)));
    assert_eq!(r.status, 201, "8 characters are enough: {}", r.body);
}

#[test]
fn remote_wsis_when_the_config_allows_them() {
    // The harness writes `[control]` last before the body: a key at the
    // body's top lands in that table.
    let body = format!(
        "allow_remote_wsis = true\n{}",
        APP.replace("{front}", &free_port().to_string())
    );
    let cp = ControlPlane::start(&body, &[]);
    // 192.0.2.0/24 is a documentation network: pushes to it go nowhere.
    let r = cp.api(
        "POST",
        "/api/v1/wsis",
        Some(r#"{"name":"far","url":"http://192.0.2.1:8181/usher/command","role":"interceptor","app":"shop","token":"far-token-1234"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn files_with_secrets_are_owner_only() {
    let cp = start();
    // The logging database is written once the manager has started.
    let dir = cp.dir.path().join("var");
    let log_db = dir.join("usher-log.db");
    usher_integration::eventually(Duration::from_secs(5), || log_db.exists())
        .expect("usher-log.db created");
    for name in ["usher.db", "usher-log.db", "admin.token", "agent.token"] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} has mode {:o}", mode & 0o777);
    }
    for entry in std::fs::read_dir(&dir).expect("var") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with("-wal") || name.ends_with("-shm") {
            let mode = entry.metadata().expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{name} has mode {:o}", mode & 0o777);
        }
    }
}
