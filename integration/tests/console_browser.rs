//! The console in headless Chromium (Debian's `chromium` and
//! `chromedriver`, driven over WebDriver) against the whole stack: a real
//! `usher control`, its agent, three nginx web servers with the usher
//! module, and nginx, Envoy and built-in front doors ([`FaultStack`]).
//!
//! Signs in with the admin token; sees every server with its state and the
//! age of its data; disables a server from the console and sees every front
//! door stop sending it new users, with the action logged as an event naming
//! the session; a POST with the session cookie but without the CSRF token,
//! and one from another origin, both get 403 and change nothing. Screenshots
//! go to `target/screenshots/console-*.png`.

use std::time::{Duration, Instant};

use serde_json::Value;
use usher_integration::acts::{new_user, state};
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::webdriver::Browser;
use usher_integration::{call, eventually, http};

/// The servers table's rows as the page shows them: (name, state, age).
fn rows(b: &Browser) -> Vec<(String, String, String)> {
    let v = b.run(
        "return [...document.querySelectorAll('#servers tbody tr')].map(tr => [
            tr.dataset.server, tr.dataset.state,
            tr.querySelector('[data-field=age]').textContent])",
        Value::Array(vec![]),
    );
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or_default().to_string();
            (s(0), s(1), s(2))
        })
        .collect()
}

/// Seconds in an age cell ("1.2 s"), if it holds a number.
fn age_secs(text: &str) -> Option<f64> {
    text.trim_end_matches(" s").parse().ok()
}

