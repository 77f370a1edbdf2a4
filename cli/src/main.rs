//! `usher`: one binary for every usher component.
//!
//! * `usher control --config usher.toml`: the control plane;
//! * `usher agent --config agent.toml`: the per-host agent;
//! * `usher door --config door.toml`: the built-in front door as its own
//!   process, fed snapshots by the control plane;
//! * `usher ctl …`: the operator's command line over the admin API;
//! * `usher watch [OPTIONS] -- CMD [ARGS…]`: runs a component as its child
//!   and restarts it when it fails (docs/watch.md).
#![forbid(unsafe_code)]

mod agent;
mod control;
mod ctl;
mod door;
mod logging;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// usher: run a fleet of web servers as one service.
#[derive(Debug, Parser)]
#[command(
    name = "usher",
    version,
    about = "usher: run a fleet of web servers as one service (docs/ in the repository)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane (admin API, front doors, snapshot pushes).
    Control(control::ControlArgs),
    /// Run the per-host agent (measures, probes, reports to the control plane).
    Agent(agent::AgentArgs),
    /// Talk to a running control plane's admin API.
    Ctl(Box<ctl::CtlArgs>),
    /// Run the built-in front door as its own process (outlives the control plane).
    Door(door::DoorArgs),
    /// Run a component as a child and restart it when it fails (with back-off).
    Watch(watch::WatchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Control(args) => control::main(args),
        Command::Agent(args) => agent::main(args),
        Command::Ctl(args) => ctl::main(*args),
        Command::Door(args) => door::main(args),
        Command::Watch(args) => watch::main(args),
    }
}
