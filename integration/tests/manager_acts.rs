//! The manager acts on its own (issue 11), on the whole stack: three demo
//! apps each behind nginx with the usher module (server role), the agent,
//! the control plane, and three front doors in proxy mode (built-in, nginx
//! interceptor, Envoy interceptor) — [`FaultStack`].
//!
//! One server is slowed past each threshold in turn (the demo app's service
//! time; its probes slow down with it) and the test checks, counting at the
//! client: a heavily loaded server gets no new user from any front door
//! from 1 s after it entered the state, and leaves the state only after the
//! lower mark held for `recover_ms`; at maximum load its own nginx
//! redirects new stateless users to the front door and never a listed
//! stateful page or a session-cookie holder; the third entry into offload
//! within the window swamps the app instead (no redirection then), which
//! is left after the load was normal for `unswamp_s`; and all servers
//! heavily loaded (peak load) swamp the app with every server kept serving.

use std::time::{Duration, Instant};

use usher_integration::acts::{app, direct, events_of, served_by, state, wait_state};
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::{eventually, http};

const RECOVER_MS: u64 = 1500;
const UNSWAMP_S: u64 = 3;
/// Service times that put a demo server's delay between heavy_ms and
/// max_ms, and above max_ms.
const HEAVY_SERVICE_MS: u64 = 35;
const MAX_SERVICE_MS: u64 = 500;

fn spec() -> FaultSpec {
    FaultSpec {
        app_toml: format!(
            "stateful = [\"/cart\"]\nsession_cookie = \"usher_session\"\n\
             [apps.policy]\nheavy_ms = 40\nmax_ms = 400\nrecover_ms = {RECOVER_MS}\n\
             heavy_queue = 10000\nmax_queue = 20000\nheavy_cpu_pct = 100\nheavy_mem_pct = 100\n\
             slow_start_s = 0\nunswamp_s = {UNSWAMP_S}\nthrash_window_s = 60\nthrash_flips = 2\n"
        ),
        ..FaultSpec::default()
    }
}

