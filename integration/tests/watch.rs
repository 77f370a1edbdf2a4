//! `usher watch` (issue 14, part 1), the real `target/release/usher`:
//!
//! * around a script that fails at once 5 times and then stays up, the
//!   waits between attempts double from `--initial-delay` up to
//!   `--max-attempts` (3) and are `--max-delay` afterwards; a run longer than
//!   `--healthy-after` that then dies (SIGKILL) is followed by the first wait
//!   again; SIGTERM to the watcher stops the child (forwarded, not killed)
//!   and the watcher, and the child's PID is gone;
//! * a program that does not exist: every attempt is a
//!   `component_start_failed`, retried on the same back-off; SIGINT while
//!   it waits ends the watcher;
//! * a component that exits 0 ends the watcher with 0 (`component_done`);
//! * a component that ignores SIGTERM is killed after `--stop-timeout`;
//! * a bad option is refused with exit code 2, naming it.
//!
//! Waits are measured between the watcher's own events (`component_exited`
//! or `component_start_failed`, then the next start) and must lie within
//! [`EARLY`] below and [`LATE`] above the rule's value; the script's own
//! start times are checked against the same lower bound.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use usher_integration::{alive, eventually, usher_bin, Proc};

/// A wait may end this much early (clock reads around the timer).
const EARLY: Duration = Duration::from_millis(5);
/// A wait may end this much late (a spawn on a busy 2-core machine).
const LATE: Duration = Duration::from_millis(150);

/// `usher watch ARGS -- CMD` started as a test process, logging to `dir`.
fn watch(dir: &Path, name: &str, args: &[&str], cmd: &[&str]) -> Proc {
    let mut c = Command::new(usher_bin());
    c.arg("watch")
        .args(["--name", name, "--events-file"])
        .arg(events_path(dir))
        .args(args)
        .arg("--")
        .args(cmd);
    Proc::spawn(name, c, &dir.join(format!("{name}.log")))
}

fn events_path(dir: &Path) -> PathBuf {
    dir.join("events.jsonl")
}

/// Every line of the events file, parsed (panics on a line that is not JSON).
fn events(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(events_path(dir)).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in\n{text}")))
        .collect()
}

fn of_type<'a>(evs: &'a [Value], name: &str) -> Vec<&'a Value> {
    evs.iter().filter(|e| e["type"] == name).collect()
}

fn time(e: &Value) -> Duration {
    Duration::from_micros(
        e["time_us"]
            .as_u64()
            .unwrap_or_else(|| panic!("time_us in {e}")),
    )
}

