//! Worked examples of every decision, on a clock the test moves.

use super::*;

fn policy() -> Policy {
    Policy {
        heavy_ms: 100.0,
        max_ms: 300.0,
        recover_ms: 1000,
        unswamp_s: 2.0,
        restart_after_s: 2.0,
        restart_quiet_s: 1.0,
        slow_start_s: 10.0,
        ..Policy::default()
    }
}

fn apps(p: Policy) -> BTreeMap<String, Policy> {
    BTreeMap::from([("shop".to_string(), p)])
}

fn fig(server: &str, delay_ms: f64, at: f64) -> Figures {
    Figures {
        server: server.into(),
        app: "shop".into(),
        enabled: true,
        process_known: true,
        delay_ms: Some(delay_ms),
        requests: 10,
        report_at: Some(at),
        ..Default::default()
    }
}

fn kinds(events: &[ActEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.1).collect()
}

fn acts(e: &Engine, server: &str) -> ServerActs {
    e.picture().0.get(server).cloned().unwrap_or_default()
}

#[test]
fn heavy_enters_at_once_and_leaves_only_after_the_lower_mark_held() {
    let mut e = Engine::new();
    let a = apps(policy());
    let (ev, _) = e.tick(0.0, &a, &[fig("a", 10.0, 0.0), fig("b", 10.0, 0.0)]);
    assert!(ev.is_empty(), "{ev:?}");
    let (ev, _) = e.tick(0.5, &a, &[fig("a", 150.0, 0.5), fig("b", 10.0, 0.5)]);
    assert_eq!(kinds(&ev), vec!["server_heavy"]);
    assert!(ev[0].text.contains("150"), "{}", ev[0].text);
    assert!(acts(&e, "a").heavy && !acts(&e, "a").offloading);
    // 90 ms is under the threshold but above the lower mark (80): stays.
    let (ev, _) = e.tick(1.0, &a, &[fig("a", 90.0, 1.0), fig("b", 10.0, 1.0)]);
    assert!(ev.is_empty() && acts(&e, "a").heavy);
    // Below the lower mark, but not for recover_ms yet; a bump resets it.
    e.tick(1.5, &a, &[fig("a", 50.0, 1.5), fig("b", 10.0, 1.5)]);
    e.tick(2.0, &a, &[fig("a", 85.0, 2.0), fig("b", 10.0, 2.0)]);
    e.tick(2.5, &a, &[fig("a", 50.0, 2.5), fig("b", 10.0, 2.5)]);
    let (ev, _) = e.tick(3.0, &a, &[fig("a", 50.0, 3.0), fig("b", 10.0, 3.0)]);
    assert!(ev.is_empty() && acts(&e, "a").heavy);
    let (ev, _) = e.tick(3.5, &a, &[fig("a", 50.0, 3.5), fig("b", 10.0, 3.5)]);
    assert_eq!(kinds(&ev), vec!["server_heavy_over"]);
    assert!(!acts(&e, "a").heavy);
}

#[test]
fn stale_reports_move_nothing() {
    let mut e = Engine::new();
    let a = apps(policy());
    let (ev, _) = e.tick(100.0, &a, &[fig("a", 500.0, 10.0), fig("b", 10.0, 100.0)]);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(acts(&e, "a").state(), "ok");
}

