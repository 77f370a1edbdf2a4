//! The probe loop: every `probe_interval_ms` one probe to each server with
//! `probe = true`, all at once. The sink is told the probe's sequence
//! number and send time first, so it can find the probe again in the record
//! stream (queue figures); the answer decides the server's probe state, and
//! a change of state is an event at once (not at the next report).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use usher_core::channel::{event_type, ServerAggregate};

use super::Cfg;
use crate::outbox::Outbox;
use crate::records::RecordSink;
use crate::{lock, now_us, probe};

/// An event to raise: its type and text.
pub type EventOut = ((u32, &'static str), String);

/// Last probe outcome per server: (ok, why not). The report loop copies it
/// into each report.
#[derive(Debug, Default)]
pub struct ProbeStates(Mutex<HashMap<String, (bool, Option<String>)>>);

impl ProbeStates {
    /// Records the outcome of a probe of `server`; returns the event the
    /// change calls for, if any.
    pub fn update(&self, server: &str, ok: bool, error: Option<String>) -> Option<EventOut> {
        let before = lock(&self.0).insert(server.to_string(), (ok, error.clone()));
        transition(server, before.map(|(ok, _)| ok), ok, error)
    }

    /// Sets `probe_ok` and `probe_error` of each aggregate from the last
    /// outcome of its server (left unset for servers never probed).
    pub fn apply(&self, aggs: &mut [ServerAggregate]) {
        let state = lock(&self.0);
        for a in aggs {
            if let Some((ok, err)) = state.get(&a.server) {
                a.probe_ok = Some(*ok);
                a.probe_error = err.clone();
            }
        }
    }
}

/// The event a probe outcome calls for: `probe_failed` whenever a server
/// stops answering (also on the first probe), `probe_recovered` when it
/// answers again; nothing while the state holds or on a first success.
pub fn transition(
    server: &str,
    was_ok: Option<bool>,
    ok: bool,
    error: Option<String>,
) -> Option<EventOut> {
    if was_ok == Some(ok) {
        return None;
    }
    if !ok {
        return Some((event_type::PROBE_FAILED, error.unwrap_or_default()));
    }
    was_ok.map(|_| {
        (
            event_type::PROBE_RECOVERED,
            format!("probe of {server} answers again"),
        )
    })
}

/// Runs the probes until `stop` turns true.
pub async fn run(
    cfg: Cfg,
    sink: Arc<Mutex<RecordSink>>,
    states: Arc<ProbeStates>,
    outbox: Arc<Outbox>,
    mut stop: watch::Receiver<bool>,
) {
    let client = hyper::Client::builder()
        .pool_max_idle_per_host(0)
        .build_http::<hyper::Body>();
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.probe_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => if *stop.borrow() { return },
            _ = tick.tick() => {}
        }
        let mut rounds = Vec::new();
        for (i, s) in cfg.servers.iter().enumerate().filter(|(_, s)| s.probe) {
            seq += 1;
            lock(&sink).probe_sent(i, seq, now_us());
            let (client, n) = (&client, seq);
            rounds.push(async move { (s, probe::send(client, s, n).await) });
        }
        for (s, out) in futures_util::future::join_all(rounds).await {
            if let Some((kind, text)) = states.update(&s.name, out.ok, out.error) {
                outbox.event(&s.name, kind, text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_only_on_a_change() {
        let s = ProbeStates::default();
        assert_eq!(s.update("a", true, None), None, "first success: quiet");
        assert_eq!(s.update("a", true, None), None);
        let failed = s.update("a", false, Some("status 503".into()));
        assert_eq!(
            failed,
            Some((event_type::PROBE_FAILED, "status 503".into()))
        );
        assert_eq!(s.update("a", false, Some("timeout".into())), None);
        let back = s.update("a", true, None).expect("recovered");
        assert_eq!(back.0, event_type::PROBE_RECOVERED);
        assert!(back.1.contains('a'));
        // A server failing its first probe is reported too.
        assert_eq!(
            s.update("b", false, None).map(|e| e.0),
            Some(event_type::PROBE_FAILED)
        );
    }

    #[test]
    fn reports_carry_the_last_outcome() {
        let s = ProbeStates::default();
        s.update("a", false, Some("timeout".into()));
        let mut aggs = vec![
            ServerAggregate {
                server: "a".into(),
                ..Default::default()
            },
            ServerAggregate {
                server: "never-probed".into(),
                ..Default::default()
            },
        ];
        s.apply(&mut aggs);
        assert_eq!(aggs[0].probe_ok, Some(false));
        assert_eq!(aggs[0].probe_error.as_deref(), Some("timeout"));
        assert_eq!(
            (aggs[1].probe_ok, aggs[1].probe_error.clone()),
            (None, None)
        );
    }
}