fn pid(e: &Value) -> u32 {
    e["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("pid in {e}"))
}

/// Waits until the events file holds `n` events of type `name`.
fn wait_for(dir: &Path, w: &mut Proc, name: &str, n: usize, limit: Duration) -> Vec<Value> {
    let ok = eventually(limit, || {
        of_type(&events(dir), name).len() >= n || !w.is_running()
    });
    let evs = events(dir);
    assert!(
        ok.is_some() && of_type(&evs, name).len() >= n,
        "{n} x {name} within {limit:?} (watcher running: {}); events:\n{evs:#?}\nlog:\n{}",
        w.is_running(),
        w.log_text()
    );
    evs
}

/// Asserts a measured wait is the rule's `want` within the tolerance.
fn assert_wait(what: &str, got: Duration, want: Duration) {
    assert!(
        got + EARLY >= want && got <= want + LATE,
        "{what}: waited {got:?}, the rule says {want:?} (-{EARLY:?}/+{LATE:?})"
    );
}

/// Waits for the watcher to exit; returns how long it took and its code.
fn exit_of(w: &mut Proc, limit: Duration) -> (Duration, Option<i32>) {
    let t = Instant::now();
    assert!(
        eventually(limit, || !w.is_running()).is_some(),
        "watcher still running {limit:?} later; log:\n{}",
        w.log_text()
    );
    (t.elapsed(), w.exit_status().and_then(|s| s.code()))
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Fails at once (status 3) on its first 5 runs, then stays up; appends the
/// time of each start (seconds, from `date`) to `starts`.
const FLAKY: &str = r#"dir=$(dirname "$0")
n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$dir/count"
date +%s.%N >> "$dir/starts"
[ "$n" -le 5 ] && exit 3
exec sleep 600
"#;

#[test]
fn waits_grow_to_max_attempts_then_stay_at_max_and_sigterm_leaves_no_orphan() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let script = dir.join("flaky.sh");
    std::fs::write(&script, FLAKY).expect("script");
    let script = script.to_string_lossy().into_owned();
    let mut w = watch(
        dir,
        "flaky",
        &[
            "--initial-delay",
            "0.2",
            "--max-delay",
            "1.5",
            "--max-attempts",
            "3",
            "--healthy-after",
            "2",
        ],
        &["sh", &script],
    );

    // Five quick failures, then the sixth run stays up.
    let evs = wait_for(dir, &mut w, "component_started", 6, Duration::from_secs(20));
    let started = of_type(&evs, "component_started");
    let exited = of_type(&evs, "component_exited");
    assert_eq!(exited.len(), 5, "{evs:#?}");
    // 0.2, 0.4, 0.8 (doubling for A_max = 3 failures in a row), then 1.5, 1.5.
    let rule = [ms(200), ms(400), ms(800), ms(1500), ms(1500)];
    for (i, want) in rule.iter().enumerate() {
        let got = time(started[i + 1]).saturating_sub(time(exited[i]));
        assert_wait(&format!("after failure {}", i + 1), got, *want);
        assert!(
            exited[i]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("exit status: 3"),
            "{}",
            exited[i]
        );
        assert_eq!(
            pid(exited[i]),
            pid(started[i]),
            "exit names the started PID"
        );
    }
    // The script's own clock agrees: no start came sooner than the rule allows.
    // (The event is recorded at the spawn, a moment before the script writes.)
    let read_starts = || -> Vec<f64> {
        std::fs::read_to_string(dir.join("starts"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().expect("date +%s.%N"))
            .collect()
    };
    eventually(Duration::from_secs(2), || read_starts().len() >= 6);
    let starts = read_starts();
    assert_eq!(starts.len(), 6, "{starts:?}");
    for (i, want) in rule.iter().enumerate() {
        let gap = starts[i + 1] - starts[i];
        assert!(
            gap + EARLY.as_secs_f64() >= want.as_secs_f64(),
            "start {} came {gap:.3} s after start {}, before the {want:?} wait",
            i + 2,
            i + 1
        );
    }

    // Healthy for longer than --healthy-after, then killed: the first wait again.
    let healthy = pid(started[5]);
    std::thread::sleep(Duration::from_millis(2300));
    assert!(alive(healthy), "the sixth run stays up");
    usher_integration::send_signal("KILL", &healthy.to_string());
    let evs = wait_for(dir, &mut w, "component_started", 7, Duration::from_secs(10));
    let started = of_type(&evs, "component_started");
    let exited = of_type(&evs, "component_exited");
    let killed = exited[5];
    assert_eq!(pid(killed), healthy);
    assert!(
        killed["detail"]
            .as_str()
            .unwrap_or("")
            .contains("signal: 9"),
        "{killed}"
    );
    assert_wait(
        "after a healthy run",
        time(started[6]).saturating_sub(time(killed)),
        ms(200),
    );

    // SIGTERM to the watcher: forwarded, the child stops, the watcher exits 0.
    let last = pid(started[6]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(last));
    w.signal("TERM");
    let (took, code) = exit_of(&mut w, Duration::from_secs(8));
    assert_eq!(code, Some(0), "log:\n{}", w.log_text());
    assert!(
        took < Duration::from_secs(3),
        "stopped in {took:?}: SIGTERM was forwarded, not the 10 s stop timeout's SIGKILL"
    );
    assert!(!alive(last), "child {last} outlived the watcher (orphan)");
    let evs = events(dir);
    let signalled = of_type(&evs, "watch_signalled");
    assert_eq!(signalled.len(), 1, "{evs:#?}");
    let detail = signalled[0]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("SIGTERM") && detail.contains(&format!("pid {last}")));
    assert!(detail.contains("signal: 15"), "{detail}");
    assert_eq!(
        pid(signalled[0]),
        w.pid(),
        "watch_* events carry the watcher's PID"
    );

    // Every event of this run, in order, each with its code and time.
    let kinds: Vec<&str> = evs
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(kinds.first(), Some(&"watch_started"));
    assert_eq!(kinds.last(), Some(&"watch_signalled"));
    for (name, code) in [
        ("watch_started", 140),
        ("component_started", 142),
        ("component_exited", 143),
        ("watch_signalled", 145),
    ] {
        let of = of_type(&evs, name);
        assert!(!of.is_empty(), "{name} recorded: {kinds:?}");
        assert!(of
            .iter()
            .all(|e| e["code"] == code && e["component"] == "flaky"));
    }
    assert!(
        evs.windows(2).all(|p| time(&p[0]) <= time(&p[1])),
        "in time order"
    );
}

#[test]
fn a_program_that_cannot_start_is_retried_on_the_same_backoff() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let missing = dir.join("no-such-program");
    let mut w = watch(
        dir,
        "missing",
        &[
            "--initial-delay",
            "0.1",
            "--max-delay",
            "0.4",
            "--max-attempts",
            "2",
        ],
        &[&missing.to_string_lossy()],
    );
    let evs = wait_for(
        dir,
        &mut w,
        "component_start_failed",
        5,
        Duration::from_secs(10),
    );
    let failed = of_type(&evs, "component_start_failed");
    // 0.1, 0.2 (A_max = 2), then 0.4 for good.
    for (i, want) in [ms(100), ms(200), ms(400), ms(400)].iter().enumerate() {
        let got = time(failed[i + 1]).saturating_sub(time(failed[i]));
        assert_wait(&format!("after failed start {}", i + 1), got, *want);
    }
    for f in &failed {
        assert!(f["pid"].is_null(), "no PID without a process: {f}");
        assert_eq!(f["code"], 141);
        let detail = f["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains("cannot start") && detail.contains("No such file"),
            "{detail}"
        );
    }
    assert!(of_type(&evs, "component_started").is_empty());

    // SIGINT while it waits: no child to stop, the watcher exits 0 at once.
    w.signal("INT");
    let (took, code) = exit_of(&mut w, Duration::from_secs(5));
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(1), "{took:?}");
    let evs = events(dir);
    let last = evs.last().expect("events");
    assert_eq!(last["type"], "watch_signalled");
    assert_eq!(last["code"], 145);
    let detail = last["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("SIGINT") && detail.contains("waiting"),
        "{detail}"
    );
}