#[test]
fn maximum_load_offloads_and_a_third_entry_within_the_window_swamps() {
    let mut e = Engine::new();
    let a = apps(policy());
    let b = |t: f64| fig("b", 10.0, t);
    let (ev, _) = e.tick(0.0, &a, &[fig("a", 400.0, 0.0), b(0.0)]);
    assert_eq!(kinds(&ev), vec!["server_heavy", "server_offloading"]);
    assert_eq!(acts(&e, "a").state(), "offloading");
    // Drops, lifted after recover_ms; up again: second entry.
    e.tick(1.0, &a, &[fig("a", 10.0, 1.0), b(1.0)]);
    let (ev, _) = e.tick(2.0, &a, &[fig("a", 10.0, 2.0), b(2.0)]);
    assert_eq!(kinds(&ev), vec!["server_heavy_over", "server_offload_over"]);
    let (ev, _) = e.tick(3.0, &a, &[fig("a", 400.0, 3.0), b(3.0)]);
    assert_eq!(kinds(&ev), vec!["server_heavy", "server_offloading"]);
    e.tick(4.0, &a, &[fig("a", 10.0, 4.0), b(4.0)]);
    e.tick(5.0, &a, &[fig("a", 10.0, 5.0), b(5.0)]);
    assert!(!acts(&e, "a").offloading);
    // A third entry within 30 s is thrashing: no offload, the app is swamped.
    let (ev, _) = e.tick(6.0, &a, &[fig("a", 400.0, 6.0), b(6.0)]);
    assert_eq!(
        kinds(&ev),
        vec!["server_heavy", "app_swamped", "system_swamped"]
    );
    assert!(ev[1].text.contains("thrashing"), "{}", ev[1].text);
    assert!(!acts(&e, "a").offloading);
    assert!(e.picture().1.contains_key("shop"));
    // Load back to normal for unswamp_s (after heavy's own recovery).
    let mut t = 7.0;
    let mut seen = Vec::new();
    while t < 12.0 {
        let (ev, _) = e.tick(t, &a, &[fig("a", 10.0, t), b(t)]);
        seen.extend(kinds(&ev));
        t += 0.5;
    }
    assert_eq!(
        seen,
        vec!["server_heavy_over", "app_unswamped", "system_unswamped"]
    );
    assert!(e.picture().1.is_empty());
}

#[test]
fn all_servers_heavy_is_peak_load_and_lifts_every_offload() {
    let mut e = Engine::new();
    let a = apps(policy());
    e.tick(0.0, &a, &[fig("a", 400.0, 0.0), fig("b", 10.0, 0.0)]);
    assert!(acts(&e, "a").offloading);
    let (ev, _) = e.tick(0.5, &a, &[fig("a", 400.0, 0.5), fig("b", 150.0, 0.5)]);
    assert_eq!(
        kinds(&ev),
        vec!["server_heavy", "app_swamped", "system_swamped"]
    );
    assert!(
        ev[1].text.contains("all 2 available servers"),
        "{}",
        ev[1].text
    );
    assert!(!acts(&e, "a").offloading, "offload lifted while swamped");
    // Still at max while swamped: no new offload.
    e.tick(1.0, &a, &[fig("a", 400.0, 1.0), fig("b", 150.0, 1.0)]);
    assert!(!acts(&e, "a").offloading);
}

#[test]
fn more_than_a_third_out_of_rotation_swamps() {
    let mut e = Engine::new();
    let a = apps(policy());
    let mut down = fig("c", 10.0, 0.0);
    down.failed = true;
    down.process_known = false;
    let (ev, _) = e.tick(
        0.0,
        &a,
        &[fig("a", 10.0, 0.0), fig("b", 10.0, 0.0), down.clone()],
    );
    assert!(
        ev.is_empty(),
        "one of three is not more than a third: {ev:?}"
    );
    let mut off = fig("b", 10.0, 0.5);
    off.enabled = false;
    let (ev, _) = e.tick(0.5, &a, &[fig("a", 10.0, 0.5), off, down]);
    assert_eq!(kinds(&ev), vec!["app_swamped", "system_swamped"]);
    assert!(ev[0].text.contains("2 of 3"), "{}", ev[0].text);
}

#[test]
fn drain_waits_for_quiet_then_restarts_and_slow_starts() {
    let mut e = Engine::new();
    let a = apps(policy());
    e.tick(0.0, &a, &[fig("a", 10.0, 0.0), fig("b", 10.0, 0.0)]);
    e.drain("a", 2.0, Then::Restart, 0.2);
    let (ev, actions) = e.tick(0.5, &a, &[fig("a", 10.0, 0.5), fig("b", 10.0, 0.5)]);
    assert_eq!(kinds(&ev), vec!["server_draining"]);
    assert!(actions.is_empty());
    assert_eq!(acts(&e, "a").state(), "draining");
    // Requests keep arriving until 1.0 (cookie holders); quiet from then.
    e.tick(1.0, &a, &[fig("a", 10.0, 1.0), fig("b", 10.0, 1.0)]);
    let mut idle = fig("a", 10.0, 2.0);
    idle.requests = 0;
    let (ev, actions) = e.tick(2.9, &a, &[idle.clone(), fig("b", 10.0, 2.9)]);
    assert!(ev.is_empty() && actions.is_empty(), "{ev:?}");
    let (ev, actions) = e.tick(3.1, &a, &[idle, fig("b", 10.0, 3.1)]);
    assert_eq!(kinds(&ev), vec!["server_drained"]);
    assert_eq!(
        actions,
        vec![Action {
            server: "a".into(),
            kind: ActionKind::Restart
        }]
    );
    assert_eq!(acts(&e, "a").state(), "restarting");
    e.action_done("a", ActionKind::Restart, Ok(()));
    let (ev, _) = e.tick(4.0, &a, &[fig("a", 10.0, 4.0), fig("b", 10.0, 4.0)]);
    assert_eq!(kinds(&ev), vec!["slow_start_begun"]);
    assert_eq!(acts(&e, "a").slow_start_until_unix, Some(14.0));
    let (ev, _) = e.tick(14.0, &a, &[fig("a", 10.0, 14.0), fig("b", 10.0, 14.0)]);
    assert_eq!(kinds(&ev), vec!["slow_start_done"]);
    assert_eq!(acts(&e, "a").state(), "ok");
    assert_eq!(e.undrain("a"), Err(OrderError::NotDraining("a".into())));
}

