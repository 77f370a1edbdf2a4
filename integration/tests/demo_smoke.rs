//! `make demo` as a new user meets it: `scripts/demo.sh` runs on free ports
//! in its own folder, prints its banner, every URL it prints answers, the
//! built-in front door splits new users by capacity, a killed demo app
//! leaves rotation and comes back (the demo restarts it), the control plane
//! and the agent survive `kill -9` under `usher watch` ([`watched`]), and
//! SIGINT leaves no port open and no process running.

#[path = "demo_smoke/watched.rs"]
mod watched;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use usher_integration::demo_script::{urls, Demo};
use usher_integration::{alive, answers, http, send_signal};

/// Servers of the demo and their capacities (scripts/demo.sh).
const CAPACITIES: [(&str, f64); 3] = [("a", 2.0), ("b", 5.0), ("c", 8.0)];

/// GET without following redirects: status and Location, or why it failed.
fn get(agent: &ureq::Agent, url: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let location = resp.header("location").unwrap_or_default().to_string();
    // Read the body so the connection can be reused.
    resp.into_string().ok();
    Ok((status, location))
}

/// Which demo server a front-door Location points at.
fn server_of(demo: &Demo, location: &str) -> Option<&'static str> {
    CAPACITIES
        .iter()
        .map(|(n, _)| *n)
        .find(|n| location.starts_with(&format!("http://127.0.0.1:{}/", demo.ports.web(n))))
}

/// `n` new users at the built-in front door, counted by the server each
/// was referred to.
fn referrals(demo: &Demo, agent: &ureq::Agent, n: usize) -> BTreeMap<&'static str, usize> {
    let url = format!("http://127.0.0.1:{}/", demo.ports.base);
    let mut counts: BTreeMap<&'static str, usize> =
        CAPACITIES.iter().map(|(n, _)| (*n, 0)).collect();
    for _ in 0..n {
        let (status, loc) =
            get(agent, &url, None).unwrap_or_else(|e| demo.fail(&format!("front door {url}: {e}")));
        if status != 302 {
            demo.fail(&format!("front door {url} answered {status}, not 302"));
        }
        let s = server_of(demo, &loc)
            .unwrap_or_else(|| demo.fail(&format!("Location {loc:?} names no demo server")));
        *counts.entry(s).or_default() += 1;
    }
    counts
}

/// `GET /api/v1/servers` by name.
fn servers(demo: &Demo, agent: &ureq::Agent, token: &str) -> BTreeMap<String, Value> {
    let url = format!("http://127.0.0.1:{}/api/v1/servers", demo.ports.admin);
    let resp = agent
        .get(&url)
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap_or_else(|e| demo.fail(&format!("GET {url}: {e}")));
    let v: Value = resp
        .into_json()
        .unwrap_or_else(|e| demo.fail(&format!("GET {url}: not JSON: {e}")));
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| Some((s["name"].as_str()?.to_string(), s)))
        .collect()
}

/// A server the control plane holds as failed (a `failed` reason, or a
/// `state` that says so).
fn is_failed(server: Option<&Value>) -> bool {
    server.is_some_and(|s| {
        s["failed"].is_string()
            || s["state"]
                .as_str()
                .is_some_and(|st| st.starts_with("failed"))
    })
}

