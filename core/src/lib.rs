//! usher-core: the logic every usher host shares, with no I/O.
//!
//! The nginx module, the Envoy filter, the agent and the control plane all
//! call into this crate, so a rule is written once and every host agrees on
//! it. Time and randomness are passed in by the caller; nothing here reads a
//! clock, a socket or a file, and the crate builds for `wasm32-wasip1`.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod channel;
pub mod command;
pub mod dynamic_load;
pub mod front_door;
pub mod load_metric;
pub mod model;
pub mod probe;
pub mod record;
pub mod ring;
pub mod rules;
pub mod selection;
pub mod self_marked;
pub mod snapshot;
pub mod sorry;
pub mod steering;
pub mod token;
pub mod trend;
pub mod version;
pub mod watch_events;

pub use command::{Applied, Command, Echoed, ErrorReply};
pub use dynamic_load::{dynamic_load_from_delay, DYNAMIC_LOAD_MAX};
pub use front_door::{FrontDoor, FrontDoorServer, Pick};
pub use load_metric::{bump, load_metric, scale_capacity};
pub use model::{AppMode, ModelError};
pub use record::{decode_batch, encode_batch, DecodeError, Field, FieldMask, RequestRecord};
pub use rules::RedirectRules;
pub use selection::IntervalTable;
pub use self_marked::{marks_stateful, SelfMarked, SELF_MARK_HEADER};
pub use snapshot::{AppView, RedirectOrder, ServerView, Snapshot, SnapshotError, WsiOrders};
pub use sorry::{BUILT_IN_SORRY_PAGE, MAX_SORRY_PAGE_BYTES};
pub use steering::Outcome as SteeringOutcome;
pub use token::{bearer_matches, token_eq, token_is_acceptable};
pub use version::{admit, Accepted, Refused};
