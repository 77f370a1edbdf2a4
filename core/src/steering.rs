//! In-band steering for proxy-mode front doors: what one front door (one
//! worker) learns of each server from its own proxied requests, and the rule
//! that turns it and the manager's weights into a pick.
//!
//! The rule (why: `docs/steering.md`):
//!
//! * **Candidates**: two servers drawn at random in proportion to the
//!   manager's weights (the load metric: other front doors, traffic that
//!   bypasses this one, probes' queue delay, errors, host load), plus the
//!   server that was cheapest at the previous pick (power of two choices
//!   with memory: it approaches "the cheapest of all" at the price of two).
//! * **Cost** of a candidate: `estimate × (1 + in flight / weight)`, where
//!   `estimate` is an asymmetric EWMA of this door's answer times from the
//!   server (a slower answer moves it [`RISE_WEIGHT`] of the way at once, a
//!   faster one folds in over [`DECAY_SECS`]), `in flight` this door's
//!   requests to it not answered
//!   yet, and `weight` the manager's weight over the largest one (0..1]:
//!   in flight counts per unit of weight, so a server the manager weighs
//!   three times as much may hold three times as many at the same cost.
//! * **Hot or cold** (after Prequal): the first draw is taken unless it is
//!   hot: its estimate more than [`HOT_FACTOR`] times (and [`NOISE_SECS`]
//!   above) the fastest candidate's, or its in flight more than
//!   [`HOT_FACTOR`] times (and [`IN_FLIGHT_SLACK`] above) its fair part
//!   of the door's in flight (by weight). A hot first draw gives way to
//!   the cheapest candidate. While the door sees no clear difference the
//!   picks follow the manager's weights exactly (slow start, long-term
//!   loads and offload keep their shares); a slow, stalled or queueing
//!   server loses its share at once.
//! * **No false idleness**: a server that answered nothing lately keeps
//!   its estimate (sliding toward the typical one of the other servers over
//!   [`FORGET_SECS`], so a server once slow is tried again within seconds),
//!   and while it holds requests
//!   without answering, the time since its last answer counts as its
//!   estimate when that is larger (a hung server looks slower by the
//!   millisecond, never idle).
//! * **Failures cost**: an answer that failed (5xx, refused, timed out)
//!   counts as at least twice the estimate, so a server answering fast
//!   errors loses share instead of drawing it.
//!
//! Everything is per worker and single-threaded: no lock, no atomics.

/// Time constant with which answers faster than the estimate fold in.
pub const DECAY_SECS: f64 = 2.0;

/// Time constant with which an estimate nobody refreshes slides toward the
/// typical estimate of the app's other servers. Short, because a hot server
/// gets no answers to refresh it: it must come back into the draw soon to be
/// measured again (an estimate that lingered for tens of seconds after one
/// slow answer kept a healthy server out of rotation).
pub const FORGET_SECS: f64 = 2.0;

/// Part of the way toward a slower answer the estimate moves at once: one
/// answer 20x slower makes a server hot, one scheduling hiccup (a few
/// times slower) does not.
pub const RISE_WEIGHT: f64 = 0.25;

/// How many times dearer than the cheapest candidate the first draw must
/// be before the door overrides the manager's weights.
pub const HOT_FACTOR: f64 = 2.0;

/// Cost differences smaller than this (seconds) are noise: a 1 ms jitter
/// on sub-millisecond answers never moves users.
pub const NOISE_SECS: f64 = 0.001;

/// In-flight differences this small are noise: a server holds up to
/// [`HOT_FACTOR`] times its fair part of the door's requests plus this
/// many before it is hot.
pub const IN_FLIGHT_SLACK: f64 = 2.0;

/// Smallest estimate (1 µs): keeps costs comparable and never zero.
const MIN_ESTIMATE_SECS: f64 = 1e-6;

