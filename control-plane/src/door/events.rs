//! Events of a separate front door (a server ejected from or returned to
//! its rotation) on their way to the control plane. The door keeps them in
//! a bounded queue and hands them over in its answer to the next snapshot
//! push, `{"applied":N,"events":[...]}` (the control plane reads answers
//! leniently, so the nginx and Envoy front doors, which send no events,
//! are unaffected). While the control plane is away the queue fills up to
//! [`QUEUE_MAX`]; older events beyond that are dropped and counted.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::front_door::{DoorEvent, SERVER_EJECTED, SERVER_RETURNED};

/// Events kept while nobody collects them.
pub const QUEUE_MAX: usize = 1000;
/// Events handed over in one answer (keeps the answer well under the
/// control plane's 64 KiB cap on a WSI's answer).
pub const PER_ANSWER: usize = 100;

/// One event as it travels in an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEvent {
    /// The server the event is about.
    pub origin: String,
    /// Event number (212 or 213).
    pub code: u32,
    pub text: String,
}

impl WireEvent {
    pub fn from_door(e: &DoorEvent) -> WireEvent {
        WireEvent {
            origin: e.origin.clone(),
            code: e.kind.0,
            text: e.text.clone(),
        }
    }

    /// Back into a [`DoorEvent`]; `None` for a number a door does not raise
    /// (so a door's answer cannot log arbitrary events).
    pub fn into_door(self) -> Option<DoorEvent> {
        let kind = [SERVER_EJECTED, SERVER_RETURNED]
            .into_iter()
            .find(|k| k.0 == self.code)?;
        Some(DoorEvent {
            origin: self.origin.chars().take(64).collect(),
            kind,
            text: self.text.chars().take(500).collect(),
        })
    }
}

/// The answer to a snapshot the door applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedWithEvents {
    pub applied: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<WireEvent>,
}

/// The door's bounded queue of events not yet handed over.
#[derive(Debug, Default)]
pub struct EventQueue {
    queue: VecDeque<WireEvent>,
    /// Events dropped because the queue was full.
    pub dropped: u64,
}

impl EventQueue {
    pub fn push(&mut self, e: WireEvent) {
        if self.queue.len() >= QUEUE_MAX {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(e);
    }

    /// Takes up to [`PER_ANSWER`] of the oldest events.
    pub fn take(&mut self) -> Vec<WireEvent> {
        if self.is_empty() {
            return Vec::new();
        }
        let n = self.queue.len().min(PER_ANSWER);
        self.queue.drain(..n).collect()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> WireEvent {
        WireEvent {
            origin: format!("s{i}"),
            code: 212,
            text: "t".into(),
        }
    }

    #[test]
    fn bounded_oldest_first_in_answer_sized_pieces() {
        let mut q = EventQueue::default();
        for i in 0..QUEUE_MAX + 5 {
            q.push(ev(i));
        }
        assert_eq!((q.len(), q.dropped), (QUEUE_MAX, 5));
        let first = q.take();
        assert_eq!(first.len(), PER_ANSWER);
        assert_eq!(first[0].origin, "s5");
        assert_eq!(q.len(), QUEUE_MAX - PER_ANSWER);
    }

    #[test]
    fn only_door_events_come_back() {
        let e = WireEvent { code: 212, ..ev(1) }.into_door().expect("212");
        assert_eq!(e.kind, SERVER_EJECTED);
        assert!(WireEvent { code: 213, ..ev(1) }.into_door().is_some());
        assert_eq!(WireEvent { code: 201, ..ev(1) }.into_door(), None);
        let body = serde_json::to_string(&AppliedWithEvents {
            applied: 5,
            events: vec![],
        })
        .expect("json");
        assert_eq!(body, r#"{"applied":5}"#);
    }
}
