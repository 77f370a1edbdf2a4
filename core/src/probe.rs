//! Probe arithmetic: queue length and queue delay of one web server from a
//! probe request the agent sent and found again in the server's records.
//!
//! The agent sends `GET /health?usher-probe=<seq>` at `sent_us`. The web
//! server interface records the probe like any request (start time and
//! processing time). When the queue sits in front of the interface (a
//! server's accept queue), the probe's recorded start is when it left the
//! queue. When the queue sits behind it (nginx in front of an application
//! with a bounded worker pool), the record starts on arrival and the waiting
//! shows up in the processing time; so the probe's *effective start* is its
//! completion minus the probe's own service time (`baseline_us`, the least
//! probe processing time seen lately, see [`Baseline`]), whichever is later.
//!
//! * the probe's *arrival* is its send time, or, when the record starts
//!   before the effective start (the queue is behind the interface), the
//!   later of send time and recorded start (so time spent reaching the
//!   server is not counted as queueing);
//! * the probe really started when a completion freed a worker for it:
//!   the latest completion within a quarter of the baseline before the
//!   effective start, if any, is taken as its start (the effective start
//!   can only be late: the baseline is the least service time seen);
//! * queue delay = start − arrival;
//! * queue length = records of the same server that completed after the
//!   arrival and more than a quarter baseline before that start: the
//!   requests that were ahead of the probe. Excluding the completions at
//!   the start itself matters when a pool's workers finish in bursts (they
//!   share a timer): the burst that freed the probe's worker is not ahead
//!   of it.
//!
//! Pure: the caller passes every time in (microseconds on one clock).

/// The query parameter that marks a probe request.
pub const PROBE_PARAM: &str = "usher-probe=";

/// True when a request's query string (the part after `?`, without it)
/// marks an agent probe: one of its `&`-separated parameters is
/// `usher-probe=…`. A probe is always served where it landed: a web server
/// interface never redirects it, whatever it is ordered, so the agent
/// measures the server it asked.
///
/// Only a whole parameter counts (`xusher-probe=1` is not a probe); the
/// check is a substring scan, so a request that is no probe costs one
/// search.
pub fn is_probe(query: &str) -> bool {
    let mut rest = query;
    while let Some(at) = rest.find(PROBE_PARAM) {
        if at == 0 || rest.as_bytes()[at - 1] == b'&' {
            return true;
        }
        rest = &rest[at + PROBE_PARAM.len()..];
    }
    false
}

/// Finds a probe sequence number in a request line or path
/// (`GET /health?usher-probe=42 HTTP/1.1` → `Some(42)`).
pub fn parse_probe_seq(text: &str) -> Option<u64> {
    let at = text.find(PROBE_PARAM)? + PROBE_PARAM.len();
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// One probe found in the record stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSighting {
    /// When the agent sent the probe.
    pub sent_us: u64,
    /// The probe record's start time.
    pub start_us: u64,
    /// The probe record's processing time.
    pub processing_us: u64,
}

impl ProbeSighting {
    /// The probe's completion time.
    pub fn completed_us(&self) -> u64 {
        self.start_us.saturating_add(self.processing_us)
    }

    /// Start of the probe's own service: its recorded start, or its
    /// completion minus its service time when that is later.
    pub fn effective_start_us(&self, baseline_us: u64) -> u64 {
        self.start_us
            .max(self.completed_us().saturating_sub(baseline_us))
    }
}

/// What a probe measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEstimate {
    /// Requests served ahead of the probe while it waited.
    pub queue_length: u32,
    /// Time from sending the probe to the start of its own service.
    pub queue_delay_us: u64,
}

/// Computes queue length and delay.
///
/// `completions_us` are the completion times (start + processing) of the
/// server's other records in any order; the probe's own record must not be
/// among them.
pub fn estimate(
    probe: ProbeSighting,
    baseline_us: u64,
    completions_us: impl IntoIterator<Item = u64> + Clone,
) -> QueueEstimate {
    let raw = probe.effective_start_us(baseline_us);
    let arrival = if probe.start_us < raw {
        probe.sent_us.max(probe.start_us)
    } else {
        probe.sent_us
    };
    let guard = baseline_us / 4;
    // The completion that freed the probe's worker: the latest one shortly
    // before the estimated start (which can only be late, the baseline
    // being the least service time seen).
    let freed_at = completions_us
        .clone()
        .into_iter()
        .filter(|&c| c > arrival && c <= raw && c.saturating_add(guard) >= raw)
        .max();
    let start = freed_at.unwrap_or(raw);
    let ahead = completions_us
        .into_iter()
        .filter(|&c| c > arrival && c.saturating_add(guard) <= start && c < start)
        .count();
    QueueEstimate {
        queue_length: u32::try_from(ahead).unwrap_or(u32::MAX),
        queue_delay_us: start.saturating_sub(arrival),
    }
}

/// The probe's own service time: the least probe processing time among the
/// last `window` probes (an idle moment shows it; a slower app raises it
/// only after `window` probes).
#[derive(Debug, Clone)]
pub struct Baseline {
    window: usize,
    recent: std::collections::VecDeque<u64>,
}

impl Baseline {
    /// A baseline over the last `window` probes (at least 1).
    pub fn new(window: usize) -> Baseline {
        Baseline {
            window: window.max(1),
            recent: std::collections::VecDeque::new(),
        }
    }