/// How one proxied request ended, for the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered (any status below 500).
    Answered,
    /// The server failed: a 5xx, a refused or broken connection, a timeout.
    Failed,
    /// The client went away before the answer: only the in-flight count
    /// changes (how long the server took is unknown).
    Abandoned,
}

impl Outcome {
    /// How a request whose answer had `status` ended: 500 and above
    /// failed (a proxy's own 502/504 included); 0 (no answer) and 499 (the
    /// client went away, as nginx logs it) were abandoned.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            0 | 499 => Outcome::Abandoned,
            s if s >= 500 => Outcome::Failed,
            _ => Outcome::Answered,
        }
    }
}

/// What one front door learned of one server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Feedback {
    /// Requests this door sent to the server, not finished yet.
    pub in_flight: u32,
    /// Asymmetric EWMA of answer times, seconds; `None` until the first
    /// answer.
    estimate: Option<f64>,
    /// When `estimate` last took an answer in.
    estimated_at: f64,
    /// Last answer, or when `in_flight` last rose from 0.
    progress_at: f64,
}

impl Feedback {
    /// A request was sent to the server at `now`.
    pub fn started(&mut self, now: f64) {
        if self.in_flight == 0 {
            self.progress_at = now;
        }
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// A request sent at `now - took` finished at `now`.
    pub fn finished(&mut self, now: f64, took: f64, outcome: Outcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let took = if took.is_finite() { took.max(0.0) } else { 0.0 };
        let observed = match outcome {
            Outcome::Abandoned => return,
            Outcome::Answered => took,
            Outcome::Failed => took.max(2.0 * self.estimate.unwrap_or(took)),
        };
        self.progress_at = now;
        let observed = observed.max(MIN_ESTIMATE_SECS);
        self.estimate = Some(match self.estimate {
            Some(e) if observed < e => {
                let keep = (-(now - self.estimated_at).max(0.0) / DECAY_SECS).exp();
                e * keep + observed * (1.0 - keep)
            }
            Some(e) => e + RISE_WEIGHT * (observed - e),
            None => observed,
        });
        self.estimated_at = now;
    }

    /// The learned estimate alone (seconds), for views and tests.
    pub fn learned(&self) -> Option<f64> {
        self.estimate
    }

    /// The estimate to use at `now` (seconds): the learned one sliding
    /// toward `typical` while nothing refreshes it (`typical` when nothing
    /// was learned), raised to the time since the last answer while
    /// requests are outstanding.
    pub fn estimate(&self, now: f64, typical: f64) -> f64 {
        let learned = match self.estimate {
            Some(e) => {
                let idle = (now - self.estimated_at).max(0.0);
                typical + (e - typical) * (-idle / FORGET_SECS).exp()
            }
            None => typical,
        };
        let stalled = if self.in_flight > 0 {
            (now - self.progress_at).max(0.0)
        } else {
            0.0
        };
        learned.max(stalled).max(MIN_ESTIMATE_SECS)
    }
}

/// The typical estimate of an app's servers as one door knows them: the
/// learned estimates of the servers with a positive weight, summed once per
/// pick so that each candidate's "the others" costs nothing more.
#[derive(Debug, Clone, Copy)]
pub struct Typical {
    sum: f64,
    count: u32,
}

impl Typical {
    /// Over the servers in `feedback` with a usable weight in `weights`.
    pub fn of(feedback: &[Feedback], weights: &[f64]) -> Typical {
        let (sum, count) = feedback
            .iter()
            .zip(weights)
            .filter(|(_, w)| usable(**w))
            .filter_map(|(f, _)| f.estimate)
            .fold((0.0, 0u32), |(s, n), e| (s + e, n + 1));
        Typical { sum, count }
    }