#[test]
fn a_failed_restart_leaves_the_server_drained() {
    let mut e = Engine::new();
    let a = apps(policy());
    e.tick(0.0, &a, &[fig("a", 10.0, 0.0), fig("b", 10.0, 0.0)]);
    e.drain("a", 0.5, Then::Restart, 0.0);
    let mut idle = fig("a", 10.0, 0.0);
    idle.requests = 0;
    let (_, actions) = e.tick(1.0, &a, &[idle.clone(), fig("b", 10.0, 1.0)]);
    assert_eq!(actions.len(), 1, "restart ordered");
    e.action_done("a", ActionKind::Restart, Err("no agent".into()));
    let (ev, actions) = e.tick(2.0, &a, &[idle, fig("b", 10.0, 2.0)]);
    assert_eq!(kinds(&ev), vec!["restart_failed"]);
    assert!(actions.is_empty(), "not ordered again: {actions:?}");
    assert_eq!(acts(&e, "a").state(), "drained");
    assert_eq!(e.undrain("a"), Ok(()));
}

#[test]
fn fast_errors_restart_at_most_n_times_an_hour_then_hold_out() {
    let mut e = Engine::new();
    let p = Policy {
        restart_max_per_hour: 2,
        ..policy()
    };
    let a = apps(p);
    let failing = |t: f64| Figures {
        errors: 10,
        ..fig("a", 1.0, t)
    };
    let mut t = 0.0;
    let mut restarts = 0;
    let mut seen = Vec::new();
    while t < 60.0 {
        let (ev, actions) = e.tick(t, &a, &[failing(t), fig("b", 10.0, t)]);
        seen.extend(kinds(&ev));
        for act in actions {
            assert_eq!(act.kind, ActionKind::Restart);
            restarts += 1;
            e.action_done("a", act.kind, Ok(()));
        }
        t += 0.5;
    }
    assert_eq!(restarts, 2, "{seen:?}");
    let refused = seen.iter().filter(|k| **k == "restart_refused").count();
    assert_eq!(refused, 1, "{seen:?}");
    assert_eq!(acts(&e, "a").state(), "held-out");
    // The operator lets it back in.
    e.undrain("a").expect("held out");
    assert!(acts(&e, "a").held_out.is_none());
}

#[test]
fn a_server_added_later_slow_starts_one_there_at_start_does_not() {
    let mut e = Engine::new();
    let a = apps(policy());
    let (ev, _) = e.tick(0.0, &a, &[fig("a", 10.0, 0.0)]);
    assert!(ev.is_empty());
    let (ev, _) = e.tick(1.0, &a, &[fig("a", 10.0, 1.0), fig("b", 10.0, 1.0)]);
    assert_eq!(kinds(&ev), vec!["slow_start_begun"]);
    assert_eq!(ev[0].origin, "b");
}

#[test]
fn a_failed_server_that_recovers_slow_starts() {
    let mut e = Engine::new();
    let a = apps(policy());
    let mut down = fig("a", 10.0, 0.0);
    down.failed = true;
    down.process_known = false;
    e.tick(0.0, &a, &[down, fig("b", 10.0, 0.0), fig("c", 10.0, 0.0)]);
    let (ev, _) = e.tick(
        0.5,
        &a,
        &[
            fig("a", 10.0, 0.5),
            fig("b", 10.0, 0.5),
            fig("c", 10.0, 0.5),
        ],
    );
    assert_eq!(kinds(&ev), vec!["slow_start_begun"]);
}
