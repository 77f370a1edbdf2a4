//! Request records of the local servers: per-server aggregation over each
//! interval (count, mean and percentiles of processing time, 4xx/5xx),
//! probe sightings with the completions around them, and raw records
//! batched for the request log (100 records / 8 KiB / 30 s, whichever
//! first, configurable).
//!
//! Every record source (ring reader thread, batch receiver) pushes into one
//! [`RecordSink`] under a mutex, taken once per drained batch.
//!
//! Size: about 160 lines are unit tests of the aggregation; the code itself
//! is under 400.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use usher_core::channel::ServerAggregate;
use usher_core::probe::{self, Baseline, ProbeSighting, QueueEstimate};
use usher_core::record::{visit_fields, BatchWriter, FieldValue};
use usher_core::{Field, FieldMask, RequestRecord};

use crate::config::RecordsConfig;

/// Log-linear histogram of microseconds: 32 sub-buckets per power of two
/// (about 3 % relative error), no allocation per record.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
}

const SUB: u32 = 32;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (64 * SUB) as usize],
            total: 0,
            sum: 0,
        }
    }
}

impl Histogram {
    fn bucket(v: u64) -> usize {
        if v < u64::from(SUB) {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= 5
        let shift = exp - SUB.trailing_zeros();
        let sub = (v >> shift) as u32 - SUB; // 0..SUB
        ((exp - SUB.trailing_zeros() + 1) * SUB + sub) as usize
    }

    fn lower(bucket: usize) -> u64 {
        let b = bucket as u32;
        if b < SUB {
            return u64::from(b);
        }
        let shift = b / SUB - 1;
        (u64::from(SUB + b % SUB)) << shift
    }

    /// Adds one value.
    pub fn add(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(Self::bucket(v)) {
            *c += 1;
        }
        self.total += 1;
        self.sum += u128::from(v);
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Mean (0 when empty).
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The `q` quantile (0..=1), as the lower edge of its bucket.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::lower(i);
            }
        }
        0
    }

    fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.sum = 0;
    }
}

/// The fields the agent looks at, borrowed from a record.
#[derive(Debug, Default, Clone, Copy)]
struct Seen<'a> {
    status: Option<u64>,
    start_us: Option<u64>,
    processing_us: Option<u64>,
    request_line: Option<&'a str>,
    content_path: Option<&'a str>,
}

/// A probe sent and not yet found in the record stream.
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    sent_us: u64,
}

/// Most completion times kept per server for probe arithmetic.
const MAX_COMPLETIONS: usize = 200_000;
/// Completions older than this before the oldest pending probe are dropped.
const KEEP_US: u64 = 10_000_000;

/// One server's records.
#[derive(Debug)]
pub struct ServerRecords {
    pub name: String,
    hist: Histogram,
    errors_4xx: u64,
    errors_5xx: u64,
    /// 429 answers (counted in `errors_4xx` too): load shed by the server.
    errors_429: u64,
    /// Records that were this agent's own probes.
    probes: u64,
    bad: u64,
    completions: VecDeque<u64>,
    pending: Vec<Pending>,
    sightings: Vec<ProbeSighting>,
    baseline: Baseline,
    last_estimate: Option<QueueEstimate>,
    batch: BatchWriter,
    batch_started: Option<Instant>,
}

impl ServerRecords {
    fn new(name: String) -> ServerRecords {
        ServerRecords {
            name,
            hist: Histogram::default(),
            errors_4xx: 0,
            errors_5xx: 0,
            errors_429: 0,
            probes: 0,
            bad: 0,
            completions: VecDeque::new(),
            pending: Vec::new(),
            sightings: Vec::new(),
            baseline: Baseline::new(60),
            last_estimate: None,
            batch: BatchWriter::default(),
            batch_started: None,
        }
    }
}

/// A full batch of raw records to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyBatch {
    pub server: String,
    pub bytes: Vec<u8>,
    pub records: usize,
}

/// All servers' records.
#[derive(Debug)]
pub struct RecordSink {
    servers: Vec<ServerRecords>,
    cfg: RecordsConfig,
    ready: Vec<ReadyBatch>,
    /// Records that named no known server.
    pub unknown: u64,
}

impl RecordSink {
    /// A sink for the named servers.
    pub fn new(names: impl IntoIterator<Item = String>, cfg: RecordsConfig) -> RecordSink {
        RecordSink {
            servers: names.into_iter().map(ServerRecords::new).collect(),
            cfg,
            ready: Vec::new(),
            unknown: 0,
        }
    }