#[test]
fn status_zero_is_graceful_and_ends_the_watcher_with_zero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut w = watch(dir, "oneshot", &[], &["sh", "-c", "sleep 0.2; exit 0"]);
    let (_, code) = exit_of(&mut w, Duration::from_secs(5));
    assert_eq!(code, Some(0), "log:\n{}", w.log_text());
    let evs = events(dir);
    let kinds: Vec<&str> = evs
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        kinds,
        ["watch_started", "component_started", "component_done"]
    );
    assert_eq!(evs[2]["code"], 144);
    assert_eq!(pid(&evs[2]), pid(&evs[1]));
    // The stderr log has the same events.
    let log = w.log_text();
    assert!(
        log.contains("component_done") && log.contains("oneshot"),
        "{log}"
    );
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // An ignored signal stays ignored across exec: sleep ignores TERM.
    let mut w = watch(
        dir,
        "stubborn",
        &["--stop-timeout", "0.5"],
        &["sh", "-c", "trap '' TERM; exec sleep 600"],
    );
    let evs = wait_for(dir, &mut w, "component_started", 1, Duration::from_secs(5));
    let child = pid(of_type(&evs, "component_started")[0]);
    std::thread::sleep(Duration::from_millis(300));
    w.signal("TERM");
    let (took, code) = exit_of(&mut w, Duration::from_secs(5));
    assert_eq!(code, Some(0));
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(!alive(child), "child {child} outlived the watcher");
    let evs = events(dir);
    let detail = evs.last().expect("events")["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(detail.contains("killed"), "{detail}");
}

#[test]
fn bad_options_exit_2_naming_the_option() {
    for (args, names) in [
        (&["--max-delay", "abc"][..], "--max-delay"),
        (&["--initial-delay", "0"][..], "--initial-delay"),
        (
            &["--initial-delay", "5", "--max-delay", "1"][..],
            "--initial-delay",
        ),
    ] {
        let out = Command::new(usher_bin())
            .arg("watch")
            .args(args)
            .args(["--", "true"])
            .output()
            .expect("run usher watch");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?}: {stderr}");
    }
    let out = Command::new(usher_bin())
        .args(["watch"])
        .output()
        .expect("run usher watch");
    assert_eq!(out.status.code(), Some(2), "no command");
}
