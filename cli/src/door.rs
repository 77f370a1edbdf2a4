//! `usher door`: runs the built-in front door as its own process until
//! SIGINT/SIGTERM (see docs/operations.md, "Front doors that outlive the
//! control plane").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct DoorArgs {
    /// The door's config file (TOML); see docs/configuration.md, "usher door".
    #[arg(long, short, default_value = "door.toml")]
    config: PathBuf,
}

pub fn main(args: DoorArgs) -> ExitCode {
    crate::logging::init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("usher-door")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("usher door: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(usher_control_plane::door::run(&args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usher door: {e}");
            ExitCode::FAILURE
        }
    }
}
