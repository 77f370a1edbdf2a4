//! The command loop: runs the control plane's commands one at a time, in
//! the order they came (start, stop, restart a local server; relay a
//! snapshot), raises the matching event, and sends a result for each.
//! At shutdown it stops the servers this agent started.
//!
//! One at a time on purpose: a restart racing a stop of the same server
//! would leave it in a state nobody asked for. A stop may wait up to its
//! grace period for the server to exit; the report loop does not wait with
//! it (see [`crate::process`]).

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use usher_core::channel::{event_type, AgentCommand, CommandKind, CommandResult};
use usher_core::command::Command as WsiCommand;

use super::{relay, Cfg};
use crate::config::{AgentConfig, ServerConfig};
use crate::outbox::Outbox;
use crate::process::Processes;

/// What a command did: its text and, for process commands, the PID.
type Outcome = Result<(String, Option<u32>), String>;

/// The local server a command names.
pub fn server<'a>(cfg: &'a AgentConfig, name: &str) -> Result<&'a ServerConfig, String> {
    cfg.servers
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("server: no local server named {name}"))
}

/// The result sent back for command `id`.
pub fn result(id: u64, outcome: Outcome) -> CommandResult {
    match outcome {
        Ok((text, pid)) => CommandResult {
            id,
            ok: true,
            text,
            pid,
        },
        Err(text) => CommandResult {
            id,
            ok: false,
            text,
            pid: None,
        },
    }
}

/// Runs one command.
pub async fn execute(
    cfg: &AgentConfig,
    processes: &Processes,
    outbox: &Outbox,
    kind: &CommandKind,
) -> Outcome {
    match kind {
        CommandKind::StartServer { server: name } => {
            let pid = processes.start(server(cfg, name)?)?;
            outbox.event(
                name,
                event_type::SERVER_STARTED,
                format!("server {name} started, pid {pid}"),
            );
            Ok((format!("started {name}"), Some(pid)))
        }
        CommandKind::StopServer {
            server: name,
            signal,
        } => {
            let pid = processes
                .stop(server(cfg, name)?, signal.as_deref())
                .await?;
            outbox.event(
                name,
                event_type::SERVER_STOPPED,
                format!("server {name} (pid {pid}) stopped"),
            );
            Ok((format!("stopped {name}"), Some(pid)))
        }
        CommandKind::RestartServer { server: name } => {
            let pid = processes.restart(server(cfg, name)?).await?;
            outbox.event(
                name,
                event_type::SERVER_STARTED,
                format!("server {name} restarted, pid {pid}"),
            );
            Ok((format!("restarted {name}"), Some(pid)))
        }
        CommandKind::RelaySnapshot {
            server: name,
            snapshot,
        } => {
            let cmd = WsiCommand::Snapshot {
                snapshot: snapshot.clone(),
            };
            let text = relay::relay(server(cfg, name)?, &cmd).await?;
            Ok((text, None))
        }
    }
}

/// Runs commands from `rx` until `stop` turns true or the channel closes;
/// then stops the servers this agent started.
pub async fn run(
    cfg: Cfg,
    processes: Arc<Processes>,
    outbox: Arc<Outbox>,
    mut rx: mpsc::UnboundedReceiver<AgentCommand>,
    results: mpsc::UnboundedSender<CommandResult>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let cmd = tokio::select! {
            _ = stop.changed() => if *stop.borrow() { break } else { continue },
            c = rx.recv() => match c { Some(c) => c, None => break },
        };
        let outcome = execute(&cfg, &processes, &outbox, &cmd.kind).await;
        if let Err(text) = &outcome {
            tracing::warn!("command {} failed: {text}", cmd.id);
        }
        if results.send(result(cmd.id, outcome)).is_err() {
            tracing::debug!("command result dropped: channel gone");
        }
    }
    processes.stop_all(&cfg.servers).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Spool;

    fn cfg() -> AgentConfig {
        AgentConfig::parse(
            "data_dir = \"/tmp\"\ncontrol_url = \"ws://127.0.0.1:9\"\ntoken = \"test-token\"\n[[servers]]\nname = \"s\"\nurl = \"http://127.0.0.1:1\"\nstart = [\"sleep\", \"30\"]\n",
        )
        .expect("cfg")
    }

    #[test]
    fn results_say_ok_or_why_not() {
        let ok = result(7, Ok(("started s".into(), Some(42))));
        assert!(ok.ok && ok.pid == Some(42) && ok.id == 7);
        let bad = result(8, Err("server: no local server named x".into()));
        assert!(!bad.ok && bad.pid.is_none() && bad.text.contains("named x"));
    }

    #[tokio::test]
    async fn start_stop_and_unknown_servers() {
        let cfg = cfg();
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), 1 << 20).expect("spool");
        let (outbox, thread) = Outbox::start(spool, "a".into()).expect("outbox");
        let p = Processes::default();
        let start = CommandKind::StartServer { server: "s".into() };
        let (_, pid) = execute(&cfg, &p, &outbox, &start).await.expect("start");
        assert_eq!(pid, p.pid("s"));
        let stop = CommandKind::StopServer {
            server: "s".into(),
            signal: Some("KILL".into()),
        };
        assert_eq!(
            execute(&cfg, &p, &outbox, &stop).await.expect("stop").1,
            pid
        );
        let err = execute(
            &cfg,
            &p,
            &outbox,
            &CommandKind::StartServer { server: "x".into() },
        )
        .await
        .expect_err("unknown");
        assert!(err.contains("no local server named x"), "{err}");
        // Two events: started, stopped.
        let mut n = 0;
        while n < 2 {
            n = outbox.after(0, 10).await.len();
            tokio::task::yield_now().await;
        }
        outbox.close().await;
        thread.join();
    }
}