    /// Index of a server by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// Counts records that could not be decoded.
    pub fn bad(&mut self, server: usize, n: u64) {
        if let Some(s) = self.servers.get_mut(server) {
            s.bad += n;
        }
    }

    /// Takes one decoded record of server `server`.
    pub fn push(&mut self, server: usize, rec: &RequestRecord) {
        let seen = Seen {
            status: rec.status,
            start_us: rec.start_time_us,
            processing_us: rec.processing_time_us,
            request_line: rec.request_line.as_deref(),
            content_path: rec.content_path.as_deref(),
        };
        let forward = self.cfg.forward;
        self.take(server, seen, |b| {
            if forward {
                b.push(rec, FieldMask::ALL);
            }
        });
    }

    /// Takes one encoded record (as a ring holds it) of server `server`
    /// without decoding it fully; forwards the bytes as they are. Returns
    /// false (and counts it bad) when the bytes are not a record.
    pub fn push_encoded(&mut self, server: usize, bytes: &[u8]) -> bool {
        let mut seen = Seen::default();
        let ok = visit_fields(bytes, |f, v| match (f, v) {
            (Field::Status, FieldValue::Num(n)) => seen.status = Some(n),
            (Field::StartTime, FieldValue::Num(n)) => seen.start_us = Some(n),
            (Field::ProcessingTime, FieldValue::Num(n)) => seen.processing_us = Some(n),
            (Field::RequestLine, FieldValue::Text(t)) => seen.request_line = Some(t),
            (Field::ContentPath, FieldValue::Text(t)) => seen.content_path = Some(t),
            _ => {}
        })
        .is_ok();
        if !ok {
            self.bad(server, 1);
            return false;
        }
        let forward = self.cfg.forward;
        self.take(server, seen, |b| {
            if forward {
                b.push_encoded(bytes);
            }
        });
        true
    }

    fn take(&mut self, server: usize, rec: Seen<'_>, forward: impl FnOnce(&mut BatchWriter)) {
        let Some(s) = self.servers.get_mut(server) else {
            self.unknown += 1;
            return;
        };
        let processing = rec.processing_us.unwrap_or(0);
        s.hist.add(processing);
        match rec.status {
            Some(400..=499) => s.errors_4xx += 1,
            Some(500..=599) => s.errors_5xx += 1,
            _ => {}
        }
        if rec.status == Some(429) {
            s.errors_429 += 1;
        }
        let probe_seq = if s.pending.is_empty() {
            None
        } else {
            rec.request_line
                .and_then(probe::parse_probe_seq)
                .or_else(|| rec.content_path.and_then(probe::parse_probe_seq))
        };
        if let Some(start) = rec.start_us {
            let completed = start.saturating_add(processing);
            match probe_seq.and_then(|seq| s.pending.iter().position(|p| p.seq == seq)) {
                Some(i) => {
                    s.probes += 1;
                    let p = s.pending.swap_remove(i);
                    s.sightings.push(ProbeSighting {
                        sent_us: p.sent_us,
                        start_us: start,
                        processing_us: processing,
                    });
                }
                None => {
                    if s.completions.len() >= MAX_COMPLETIONS {
                        s.completions.pop_front();
                    }
                    s.completions.push_back(completed);
                }
            }
        }
        if self.cfg.forward {
            if s.batch.is_empty() {
                s.batch_started = Some(Instant::now());
            }
            forward(&mut s.batch);
            if s.batch.len() >= self.cfg.batch_records || s.batch.byte_len() >= self.cfg.batch_bytes
            {
                let records = s.batch.len();
                s.batch_started = None;
                self.ready.push(ReadyBatch {
                    server: s.name.clone(),
                    bytes: s.batch.take(),
                    records,
                });
            }
        }
    }

    /// Notes a probe sent to server `server`.
    pub fn probe_sent(&mut self, server: usize, seq: u64, sent_us: u64) {
        if let Some(s) = self.servers.get_mut(server) {
            // Forget probes that never showed up (their server had no
            // record source, or dropped them).
            s.pending
                .retain(|p| sent_us.saturating_sub(p.sent_us) < KEEP_US);
            s.pending.push(Pending { seq, sent_us });
        }
    }

