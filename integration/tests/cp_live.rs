//! The live view: while an agent reports changing loads, the control plane
//! keeps them in memory. Checked against the real `usher control`, a
//! WebSocket agent played by the test and recorded WSI command endpoints:
//!
//! * 10 s of reports: 0 writes to the managed-object database, the
//!   server-role WSI gets only keep-alive pushes (all alike), the
//!   interceptor gets a new version only when its weights moved;
//! * the data age shown by `GET /api/v1/servers` and pushed to front doors
//!   is the age of the agent's measurement, not of its arrival;
//! * an operator's pinned load holds for its duration while the agent keeps
//!   reporting, and the measurement takes over when it ends;
//! * a server added on a dead port that nobody measures gets no more than
//!   its capacity share of new users, and never the largest.

use std::time::{Duration, Instant};

use serde_json::Value;
use usher_integration::setup::{runtime, shutdown};
use usher_integration::{
    call, eventually, free_port, http, ControlPlane, Got, PlayedAgent, WsiRecorder,
};

/// How far in the past the played agent says it measured (its interval end).
const MEASURED_AGO: Duration = Duration::from_secs(3);
/// Push keep-alive of the control plane `ControlPlane` starts.
const KEEP_ALIVE: Duration = Duration::from_secs(2);

fn config(front: u16, wsi_port: u16) -> String {
    format!(
        "[manager]\ninterval_ms = 100\n\n\
         [[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\n\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20501\"\ncapacity = 5\n\
         [[servers]]\nname = \"b\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20502\"\ncapacity = 5\n\n\
         [[wsis]]\nname = \"ngx-a\"\nurl = \"http://127.0.0.1:{wsi_port}/a/command\"\ntoken = \"t-a-token\"\nrole = \"server\"\napp = \"shop\"\nserver = \"a\"\n\
         [[wsis]]\nname = \"door\"\nurl = \"http://127.0.0.1:{wsi_port}/door/command\"\ntoken = \"t-door-token\"\nrole = \"interceptor\"\napp = \"shop\"\n"
    )
}

/// The servers' loads (in name order) in a pushed interceptor snapshot.
fn door_loads(g: &Got) -> Vec<Option<u64>> {
    g.body["snapshot"]["apps"][0]["servers"]
        .as_array()
        .map(|v| v.iter().map(|s| s["dynamic_load"].as_u64()).collect())
        .unwrap_or_default()
}

/// Whether two load lists differ as the control plane's push rule says
/// (2 % or 50 units, or a value appearing).
fn weights_moved(a: &[Option<u64>], b: &[Option<u64>]) -> bool {
    a.len() != b.len()
        || a.iter().zip(b).any(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => {
                let d = x.abs_diff(*y);
                d >= 50 || d as f64 / (*x).max(1) as f64 >= 0.02
            }
            (x, y) => x.is_some() != y.is_some(),
        })
}

fn without_version(mut v: Value) -> Value {
    v["snapshot"]["version"] = Value::Null;
    v
}

fn server_json(cp: &ControlPlane, name: &str) -> Value {
    let all = cp.api_ok("GET", "/api/v1/servers", None);
    all.as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no server {name}: {all}"))
}