#[test]
fn sign_in_see_every_server_and_disable_one_from_the_console() {
    let mut stack = FaultStack::start(FaultSpec::default());
    let admin = stack.cp.admin_url();
    let log_dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start(log_dir.path());

    // Not signed in: the sign-in form, and the API refuses the browser.
    b.goto(&format!("{admin}/console/"));
    let token_input = b.wait_for(
        "#sign-in-view:not([hidden]) #token",
        Duration::from_secs(10),
    );
    b.screenshot("console-sign-in");
    b.type_text(&token_input, &stack.cp.token);
    let button = b.find("#sign-in").expect("sign-in button");
    b.click(&button);

    // Every server with its state and data age, within 2 s of signing in.
    let t = Instant::now();
    let mut seen = Vec::new();
    let all = eventually(Duration::from_secs(5), || {
        seen = rows(&b);
        seen.len() == 3
            && seen
                .iter()
                .all(|(_, state, age)| state == "ok" && age_secs(age).is_some_and(|a| a < 5.0))
    });
    assert!(all.is_some(), "servers as the console shows them: {seen:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let names: Vec<&str> = seen.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["web1", "web2", "web3"]);
    // The age moves: data keeps coming (the agent reports every 250 ms).
    std::thread::sleep(Duration::from_millis(1500));
    let later = rows(&b);
    assert!(
        later
            .iter()
            .all(|(_, _, age)| age_secs(age).is_some_and(|a| a < 5.0)),
        "{later:?}"
    );
    b.screenshot("console-servers");

    // The session: cookie and CSRF token the page holds.
    let cookie = b.cookie("usher_console").expect("session cookie");
    let cookie_header = format!("usher_console={cookie}");
    let who = call(
        http()
            .get(&format!("{admin}/console/session"))
            .set("cookie", &cookie_header),
        None,
    );
    assert_eq!(who.status, 200, "{}", who.body);
    let csrf = who.json()["csrf"].as_str().expect("csrf").to_string();
    let origin = admin.trim_end_matches('/').to_string();

    // Forged requests with the session cookie: no CSRF token, then another
    // origin. Both 403, nothing changes.
    let forged_no_csrf = call(
        http()
            .post(&format!("{admin}/api/v1/servers/web3/disable"))
            .set("cookie", &cookie_header)
            .set("origin", &origin),
        None,
    );
    assert_eq!(forged_no_csrf.status, 403, "{}", forged_no_csrf.body);
    assert!(
        forged_no_csrf.body.contains("csrf"),
        "{}",
        forged_no_csrf.body
    );
    let forged_origin = call(
        http()
            .post(&format!("{admin}/api/v1/servers/web3/disable"))
            .set("cookie", &cookie_header)
            .set("x-csrf-token", &csrf)
            .set("origin", "http://evil.example"),
        None,
    );
    assert_eq!(forged_origin.status, 403, "{}", forged_origin.body);
    assert!(
        forged_origin.body.contains("origin"),
        "{}",
        forged_origin.body
    );
    let sign_in_elsewhere = call(
        http()
            .post(&format!("{admin}/console/session"))
            .set("origin", "http://evil.example")
            .set("content-type", "application/json"),
        Some(&serde_json::json!({"token": stack.cp.token}).to_string()),
    );
    assert_eq!(sign_in_elsewhere.status, 403, "{}", sign_in_elsewhere.body);
    assert_eq!(
        state(&stack, "web3"),
        "ok",
        "the forged requests changed nothing"
    );

    // Disable web2 from the console: confirm, then the page shows it.
    let disable = b.wait_for(
        "#servers tr[data-server=web2] button[data-action=disable]",
        Duration::from_secs(3),
    );
    let clicked = Instant::now();
    b.click(&disable);
    b.accept_dialog();
    let shown = eventually(Duration::from_secs(3), || {
        rows(&b)
            .iter()
            .any(|(n, s, _)| n == "web2" && s == "disabled")
    });
    assert!(shown.is_some(), "console rows: {:?}", rows(&b));
    let took = clicked.elapsed();
    assert!(took < Duration::from_secs(2), "shown after {took:?}");
    b.screenshot("console-server-disabled");
    assert_eq!(state(&stack, "web2"), "disabled");

    // Every front door stops sending web2 new users.
    let doors = stack.doors();
    let ports: Vec<u16> = doors.iter().map(|d| d.port).collect();
    let agent = http();
    for door in &doors {
        let mut served = std::collections::BTreeMap::<String, u32>::new();
        for _ in 0..60 {
            let who = new_user(&agent, door.port, &ports)
                .unwrap_or_else(|e| panic!("{} door: {e}", door.name));
            *served.entry(who).or_default() += 1;
        }
        assert!(
            !served.contains_key("web2") && served.values().sum::<u32>() == 60,
            "{} door after the disable: {served:?}",
            door.name
        );
    }

    // The action is an event naming the session.
    let events = stack.events("console_action");
    let who_name = who.json()["who"].as_str().unwrap_or_default().to_string();
    assert!(
        events.iter().any(|e| e["text"].as_str().is_some_and(
            |t| t.contains(&who_name) && t.contains("POST /api/v1/servers/web2/disable")
        )),
        "no console_action event for the disable by {who_name}: {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["text"].as_str().is_some_and(|t| t.contains("web3"))),
        "a refused request was logged as an action: {events:?}"
    );
    eprintln!("disable shown in the console after {took:?}");

    // Kill web3's app: the failure event and the failed state reach the
    // open page without a reload, within 2 s of being logged.
    stack.apps[2].kill();
    let mut event: Option<Value> = None;
    let logged = eventually(Duration::from_secs(15), || {
        event = stack.events("server_failed").into_iter().find(|e| {
            e["origin_name"] == "web3" || e["text"].as_str().is_some_and(|t| t.contains("web3"))
        });
        event.is_some()
    });
    assert!(logged.is_some(), "no server_failed event for web3");
    let logged_at = Instant::now();
    let on_page = eventually(Duration::from_secs(5), || {
        let failed_row = rows(&b)
            .iter()
            .any(|(n, s, _)| n == "web3" && s == "failed");
        let event_row = b
            .run(
                "return [...document.querySelectorAll('#events tbody tr')]
                    .some(tr => tr.dataset.type === 'server_failed' && tr.textContent.includes('web3'))",
                Value::Array(vec![]),
            )
            .as_bool()
            .unwrap_or(false);
        failed_row && event_row
    });
    assert!(
        on_page.is_some(),
        "the page did not show web3 failed: {:?}",
        rows(&b)
    );
    let shown = logged_at.elapsed();
    assert!(
        shown < Duration::from_secs(2),
        "failure shown {shown:?} after it was logged"
    );
    b.screenshot("console-server-failed");
    eprintln!("failure shown {shown:?} after it was logged: {event:?}");

    // The failure is an alert listing what can help: drain web3 from it.
    let alert_drain = b.wait_for(
        "#alerts tr[data-type=server_failed][data-component=web3] button[data-action=drain]",
        Duration::from_secs(3),
    );
    b.click(&alert_drain);
    b.accept_dialog();
    let drained = eventually(Duration::from_secs(3), || {
        !usher_integration::acts::row(&stack, "web3")["acts"]["drain"].is_null()
    });
    assert!(
        drained.is_some(),
        "no drain order for web3 after the alert's action: {}",
        usher_integration::acts::row(&stack, "web3")
    );
    b.screenshot("console-alert-drain");

    // Acknowledged, the alert leaves the page (and stays gone).
    let ack = b.wait_for(
        "#alerts tr[data-component=web3] button[data-action=acknowledge]",
        Duration::from_secs(3),
    );
    b.click(&ack);
    let gone = eventually(Duration::from_secs(3), || {
        b.find("#alerts tr[data-type=server_failed][data-component=web3]")
            .is_none()
    });
    assert!(gone.is_some(), "the acknowledged alert is still shown");
}