    /// Batches that are full, plus those older than `batch_ms` when `now`
    /// says so.
    pub fn take_ready(&mut self, now: Instant) -> Vec<ReadyBatch> {
        let max_age = Duration::from_millis(self.cfg.batch_ms);
        for s in &mut self.servers {
            if s.batch_started
                .is_some_and(|t| now.saturating_duration_since(t) >= max_age)
            {
                let records = s.batch.len();
                s.batch_started = None;
                self.ready.push(ReadyBatch {
                    server: s.name.clone(),
                    bytes: s.batch.take(),
                    records,
                });
            }
        }
        std::mem::take(&mut self.ready)
    }

    /// Ends the interval: one aggregate per server, counters reset.
    pub fn take_aggregates(&mut self) -> Vec<ServerAggregate> {
        self.servers
            .iter_mut()
            .map(|s| {
                // Probe arithmetic for every probe found this interval; the
                // last one's figures are reported.
                for p in std::mem::take(&mut s.sightings) {
                    let base = s.baseline.get();
                    let base = if base == 0 {
                        p.processing_us
                    } else {
                        base.min(p.processing_us)
                    };
                    let e = probe::estimate(p, base, s.completions.iter().copied());
                    tracing::debug!(
                        "probe of {}: sent {} start {} processing {} baseline {base}: queue {} delay {}",
                        s.name, p.sent_us, p.start_us, p.processing_us, e.queue_length, e.queue_delay_us
                    );
                    s.last_estimate = Some(e);
                    s.baseline.push(p.processing_us);
                }
                let oldest = s.pending.iter().map(|p| p.sent_us).min();
                let newest = s.completions.back().copied().unwrap_or(0);
                let cut = oldest.unwrap_or(newest).saturating_sub(KEEP_US);
                while s.completions.front().is_some_and(|&c| c < cut) {
                    s.completions.pop_front();
                }
                let agg = ServerAggregate {
                    server: s.name.clone(),
                    count: s.hist.count(),
                    mean_us: s.hist.mean(),
                    p50_us: s.hist.quantile(0.50),
                    p95_us: s.hist.quantile(0.95),
                    p99_us: s.hist.quantile(0.99),
                    errors_4xx: s.errors_4xx,
                    errors_5xx: s.errors_5xx,
                    errors_429: s.errors_429,
                    probes: s.probes,
                    dropped: s.bad,
                    queue_length: s.last_estimate.map(|e| e.queue_length),
                    queue_delay_us: s.last_estimate.map(|e| e.queue_delay_us),
                    probe_ok: None,
                    probe_error: None,
                };
                s.hist.clear();
                s.errors_4xx = 0;
                s.errors_5xx = 0;
                s.errors_429 = 0;
                s.probes = 0;
                s.bad = 0;
                agg
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_core::record::decode_batch;

    fn rec(status: u64, start: u64, proc_: u64, line: &str) -> RequestRecord {
        RequestRecord {
            status: Some(status),
            start_time_us: Some(start),
            processing_time_us: Some(proc_),
            request_line: Some(line.into()),
            ..Default::default()
        }
    }

    #[test]
    fn histogram_quantiles_within_three_percent() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.add(v * 10);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.mean(), 50_005);
        for (q, want) in [(0.5, 50_000.0), (0.95, 95_000.0), (0.99, 99_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.035, "q{q}: {got} vs {want}");
        }
        assert_eq!(Histogram::default().quantile(0.5), 0);
        let mut small = Histogram::default();
        small.add(3);
        assert_eq!(small.quantile(0.99), 3);
        small.add(u64::MAX);
        assert!(small.quantile(1.0) > 1 << 62);
    }

    #[test]
    fn aggregates_and_probe_figures() {
        let cfg = RecordsConfig {
            forward: false,
            ..Default::default()
        };
        let mut sink = RecordSink::new(["a".to_string(), "b".to_string()], cfg);
        sink.probe_sent(0, 7, 1_000);
        sink.push(0, &rec(200, 0, 6_000, "GET / HTTP/1.1")); // completes at 6000
        sink.push(0, &rec(404, 2_000, 10_000, "GET /x HTTP/1.1")); // 12000
        sink.push(0, &rec(503, 20_000, 1_000, "GET / HTTP/1.1")); // 21000
                                                                  // The probe: arrived at 1100, finished at 31100 after 10 ms of service
                                                                  // (first probe: its own time is the baseline).
        sink.push(
            0,
            &rec(200, 1_100, 30_000, "GET /health?usher-probe=7 HTTP/1.1"),
        );
        sink.push(1, &rec(200, 0, 1, "GET / HTTP/1.1"));
        let aggs = sink.take_aggregates();
        assert_eq!(aggs[0].count, 4);
        assert_eq!((aggs[0].errors_4xx, aggs[0].errors_5xx), (1, 1));
        assert_eq!(aggs[0].mean_us, (6_000 + 10_000 + 1_000 + 30_000) / 4);
        // First probe: baseline = its own processing, so its effective start
        // is its recorded start: delay 100 us, nothing completed before.
        assert_eq!(aggs[0].queue_delay_us, Some(100));
        assert_eq!(aggs[0].queue_length, Some(0));
        assert_eq!(aggs[1].count, 1);
        assert_eq!(aggs[1].queue_length, None);
        // Second probe with the baseline now 30 ms... a faster probe sets it.
        sink.probe_sent(0, 8, 100_000);
        sink.push(
            0,
            &rec(200, 100_000, 2_000, "GET /health?usher-probe=8 HTTP/1.1"),
        );
        let aggs = sink.take_aggregates();
        assert_eq!(aggs[0].queue_delay_us, Some(0));
        sink.probe_sent(0, 9, 200_000);
        for i in 0..5 {
            sink.push(0, &rec(200, 199_000, 3_000 + i * 1000, "GET / HTTP/1.1"));
            // 202000..206000
        }
        sink.push(
            0,
            &rec(200, 200_010, 12_000, "GET /health?usher-probe=9 HTTP/1.1"),
        ); // done 212010
        let aggs = sink.take_aggregates();
        // Effective start = 212010 - 2000 = 210010; arrival 200010 (after the
        // send at 200000): delay 10000; 5 completions before the start.
        assert_eq!(aggs[0].queue_delay_us, Some(10_000));
        assert_eq!(aggs[0].queue_length, Some(5));
        assert_eq!(sink.take_aggregates()[0].count, 0);
    }

    #[test]
    fn encoded_records_count_like_decoded_ones() {
        let cfg = RecordsConfig {
            forward: true,
            batch_records: 2,
            ..Default::default()
        };
        let mut sink = RecordSink::new(["a".to_string()], cfg);
        sink.probe_sent(0, 3, 1_000);
        let mut bytes = Vec::new();
        for r in [
            rec(500, 0, 4_000, "GET / HTTP/1.1"),
            rec(200, 1_000, 2_000, "GET /health?usher-probe=3 HTTP/1.1"),
        ] {
            bytes.clear();
            r.encode_into(FieldMask::ALL, &mut bytes);
            assert!(sink.push_encoded(0, &bytes));
        }
        assert!(!sink.push_encoded(0, &[1, 0x80]));
        let ready = sink.take_ready(Instant::now());
        assert_eq!(ready.len(), 1);
        let batch = decode_batch(&ready[0].bytes).expect("batch");
        assert_eq!(batch.records[0], rec(500, 0, 4_000, "GET / HTTP/1.1"));
        let agg = &sink.take_aggregates()[0];
        assert_eq!(
            (agg.count, agg.errors_5xx, agg.dropped, agg.mean_us),
            (2, 1, 1, 3_000)
        );
        assert_eq!(agg.queue_delay_us, Some(0));
        assert_eq!(agg.queue_length, Some(0));
    }

    #[test]
    fn batches_by_count_bytes_and_age() {
        let cfg = RecordsConfig {
            forward: true,
            batch_records: 3,
            batch_bytes: 8192,
            batch_ms: 50,
        };
        let mut sink = RecordSink::new(["a".to_string()], cfg);
        for i in 0..7 {
            sink.push(0, &rec(200, i, 1, "GET / HTTP/1.1"));
        }
        let now = Instant::now();
        let ready = sink.take_ready(now);
        assert_eq!(
            ready.iter().map(|b| b.records).collect::<Vec<_>>(),
            vec![3, 3]
        );
        assert_eq!(
            decode_batch(&ready[0].bytes).expect("batch").records.len(),
            3
        );
        assert!(sink.take_ready(now).is_empty());
        let ready = sink.take_ready(now + Duration::from_millis(60));
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].records, 1);
        let cfg = RecordsConfig {
            forward: true,
            batch_records: 1000,
            batch_bytes: 200,
            batch_ms: 50,
        };
        let mut sink = RecordSink::new(["a".to_string()], cfg);
        for i in 0..20 {
            sink.push(
                0,
                &rec(200, i, 1, "GET /a/long/enough/path/to/fill/bytes HTTP/1.1"),
            );
        }
        let ready = sink.take_ready(Instant::now());
        assert!(!ready.is_empty() && ready.iter().all(|b| b.bytes.len() >= 200 && b.records < 20));
    }
}
