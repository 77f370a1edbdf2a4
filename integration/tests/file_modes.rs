//! Secrets at rest (issue 10): after a demo-like start (demo apps behind
//! nginx with the module, the nginx and Envoy front doors, `usher control`,
//! one agent: [`FaultStack`]) has served traffic with cookies, every file
//! usher's processes wrote is readable by its owner only. These hold
//! tokens (usher.db: WSI tokens; admin.token, agent.token), request lines
//! and cookies (usher-log.db and its WAL, the agent's spool, the rings),
//! or say what was counted (the agent's ring state).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::{call, eventually, http};

/// Every regular file under `dir`, depth first.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

#[test]
fn no_usher_file_is_readable_by_others_after_traffic() {
    let stack = FaultStack::start(FaultSpec {
        record: "all cookies".into(),
        ..FaultSpec::default()
    });
    // Traffic with cookies through every door.
    let client = http();
    let n = 60;
    for door in stack.doors() {
        for i in 0..n {
            let r = call(
                client
                    .get(&format!("http://127.0.0.1:{}/?modes={i}", door.port))
                    .set("Cookie", "usher_session=s3cret-cookie"),
                None,
            );
            assert_eq!(r.status, 200, "{}: {}", door.name, r.body);
        }
    }
    let logged = eventually(Duration::from_secs(10), || {
        stack
            .cp
            .api_ok("GET", "/api/v1/requests?limit=1000", None)
            .as_array()
            .is_some_and(|a| {
                a.iter()
                    .filter(|r| {
                        r["request_line"]
                            .as_str()
                            .is_some_and(|l| l.contains("modes="))
                            && r["cookies"].as_str().is_some_and(|c| c.contains("s3cret"))
                    })
                    .count()
                    >= 3 * n
            })
    });
    assert!(logged.is_some(), "the cookies reached the request log");
    // The writes settle: WAL checkpoints, spool acknowledgements, marks.
    std::thread::sleep(Duration::from_millis(1500));

    let var = stack.cp.dir.path().join("var");
    let mut files = files_under(&var);
    files.extend(files_under(&stack.agent_data()));
    files.extend(stack.servers.iter().map(|n| n.ring.clone()));
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for must in [
        "usher.db",
        "usher-log.db",
        "usher-log.db-wal",
        "admin.token",
        "agent.token",
        "spool.log",
        "rings.state",
        "usher.ring",
    ] {
        assert!(
            names.iter().any(|n| n == must),
            "{must} not found among {names:?}"
        );
    }
    let open: Vec<String> = files
        .iter()
        .filter(|p| mode(p) & 0o077 != 0)
        .map(|p| format!("{} {:o}", p.display(), mode(p)))
        .collect();
    eprintln!(
        "{} files checked: {}",
        files.len(),
        files
            .iter()
            .map(|p| format!(
                "{} {:o}",
                p.file_name().unwrap_or_default().to_string_lossy(),
                mode(p)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(open.is_empty(), "readable by group or others: {open:?}");
}
