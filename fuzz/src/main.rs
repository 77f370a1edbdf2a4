//! `usher-fuzz`: time-boxed mutation fuzzing of usher's decoders and config
//! parsers, for machines without a nightly toolchain (so no cargo-fuzz).
//!
//! For each target (all, or those named on the command line) it runs every
//! seed in `fuzz/corpus/<target>/` and every saved crash in `fuzz/crashes/`
//! for that target, then random mutations of the seeds until `FUZZ_SECS`
//! (default 20) have passed. The run is seeded (`FUZZ_SEED`, default from
//! the clock; always printed), so a run can be repeated exactly.
//!
//! A panic is a crash; so is one input that runs longer than `HANG_SECS`
//! (a hang). Either way the input is printed as hex, saved to
//! `fuzz/crashes/<target>-<hash>.bin`, and the process exits 1.
//!
//! `usher-fuzz write-corpus` rewrites the generated seeds (records, rings,
//! channel frames) with the real encoders; the others are hand-written.

#![forbid(unsafe_code)]

mod corpus;
mod mutate;
mod targets;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use targets::{Ctx, Target, TARGETS};

/// One input running longer than this is a hang.
const HANG_SECS: u64 = 5;

/// The input running now and since when (read by the watchdog).
type Current = Arc<Mutex<Option<(&'static str, Instant, Vec<u8>)>>>;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("write-corpus") {
        match corpus::write_seeds(&fuzz_dir().join("corpus")) {
            Ok(n) => println!("usher-fuzz: wrote {n} generated seeds"),
            Err(e) => {
                eprintln!("usher-fuzz: cannot write the corpus: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let secs = env_u64("FUZZ_SECS", 20);
    let seed = env_u64("FUZZ_SEED", clock_seed());
    let chosen: Vec<&Target> = if args.is_empty() {
        TARGETS.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for a in &args {
            match TARGETS.iter().find(|t| t.name == a.as_str()) {
                Some(t) => chosen.push(t),
                None => {
                    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
                    eprintln!("usher-fuzz: no target {a:?}; targets: {}", names.join(" "));
                    std::process::exit(2);
                }
            }
        }
        chosen
    };
    println!("usher-fuzz: seed {seed} (FUZZ_SEED={seed} repeats this run), {secs} s per target");

    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("usher-fuzz: cannot make a scratch folder: {e}");
            std::process::exit(1);
        }
    };
    let ctx = Ctx {
        dir: scratch.path().to_path_buf(),
    };
    let current: Current = Arc::new(Mutex::new(None));
    watchdog(current.clone());
    for target in &chosen {
        // Each target its own stream, the same whichever targets run.
        let index = TARGETS.iter().position(|t| t.name == target.name);
        let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(index.unwrap_or(0) as u64));
        fuzz_one(target, &ctx, &mut rng, Duration::from_secs(secs), &current);
    }
    println!("usher-fuzz: no crash in {} targets", chosen.len());
}

fn env_u64(key: &str, default: u64) -> u64 {
    match std::env::var(key) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("usher-fuzz: {key}={v:?} is not a whole number");
            std::process::exit(2);
        }),
        Err(_) => default,
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// Runs one target's seeds, then mutations until `budget` has passed.
fn fuzz_one(target: &Target, ctx: &Ctx, rng: &mut SmallRng, budget: Duration, current: &Current) {
    let seeds = load_seeds(target.name);
    if seeds.is_empty() {
        eprintln!(
            "usher-fuzz: {}: no seeds in {}",
            target.name,
            fuzz_dir().join("corpus").join(target.name).display()
        );
        std::process::exit(1);
    }
    let started = Instant::now();
    let mut runs = 0u64;
    for s in &seeds {
        run_one(target, ctx, s, current);
        runs += 1;
    }
    while started.elapsed() < budget {
        // Check the clock every 64 inputs, not every one.
        for _ in 0..64 {
            let base = &seeds[rng.gen_range(0..seeds.len())];
            let input = mutate::mutate(rng, base, &seeds, target.dict);
            run_one(target, ctx, &input, current);
            runs += 1;
        }
    }
    println!(
        "usher-fuzz: {:<15} {runs:>9} inputs in {:.1} s ({} seeds), no crash",
        target.name,
        started.elapsed().as_secs_f64(),
        seeds.len()
    );
}

fn run_one(target: &Target, ctx: &Ctx, input: &[u8], current: &Current) {
    *current.lock().unwrap_or_else(PoisonError::into_inner) =
        Some((target.name, Instant::now(), input.to_vec()));
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(ctx, input)));
    *current.lock().unwrap_or_else(PoisonError::into_inner) = None;
    if outcome.is_err() {
        crash(target.name, "panicked (message above)", input);
    }
}

/// Watches for one input that runs longer than [`HANG_SECS`].
fn watchdog(current: Current) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        let hung = current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(_, since, _)| since.elapsed() > Duration::from_secs(HANG_SECS))
            .map(|(name, _, input)| (*name, input.clone()));
        if let Some((name, input)) = hung {
            crash(
                name,
                &format!("hung (one input ran over {HANG_SECS} s)"),
                &input,
            );
        }
    });
}

/// Reports a crash, saves its input and exits 1.
fn crash(target: &str, what: &str, input: &[u8]) -> ! {
    let mut h = DefaultHasher::new();
    input.hash(&mut h);
    let dir = fuzz_dir().join("crashes");
    let path = dir.join(format!("{target}-{:016x}.bin", h.finish()));
    eprintln!("usher-fuzz: CRASH: target {target} {what}");
    eprintln!("input ({} bytes, hex): {}", input.len(), hex(input));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        Ok(()) => eprintln!(
            "saved to {}; `cargo run --release -p usher-fuzz -- {target}` runs it first from now on",
            path.display()
        ),
        Err(e) => eprintln!("cannot save it to {}: {e}", path.display()),
    }
    std::process::exit(1);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The target's seeds (`corpus/<target>/*`) and saved crashes
/// (`crashes/<target>-*`), in name order.
fn load_seeds(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = Vec::new();
    let corpus = fuzz_dir().join("corpus").join(target);
    files.extend(list(&corpus, |_| true));
    let prefix = format!("{target}-");
    files.extend(list(&fuzz_dir().join("crashes"), |n| {
        n.starts_with(&prefix)
    }));
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn list(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect();
    out.sort();
    out
}
