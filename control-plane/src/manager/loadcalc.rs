//! Every interval: each server's dynamic load value, and which servers
//! failed (probe failed, or their agent went silent after a ping).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use usher_core::channel::{event_type, ManagerMessage, ServerAggregate};
use usher_core::dynamic_load_from_delay;

use crate::manager::config::{LoadSource, ManagerConfig};
use crate::manager::logdb::{now_us, Sample, Write};
use crate::manager::state::{lock, Manager, ServerState};
pub use crate::manager::status::ServerStatus;

/// The delay a server's figures stand for, by the configured source.
pub fn delay_of(agg: &ServerAggregate, source: LoadSource) -> u64 {
    let queue = agg.queue_delay_us;
    match source {
        LoadSource::QueueDelay => queue.unwrap_or(agg.mean_us),
        LoadSource::ProcessingTime => agg.mean_us,
        LoadSource::Sum => queue.unwrap_or(0).saturating_add(agg.mean_us),
    }
}

/// Computes every server's status (pure).
///
/// Missing data is not failure: a server fails only on evidence about the
/// server itself (its probe failed). When its agent goes silent, the server
/// keeps its last measured value with the time it was measured, so the
/// front doors age it toward the static capacity, as the design says,
/// instead of turning users away from a healthy server.
pub(crate) fn compute(
    cfg: &ManagerConfig,
    servers: &HashMap<String, ServerState>,
    now_us: u64,
) -> Vec<ServerStatus> {
    let half_at_us = (cfg.half_at_ms * 1000.0).max(1.0) as u64;
    let mut out: Vec<ServerStatus> = servers
        .iter()
        .map(|(name, st)| {
            let latest = st.latest.as_ref().map(|(_, agg)| agg);
            let reason = st
                .probe_failure
                .clone()
                .map(|r| format!("probe failed: {r}"));
            let error_share = latest.map_or(0.0, |agg| error_share(agg, st.error_memory, now_us));
            let (load, delay) = match latest {
                // No record at all in the interval (no completion, no
                // probe): the server is not idle, it is unknown; keep the
                // last value and let the front doors age it.
                Some(agg) if agg.count == 0 && st.load.is_some() => (st.load, st.last_delay),
                Some(agg) => {
                    let delay = delay_of(agg, cfg.load_source);
                    let load = dynamic_load_from_delay(delay, half_at_us);
                    (Some(discount_errors(load, error_share)), Some(delay))
                }
                None => (None, None),
            };
            ServerStatus {
                server: name.clone(),
                agent_id: st.agent_id.clone(),
                dynamic_load: load,
                delay_us: delay,
                measured_at_unix: latest.and(st.measured_at_us).map(|us| us as f64 / 1e6),
                failed: reason.is_some(),
                reason,
                queue_length: latest.and_then(|a| a.queue_length),
                requests: latest.map_or(0, |a| a.count.saturating_sub(a.probes)),
                errors: latest.map_or(0, |a| a.errors_5xx + a.errors_429),
                host_cpu_pct: st.host_cpu_pct,
                host_mem_pct: st.host_mem_pct,
                error_share,
            }
        })
        .collect();
    out.sort_by(|a, b| a.server.cmp(&b.server));
    out
}

/// How long a remembered error share holds in full with no users'
/// requests to contradict it, and then its half-life: a server that lost
/// its users by failing is let back as a trickle, not all at once.
const ERROR_HOLD_US: u64 = 10_000_000;
const ERROR_HALF_LIFE_US: f64 = 10_000_000.0;

/// Fast errors are load: a server answering 5xx or 429 to a share `e` of
/// its users' requests keeps only `(1 − e)` of its load value, so a server
/// that fails fast (and so looks quick) loses share instead of drawing
/// users.
pub fn discount_errors(load: u32, error_share: f64) -> u32 {
    let kept = 1.0 - error_share.clamp(0.0, 1.0);
    (f64::from(load) * kept).round() as u32
}

/// Users' requests in a report (records that were not probes).
pub fn users_requests(agg: &ServerAggregate) -> u64 {
    agg.count.saturating_sub(agg.probes)
}

