//! `usher control`: runs the control plane until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The config file (TOML); see docs/configuration.md.
    #[arg(long, short, default_value = "usher.toml")]
    config: PathBuf,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn main(args: ControlArgs) -> ExitCode {
    crate::logging::init();
    // One thread: a current-thread runtime (no work-stealing overhead).
    let mut rt = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    rt.enable_all().thread_name("usher-control");
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("usher control: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(usher_control_plane::run(&args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usher control: {e}");
            ExitCode::FAILURE
        }
    }
}