#[test]
fn loads_live_in_memory_and_reach_only_whom_they_concern() {
    let (rx, wsi_port) = WsiRecorder::start();
    let front = free_port();
    let cp = ControlPlane::start(&config(front, wsi_port), &[]);
    let agent_token = cp.agent_token();
    // L = 5000 for both at half_at 5 ms.
    let figures = PlayedAgent::new("live-test", &["a", "b"], 5_000, MEASURED_AGO);
    let rt = runtime(1);
    rt.spawn(figures.clone().run(cp.admin_port, agent_token));

    // The first measured loads reach the interceptor.
    let t0 = Instant::now();
    rx.wait_for("/door/command", t0, Duration::from_secs(5), |s| {
        s["apps"][0]["servers"][0]["dynamic_load"].as_u64() == Some(5000)
    })
    .expect("measured loads pushed to the interceptor");

    // Data age: the age of the agent's measurement (3 s), not of its arrival.
    let a = server_json(&cp, "a");
    let age = a["load_age_secs"].as_f64().expect("load_age_secs");
    assert!(
        (2.8..4.0).contains(&age),
        "a's data age is the measurement's (~3 s): {a}"
    );
    assert_eq!(a["state"], "ok", "{a}");
    let door = rx.all("/door/command");
    let pushed_age = door
        .last()
        .map(|g| &g.body["snapshot"]["apps"][0]["servers"][0]);
    let pushed_age = pushed_age.and_then(|s| s["load_age_secs"].as_f64());
    assert!(
        pushed_age.is_some_and(|age| (2.8..4.0).contains(&age)),
        "the front door ages from the measurement: {pushed_age:?}"
    );

    // 10 s of changing reports: jitter under the push threshold, one real
    // change of a, then jitter of b.
    let db = rusqlite::Connection::open_with_flags(
        cp.dir.path().join("var/usher.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the managed-object database");
    let data_version = |c: &rusqlite::Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .expect("data_version")
    };
    let before = data_version(&db);
    let start = Instant::now();
    let mut changed_at = None;
    while start.elapsed() < Duration::from_secs(10) {
        let t = start.elapsed().as_millis() as u64;
        let jitter = (t / 100) % 5 * 10; // 0..40 µs: under 1 % of L
        if t < 4_000 {
            figures.set_mean_us("a", 5_000 + jitter);
        } else {
            if changed_at.is_none() {
                figures.set_mean_us("a", 15_000); // L = 2500
                changed_at = Some(Instant::now());
            }
            figures.set_mean_us("b", 5_000 + jitter);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let end = Instant::now();
    assert_eq!(
        data_version(&db),
        before,
        "the managed-object database was written while only loads changed"
    );

    // The server-role WSI: keep-alive pushes only, all alike.
    let window = |path: &str| -> Vec<Got> {
        rx.all(path)
            .into_iter()
            .filter(|g| g.at >= start && g.at <= end)
            .collect()
    };
    let ngx = window("/a/command");
    let most = (Duration::from_secs(10).as_millis() / KEEP_ALIVE.as_millis()) as usize + 1;
    assert!(
        !ngx.is_empty() && ngx.len() <= most,
        "server-role WSI got {} pushes in 10 s; keep-alives only allow {most}",
        ngx.len()
    );
    for pair in ngx.windows(2) {
        assert_eq!(
            without_version(pair[0].body.clone()),
            without_version(pair[1].body.clone()),
            "the server-role snapshot changed although only loads did"
        );
        assert!(
            pair[1].at - pair[0].at >= KEEP_ALIVE - Duration::from_millis(100),
            "server-role pushes {:?} apart: not a keep-alive",
            pair[1].at - pair[0].at
        );
    }

    // The interceptor: a new version only when its weights moved (or the
    // keep-alive came due), and the real change within 1 s.
    let door = window("/door/command");
    for pair in door.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= KEEP_ALIVE - Duration::from_millis(100)
                || weights_moved(&door_loads(&pair[0]), &door_loads(&pair[1])),
            "interceptor push {gap:?} after the previous one with the same weights: {:?} -> {:?}",
            door_loads(&pair[0]),
            door_loads(&pair[1])
        );
    }
    let changed_at = changed_at.expect("a changed");
    let got = door
        .iter()
        .find(|g| g.at >= changed_at && door_loads(g).first() == Some(&Some(2500)))
        .expect("a's new load pushed to the interceptor");
    assert!(
        got.at - changed_at < Duration::from_secs(1),
        "a's new load took {:?}",
        got.at - changed_at
    );

    // A pin holds for its duration while the agent keeps reporting.
    let pinned_at = Instant::now();
    let b = cp.api_ok(
        "PUT",
        "/api/v1/servers/b/load",
        Some(r#"{"value":1000,"for_secs":3}"#),
    );
    assert_eq!(
        (b["state"].as_str(), b["load"].as_u64()),
        (Some("pinned"), Some(1000)),
        "{b}"
    );
    while pinned_at.elapsed() < Duration::from_millis(2500) {
        let b = server_json(&cp, "b");
        assert_eq!(b["load"].as_u64(), Some(1000), "pin overwritten: {b}");
        assert_eq!(b["pinned"]["value"].as_u64(), Some(1000), "{b}");
        assert!(
            b["measured_load"].as_u64().is_some_and(|m| m > 4000),
            "measurements are kept while pinned: {b}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let last_pinned = rx
        .all("/door/command")
        .into_iter()
        .rfind(|g| g.at >= pinned_at && g.at < pinned_at + Duration::from_millis(2500))
        .expect("a push while pinned");
    assert_eq!(door_loads(&last_pinned).get(1), Some(&Some(1000)));
    let back = eventually(Duration::from_secs(4), || {
        let b = server_json(&cp, "b");
        b["state"] == "ok" && b["load"].as_u64().is_some_and(|l| l > 4000)
    });
    assert!(
        back.is_some(),
        "the measurement takes over when the pin ends: {}",
        server_json(&cp, "b")
    );

    // A server added on a dead port, measured by nobody, gets no more than
    // its capacity share and never the largest share.
    let dead = free_port();
    cp.api_ok(
        "POST",
        "/api/v1/servers",
        Some(&format!(
            r#"{{"name":"d","app":"shop","url":"http://127.0.0.1:{dead}","capacity":10}}"#
        )),
    );
    let agent = http();
    let mut counts = [0u32; 3];
    let n = 3000;
    for i in 0..n {
        let r = call(agent.get(&format!("http://127.0.0.1:{front}/p{i}")), None);
        assert_eq!(r.status, 302, "{}", r.body);
        let loc = r.location.unwrap_or_default();
        let k = ["20501", "20502", &dead.to_string()]
            .iter()
            .position(|p| loc.starts_with(&format!("http://127.0.0.1:{p}/")))
            .unwrap_or_else(|| panic!("Location {loc} is not a configured server"));
        counts[k] += 1;
    }
    let share = |k: usize| f64::from(counts[k]) / f64::from(n);
    let capacity_share = 10.0 / 20.0;
    assert!(
        share(2) <= capacity_share + 0.03,
        "the unmeasured server got {:.3} of new users, over its capacity share {capacity_share}: {counts:?}",
        share(2)
    );
    assert!(
        counts[2] < counts[0].max(counts[1]),
        "the unmeasured server got the largest share: {counts:?}"
    );
    shutdown(rt);
}
