//! `usher door` (issue 10, "front doors outlive the control plane"): the
//! built-in front door as its own process, fed snapshots by the real
//! `usher control` (`[control] serve_front_doors = false`, one WSI per app),
//! in proxy mode before three real demo apps.
//!
//! * `kill -9` of the control plane for 10 s under load (4 threads at 50
//!   requests/s each): 0 client errors at the door, and pushes resume when
//!   the control plane is back;
//! * a door restarted while the control plane is down serves at once from
//!   its held snapshots (`snapshot_file`);
//! * a server the door ejects (its app killed) becomes a `server_ejected`
//!   event in the control plane's log, handed over in a push's answer;
//! * the door's command endpoint wants its token and refuses a snapshot for
//!   an app it has no listener for, naming it.

use std::time::Duration;

use usher_integration::door_load::{summary, Door as LoadDoor, Load};
use usher_integration::{call, eventually, free_port, http, ControlPlane, DemoApp, UsherDoor};

const NAMES: [&str; 3] = ["a", "b", "c"];

fn config(front: u16, apps: &[DemoApp], door: &UsherDoor) -> String {
    let mut c =
        format!("[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nmode = \"proxy\"\n\n");
    for app in apps {
        c.push_str(&format!(
            "[[servers]]\nname = \"{}\"\napp = \"shop\"\nurl = \"{}\"\ncapacity = 5\n\n",
            app.name,
            app.url()
        ));
    }
    c.push_str(&door.wsi_config());
    c
}

/// Every one of `n` requests through the door is a 200 from a demo app.
fn all_served(front: u16, n: usize) -> bool {
    (0..n).all(|i| {
        let r = call(
            http().get(&format!("http://127.0.0.1:{front}/?i={i}")),
            None,
        );
        r.status == 200 && r.body.contains("hello from")
    })
}

fn door_status(door: &UsherDoor) -> serde_json::Value {
    let r = call(
        http()
            .get(&format!("http://127.0.0.1:{}/", door.command_port))
            .set(
                "Authorization",
                &format!("Bearer {}", usher_integration::usher_door::DOOR_TOKEN),
            ),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn the_door_serves_through_a_control_plane_kill_and_hands_over_its_events() {
    let apps: Vec<DemoApp> = NAMES.iter().map(|n| DemoApp::start(n, 1)).collect();
    let front = free_port();
    let mut door = UsherDoor::start(&[("shop", front)], "");
    // Before any snapshot: no server, so 503 (not a hang, not a crash).
    let r = call(http().get(&format!("http://127.0.0.1:{front}/")), None);
    assert_eq!(r.status, 503, "{}", r.body);

    let mut cp = ControlPlane::start_with(
        "serve_front_doors = false",
        &config(front, &apps, &door),
        &[UsherDoor::token_file()],
    );
    assert!(
        cp.log().contains("serve_front_doors = false"),
        "control plane did not leave the front doors to usher door:\n{}",
        cp.log()
    );
    let served = eventually(Duration::from_secs(10), || all_served(front, 20));
    assert!(
        served.is_some(),
        "door never served ({}):\n{}\ncontrol:\n{}\nstatus {}",
        call(http().get(&format!("http://127.0.0.1:{front}/")), None).body,
        door.log(),
        cp.log(),
        door_status(&door)
    );

    // kill -9 of the control plane for 10 s, under load.
    let load = Load::start(
        &[LoadDoor {
            name: "usher door".into(),
            port: front,
        }],
        4,
        50,
        "/",
    );
    std::thread::sleep(Duration::from_secs(1));
    let pid = cp.pid().expect("control plane runs");
    usher_integration::send_signal("KILL", &pid.to_string());
    std::thread::sleep(Duration::from_secs(10));
    cp.restart();
    std::thread::sleep(Duration::from_secs(1));
    let tallies = load.finish();
    println!("control plane killed for 10 s:\n{}", summary(&tallies));
    let t = &tallies["usher door"];
    assert!(t.sent() > 1000, "too little load: {}", summary(&tallies));
    assert_eq!(t.errors(200), 0, "{}", summary(&tallies));

    // Pushes resume: the door's held version moves on.
    let before = door_status(&door)["apps"]["shop"]["version"]
        .as_u64()
        .unwrap_or(0);
    let moved = eventually(Duration::from_secs(6), || {
        door_status(&door)["apps"]["shop"]["version"]
            .as_u64()
            .unwrap_or(0)
            > before
    });
    assert!(moved.is_some(), "no push after the restart:\n{}", cp.log());

    // A door restarted while the control plane is down serves at once.
    cp.stop();
    door.stop();
    door.launch();
    assert!(
        all_served(front, 20),
        "restarted door did not serve from its held snapshot:\n{}",
        door.log()
    );
    assert!(door.log().contains("held version"), "{}", door.log());
    cp.restart();

    // An ejection at the door reaches the control plane's event log.
    let mut apps = apps;
    apps[2].kill();
    let ejected = eventually(Duration::from_secs(10), || {
        // Traffic makes the door notice; the next push collects the event.
        all_served(front, 10);
        cp.api_ok("GET", "/api/v1/events?type=server_ejected", None)
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["origin_name"] == "c"))
    });
    assert!(
        ejected.is_some(),
        "no server_ejected event for c:\ndoor:\n{}\ncontrol:\n{}",
        door.log(),
        cp.log()
    );
}

#[test]
fn the_command_endpoint_wants_its_token_and_names_a_foreign_app() {
    let front = free_port();
    let door = UsherDoor::start(&[("shop", front)], "");
    let url = format!("http://127.0.0.1:{}/", door.command_port);
    let r = call(http().get(&url), None);
    assert_eq!(r.status, 401, "{}", r.body);
    let auth = format!("Bearer {}", usher_integration::usher_door::DOOR_TOKEN);
    let snapshot = |app: &str| {
        format!(
            r#"{{"type":"snapshot","snapshot":{{"version":{},"apps":[{{"name":"{app}","enabled":true,"mode":"proxy","servers":[{{"name":"a","url":"http://127.0.0.1:9","capacity":5,"available":true}}]}}]}}}}"#,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        )
    };
    let r = call(
        http().post(&url).set("Authorization", &auth),
        Some(&snapshot("blog")),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("blog"), "{}", r.body);
    let r = call(http().post(&url).set("Authorization", &auth), Some("{"));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = call(
        http().post(&url).set("Authorization", &auth),
        Some(&snapshot("shop")),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["applied"].as_u64().is_some(), "{}", r.body);
    let r = call(http().delete(&url).set("Authorization", &auth), None);
    assert_eq!(r.status, 405, "{}", r.body);
}
