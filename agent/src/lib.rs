//! usher-agent: the per-host agent (see `docs/agent.md`).
//!
//! Record sources ([`ring_reader`], [`batch_receiver`]) feed the record sink
//! ([`records`]); the task loops ([`tasks`]: rings, probes, reports,
//! commands, relay) are wired by [`run`]; everything sent goes through the
//! [`outbox`] into the [`spool`] (on its own thread) and out over the
//! [`channel`].
#![deny(unsafe_code)]

pub mod ring_reader;

pub mod batch_receiver;
pub mod channel;
pub mod config;
pub mod host_facts;
pub mod host_metrics;
pub mod outbox;
pub mod probe;
pub mod process;
pub mod records;
pub mod run;
pub mod signal;
pub mod spool;
pub mod tasks;
pub mod tls;
mod util;

pub use config::AgentConfig;
pub use run::{run, start, AgentError, AgentHandle, Running};
pub(crate) use util::{lock, now_us};

pub use ring_reader::{DrainCounts, ReaderError, RingReader};