    /// The mean learned estimate of the servers other than `f` (a server
    /// with weight `weight`), what `f`'s own estimate slides toward while
    /// nothing refreshes it: excluding itself, so a slow server does not
    /// hold its own target up. With no other learned estimate: its own,
    /// or 1 s when nothing was learned (then costs reduce to weighted
    /// least-in-flight).
    pub fn excluding(&self, f: &Feedback, weight: f64) -> f64 {
        let (sum, count) = match f.estimate {
            Some(e) if usable(weight) && self.count > 1 => (self.sum - e, self.count - 1),
            Some(e) if usable(weight) => (e, 1),
            _ => (self.sum, self.count),
        };
        if count == 0 {
            1.0
        } else {
            (sum / f64::from(count)).max(MIN_ESTIMATE_SECS)
        }
    }
}

fn usable(weight: f64) -> bool {
    weight.is_finite() && weight > 0.0
}

/// Cost of sending one more request to a server (lower is better);
/// infinite for a server with no weight.
pub fn cost(f: &Feedback, weight: f64, top_weight: f64, now: f64, typical: &Typical) -> f64 {
    if !usable(weight) || !usable(top_weight) {
        return f64::INFINITY;
    }
    let relative = (weight / top_weight).min(1.0);
    f.estimate(now, typical.excluding(f, weight)) * (1.0 + f64::from(f.in_flight) / relative)
}

/// Whether `first` (a candidate with a usable weight) is *hot*: its
/// estimate clearly above the fastest candidate's (more than
/// [`HOT_FACTOR`] times and [`NOISE_SECS`]), or its requests in flight
/// clearly above its fair part of the door's (more than [`HOT_FACTOR`]
/// times and [`IN_FLIGHT_SLACK`]). Both tests compare like with like, so a
/// lightly weighted server is not hot for holding one request.
fn is_hot(
    first: usize,
    usable_candidates: &[usize],
    feedback: &[Feedback],
    weights: &[f64],
    now: f64,
    typical: &Typical,
) -> bool {
    let estimate =
        |i: usize| feedback[i].estimate(now, typical.excluding(&feedback[i], weights[i]));
    let fastest = usable_candidates
        .iter()
        .map(|&i| estimate(i))
        .fold(f64::INFINITY, f64::min);
    if estimate(first) > HOT_FACTOR * fastest + NOISE_SECS {
        return true;
    }
    let (total_weight, door_in_flight) = feedback
        .iter()
        .zip(weights)
        .filter(|(_, w)| usable(**w))
        .fold((0.0, 0.0), |(w_sum, n), (f, w)| {
            (w_sum + w, n + f64::from(f.in_flight))
        });
    let fair = door_in_flight * weights[first] / total_weight;
    f64::from(feedback[first].in_flight) > HOT_FACTOR * fair + IN_FLIGHT_SLACK
}

/// Most candidates one pick compares (two draws and the memory, with room);
/// further ones are ignored.
pub const MAX_CANDIDATES: usize = 8;

/// The candidates (indices into `feedback`/`weights`) that exist and have
/// a usable weight, in order, at most [`MAX_CANDIDATES`], on the stack (no
/// allocation on the request path).
struct Usable {
    indices: [usize; MAX_CANDIDATES],
    len: usize,
}

impl Usable {
    fn of(candidates: &[usize], feedback: &[Feedback], weights: &[f64]) -> Usable {
        let mut u = Usable {
            indices: [0; MAX_CANDIDATES],
            len: 0,
        };
        for &i in candidates {
            if u.len < MAX_CANDIDATES
                && feedback.get(i).is_some()
                && weights.get(i).is_some_and(|w| usable(*w))
            {
                u.indices[u.len] = i;
                u.len += 1;
            }
        }
        u
    }

