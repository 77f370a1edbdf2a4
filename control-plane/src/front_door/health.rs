//! Passive health of one front door's servers (outlier detection, as in
//! Envoy): a server that times out, refuses or breaks a connection, or
//! answers `eject_after_5xx` 5xx in a row leaves this door's rotation at
//! once for `eject_ms` (longer each time it is ejected again without a
//! good answer in between, up to `max_eject_ms`), then comes back.
//!
//! Pure bookkeeping: the caller passes the time (seconds on its monotonic
//! clock) and how many other servers are still in rotation; a server is
//! never ejected when it is the last one.

use std::collections::HashMap;
use std::sync::Arc;

use super::config::FrontDoorConfig;

/// Event type: a front door took a server out of its rotation.
pub const SERVER_EJECTED: (u32, &str) = (212, "server_ejected");
/// Event type: an ejected server is back in a front door's rotation.
pub const SERVER_RETURNED: (u32, &str) = (213, "server_returned");

/// How one proxied request to a server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status.
    Answered(u16),
    /// No connection (refused, unreachable, connect timeout): nothing sent.
    ConnectFailed,
    /// The connection broke (reset, closed) before the answer head.
    Broken,
    /// No answer head within the bound.
    TimedOut,
}

impl Outcome {
    fn describe(self, fives: u32, timeout_ms: u64) -> String {
        match self {
            Outcome::Answered(_) => format!("{fives} 5xx answers in a row"),
            Outcome::ConnectFailed => "connection failed".into(),
            Outcome::Broken => "connection broken before the answer".into(),
            Outcome::TimedOut => format!("no answer within {timeout_ms} ms"),
        }
    }
}

/// A change of a server's place in the rotation, to be logged as an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Ejected {
        server: Arc<str>,
        for_ms: u64,
        why: String,
    },
    Returned {
        server: Arc<str>,
        after_ms: u64,
    },
}

#[derive(Debug, Default, Clone)]
struct Record {
    /// 5xx answers in a row.
    fives: u32,
    /// Ejections without a good answer in between.
    in_a_row: u32,
    /// `(since, until)` while ejected.
    ejected: Option<(f64, f64)>,
}

/// Passive health of one door's servers, by server name (it survives the
/// door's rebuilds).
#[derive(Debug, Clone)]
pub struct Health {
    policy: FrontDoorConfig,
    servers: HashMap<Arc<str>, Record>,
}

impl Health {
    pub fn new(policy: FrontDoorConfig) -> Health {
        Health {
            policy,
            servers: HashMap::new(),
        }
    }

    /// True while `server` is out of rotation.
    pub fn is_ejected(&self, server: &str) -> bool {
        self.servers
            .get(server)
            .is_some_and(|r| r.ejected.is_some())
    }

    /// True when any server is out of rotation.
    pub fn any_ejected(&self) -> bool {
        self.servers.values().any(|r| r.ejected.is_some())
    }

    /// Books how a request to `server` ended at `now`. `others` is how
    /// many other servers of the door are in rotation: with none, the
    /// server stays (the app is never left without a server).
    pub fn report(
        &mut self,
        server: &Arc<str>,
        outcome: Outcome,
        now: f64,
        others: usize,
    ) -> Option<Change> {
        let policy = &self.policy;
        let r = self.servers.entry(server.clone()).or_default();
        let eject = match outcome {
            Outcome::Answered(s) if s < 500 => {
                r.fives = 0;
                r.in_a_row = 0;
                false
            }
            Outcome::Answered(_) => {
                r.fives = r.fives.saturating_add(1);
                policy.eject_after_5xx > 0 && r.fives >= policy.eject_after_5xx
            }
            Outcome::ConnectFailed | Outcome::Broken | Outcome::TimedOut => true,
        };
        // Requests already in flight when it left end here too: no news.
        if !eject || policy.eject_ms == 0 || r.ejected.is_some() || others == 0 {
            return None;
        }
        r.in_a_row = r.in_a_row.saturating_add(1);
        let for_ms = policy
            .eject_ms
            .saturating_mul(u64::from(r.in_a_row))
            .min(policy.max_eject_ms.max(policy.eject_ms));
        r.ejected = Some((now, now + for_ms as f64 / 1000.0));
        let why = outcome.describe(r.fives, policy.upstream_timeout_ms);
        r.fives = 0;
        Some(Change::Ejected {
            server: server.clone(),
            for_ms,
            why,
        })
    }

    /// Brings back every server whose ejection is over at `now`.
    pub fn sweep(&mut self, now: f64) -> Vec<Change> {
        let mut back = Vec::new();
        for (name, r) in &mut self.servers {
            if let Some((since, until)) = r.ejected {
                if now >= until {
                    r.ejected = None;
                    back.push(Change::Returned {
                        server: name.clone(),
                        after_ms: ((now - since) * 1000.0).round().max(0.0) as u64,
                    });
                }
            }
        }
        back
    }

