//! `GET /metrics` (Prometheus) on a real stack ([`FaultStack`]: three demo
//! apps behind server-role nginx, the agent, the control plane): it needs
//! the admin token; the page is in the text exposition format (every
//! sample under a `# HELP` and `# TYPE` of its family); the figures follow
//! the fleet: users' requests through the front door show up in
//! `usher_server_requests_total`, every server's state is `ok` until one
//! is disabled through the API, then that one's is `disabled` and its
//! weight 0; the agent is connected and recently heard. With
//! `[control] metrics_public = true` the page needs no token.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use usher_integration::control_plane::ControlPlane;
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::http::call;
use usher_integration::ports::free_port;
use usher_integration::{eventually, http};

/// One sample line: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses an exposition page strictly enough to catch format errors:
/// every sample's name has had `# HELP` and `# TYPE` lines, label values
/// are quoted, values parse as numbers.
fn parse(page: &str) -> Vec<Sample> {
    let (mut helped, mut typed) = (HashSet::new(), HashSet::new());
    let mut out = Vec::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().expect("name").to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().expect("name").to_string();
            let kind = parts.next().expect("kind");
            assert!(
                ["gauge", "counter"].contains(&kind),
                "type of {name}: {kind}"
            );
            assert!(
                !name.ends_with("_total") || kind == "counter",
                "{name} ends in _total but is a {kind}"
            );
            typed.insert(name);
            continue;
        }
        assert!(
            !line.is_empty() && !line.starts_with('#'),
            "stray line {line:?}"
        );
        let (head, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels close");
                let labels = body
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label =");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or_else(|| panic!("unquoted label in {line:?}"));
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        assert!(
            helped.contains(&name) && typed.contains(&name),
            "{name} has no HELP/TYPE before it"
        );
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn scrape(port: u16, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut req = http().get(&format!("http://127.0.0.1:{port}/metrics"));
    if let Some(t) = token {
        req = req.set("authorization", &format!("Bearer {t}"));
    }
    let r = call(req, None);
    (r.status, r.content_type, r.body)
}

fn samples(stack: &FaultStack) -> Vec<Sample> {
    let (status, _, body) = scrape(stack.cp.admin_port, Some(&stack.cp.token));
    assert_eq!(status, 200, "{body}");
    parse(&body)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// `usher_server_requests_total` over the three servers of app `shop`.
fn requests_total(samples: &[Sample]) -> f64 {
    ["web1", "web2", "web3"]
        .iter()
        .map(|n| {
            value(
                samples,
                "usher_server_requests_total",
                &[("app", "shop"), ("server", n)],
            )
            .unwrap_or(0.0)
        })
        .sum()
}

#[test]
fn metrics_follow_the_fleet_and_need_the_token() {
    let stack = FaultStack::start(FaultSpec {
        doors: false,
        ..FaultSpec::default()
    });
    let port = stack.cp.admin_port;

    // The token is needed; a wrong method is 405.
    let (status, _, body) = scrape(port, None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("error"), "{body}");
    let (status, _, _) = scrape(port, Some("not-the-token"));
    assert_eq!(status, 401);
    let r = call(
        http()
            .post(&format!("http://127.0.0.1:{port}/metrics"))
            .set("authorization", &format!("Bearer {}", stack.cp.token)),
        Some(""),
    );
    assert_eq!(r.status, 405, "{}", r.body);
    let (status, content_type, _) = scrape(port, Some(&stack.cp.token));
    assert_eq!(status, 200);
    assert_eq!(
        content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );

    // Every server ok, with a weight; the process figures are there.
    let s = samples(&stack);
    for name in ["web1", "web2", "web3"] {
        let l = [("app", "shop"), ("server", name)];
        assert_eq!(
            value(&s, "usher_server_state", &[l[0], l[1], ("state", "ok")]),
            Some(1.0),
            "{name} ok"
        );
        assert_eq!(
            value(
                &s,
                "usher_server_state",
                &[l[0], l[1], ("state", "disabled")]
            ),
            Some(0.0)
        );
        assert!(value(&s, "usher_server_weight", &l).is_some_and(|w| w > 0.0));
        assert!(value(&s, "usher_server_load_age_seconds", &l).is_some_and(|a| a < 10.0));
    }
    assert_eq!(
        value(&s, "usher_app_enabled", &[("app", "shop")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "usher_app_swamped", &[("app", "shop")]),
        Some(0.0)
    );
    let connected: Vec<&Sample> = s
        .iter()
        .filter(|x| x.name == "usher_agent_connected" && x.value == 1.0)
        .collect();
    assert_eq!(connected.len(), 1, "one agent connected: {s:?}");
    let agent = connected[0].labels["agent"].clone();
    assert!(value(
        &s,
        "usher_agent_last_report_age_seconds",
        &[("agent", &agent)]
    )
    .is_some_and(|a| a < 5.0));
    assert!(value(&s, "process_resident_memory_bytes", &[]).is_some_and(|b| b > 1e6));
    assert!(value(&s, "process_start_time_seconds", &[]).is_some_and(|t| t > 1.7e9));

    // Users' requests show up in the counters (the agent reports them).
    let before = requests_total(&s);
    let agent_http = http();
    for _ in 0..60 {
        let r = call(
            agent_http.get(&format!("http://127.0.0.1:{}/", stack.front_door_port)),
            None,
        );
        assert_eq!(r.status, 200);
    }
    let counted = eventually(Duration::from_secs(10), || {
        let s = samples(&stack);
        requests_total(&s) - before >= 60.0
    });
    assert!(counted.is_some(), "60 requests never reached the counters");

    // Disabled through the API: its state and weight follow.
    stack
        .cp
        .api_ok("POST", "/api/v1/servers/web2/disable", None);
    let s = samples(&stack);
    let l = [("app", "shop"), ("server", "web2")];
    assert_eq!(
        value(
            &s,
            "usher_server_state",
            &[l[0], l[1], ("state", "disabled")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "usher_server_state", &[l[0], l[1], ("state", "ok")]),
        Some(0.0)
    );
    assert_eq!(value(&s, "usher_server_weight", &l), Some(0.0));
    assert_eq!(value(&s, "usher_server_share_ratio", &l), Some(0.0));
}

#[test]
fn metrics_public_needs_no_token() {
    let cp = ControlPlane::start_with(
        "metrics_public = true",
        &format!(
            "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{}\"\n",
            free_port()
        ),
        &[],
    );
    let (status, _, body) = scrape(cp.admin_port, None);
    assert_eq!(status, 200, "{body}");
    let s = parse(&body);
    assert_eq!(
        value(&s, "usher_app_enabled", &[("app", "shop")]),
        Some(1.0)
    );
    // The rest of the API still needs it.
    let r = call(
        http().get(&format!("http://127.0.0.1:{}/api/v1/apps", cp.admin_port)),
        None,
    );
    assert_eq!(r.status, 401);
}
