//! The report loop: every `interval_ms` it closes the interval — one
//! aggregate per server with its probe state, the host figures — and
//! spools the report; forwards record batches that aged (`batch_ms`) or
//! came from the batch receiver; raises `records_dropped` for records that
//! named no known server; and notices servers that exited on their own.
//! At shutdown it makes one last report and forwards every batch, full or
//! not.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use usher_core::channel::{event_type, Report};

use super::probes::ProbeStates;
use super::Cfg;
use crate::outbox::Outbox;
use crate::process::Processes;
use crate::records::{ReadyBatch, RecordSink};
use crate::{host_metrics, lock, now_us};

/// Counts records that named no known server and says when to tell.
#[derive(Debug, Default)]
pub struct Unknown {
    told: u64,
}

impl Unknown {
    /// Given the running count, the number not yet reported (if any).
    pub fn news(&mut self, total: u64) -> Option<u64> {
        let new = total.checked_sub(self.told).filter(|n| *n > 0)?;
        self.told = total;
        Some(new)
    }
}

/// What one interval's close takes from the sink.
#[derive(Debug)]
pub struct Closed {
    pub aggregates: Vec<usher_core::channel::ServerAggregate>,
    pub ready: Vec<ReadyBatch>,
    pub unknown: u64,
}

/// Closes the interval: aggregates, the batches to forward (every
/// non-empty one when `stopping`), and the count of unknown records.
pub fn close(sink: &Mutex<RecordSink>, now: Instant, stopping: bool) -> Closed {
    let mut s = lock(sink);
    let ready = if stopping {
        s.take_ready(now + Duration::from_secs(86_400))
    } else {
        s.take_ready(now)
    };
    Closed {
        aggregates: s.take_aggregates(),
        ready,
        unknown: s.unknown,
    }
}

/// Runs the reports until `stop` turns true (then one last report).
pub async fn run(
    cfg: Cfg,
    sink: Arc<Mutex<RecordSink>>,
    probes: Arc<ProbeStates>,
    processes: Arc<Processes>,
    outbox: Arc<Outbox>,
    mut stop: watch::Receiver<bool>,
) {
    let collector = Arc::new(Mutex::new(host_metrics::Collector::new()));
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut start_us = now_us();
    let mut unknown = Unknown::default();
    loop {
        let stopping = tokio::select! {
            _ = stop.changed() => *stop.borrow(),
            _ = tick.tick() => false,
        };
        let stop_us = now_us();
        let mut closed = close(&sink, Instant::now(), stopping);
        for b in closed.ready {
            outbox.records(&b.server, b.bytes);
        }
        if let Some(n) = unknown.news(closed.unknown) {
            outbox.event(
                outbox.agent_id(),
                event_type::RECORDS_DROPPED,
                format!("{n} records named no known server"),
            );
        }
        probes.apply(&mut closed.aggregates);
        // Reading /proc is blocking I/O; the collector keeps one
        // `sysinfo::System` across ticks.
        let c = collector.clone();
        let host = tokio::task::spawn_blocking(move || lock(&c).sample())
            .await
            .unwrap_or_default();
        outbox.report(Report {
            seq: 0,
            interval_start_us: start_us,
            interval_stop_us: stop_us,
            servers: closed.aggregates,
            host,
        });
        start_us = stop_us;
        for (name, status) in processes.reap() {
            outbox.event(
                &name,
                event_type::SERVER_EXITED,
                format!("server {name} exited: {status}"),
            );
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RecordsConfig;
    use usher_core::RequestRecord;

    #[test]
    fn unknown_records_are_told_once() {
        let mut u = Unknown::default();
        assert_eq!(u.news(0), None);
        assert_eq!(u.news(5), Some(5));
        assert_eq!(u.news(5), None);
        assert_eq!(u.news(12), Some(7));
    }

    #[test]
    fn closing_forwards_aged_batches_and_everything_at_shutdown() {
        let cfg = RecordsConfig {
            batch_records: 100,
            batch_ms: 1_000,
            ..Default::default()
        };
        let sink = Mutex::new(RecordSink::new(["a".to_string()], cfg));
        let rec = RequestRecord {
            status: Some(500),
            start_time_us: Some(1),
            processing_time_us: Some(10),
            ..Default::default()
        };
        lock(&sink).push(0, &rec);
        lock(&sink).push(7, &rec); // no such server
        let now = Instant::now();
        let c = close(&sink, now, false);
        assert!(c.ready.is_empty(), "not full, not old");
        assert_eq!((c.aggregates[0].count, c.aggregates[0].errors_5xx), (1, 1));
        assert_eq!(c.unknown, 1);
        let c = close(&sink, now, true);
        assert_eq!(c.ready.iter().map(|b| b.records).sum::<usize>(), 1);
        assert_eq!(c.aggregates[0].count, 0, "a new interval");
    }
}
