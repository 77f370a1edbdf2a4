//! Which snapshot versions a web server interface accepts: the one rule the
//! nginx module and the Envoy filter share, so that no version can wedge a
//! WSI.
//!
//! The control plane's versions are `max(previous + 1, unix ms)`, so a true
//! version is never far ahead of the wall clock. With `limit = now_ms +
//! MAX_AHEAD_MS` (24 h), where `now_ms` is the WSI's own wall clock in unix
//! milliseconds (passed in: this crate reads no clock):
//!
//! 1. a version above `limit` is refused: 400, `{"error":"snapshot.version:
//!    … ahead of this host's clock …"}`, nothing changes;
//! 2. otherwise a version above the applied one is accepted (the usual rule);
//! 3. otherwise, if the applied version is itself above `limit` (it was
//!    pushed before this rule existed, or the clock jumped back), the version
//!    is accepted anyway and replaces it, so the control plane can always
//!    bring a WSI back under its clock;
//! 4. otherwise it is stale: 409 `{"error":"stale version","current":N}`.
//!
//! A far-ahead `current` in a 409 can therefore only come from a WSI that
//! predates this rule; the control plane does not follow it
//! ([`is_far_ahead`] with its own clock).

use crate::command::ErrorReply;

/// How far ahead of the WSI's wall clock a snapshot version may be: 24 h in
/// milliseconds.
pub const MAX_AHEAD_MS: u64 = 24 * 60 * 60 * 1000;

/// The highest version acceptable at `now_ms` (unix ms).
pub fn limit(now_ms: u64) -> u64 {
    now_ms.saturating_add(MAX_AHEAD_MS)
}

/// True when `version` is more than [`MAX_AHEAD_MS`] ahead of `now_ms`.
pub fn is_far_ahead(version: u64, now_ms: u64) -> bool {
    version > limit(now_ms)
}

/// Why a version is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Above the applied version (rule 2).
    Newer,
    /// Not above the applied version, which was itself beyond the bound and
    /// is replaced (rule 3).
    Recovers { from: u64 },
}

/// Why a version is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Rule 1: more than [`MAX_AHEAD_MS`] ahead of the host's clock.
    #[error(
        "snapshot.version: {version} is more than 24 h ahead of this host's clock \
         (at most {limit} now)"
    )]
    TooFarAhead { version: u64, limit: u64 },
    /// Rule 4: not above the applied version.
    #[error("stale version (current {current})")]
    Stale { current: u64 },
}

impl Refused {
    /// The HTTP status of the refusal: 400 or 409.
    pub fn status(&self) -> u16 {
        match self {
            Refused::TooFarAhead { .. } => 400,
            Refused::Stale { .. } => 409,
        }
    }

    /// The JSON body of the refusal.
    pub fn reply(&self) -> ErrorReply {
        match *self {
            Refused::TooFarAhead { .. } => ErrorReply::new(self.to_string()),
            Refused::Stale { current } => ErrorReply::stale(current),
        }
    }
}

/// Decides whether a WSI holding `current` (0: none) applies `version` when
/// its wall clock reads `now_ms` unix milliseconds. See the module doc.
pub fn admit(version: u64, current: u64, now_ms: u64) -> Result<Accepted, Refused> {
    let limit = limit(now_ms);
    if version > limit {
        Err(Refused::TooFarAhead { version, limit })
    } else if version > current {
        Ok(Accepted::Newer)
    } else if current > limit {
        Ok(Accepted::Recovers { from: current })
    } else {
        Err(Refused::Stale { current })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::to_json;
    use proptest::prelude::*;

    /// 2024-01-01T00:00:00Z in unix ms.
    const NOW: u64 = 1_704_067_200_000;
    const DAY: u64 = MAX_AHEAD_MS;

    #[test]
    fn worked_examples() {
        // The usual rule.
        assert_eq!(admit(NOW, 0, NOW), Ok(Accepted::Newer));
        assert_eq!(admit(NOW + 1, NOW, NOW), Ok(Accepted::Newer));
        assert_eq!(admit(NOW, NOW, NOW), Err(Refused::Stale { current: NOW }));
        assert_eq!(
            admit(NOW - 5, NOW, NOW),
            Err(Refused::Stale { current: NOW })
        );
        // Exactly 24 h ahead is still fine; one ms more is not.
        assert_eq!(admit(NOW + DAY, NOW, NOW), Ok(Accepted::Newer));
        assert_eq!(
            admit(NOW + DAY + 1, NOW, NOW),
            Err(Refused::TooFarAhead {
                version: NOW + DAY + 1,
                limit: NOW + DAY
            })
        );
        // The measured wedge: u64::MAX is refused, whatever is applied.
        for current in [0, NOW, u64::MAX] {
            assert!(matches!(
                admit(u64::MAX, current, NOW),
                Err(Refused::TooFarAhead { .. })
            ));
        }
        // A WSI already wedged at u64::MAX takes any version within the bound,
        // even an old one, and is then back under the usual rule.
        assert_eq!(
            admit(NOW, u64::MAX, NOW),
            Ok(Accepted::Recovers { from: u64::MAX })
        );
        assert_eq!(
            admit(7, NOW + DAY + 1, NOW),
            Ok(Accepted::Recovers {
                from: NOW + DAY + 1
            })
        );
        assert_eq!(admit(NOW + 1, NOW, NOW), Ok(Accepted::Newer));
        // A clock at the end of time never overflows.
        assert_eq!(admit(u64::MAX, 3, u64::MAX), Ok(Accepted::Newer));
    }

    #[test]
    fn refusals_map_to_the_wire() {
        let far = admit(u64::MAX, 0, NOW).expect_err("refused");
        assert_eq!(far.status(), 400);
        let body = String::from_utf8(to_json(&far.reply())).expect("utf-8");
        assert!(
            body.starts_with(r#"{"error":"snapshot.version: "#),
            "{body}"
        );
        assert!(body.contains("18446744073709551615"), "{body}");
        assert!(!body.contains("current"), "{body}");
        let stale = admit(1, 2, NOW).expect_err("refused");
        assert_eq!(stale.status(), 409);
        assert_eq!(
            to_json(&stale.reply()),
            br#"{"error":"stale version","current":2}"#
        );
        assert!(is_far_ahead(u64::MAX, NOW) && !is_far_ahead(NOW + DAY, NOW));
    }

    /// A version anywhere (`near` false) or within two days of `now`, where
    /// the bound is.
    fn around(now: u64, near: bool, raw: u64) -> u64 {
        if near {
            now.saturating_sub(2 * DAY).saturating_add(raw % (4 * DAY))
        } else {
            raw
        }
    }

    proptest! {
        /// Nothing beyond the bound is ever applied; anything within it is
        /// applied whenever the applied version is beyond it (no wedge); and
        /// otherwise exactly the newer versions are applied.
        #[test]
        fn never_wedged(
            now in 0u64..u64::MAX / 2,
            v: (bool, u64),
            c: (bool, u64),
        ) {
            let (version, current) = (around(now, v.0, v.1), around(now, c.0, c.1));
            let out = admit(version, current, now);
            if version > now + DAY {
                prop_assert_eq!(out, Err(Refused::TooFarAhead { version, limit: now + DAY }));
            } else if current > now + DAY {
                prop_assert!(out.is_ok());
            } else {
                prop_assert_eq!(out.is_ok(), version > current);
            }
            if out.is_ok() {
                // What is applied next is within the bound, so the control
                // plane's clock can always pass it.
                prop_assert!(!is_far_ahead(version, now));
            }
        }
    }
}
