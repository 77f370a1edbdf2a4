//! `usher-ring-drain PATH [--interval-ms N] [--records | --count-only] [--seconds N]`
//!
//! Attaches to a web server's record ring file and drains it continuously,
//! as the agent will. Prints one JSON line per second with the counts so far
//! (`{"records":N,"bad":N,"written":N,"dropped":N}`), and with `--records`
//! also every decoded record as a JSON line; `--count-only` frees the rings
//! without decoding (counts records, checks nothing: for benchmarks that
//! measure the writer, not the reader). Waits for the file to appear and
//! follows it when nginx replaces it. Used by tests and `make bench` as "a
//! reader is attached".
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use usher_agent::{DrainCounts, RingReader};

struct Args {
    path: PathBuf,
    interval: Duration,
    records: bool,
    count_only: bool,
    seconds: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut interval = Duration::from_millis(5);
    let mut records = false;
    let mut count_only = false;
    let mut seconds = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--interval-ms" => {
                let v = args.next().ok_or("--interval-ms needs a value")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--interval-ms: bad number {v}"))?;
                interval = Duration::from_millis(ms);
            }
            "--seconds" => {
                let v = args.next().ok_or("--seconds needs a value")?;
                seconds = Some(
                    v.parse()
                        .map_err(|_| format!("--seconds: bad number {v}"))?,
                );
            }
            "--records" => records = true,
            "--count-only" => count_only = true,
            "-h" | "--help" => {
                return Err(
                    "usage: usher-ring-drain PATH [--interval-ms N] [--records | --count-only] [--seconds N]"
                        .into(),
                )
            }
            _ if path.is_none() && !a.starts_with('-') => path = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    Ok(Args {
        path: path
            .ok_or("usage: usher-ring-drain PATH [--interval-ms N] [--records | --count-only] [--seconds N]")?,
        interval,
        records,
        count_only,
        seconds,
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let mut total = DrainCounts::default();
    let mut reader: Option<RingReader> = None;
    let mut last_print = Instant::now();
    let mut last_error = String::new();
    let stdout = std::io::stdout();
    loop {
        if reader.as_ref().is_none_or(RingReader::replaced) {
            match RingReader::open(&args.path) {
                Ok(r) => reader = Some(r),
                Err(e) => {
                    let msg = e.to_string();
                    if msg != last_error {
                        eprintln!("usher-ring-drain: {msg} (retrying)");
                        last_error = msg;
                    }
                }
            }
        }
        if let Some(r) = reader.as_mut() {
            if args.count_only {
                total.records += r.drain_raw(|_| {});
            } else {
                let mut out = stdout.lock();
                let counts = r.drain(|rec| {
                    if args.records {
                        if let Ok(line) = serde_json::to_string(&rec) {
                            if let Err(e) = writeln!(out, "{line}") {
                                eprintln!("usher-ring-drain: stdout: {e}");
                            }
                        }
                    }
                });
                total.add(counts);
            }
        }
        let done = args
            .seconds
            .is_some_and(|s| start.elapsed() >= Duration::from_secs(s));
        if last_print.elapsed() >= Duration::from_secs(1) || done {
            last_print = Instant::now();
            let stats = reader.as_ref().map(RingReader::stats).unwrap_or_default();
            let line = serde_json::json!({
                "records": total.records,
                "bad": total.bad,
                "written": stats.written,
                "dropped": stats.dropped,
            });
            let mut out = stdout.lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return; // stdout closed: nobody is listening any more
            }
        }
        if done {
            return;
        }
        std::thread::sleep(args.interval);
    }
}
