//! usher-agent: the per-host agent.
//!
//! So far it holds the reader side of the record channel: the shared-memory
//! rings the nginx module writes one record per request into
//! ([`ring_reader`]), and the `usher-ring-drain` tool built on it.
#![deny(unsafe_code)]

pub mod ring_reader;

pub use ring_reader::{DrainCounts, ReaderError, RingReader};
