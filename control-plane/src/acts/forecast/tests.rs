//! Predictive alerts over a real logging database: recorded-style series
//! written as metric samples, one look, the events it logged.

use std::net::SocketAddr;
use std::sync::Arc;

use usher_core::model::AppMode;
use usher_core::rules::RedirectRules;

use super::*;
use crate::manager::logdb::{Sample as Logged, Write};
use crate::manager::{ManagerConfig, NoListener};
use crate::model::{App, Origin, Server};

fn fleet() -> Fleet {
    let app = App {
        name: "shop".into(),
        origin: Origin::Config,
        listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
        public_url: "http://127.0.0.1:8000".into(),
        mode: AppMode::Redirect,
        enabled: true,
        sorry_page: None,
        rules: RedirectRules::default(),
        epsilon: 0.0,
        obsolescence_secs: 1200.0,
        max_concurrent: 0,
        panic_threshold_pct: 0.0,
        policy: Policy {
            heavy_mem_pct: 90.0,
            ..Policy::default()
        },
    };
    let server = |name: &str| Server {
        name: name.into(),
        origin: Origin::Config,
        app: "shop".into(),
        url: format!("http://127.0.0.1/{name}"),
        capacity: 5,
        enabled: true,
        pinned_load: None,
        pinned_until_unix: None,
        redirect: None,
    };
    Fleet {
        apps: vec![app],
        servers: vec![server("rising"), server("steady")],
        ..Fleet::default()
    }
}

/// Deterministic noise in [-1, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// 120 samples, one every 5 s, ending now: `value(i)` for sample `i`.
fn series(component: &str, metric: &str, now: u64, value: impl Fn(usize) -> f64) -> Vec<Logged> {
    (0..120)
        .map(|i| {
            let stop = now - (119 - i as u64) * 5_000_000;
            Logged {
                component: component.into(),
                metric: metric.into(),
                interval_start_us: stop - 5_000_000,
                interval_stop_us: stop,
                value: value(i),
            }
        })
        .collect()
}

