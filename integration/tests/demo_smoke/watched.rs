//! The demo's control plane and agent run under `usher watch` (issue 14):
//! `kill -9` of either while users keep coming is followed by a restart, the
//! agent reconnects, the watcher's record of the crash reaches the logging
//! database through the agent, and no event stored before is lost.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use usher_integration::demo_script::Demo;
use usher_integration::{alive, eventually, send_signal};

/// Every event in the logging database (`GET /api/v1/events`), or `None`
/// while the control plane does not answer.
fn events(demo: &Demo, agent: &ureq::Agent, token: &str) -> Option<Vec<Value>> {
    let url = format!(
        "http://127.0.0.1:{}/api/v1/events?limit=10000",
        demo.ports.admin
    );
    let v: Value = agent
        .get(&url)
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .ok()?
        .into_json()
        .ok()?;
    v.as_array().cloned()
}

/// (agent_id, seq): what identifies a stored event.
fn ids(events: &[Value]) -> BTreeSet<(String, i64)> {
    events
        .iter()
        .map(|e| {
            (
                e["agent_id"].as_str().unwrap_or_default().to_string(),
                e["seq"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn count_type(events: &[Value], type_name: &str) -> usize {
    events
        .iter()
        .filter(|e| e["type_name"] == type_name)
        .count()
}

/// Kills `component` (by the PID its watcher keeps) and checks the
/// restart, the reconnection and the event trail.
fn kill_and_follow(demo: &Demo, agent: &ureq::Agent, token: &str, component: &str) {
    let before = events(demo, agent, token)
        .unwrap_or_else(|| demo.fail("the admin API does not answer before the kill"));
    let old = demo
        .pid(component)
        .unwrap_or_else(|| demo.fail(&format!("no PID file for {component}")));
    send_signal("KILL", &old.to_string());

    let restarted = eventually(Duration::from_secs(20), || {
        demo.pid(component).is_some_and(|p| p != old && alive(p))
    });
    if restarted.is_none() {
        demo.fail(&format!(
            "{component} not restarted 20 s after kill -9 of pid {old}"
        ));
    }
    let connected_before = count_type(&before, "agent_connected");
    let exited = format!("pid {old},");
    let settled = eventually(Duration::from_secs(30), || {
        let Some(now) = events(demo, agent, token) else {
            return false;
        };
        let reconnected = count_type(&now, "agent_connected") > connected_before;
        let told = now.iter().any(|e| {
            e["type_name"] == "component_exited"
                && e["origin_name"] == component
                && e["text"].as_str().is_some_and(|t| t.contains(&exited))
        });
        reconnected && told
    });
    let Some(took) = settled else {
        let now = events(demo, agent, token).unwrap_or_default();
        let watch: Vec<&Value> = now
            .iter()
            .filter(|e| (140..=145).contains(&e["type_code"].as_i64().unwrap_or(0)))
            .collect();
        demo.fail(&format!(
            "after kill -9 of {component} (pid {old}): the agent did not reconnect \
             or component_exited naming pid {old} did not arrive within 30 s; \
             watch events {watch:#?}"
        ))
    };
    let after = events(demo, agent, token).unwrap_or_default();
    let (was, is) = (ids(&before), ids(&after));
    let lost: Vec<&(String, i64)> = was.difference(&is).collect();
    assert!(
        lost.is_empty(),
        "events stored before the kill of {component} are gone: {lost:?}"
    );
    eprintln!(
        "kill -9 {component} (pid {old}): restarted as pid {:?}, agent reconnected and \
         component_exited logged {took:?} later; events {} -> {}",
        demo.pid(component),
        before.len(),
        after.len()
    );
}

/// Both crashes, one after the other, while a thread keeps sending new
/// users to the built-in front door (`usher door`, which outlives both).
pub fn survive_kill_9(demo: &Demo, agent: &ureq::Agent, token: &str) {
    let stop = AtomicBool::new(false);
    let (sent, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let url = format!("http://127.0.0.1:{}/", demo.ports.base);
    std::thread::scope(|s| {
        s.spawn(|| {
            let load = usher_integration::http();
            while !stop.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                match load.get(&url).call() {
                    Ok(r) if r.status() == 302 => {}
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            kill_and_follow(demo, agent, token, "agent");
            kill_and_follow(demo, agent, token, "control");
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(p) = done {
            std::panic::resume_unwind(p);
        }
    });
    let (sent, failed) = (sent.into_inner(), failed.into_inner());
    eprintln!("new users during the kills: {sent}, not referred: {failed}");
    assert!(sent > 100, "the load thread ran: {sent} requests");
    assert_eq!(
        failed, 0,
        "the front door kept referring users through both crashes"
    );

    // Every line the watchers wrote reached the logging database.
    let file = demo.dir.join("logs").join("watch-events.jsonl");
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| demo.fail(&format!("{}: {e}", file.display())))
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let stored = eventually(Duration::from_secs(10), || {
        let now = events(demo, agent, token).unwrap_or_default();
        let have: BTreeSet<(String, i64)> = now
            .iter()
            .map(|e| {
                (
                    e["type_name"].as_str().unwrap_or_default().to_string(),
                    e["time_occurred_us"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        lines.iter().all(|l| {
            have.contains(&(
                l["type"].as_str().unwrap_or_default().to_string(),
                l["time_us"].as_i64().unwrap_or(-1),
            ))
        })
    });
    if stored.is_none() {
        demo.fail(&format!(
            "not every watcher event of {} is in the logging database",
            file.display()
        ));
    }
    assert!(
        lines.len() >= 6,
        "two starts, a kill and a restart per component: {lines:#?}"
    );
}