    fn as_slice(&self) -> &[usize] {
        &self.indices[..self.len]
    }
}

/// The pick among `candidates` (indices into `feedback`/`weights`; out of
/// range or weightless ones skipped): the first usable one unless it is
/// hot ([`is_hot`]), then the cheapest by [`cost`] (the earlier wins a
/// tie). The candidates are drawn by weight, so while no server is
/// clearly slower or fuller than its part the picks spread by weight.
/// `None` when no candidate has a weight.
pub fn cheapest(
    candidates: &[usize],
    feedback: &[Feedback],
    weights: &[f64],
    now: f64,
) -> Option<usize> {
    let usable = Usable::of(candidates, feedback, weights);
    let &first = usable.as_slice().first()?;
    let typical = Typical::of(feedback, weights);
    if !is_hot(first, usable.as_slice(), feedback, weights, now, &typical) {
        return Some(first);
    }
    lowest_cost(usable.as_slice(), feedback, weights, now, &typical)
}

/// The candidate with the lowest [`cost`] (the earlier wins a tie),
/// whether or not the first draw is hot: what the door remembers for its
/// next pick. `None` when no candidate has a weight.
pub fn cheapest_by_cost(
    candidates: &[usize],
    feedback: &[Feedback],
    weights: &[f64],
    now: f64,
) -> Option<usize> {
    let usable = Usable::of(candidates, feedback, weights);
    let typical = Typical::of(feedback, weights);
    lowest_cost(usable.as_slice(), feedback, weights, now, &typical)
}

fn lowest_cost(
    usable_candidates: &[usize],
    feedback: &[Feedback],
    weights: &[f64],
    now: f64,
    typical: &Typical,
) -> Option<usize> {
    let top = weights
        .iter()
        .copied()
        .filter(|w| usable(*w))
        .fold(0.0, f64::max);
    let mut best: Option<(usize, f64)> = None;
    for &i in usable_candidates {
        let c = cost(&feedback[i], weights[i], top, now, typical);
        if best.is_none_or(|(_, b)| c < b) {
            best = Some((i, c));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn learned(secs: f64, at: f64) -> Feedback {
        let mut f = Feedback::default();
        f.started(at - secs);
        f.finished(at, secs, Outcome::Answered);
        f
    }

    /// A slower answer moves the estimate RISE_WEIGHT of the way at once;
    /// faster ones fold in over DECAY_SECS; an unrefreshed estimate slides
    /// toward the typical one.
    #[test]
    fn asymmetric_ewma_worked_example() {
        let mut f = learned(0.010, 100.0);
        assert_eq!(f.learned(), Some(0.010));
        f.started(100.0);
        f.finished(100.0 + DECAY_SECS, 0.002, Outcome::Answered);
        let expected = 0.010 * (-1.0f64).exp() + 0.002 * (1.0 - (-1.0f64).exp());
        assert!((f.learned().unwrap() - expected).abs() < 1e-12);
        f.started(103.0);
        f.finished(103.0, 0.050, Outcome::Answered);
        let risen = expected + 0.25 * (0.050 - expected);
        assert!((f.learned().unwrap() - risen).abs() < 1e-12);
        // Idle for FORGET_SECS: (1 - 1/e) of the way toward the typical value.
        let aged = f.estimate(103.0 + FORGET_SECS, 0.020);
        assert!((aged - (0.020 + (risen - 0.020) * (-1.0f64).exp())).abs() < 1e-12);
    }

    /// Three equal 2 ms servers. One answer of 10 ms (a scheduling
    /// hiccup) leaves the first draw alone; a server become 20x slower is
    /// hot from its first slow answer; and a hot server nobody refreshes is
    /// drawn again within a few seconds, not held out (the estimate slides
    /// toward the *other* servers' typical one, not toward a mean that
    /// includes its own high value).
    #[test]
    fn one_hiccup_is_not_hot_a_slowdown_is_and_neither_lasts() {
        let w = [1.0, 1.0, 1.0];
        let at = 10.0;
        let mut fb = [learned(0.002, at), learned(0.002, at), learned(0.002, at)];
        fb[0].started(at);
        fb[0].finished(at, 0.010, Outcome::Answered);
        assert_eq!(cheapest(&[0, 1], &fb, &w, at), Some(0), "{:?}", fb[0]);
        fb[0].started(at);
        fb[0].finished(at, 0.040, Outcome::Answered);
        assert_eq!(cheapest(&[0, 1], &fb, &w, at), Some(1), "{:?}", fb[0]);
        // Hot now; unrefreshed, it is back in the draw 4 s later.
        let later = at + 2.0 * FORGET_SECS;
        fb[1] = learned(0.002, later);
        fb[2] = learned(0.002, later);
        assert_eq!(cheapest(&[0, 1], &fb, &w, later), Some(0), "{:?}", fb[0]);
    }

    /// A server holding requests without answering looks slower by the
    /// second, never idle; an abandoned request only frees its slot.
    #[test]
    fn a_stalled_server_never_reads_as_idle() {
        let mut f = learned(0.001, 10.0);
        f.started(10.0);
        assert_eq!(f.estimate(10.0005, 0.001), 0.001);
        assert!((f.estimate(12.0, 0.001) - 2.0).abs() < 1e-9);
        f.finished(12.5, 2.5, Outcome::Abandoned);
        assert_eq!(f.in_flight, 0);
        assert_eq!(f.learned(), Some(0.001));
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(Outcome::of_status(200), Outcome::Answered);
        assert_eq!(Outcome::of_status(404), Outcome::Answered);
        assert_eq!(Outcome::of_status(502), Outcome::Failed);
        assert_eq!(Outcome::of_status(504), Outcome::Failed);
        assert_eq!(Outcome::of_status(499), Outcome::Abandoned);
        assert_eq!(Outcome::of_status(0), Outcome::Abandoned);
    }

    /// A fast failure counts as twice the estimate: fast 500s raise the
    /// cost instead of lowering it.
    #[test]
    fn fast_failures_raise_the_estimate() {
        let mut f = learned(0.010, 1.0);
        for k in 0..5 {
            f.started(1.0 + f64::from(k));
            f.finished(1.0 + f64::from(k), 0.0001, Outcome::Failed);
        }
        let raised = 0.010 * (1.0 + RISE_WEIGHT).powi(5);
        assert!((f.learned().unwrap() - raised).abs() < 1e-12, "{f:?}");
    }

    /// The design of the first scenario at one instant: the fast
    /// server wins until its queue makes it clearly dearer than the next
    /// one; small differences leave the first (weighted) draw alone.
    #[test]
    fn cost_worked_example() {
        let fast = learned(0.001, 5.0);
        let mut busy_fast = fast.clone();
        for _ in 0..9 {
            busy_fast.started(5.0);
        }
        let medium = learned(0.010, 5.0);
        let fb = [fast.clone(), medium.clone()];
        let w = [10_000.0, 10_000.0];
        // 10 ms against 1 ms: hot, the cheap one is taken.
        assert_eq!(cheapest(&[1, 0], &fb, &w, 5.0), Some(0));
        assert_eq!(cheapest(&[0, 1], &fb, &w, 5.0), Some(0));
        // 1 ms × (1 + 9) = 10 ms against 10 ms: no clear difference, the
        // first drawn is taken.
        let fb = [busy_fast, medium];
        assert_eq!(cheapest(&[1, 0], &fb, &w, 5.0), Some(1));
        assert_eq!(cheapest(&[0, 1], &fb, &w, 5.0), Some(0));
        // In flight counts per unit of weight: 2 in flight at full weight
        // cost as much as 1 at half weight.
        let mut two = fast.clone();
        two.started(5.0);
        two.started(5.0);
        let mut one = fast.clone();
        one.started(5.0);
        let fb = [two, one];
        let w = [10_000.0, 5_000.0];
        assert_eq!(
            cost(&fb[0], w[0], w[0], 5.0, &Typical::of(&fb, &w)),
            cost(&fb[1], w[1], w[0], 5.0, &Typical::of(&fb, &w))
        );
        // A lightly weighted server holding one request is not hot: in
        // flight counts against its fair part of the door's, plus slack.
        let mut holding = fast.clone();
        holding.started(5.0);
        let fb = [holding.clone(), fast.clone()];
        assert_eq!(cheapest(&[0, 1], &fb, &[2_500.0, 7_500.0], 5.0), Some(0));
        // ... but one holding all 5 of the door's, fair part 1.25, is.
        let mut five = holding;
        for _ in 0..4 {
            five.started(5.0);
        }
        let fb = [five, fast.clone(), fast.clone()];
        assert_eq!(
            cheapest(&[0, 1], &fb, &[2_500.0, 7_500.0, 0.0], 5.0),
            Some(1)
        );
        // Sub-millisecond differences are noise: 0.2 ms against 0.9 ms
        // leaves the first draw.
        let fb = [learned(0.0009, 5.0), learned(0.0002, 5.0)];
        assert_eq!(cheapest(&[0, 1], &fb, &[1.0, 1.0], 5.0), Some(0));
        // No weight, never.
        assert_eq!(cheapest(&[0], &fb, &[0.0, 1.0], 5.0), None);
        assert_eq!(cheapest(&[0, 1], &fb, &[0.0, 1.0], 5.0), Some(1));
        assert_eq!(cheapest(&[], &fb, &[1.0, 1.0], 5.0), None);
        assert_eq!(cheapest(&[7], &fb, &[1.0, 1.0], 5.0), None);
    }

    proptest! {
        /// Never a weightless server; never panics on any input.
        #[test]
        fn never_weightless(
            weights in proptest::collection::vec(prop_oneof![Just(0.0), Just(f64::NAN), 0.0f64..10_000.0], 0..8),
            answers in proptest::collection::vec((0usize..8, 0.0f64..5.0, 0u8..3), 0..40),
            candidates in proptest::collection::vec(0usize..10, 0..4),
            now in 0.0f64..100.0,
        ) {
            let mut fb = vec![Feedback::default(); weights.len()];
            for (i, took, o) in answers {
                if let Some(f) = fb.get_mut(i) {
                    f.started(now - took);
                    if o < 2 {
                        let o = if o == 0 { Outcome::Answered } else { Outcome::Failed };
                        f.finished(now, took, o);
                    }
                }
            }
            if let Some(i) = cheapest(&candidates, &fb, &weights, now) {
                prop_assert!(candidates.contains(&i));
                prop_assert!(usable(weights[i]));
            } else {
                prop_assert!(!candidates.iter().any(|&i| weights.get(i).is_some_and(|w| usable(*w))));
            }
        }

        /// In flight returns to zero after as many finishes as starts,
        /// whatever their outcomes, and never underflows.
        #[test]
        fn in_flight_balances(outcomes in proptest::collection::vec(0u8..3, 0..50)) {
            let mut f = Feedback::default();
            for _ in &outcomes {
                f.started(1.0);
            }
            prop_assert_eq!(f.in_flight as usize, outcomes.len());
            for o in &outcomes {
                let o = [Outcome::Answered, Outcome::Failed, Outcome::Abandoned][*o as usize];
                f.finished(2.0, 1.0, o);
            }
            prop_assert_eq!(f.in_flight, 0);
            f.finished(3.0, 1.0, Outcome::Answered);
            prop_assert_eq!(f.in_flight, 0);
        }

        /// More in flight or a slower estimate never makes a server cheaper.
        #[test]
        fn cost_is_monotone(a in 0.0001f64..2.0, b in 0.0001f64..2.0, n in 0u32..20) {
            let (fast, slow) = (learned(a.min(b), 1.0), learned(a.max(b), 1.0));
            let typical = Typical::of(&[], &[]);
            prop_assert!(cost(&fast, 1.0, 1.0, 1.0, &typical) <= cost(&slow, 1.0, 1.0, 1.0, &typical));
            let mut more = fast.clone();
            for _ in 0..n {
                more.started(1.0);
            }
            prop_assert!(cost(&fast, 1.0, 1.0, 1.0, &typical) <= cost(&more, 1.0, 1.0, 1.0, &typical));
        }
    }
}