async fn events(m: &Manager) -> Vec<(String, String, String)> {
    m.logdb().flush().await.expect("flush");
    m.logdb()
        .read(|c| {
            let mut st =
                c.prepare("SELECT origin_name, type_name, text FROM events ORDER BY id")?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
        .expect("events")
}

/// The number of seconds in an event text's "in about N s".
fn eta_in(text: &str) -> f64 {
    let tail = text.split("in about ").nth(1).expect("an estimate");
    tail.split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

#[tokio::test]
async fn trends_are_told_with_their_time_and_noise_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Manager::open(dir.path(), ManagerConfig::default(), Arc::new(NoListener))
        .await
        .expect("open");
    let now = now_us();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut rows = Vec::new();
    // "rising": processing time 100 → ~300 ms over 10 min (+0.34 ms/s),
    // ±20 ms of noise: heavy_ms 500 comes ~590 s after the last sample.
    let rising = |i: usize| 100_000.0 + 340.0 * 5.0 * i as f64;
    let noisy: Vec<f64> = (0..120)
        .map(|i| rising(i) + 20_000.0 * noise.next())
        .collect();
    rows.extend(series("server:rising", "mean_us", now, |i| noisy[i]));
    rows.extend(series("server:rising", "requests", now, |_| 100.0));
    rows.extend(series("server:rising", "errors_5xx", now, |_| 0.0));
    // "steady": 200 ms ± 150 ms, and 0-10 % errors at random: flat noise.
    let flat: Vec<f64> = (0..120)
        .map(|_| 200_000.0 + 150_000.0 * noise.next())
        .collect();
    let errs: Vec<f64> = (0..120)
        .map(|_| (5.0 + 5.0 * noise.next()).round())
        .collect();
    rows.extend(series("server:steady", "mean_us", now, |i| flat[i]));
    rows.extend(series("server:steady", "requests", now, |_| 100.0));
    rows.extend(series("server:steady", "errors_5xx", now, |i| errs[i]));
    // Host "h1": a 10 GB disk losing 2 MB/s from 6 GB free (~1800 s left
    // at the last sample); memory flat at 50 %; reports every 5 s.
    let free = |i: usize| 6.0e9 - 2.0e6 * 5.0 * i as f64;
    let churn: Vec<f64> = (0..120).map(|i| free(i) + 5.0e7 * noise.next()).collect();
    rows.extend(series("host:h1", "disk:/var.available_bytes", now, |i| {
        churn[i]
    }));
    rows.extend(series("host:h1", "disk:/var.total_bytes", now, |_| 1.0e10));
    rows.extend(series("host:h1", "cpu.idle", now, |_| 60.0));
    rows.extend(series("host:h1", "memory.used", now, |_| 4.0e9));
    rows.extend(series("host:h1", "memory.total", now, |_| 8.0e9));
    m.logdb()
        .write(
            Write::Agent {
                agent_id: "h1".into(),
                host_id: "h1".into(),
                host_name: "h1".into(),
                servers: "rising,steady".into(),
            },
            None,
        )
        .await
        .expect("agent");
    m.logdb()
        .write(Write::Samples(rows), None)
        .await
        .expect("samples");
    m.logdb().flush().await.expect("flush");

    let rule = TrendRule::default();
    let mut forecasts = Forecasts::default();
    let window = Duration::from_secs(600);
    look_once(&fleet(), &m, window, &rule, &mut forecasts).await;
    let got = events(&m).await;
    let predicted: Vec<&(String, String, String)> =
        got.iter().filter(|e| e.1 == "trend_predicted").collect();
    assert_eq!(predicted.len(), 2, "{got:#?}");

    let delay = predicted
        .iter()
        .find(|e| e.0 == "rising")
        .unwrap_or_else(|| panic!("rising's delay: {got:#?}"));
    assert!(
        delay.2.contains("processing + queue time") && delay.2.contains("heavy_ms"),
        "{delay:?}"
    );
    // The truth: the noiseless line reaches 500 ms at i = 400/1.7 samples.
    let truth = (500_000.0 - rising(119)) / 340.0;
    let eta = eta_in(&delay.2);
    assert!(
        (eta - truth).abs() <= 0.2 * truth,
        "{eta} vs {truth}: {delay:?}"
    );

    let disk = predicted
        .iter()
        .find(|e| e.0 == "h1")
        .unwrap_or_else(|| panic!("h1's disk: {got:#?}"));
    assert!(
        disk.2.contains("free bytes on /var") && disk.2.contains("full"),
        "{disk:?}"
    );
    let truth = free(119) / 2.0e6;
    let eta = eta_in(&disk.2);
    assert!(
        (eta - truth).abs() <= 0.2 * truth,
        "{eta} vs {truth}: {disk:?}"
    );

    // A second look over the same figures tells nothing new.
    look_once(&fleet(), &m, window, &rule, &mut forecasts).await;
    assert_eq!(events(&m).await.len(), got.len());
    assert_eq!(forecasts.standing().count(), 2);
}

/// A forecast that no longer holds ends with `trend_over`, once.
#[test]
fn a_trend_that_flattens_is_over() {
    let rule = TrendRule::default();
    let line = |slope: f64| Watched {
        origin: "web1".into(),
        figure: "probe queue length".into(),
        limit_name: "heavy_queue".into(),
        limit: 64.0,
        samples: (0..60)
            .map(|i| Sample {
                t: 10.0 * f64::from(i),
                value: 10.0 + slope * f64::from(i),
            })
            .collect(),
    };
    let mut f = Forecasts::default();
    let first = f.look(&[line(0.5)], &rule);
    assert!(
        matches!(first.as_slice(), [Change::Predicted { origin, .. }] if origin == "web1"),
        "{first:?}"
    );
    assert_eq!(f.look(&[line(0.5)], &rule), vec![]);
    let over = f.look(&[line(0.0)], &rule);
    assert!(matches!(over.as_slice(), [Change::Over { .. }]), "{over:?}");
    assert_eq!(f.look(&[line(0.0)], &rule), vec![]);
}
