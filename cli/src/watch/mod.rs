//! `usher watch [OPTIONS] -- CMD [ARGS...]`: runs a component (`usher
//! control`, `usher agent`, ...) as its child and keeps it alive
//! (docs/watch.md).
//!
//! * [`args`]: the options, checked into a [`args::WatchConfig`];
//! * [`supervise`]: the loop (start, wait, back off, start again), with the
//!   back-off rule from `usher_core::backoff`;
//! * [`child`]: the component as a child process;
//! * [`signals`]: SIGTERM/SIGINT, caught and forwarded;
//! * [`events`]: what is recorded, to stderr and `--events-file`.
//!
//! Exit codes: 0 when the component exited with status 0 or the watcher was
//! stopped by SIGTERM/SIGINT (after the component stopped); 2 for bad
//! options (as clap); 1 when the watcher cannot run at all.

mod args;
mod child;
mod events;
mod pid_file;
mod signals;
mod supervise;

use std::process::ExitCode;

pub use args::WatchArgs;

use events::{EventLog, WATCH_STARTED};
use signals::StopSignals;
use supervise::{supervise, Ended};

pub fn main(args: WatchArgs) -> ExitCode {
    crate::logging::init();
    let cfg = match args.validate() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("usher watch: {e}");
            return ExitCode::from(2);
        }
    };
    let mut log = match EventLog::open(cfg.events_file.as_deref(), &cfg.name) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("usher watch: {e}");
            return ExitCode::from(2);
        }
    };
    // One thread: the watcher only waits (for the child, a signal or a timer).
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("usher watch: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        // Before the first start: a signal must never find the watcher
        // without its handlers, or it would die and leave the child behind.
        let mut signals = match StopSignals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("usher watch: cannot catch SIGTERM/SIGINT: {e}");
                return ExitCode::FAILURE;
            }
        };
        let b = &cfg.backoff;
        log.record(
            WATCH_STARTED,
            Some(log.watcher_pid()),
            &format!(
                "watching {:?} {:?} (initial delay {:?}, max delay {:?}, max attempts {}, healthy after {:?})",
                cfg.program, cfg.args, b.initial, b.max, b.max_attempts, b.healthy_after
            ),
        );
        match supervise(&cfg, &mut log, &mut signals).await {
            Ended::ComponentDone | Ended::Signalled(_) => ExitCode::SUCCESS,
        }
    })
}
