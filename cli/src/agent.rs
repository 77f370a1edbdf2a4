//! `usher agent --config agent.toml`: runs the per-host agent until
//! SIGINT/SIGTERM (docs/agent.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's config file (TOML); see docs/agent.md and agent.example.toml.
    #[arg(long, short, default_value = "agent.toml")]
    config: PathBuf,
}

pub fn main(args: AgentArgs) -> ExitCode {
    crate::logging::init();
    let cfg = match usher_agent::AgentConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("usher agent: {e}");
            return ExitCode::from(2);
        }
    };
    // Two workers: the agent is small and must not compete with the web
    // servers on its host.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("usher-agent")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("usher agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(usher_agent::run(cfg, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("usher agent: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                r = tokio::signal::ctrl_c() => if let Err(e) = r {
                    tracing::error!("cannot watch SIGINT: {e}");
                    std::future::pending::<()>().await;
                },
            }
        }
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