    /// Adds one probe's processing time.
    pub fn push(&mut self, processing_us: u64) {
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(processing_us);
    }

    /// The current baseline; 0 before any probe.
    pub fn get(&self) -> u64 {
        self.recent.iter().copied().min().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_probe_numbers() {
        assert_eq!(
            parse_probe_seq("GET /health?usher-probe=42 HTTP/1.1"),
            Some(42)
        );
        assert_eq!(parse_probe_seq("/health?a=1&usher-probe=7&b=2"), Some(7));
        assert_eq!(parse_probe_seq("/health?usher-probe=x"), None);
        assert_eq!(parse_probe_seq("/health"), None);
        assert_eq!(
            parse_probe_seq("/h?usher-probe=99999999999999999999999"),
            None
        );
    }

    #[test]
    fn probes_are_recognised_by_a_whole_parameter() {
        assert!(is_probe("usher-probe=3"));
        assert!(is_probe("a=1&usher-probe=3"));
        assert!(is_probe("usher-probe=3&b=2"));
        assert!(is_probe("xusher-probe=1&usher-probe=2"));
        assert!(!is_probe(""));
        assert!(!is_probe("a=1"));
        assert!(!is_probe("xusher-probe=3"));
        assert!(!is_probe("a=1&xusher-probe=3"));
        assert!(!is_probe("a=usher-probe=3"));
        assert!(
            !is_probe("usher-probe"),
            "no value: not what the agent sends"
        );
        // The agent's own probe query is recognised.
        assert!(is_probe(&format!("{PROBE_PARAM}{}", 42)));
    }

    /// Queue in front of the interface: the record's start is when the probe
    /// left the queue. Sent at 1000, started at 31000: 30 ms delay; three
    /// records completed in between (1000 itself and 40000 are outside), the
    /// last at 31000 freed the probe's worker: two were ahead of it.
    #[test]
    fn worked_example_queue_in_front() {
        let p = ProbeSighting {
            sent_us: 1_000,
            start_us: 31_000,
            processing_us: 10_000,
        };
        let e = estimate(p, 10_000, [1_000, 5_000, 20_000, 31_000, 40_000]);
        assert_eq!(
            e,
            QueueEstimate {
                queue_length: 2,
                queue_delay_us: 30_000
            }
        );
    }

    /// Queue behind the interface: nginx starts the record on arrival
    /// (100.2 ms) and the app's pool of 4 workers (10 ms service) made the
    /// probe wait. Four requests were in service (done at 102, 104, 106,
    /// 108 ms) and four waiting (done at 112, 114, 116, 118 ms); the probe
    /// got the worker freed at 112 ms and finished at 122 ms: four ahead.
    #[test]
    fn worked_example_queue_behind() {
        let p = ProbeSighting {
            sent_us: 100_000,
            start_us: 100_200,
            processing_us: 21_800,
        };
        let others = [
            102_000, 104_000, 106_000, 108_000, 112_000, 114_000, 116_000, 118_000,
        ];
        let e = estimate(p, 10_000, others);
        assert_eq!(
            e,
            QueueEstimate {
                queue_length: 4,
                queue_delay_us: 11_800
            }
        );
        // An idle server: the probe takes its service time, nothing queued.
        let idle = ProbeSighting {
            sent_us: 0,
            start_us: 300,
            processing_us: 10_000,
        };
        assert_eq!(
            estimate(idle, 10_000, [5_000]),
            QueueEstimate {
                queue_length: 0,
                queue_delay_us: 300
            }
        );
    }

    /// Workers finishing in bursts (4 workers, 20 ms, 8 waiting): waves at
    /// 110, 130 and 150 ms; the probe (arrived at 100 ms) starts with the
    /// third wave, and its service took 3 ms longer than the baseline.
    #[test]
    fn worked_example_bursts() {
        let p = ProbeSighting {
            sent_us: 99_500,
            start_us: 100_000,
            processing_us: 73_000,
        };
        let wave = |t: u64| [t, t + 40, t + 80, t + 120];
        let others: Vec<u64> = [110_000, 130_000, 150_000, 170_000]
            .into_iter()
            .flat_map(wave)
            .collect();
        let e = estimate(p, 20_000, others.iter().copied());
        assert_eq!(
            e,
            QueueEstimate {
                queue_length: 8,
                queue_delay_us: 50_120
            }
        );
    }

    #[test]
    fn baseline_is_the_recent_minimum() {
        let mut b = Baseline::new(3);
        assert_eq!(b.get(), 0);
        for v in [500, 300, 400] {
            b.push(v);
        }
        assert_eq!(b.get(), 300);
        b.push(600);
        b.push(700);
        assert_eq!(b.get(), 400);
        b.push(800);
        assert_eq!(b.get(), 600);
    }

    proptest! {
        #[test]
        fn bounded_and_never_panics(sent in any::<u64>(), start in any::<u64>(), proc_ in any::<u64>(),
                                    base in any::<u64>(), cs in proptest::collection::vec(any::<u64>(), 0..50)) {
            let p = ProbeSighting { sent_us: sent, start_us: start, processing_us: proc_ };
            let e = estimate(p, base, cs.iter().copied());
            prop_assert!(e.queue_length as usize <= cs.len());
            prop_assert!(e.queue_delay_us <= p.effective_start_us(base));
            // The arrival never precedes the send time.
            prop_assert!(e.queue_delay_us <= p.effective_start_us(base).saturating_sub(p.sent_us));
        }
    }
}
