//! usher-agent: the per-host agent.
//!
//! So far it holds the reader side of the record channel: the shared-memory
//! rings the nginx module writes one record per request into
//! ([`ring_reader`]), and the `usher-ring-drain` tool built on it.
#![deny(unsafe_code)]

pub mod ring_reader;

// The agent proper: one file per collector, the spool, the control channel.
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
pub mod spool;
mod util;

pub use config::AgentConfig;
pub use run::{run, start, AgentError, AgentHandle, Running};
pub(crate) use util::{lock, now_us};

pub use ring_reader::{DrainCounts, ReaderError, RingReader};