#[test]
fn thresholds_offload_and_swamp_through_every_front_door() {
    let stack = FaultStack::start(spec());
    let agent = http();
    let doors = stack.doors();
    assert_eq!(doors.len(), 3);
    let web2 = &stack.apps[1];
    let web2_nginx = stack.servers[1].url("");
    let front = format!("http://127.0.0.1:{}", stack.front_door_port);

    // Heavily loaded: 35 ms of service (and the probes' queue time on top)
    // is above heavy_ms (40) and below max_ms (400).
    web2.set_service_ms(HEAVY_SERVICE_MS);
    let took = wait_state(&stack, "web2", "heavy", Duration::from_secs(10));
    let entered = Instant::now();
    eprintln!("web2 heavy {took:?} after the slow-down");
    std::thread::sleep(Duration::from_secs(1));
    for door in &doors {
        let counts = served_by(&agent, door, 150);
        eprintln!("{} while web2 is heavy: {counts:?}", door.name);
        assert_eq!(
            counts.get("web2"),
            None,
            "{}: web2 got new users from 1 s after it became heavily loaded: {counts:?}",
            door.name
        );
        assert_eq!(counts.values().sum::<usize>(), 150);
        assert!(
            counts.keys().all(|k| k == "web1" || k == "web3"),
            "{counts:?}"
        );
    }
    eprintln!("counted {:?} after entering heavy", entered.elapsed());
    let heavy = events_of(&stack, "server_heavy", "web2");
    assert!(!heavy.is_empty(), "no server_heavy event");
    assert!(
        heavy[0]["text"].as_str().unwrap_or("").contains("delay"),
        "{heavy:?}"
    );

    // Back under the lower mark: it leaves only after recover_ms.
    web2.set_service_ms(2);
    let back = wait_state(&stack, "web2", "ok", Duration::from_secs(10));
    eprintln!("web2 back {back:?} after the speed-up");
    assert!(
        back >= Duration::from_millis(RECOVER_MS),
        "left the heavy state after {back:?}, before recover_ms"
    );
    let counts = served_by(&agent, &doors[0], 300);
    assert!(
        counts.get("web2").copied().unwrap_or(0) >= 30,
        "web2 did not get users back: {counts:?}"
    );

    // Maximum load: its nginx redirects new stateless users to the front
    // door, never the stateful page or a session-cookie holder.
    web2.set_service_ms(MAX_SERVICE_MS);
    let took = wait_state(&stack, "web2", "offloading", Duration::from_secs(10));
    eprintln!("web2 offloading {took:?} after the slow-down");
    let pushed = eventually(Duration::from_secs(1), || {
        direct(&format!("{web2_nginx}/"), None).0 == 302
    });
    assert!(
        pushed.is_some(),
        "web2's nginx did not redirect within 1 s of the offloading state"
    );
    let (status, location) = direct(&format!("{web2_nginx}/static.html?x=1"), None);
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some(format!("{front}/static.html?x=1").as_str())
    );
    let mut moved = 0;
    for _ in 0..5 {
        if direct(&format!("{web2_nginx}/cart"), None).0 != 200 {
            moved += 1;
        }
        if direct(&format!("{web2_nginx}/"), Some("usher_session=abc")).0 != 200 {
            moved += 1;
        }
    }
    assert_eq!(moved, 0, "stateful page or cookie holder redirected");

    // Lifted with the same hysteresis; then a second entry, and a third
    // that would thrash: the app is swamped instead.
    web2.set_service_ms(2);
    wait_state(&stack, "web2", "ok", Duration::from_secs(10));
    assert_eq!(direct(&format!("{web2_nginx}/"), None).0, 200);
    web2.set_service_ms(MAX_SERVICE_MS);
    wait_state(&stack, "web2", "offloading", Duration::from_secs(10));
    web2.set_service_ms(2);
    wait_state(&stack, "web2", "ok", Duration::from_secs(10));
    web2.set_service_ms(MAX_SERVICE_MS);
    let swamped = eventually(Duration::from_secs(10), || {
        app(&stack)["swamped"].is_string()
    });
    assert!(swamped.is_some(), "app never swamped: {}", app(&stack));
    let why = app(&stack)["swamped"].as_str().unwrap_or("").to_string();
    assert!(why.contains("thrashing"), "{why}");
    std::thread::sleep(Duration::from_millis(800));
    let entries = events_of(&stack, "server_offloading", "web2").len();
    assert_eq!(
        entries, 2,
        "web2 entered offload {entries} times (at most 2 in the window)"
    );
    assert_ne!(state(&stack, "web2"), "offloading");
    assert_eq!(
        direct(&format!("{web2_nginx}/"), None).0,
        200,
        "a swamped app redirects nobody"
    );
    let logged = eventually(Duration::from_secs(2), || {
        !events_of(&stack, "app_swamped", "shop").is_empty()
    });
    assert!(logged.is_some(), "no app_swamped event");

    // Normal again for unswamp_s: no longer swamped.
    web2.set_service_ms(2);
    let t = Instant::now();
    let unswamped = eventually(Duration::from_secs(15), || app(&stack)["swamped"].is_null());
    assert!(unswamped.is_some(), "still swamped: {}", app(&stack));
    assert!(
        t.elapsed() >= Duration::from_secs(UNSWAMP_S),
        "{:?}",
        t.elapsed()
    );
    // The event is logged just after the picture is published.
    let logged = eventually(Duration::from_secs(2), || {
        !events_of(&stack, "app_unswamped", "shop").is_empty()
    });
    assert!(logged.is_some(), "no app_unswamped event");

    // Peak load: every server heavily loaded → swamped within 2 s of the
    // last one, and every server keeps getting users.
    for a in &stack.apps {
        a.set_service_ms(HEAVY_SERVICE_MS);
    }
    for name in ["web1", "web2", "web3"] {
        wait_state(&stack, name, "heavy", Duration::from_secs(10));
    }
    let last_heavy = Instant::now();
    let swamped = eventually(Duration::from_secs(2), || {
        app(&stack)["swamped"]
            .as_str()
            .is_some_and(|w| w.contains("heavily loaded"))
    });
    assert!(
        swamped.is_some(),
        "not swamped within 2 s of peak load: {}",
        app(&stack)
    );
    eprintln!(
        "swamped {:?} after the last heavy state",
        last_heavy.elapsed()
    );
    let counts = served_by(&agent, &doors[0], 60);
    assert!(
        counts.len() == 3,
        "a swamped app keeps every available server in rotation: {counts:?}"
    );
    for a in &stack.apps {
        a.set_service_ms(2);
    }
    let unswamped = eventually(Duration::from_secs(15), || app(&stack)["swamped"].is_null());
    assert!(unswamped.is_some(), "still swamped: {}", app(&stack));
}
