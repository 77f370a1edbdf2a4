//! The worker's record buffer: encoded records collect in the worker VM's
//! own memory (no host call per request) and leave as binary batches of at
//! most 100 records or 8 KiB, sent from the root context's tick. The buffer
//! is bounded: when the agent is away or slow, whole batches are dropped and
//! counted, and the web server never waits.

use std::collections::{HashMap, VecDeque};

use usher_core::record::BatchWriter;
use usher_core::{FieldMask, RequestRecord};

/// Records per batch (the design's group of 100).
pub const BATCH_RECORDS: usize = 100;
/// Bytes per batch (the design's 8 KiB buffer).
pub const BATCH_BYTES: usize = 8 * 1024;
/// Sealed batches waiting to be sent; beyond this new batches are dropped.
pub const MAX_READY: usize = 32;
/// Batches sent and not yet answered.
pub const MAX_IN_FLIGHT: usize = 8;
/// A batch is sent at the latest this long after its first record.
pub const MAX_AGE_US: u64 = 1_000_000;

/// Per-worker record buffer.
#[derive(Debug, Default)]
pub struct RecordBuffer {
    writer: BatchWriter,
    first_at_us: u64,
    ready: VecDeque<(Vec<u8>, u64)>,
    in_flight: HashMap<u32, u64>,
    /// Records acknowledged by the agent, not yet added to the metric.
    pub written: u64,
    /// Records dropped, not yet added to the metric.
    pub dropped: u64,
}

impl RecordBuffer {
    /// Appends one record with the fields in `mask`.
    pub fn push(&mut self, record: &RequestRecord, mask: FieldMask, now_us: u64) {
        if self.writer.is_empty() {
            self.first_at_us = now_us;
        }
        self.writer.push(record, mask);
        if self.writer.len() >= BATCH_RECORDS || self.writer.byte_len() >= BATCH_BYTES {
            self.seal();
        }
    }

    /// Seals the open batch if it is older than `MAX_AGE_US`.
    pub fn seal_if_old(&mut self, now_us: u64) {
        if !self.writer.is_empty() && now_us.saturating_sub(self.first_at_us) >= MAX_AGE_US {
            self.seal();
        }
    }

    fn seal(&mut self) {
        let n = self.writer.len() as u64;
        let batch = self.writer.take();
        if self.ready.len() >= MAX_READY {
            self.dropped += n;
        } else {
            self.ready.push_back((batch, n));
        }
    }

    /// The next batch to send, if one is ready and a slot is free.
    pub fn next_batch(&mut self) -> Option<(Vec<u8>, u64)> {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return None;
        }
        self.ready.pop_front()
    }

    /// The host took the batch under `token`.
    pub fn sent(&mut self, token: u32, records: u64) {
        self.in_flight.insert(token, records);
    }

    /// The host could not send the batch at all.
    pub fn failed_to_send(&mut self, records: u64) {
        self.dropped += records;
    }

    /// The agent answered `token`; `ok` when it took the batch.
    pub fn answered(&mut self, token: u32, ok: bool) {
        if let Some(n) = self.in_flight.remove(&token) {
            if ok {
                self.written += n;
            } else {
                self.dropped += n;
            }
        }
    }

    /// Records held (open batch, sealed batches, batches in flight).
    pub fn held(&self) -> u64 {
        self.writer.len() as u64
            + self.ready.iter().map(|(_, n)| n).sum::<u64>()
            + self.in_flight.values().sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_core::decode_batch;

    fn rec(i: u64) -> RequestRecord {
        RequestRecord {
            status: Some(200),
            processing_time_us: Some(i),
            ..Default::default()
        }
    }

    #[test]
    fn batches_of_100_and_old_ones() {
        let mut b = RecordBuffer::default();
        for i in 0..250 {
            b.push(&rec(i), FieldMask::ALL, 0);
        }
        let (first, n) = b.next_batch().expect("batch");
        assert_eq!(n, 100);
        assert_eq!(decode_batch(&first).expect("decodes").records.len(), 100);
        b.sent(1, n);
        assert_eq!(b.next_batch().map(|(_, n)| n), Some(100));
        assert!(b.next_batch().is_none());
        b.seal_if_old(MAX_AGE_US - 1);
        assert!(b.next_batch().is_none());
        b.seal_if_old(MAX_AGE_US);
        assert_eq!(b.next_batch().map(|(_, n)| n), Some(50));
        b.answered(1, true);
        assert_eq!(b.written, 100);
    }

    #[test]
    fn bounded_when_the_agent_is_away() {
        let mut b = RecordBuffer::default();
        for i in 0..(BATCH_RECORDS * (MAX_READY + 3)) as u64 {
            b.push(&rec(i), FieldMask::ALL, 0);
        }
        assert_eq!(b.dropped, 300);
        for t in 0..MAX_IN_FLIGHT as u32 {
            let (_, n) = b.next_batch().expect("batch");
            b.sent(t, n);
        }
        assert!(b.next_batch().is_none(), "in-flight limit");
        b.answered(0, false);
        assert_eq!(b.dropped, 400);
        assert_eq!(
            b.held() + b.dropped,
            (BATCH_RECORDS * (MAX_READY + 3)) as u64
        );
    }
}