    /// Forgets servers the door no longer has.
    pub fn retain(&mut self, names: &[Arc<str>]) {
        self.servers.retain(|n, _| names.contains(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(FrontDoorConfig {
            upstream_timeout_ms: 1000,
            eject_after_5xx: 3,
            eject_ms: 10_000,
            max_eject_ms: 25_000,
            ..FrontDoorConfig::default()
        })
    }

    fn ejected_for(c: Option<Change>) -> u64 {
        match c {
            Some(Change::Ejected { for_ms, .. }) => for_ms,
            other => panic!("expected an ejection, got {other:?}"),
        }
    }

    #[test]
    fn consecutive_5xx_eject_and_a_good_answer_resets() {
        let mut h = health();
        let a: Arc<str> = Arc::from("a");
        assert_eq!(h.report(&a, Outcome::Answered(500), 0.0, 2), None);
        assert_eq!(h.report(&a, Outcome::Answered(503), 0.0, 2), None);
        assert_eq!(h.report(&a, Outcome::Answered(200), 0.0, 2), None);
        assert_eq!(h.report(&a, Outcome::Answered(502), 0.0, 2), None);
        assert_eq!(h.report(&a, Outcome::Answered(404), 0.0, 2), None);
        assert_eq!(h.report(&a, Outcome::Answered(500), 1.0, 2), None);
        assert_eq!(h.report(&a, Outcome::Answered(500), 1.0, 2), None);
        match h.report(&a, Outcome::Answered(500), 1.0, 2) {
            Some(Change::Ejected { for_ms, why, .. }) => {
                assert_eq!(for_ms, 10_000);
                assert_eq!(why, "3 5xx answers in a row");
            }
            other => panic!("{other:?}"),
        }
        assert!(h.is_ejected("a") && h.any_ejected() && !h.is_ejected("b"));
    }

    #[test]
    fn a_timeout_ejects_at_once_and_the_server_returns_after_eject_ms() {
        let mut h = health();
        let b: Arc<str> = Arc::from("b");
        match h.report(&b, Outcome::TimedOut, 5.0, 1) {
            Some(Change::Ejected { for_ms, why, .. }) => {
                assert_eq!(for_ms, 10_000);
                assert_eq!(why, "no answer within 1000 ms");
            }
            other => panic!("{other:?}"),
        }
        // Requests that were in flight end too: no second ejection.
        assert_eq!(h.report(&b, Outcome::TimedOut, 5.5, 1), None);
        assert!(h.sweep(14.9).is_empty());
        assert!(h.is_ejected("b"));
        assert_eq!(
            h.sweep(15.0),
            vec![Change::Returned {
                server: b.clone(),
                after_ms: 10_000
            }]
        );
        assert!(!h.is_ejected("b") && !h.any_ejected());
        // Ejected again with no good answer in between: twice as long,
        // then capped; a good answer starts over.
        assert_eq!(ejected_for(h.report(&b, Outcome::Broken, 20.0, 1)), 20_000);
        h.sweep(40.0);
        assert_eq!(
            ejected_for(h.report(&b, Outcome::ConnectFailed, 41.0, 1)),
            25_000
        );
        h.sweep(66.0);
        assert_eq!(h.report(&b, Outcome::Answered(200), 67.0, 1), None);
        assert_eq!(
            ejected_for(h.report(&b, Outcome::TimedOut, 68.0, 1)),
            10_000
        );
    }

    #[test]
    fn the_last_server_in_rotation_is_never_ejected() {
        let mut h = health();
        let c: Arc<str> = Arc::from("c");
        for _ in 0..10 {
            assert_eq!(h.report(&c, Outcome::TimedOut, 0.0, 0), None);
        }
        assert!(!h.is_ejected("c"));
        // Once another server is back in rotation, it goes.
        assert_eq!(ejected_for(h.report(&c, Outcome::TimedOut, 1.0, 1)), 10_000);
    }

    #[test]
    fn eject_ms_zero_switches_ejection_off_and_retain_forgets() {
        let mut h = Health::new(FrontDoorConfig {
            eject_ms: 0,
            max_eject_ms: 0,
            ..FrontDoorConfig::default()
        });
        let a: Arc<str> = Arc::from("a");
        assert_eq!(h.report(&a, Outcome::TimedOut, 0.0, 3), None);
        let mut h = health();
        assert!(h.report(&a, Outcome::TimedOut, 0.0, 3).is_some());
        h.retain(&[Arc::from("b")]);
        assert!(!h.is_ejected("a"));
    }
}