/// The share of users' answers that were errors: from the report when it
/// has users' requests; else the remembered share (`memory`: share and
/// when, unix µs), held for [`ERROR_HOLD_US`] and then halved every
/// [`ERROR_HALF_LIFE_US`] — probes alone say nothing about what users get.
pub fn error_share(agg: &ServerAggregate, memory: Option<(f64, u64)>, now_us: u64) -> f64 {
    let users = users_requests(agg);
    if users > 0 {
        let errors = (agg.errors_5xx + agg.errors_429).min(users);
        return errors as f64 / users as f64;
    }
    let Some((share, at)) = memory else {
        return 0.0;
    };
    let age = now_us.saturating_sub(at).saturating_sub(ERROR_HOLD_US);
    share * 0.5f64.powf(age as f64 / ERROR_HALF_LIFE_US)
}

/// The load loop: runs every interval and whenever woken.
pub async fn run(m: Manager, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    let cfg = m.config().clone();
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut silent: HashSet<String> = HashSet::new();
    let mut last_start = now_us();
    loop {
        let ticked = tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => true,
            _ = m.inner.wake.notified() => false,
        };
        let now = Instant::now();
        let ping_after = Duration::from_millis(cfg.ping_after_ms);
        let silent_after = Duration::from_millis(cfg.silent_after_ms);
        let mut alive = HashSet::new();
        let mut newly_silent = Vec::new();
        {
            let mut agents = lock(&m.inner.agents);
            for (id, a) in agents.iter_mut() {
                let quiet = now.saturating_duration_since(a.last_heard);
                if quiet >= ping_after && !a.pinged {
                    a.pinged = true;
                    if a.tx.send(ManagerMessage::Ping { nonce: now_us() }).is_err() {
                        tracing::debug!("ping to {id} not sent");
                    }
                }
                if quiet < silent_after {
                    alive.insert(id.clone());
                }
            }
        }
        for id in lock(&m.inner.gone).keys() {
            if !alive.contains(id) && silent.insert(id.clone()) {
                newly_silent.push(id.clone());
            }
        }
        {
            let agents = lock(&m.inner.agents);
            for id in agents.keys() {
                if !alive.contains(id) && silent.insert(id.clone()) {
                    newly_silent.push(id.clone());
                }
            }
        }
        silent.retain(|id| !alive.contains(id));
        for id in newly_silent {
            m.raise_event(
                &id,
                event_type::AGENT_SILENT,
                format!("agent {id} is silent"),
            )
            .await;
        }

        let (statuses, transitions) = {
            let mut servers = lock(&m.inner.servers);
            let statuses = compute(&cfg, &servers, now_us());
            let mut transitions = Vec::new();
            for s in &statuses {
                if let Some(st) = servers.get_mut(&s.server) {
                    st.load = s.dynamic_load;
                    st.last_delay = s.delay_us;
                    if let Some((_, agg)) = &st.latest {
                        if users_requests(agg) > 0 {
                            st.error_memory =
                                Some((s.error_share, st.measured_at_us.unwrap_or_else(now_us)));
                        }
                    }
                    if st.failed != s.reason {
                        if st.failed.is_some() != s.reason.is_some() {
                            transitions.push((s.server.clone(), s.reason.clone()));
                        }
                        st.failed = s.reason.clone();
                    }
                }
            }
            (statuses, transitions)
        };
        *lock(&m.inner.statuses) = statuses.clone();
        m.inner.listener.statuses(&statuses);
        for (server, reason) in transitions {
            match reason {
                Some(r) => {
                    m.inner.listener.server_failed(&server, &r);
                    m.raise_event(
                        &server,
                        event_type::SERVER_FAILED,
                        format!("server {server} failed: {r}"),
                    )
                    .await;
                }
                None => {
                    m.inner.listener.server_recovered(&server);
                    m.raise_event(
                        &server,
                        event_type::SERVER_RECOVERED,
                        format!("server {server} recovered"),
                    )
                    .await;
                }
            }
        }
        if ticked {
            let stop = now_us();
            let samples: Vec<Sample> = statuses
                .iter()
                .filter_map(|s| {
                    s.dynamic_load.map(|l| Sample {
                        component: format!("server:{}", s.server),
                        metric: "dynamic_load".into(),
                        interval_start_us: last_start,
                        interval_stop_us: stop,
                        value: f64::from(l),
                    })
                })
                .collect();
            last_start = stop;
            if !samples.is_empty() {
                if let Err(e) = m.logdb().write(Write::Samples(samples), None).await {
                    tracing::error!("dynamic load samples not logged: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(agent: &str, agg: Option<ServerAggregate>, at: Instant) -> ServerState {
        ServerState {
            agent_id: agent.into(),
            latest: agg.map(|a| (at, a)),
            ..Default::default()
        }
    }

    #[test]
    fn loads_and_failures_silence_is_no_failure() {
        let now = Instant::now();
        let cfg = ManagerConfig {
            half_at_ms: 10.0,
            ..ManagerConfig::default()
        }; // half at 10 ms, sum of queue + mean
        let fast = ServerAggregate {
            server: "a".into(),
            mean_us: 10_000,
            queue_delay_us: Some(0),
            ..Default::default()
        };
        let slow = ServerAggregate {
            server: "b".into(),
            mean_us: 50_000,
            queue_delay_us: Some(20_000),
            ..Default::default()
        };
        let mut servers = HashMap::new();
        servers.insert("a".to_string(), state("ag1", Some(fast), now));
        servers.insert("b".to_string(), state("ag1", Some(slow), now));
        servers.insert("c".to_string(), state("ag2", None, now));
        let mut broken = state("ag1", None, now);
        broken.probe_failure = Some("status 500".into());
        servers.insert("d".to_string(), broken);
        let st = compute(&cfg, &servers, 0);
        assert_eq!(st[0].dynamic_load, Some(5_000)); // 10 ms at half 10 ms
        assert_eq!(st[1].dynamic_load, Some(1_250)); // 70 ms: 10000*10/80
        assert_eq!(st[1].delay_us, Some(70_000));
        assert!(!st[0].failed && !st[1].failed);
        // c's agent reported nothing (or went silent): no data is no failure.
        assert!(!st[2].failed && st[2].dynamic_load.is_none());
        assert!(st[3].failed && st[3].reason.as_deref().is_some_and(|r| r.contains("500")));
    }

    #[test]
    fn fast_errors_cut_the_load_and_an_empty_interval_keeps_the_last_value() {
        let now = Instant::now();
        let cfg = ManagerConfig::default();
        let erring = ServerAggregate {
            count: 100,
            mean_us: 1_000,
            errors_5xx: 60,
            errors_429: 20,
            queue_delay_us: Some(0),
            ..Default::default()
        };
        let full = dynamic_load_from_delay(1_000, 5_000);
        assert_eq!(
            discount_errors(full, error_share(&erring, None, 0)),
            (f64::from(full) * 0.2).round() as u32
        );
        let mut servers = HashMap::new();
        servers.insert("a".to_string(), state("ag", Some(erring), now));
        let st = compute(&cfg, &servers, 0);
        assert_eq!(
            st[0].dynamic_load,
            Some((f64::from(full) * 0.2).round() as u32)
        );
        assert_eq!((st[0].requests, st[0].errors), (100, 80));
        // Nothing at all in the next interval: not idle, the last value.
        let mut empty = state("ag", Some(ServerAggregate::default()), now);
        empty.load = Some(1234);
        empty.last_delay = Some(42_000);
        servers.insert("a".to_string(), empty);
        let st = compute(&cfg, &servers, 0);
        assert_eq!(
            (st[0].dynamic_load, st[0].delay_us),
            (Some(1234), Some(42_000))
        );
    }

    #[test]
    fn sources() {
        let agg = ServerAggregate {
            mean_us: 7,
            queue_delay_us: Some(5),
            ..Default::default()
        };
        assert_eq!(delay_of(&agg, LoadSource::QueueDelay), 5);
        assert_eq!(delay_of(&agg, LoadSource::ProcessingTime), 7);
        assert_eq!(delay_of(&agg, LoadSource::Sum), 12);
        let no_probe = ServerAggregate {
            mean_us: 7,
            ..Default::default()
        };
        assert_eq!(delay_of(&no_probe, LoadSource::QueueDelay), 7);
    }
}