#[test]
fn the_demo_starts_shows_failover_and_stops_clean() {
    let mut demo = Demo::start();
    let ports = demo.ports;
    let banner = demo.wait_running(Duration::from_secs(90));
    let text = banner.join("\n");
    eprintln!("{text}");
    let agent = http();

    // The admin token file the banner names.
    let token_path = text
        .split("(token in ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| demo.fail("the banner names no admin token file"))
        .to_string();
    let token = std::fs::read_to_string(&token_path)
        .unwrap_or_else(|e| demo.fail(&format!("token file {token_path}: {e}")))
        .trim()
        .to_string();

    // Every URL the banner prints answers; the main ones with their status.
    let printed = urls(&banner);
    let base = ports.base;
    let expect: Vec<(String, &[u16], Option<&str>)> = vec![
        (format!("http://127.0.0.1:{base}/"), &[302, 200], None),
        (
            format!("http://127.0.0.1:{}/", base - 80),
            &[302, 200],
            None,
        ),
        (
            format!("http://127.0.0.1:{}/", base + 10),
            &[302, 200],
            None,
        ),
        (format!("http://127.0.0.1:{}/", base + 1), &[200], None),
        (format!("http://127.0.0.1:{}/", base + 2), &[200], None),
        (format!("http://127.0.0.1:{}/", base + 3), &[200], None),
        (
            format!("http://127.0.0.1:{}/api/v1/", ports.admin),
            &[200],
            Some(token.as_str()),
        ),
    ];
    for (url, statuses, tok) in &expect {
        if !printed.contains(url) {
            demo.fail(&format!(
                "the banner does not print {url}; it prints {printed:?}"
            ));
        }
        match get(&agent, url, *tok) {
            Ok((s, _)) if statuses.contains(&s) => {}
            Ok((s, _)) => demo.fail(&format!("{url} answered {s}, expected one of {statuses:?}")),
            Err(e) => demo.fail(&format!("{url} does not answer: {e}")),
        }
    }
    for url in &printed {
        if let Err(e) = get(&agent, url, Some(&token)) {
            demo.fail(&format!("printed URL {url} does not answer: {e}"));
        }
    }

    // New users split by capacity: 2:5:8 within 3 points each.
    let n = 3000;
    let counts = referrals(&demo, &agent, n);
    eprintln!("3000 referrals: {counts:?}");
    let total: f64 = CAPACITIES.iter().map(|(_, c)| c).sum();
    for (name, cap) in CAPACITIES {
        let share = counts[name] as f64 / n as f64;
        let want = cap / total;
        assert!(
            (share - want).abs() <= 0.03,
            "{name} got {:.1}% of {n} new users, expected {:.1}% ± 3: {counts:?}; servers {:?}",
            share * 100.0,
            want * 100.0,
            servers(&demo, &agent, &token)
        );
    }

    // Kill demo app a by the PID its supervisor recorded.
    let old = demo
        .pid("app-a")
        .unwrap_or_else(|| demo.fail("no PID file for app-a"));
    send_signal("TERM", &old.to_string());
    let killed = Instant::now();
    let mut seen = None;
    while killed.elapsed() < Duration::from_secs(2) {
        if is_failed(servers(&demo, &agent, &token).get("a")) {
            seen = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some(seen) = seen else {
        demo.fail(&format!(
            "a not shown failed 2 s after its app was killed: {:?}",
            servers(&demo, &agent, &token)
        ))
    };
    let after = referrals(&demo, &agent, 200);
    eprintln!(
        "a failed after {seen:?}; next 200 referrals {after:?} (done {:?} after the kill)",
        killed.elapsed()
    );
    assert_eq!(
        after["a"], 0,
        "a still gets new users after it failed: {after:?}"
    );

    // The supervisor restarts it: a new PID, and a is back in rotation.
    let back = usher_integration::eventually(Duration::from_secs(15), || {
        referrals(&demo, &agent, 30)["a"] > 0
    });
    let Some(back) = back else {
        demo.fail(&format!(
            "a not back in rotation 15 s after it failed: {:?}",
            servers(&demo, &agent, &token)
        ))
    };
    eprintln!("a back in rotation {back:?} after it was seen failed");
    let new = demo.pid("app-a");
    assert!(
        new.is_some_and(|p| p != old && alive(p)),
        "app-a runs again under a new PID (old {old}, now {new:?})"
    );
    let said = demo
        .output
        .lock()
        .map(|o| o.iter().any(|l| l.contains("app-a exited (status")))
        .unwrap_or(false);
    assert!(said, "the demo says app-a exited and is restarted");

    watched::survive_kill_9(&demo, &agent, &token);

    // Ctrl-C: the script stops everything and exits.
    let pids = demo.pids();
    assert!(pids.len() >= 10, "every component has a PID file: {pids:?}");
    demo.signal_group("INT");
    let stopped = Instant::now();
    while demo.script_running() && stopped.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if demo.script_running() {
        demo.fail("the demo still runs 10 s after SIGINT");
    }
    let open: Vec<u16> = ports.all().into_iter().filter(|p| answers(*p)).collect();
    let left: Vec<(&String, &u32)> = pids.iter().filter(|(_, p)| alive(**p)).collect();
    if !open.is_empty() || !left.is_empty() {
        demo.fail(&format!(
            "after SIGINT: ports still open {open:?}, processes still running {left:?}"
        ));
    }
    eprintln!("stopped in {:?}", stopped.elapsed());
}
