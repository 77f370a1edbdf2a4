//! A bounded closed-loop client for the fault tests: a few threads per
//! front door send GETs at a fixed pace (keep-alive connections, and every
//! fourth request on a fresh one) until told to stop, and count every
//! answer by status and every transport error. What a user would call an
//! error is anything but the expected status.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One front door under load: a name for messages and its port.
#[derive(Debug, Clone)]
pub struct Door {
    pub name: String,
    pub port: u16,
}

/// What one door's users saw.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (refused, reset, timed out).
    pub transport_errors: u64,
    /// The first few transport errors, for the failure message.
    pub samples: Vec<String>,
    /// The longest a request took.
    pub max_latency: Duration,
}

impl Tally {
    /// Requests sent.
    pub fn sent(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }

    /// Requests that did not get `expected`.
    pub fn errors(&self, expected: u16) -> u64 {
        self.sent() - self.statuses.get(&expected).copied().unwrap_or(0)
    }

    fn add(&mut self, other: &Tally) {
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        for s in &other.samples {
            if self.samples.len() < 5 {
                self.samples.push(s.clone());
            }
        }
        self.max_latency = self.max_latency.max(other.max_latency);
    }
}

/// Load running in the background; [`Load::finish`] stops it and returns
/// each door's tally.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<(String, JoinHandle<Tally>)>,
}

impl Load {
    /// Starts `threads_per_door` threads per door, each sending one request
    /// every `1 / per_thread_rps` seconds to `path` with a query unique in
    /// the run: `?load=<door>-<thread>-<n>`.
    pub fn start(doors: &[Door], threads_per_door: usize, per_thread_rps: u32, path: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs(1) / per_thread_rps.max(1);
        let mut threads = Vec::new();
        for door in doors {
            for t in 0..threads_per_door {
                let (stop, url) = (
                    stop.clone(),
                    format!("http://127.0.0.1:{}{path}", door.port),
                );
                let name = door.name.clone();
                let tag = format!("{name}-{t}");
                let handle = std::thread::Builder::new()
                    .name(format!("load-{tag}"))
                    .spawn(move || run(&url, &tag, period, &stop))
                    .expect("load thread");
                threads.push((name, handle));
            }
        }
        Load { stop, threads }
    }

    /// Stops every thread and sums the tallies per door.
    pub fn finish(self) -> BTreeMap<String, Tally> {
        self.stop.store(true, Ordering::Relaxed);
        let mut out: BTreeMap<String, Tally> = BTreeMap::new();
        for (name, h) in self.threads {
            let t = h.join().unwrap_or_else(|_| Tally {
                samples: vec!["load thread panicked".into()],
                transport_errors: 1,
                ..Tally::default()
            });
            out.entry(name).or_default().add(&t);
        }
        out
    }
}

/// Runs `f` while load runs through `doors`, with `settle` of load before
/// and after it; returns the tallies.
pub fn under_load(
    doors: &[Door],
    threads_per_door: usize,
    per_thread_rps: u32,
    settle: Duration,
    f: impl FnOnce(),
) -> BTreeMap<String, Tally> {
    let load = Load::start(doors, threads_per_door, per_thread_rps, "/");
    std::thread::sleep(settle);
    f();
    std::thread::sleep(settle);
    load.finish()
}

fn run(url: &str, tag: &str, period: Duration, stop: &AtomicBool) -> Tally {
    let keep_alive = crate::http::http();
    let mut tally = Tally::default();
    let start = Instant::now();
    let mut i: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = start + period * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let target = format!("{url}?load={tag}-{i}");
        let req = if i % 4 == 3 {
            crate::http::http().get(&target).set("connection", "close")
        } else {
            keep_alive.get(&target)
        };
        let t0 = Instant::now();
        let res = req.call();
        tally.max_latency = tally.max_latency.max(t0.elapsed());
        match res {
            Ok(r) => {
                let status = r.status();
                // Read the body so the keep-alive connection is reused.
                let body_ok = r.into_string().is_ok();
                if body_ok {
                    *tally.statuses.entry(status).or_default() += 1;
                } else {
                    note(&mut tally, format!("{target}: body cut off"));
                }
            }
            Err(ureq::Error::Status(status, r)) => {
                let body = r.into_string().unwrap_or_default();
                if tally.samples.len() < 5 {
                    tally.samples.push(format!("{target}: {status} {body}"));
                }
                *tally.statuses.entry(status).or_default() += 1;
            }
            Err(e) => note(&mut tally, format!("{target}: {e}")),
        }
        i = i.wrapping_add(1);
    }
    tally
}

fn note(tally: &mut Tally, what: String) {
    tally.transport_errors += 1;
    if tally.samples.len() < 5 {
        tally.samples.push(what);
    }
}

/// Asserts that every door got at least `min_sent` requests and that each
/// got its 200 (what a user calls an error is anything else).
pub fn assert_all_served(tallies: &BTreeMap<String, Tally>, min_sent: u64) {
    for (door, t) in tallies {
        assert!(t.sent() > min_sent, "{door} sent only {}", t.sent());
        assert_eq!(
            t.errors(200),
            0,
            "client errors at the {door} front door:\n{}",
            summary(tallies)
        );
    }
}

/// One line per door: sent, by status, transport errors, longest wait.
pub fn summary(tallies: &BTreeMap<String, Tally>) -> String {
    tallies
        .iter()
        .map(|(door, t)| {
            format!(
                "{door}: {} sent, statuses {:?}, {} transport errors, max {:?}{}",
                t.sent(),
                t.statuses,
                t.transport_errors,
                t.max_latency,
                if t.samples.is_empty() {
                    String::new()
                } else {
                    format!(", e.g. {:?}", t.samples)
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
