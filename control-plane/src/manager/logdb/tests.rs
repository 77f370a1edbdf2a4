//! The logging database against a real SQLite file (a temp folder).

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use usher_core::record::encode_batch;
use usher_core::{FieldMask, RequestRecord};

fn event(seq: u64) -> Event {
    Event {
        seq,
        origin_id: "web1".into(),
        origin_name: "web1".into(),
        type_name: "probe_failed".into(),
        type_code: 110,
        text: format!("event {seq}"),
        time_occurred_us: 1_000 + seq,
    }
}

#[tokio::test]
async fn sequenced_writes_are_stored_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = LogDb::open(dir.path(), 5, 24).expect("open");
    let acked = Arc::new(AtomicUsize::new(0));
    for round in 0..2 {
        for seq in 1..=5 {
            let a = acked.clone();
            let done: Done = Box::new(move || {
                a.fetch_add(1, Ordering::SeqCst);
            });
            let w = Write::Event {
                agent_id: "a1".into(),
                event: event(seq),
            };
            db.write(w, Some(done)).await.expect("write");
        }
        let recs = vec![
            RequestRecord {
                status: Some(200 + round),
                method: Some("GET".into()),
                ..Default::default()
            };
            3
        ];
        let w = Write::Records {
            agent_id: "a1".into(),
            seq: 6,
            server: "s".into(),
            batch: encode_batch(&recs, FieldMask::ALL),
        };
        db.write(w, None).await.expect("records");
    }
    db.flush().await.expect("flush");
    assert_eq!(
        acked.load(Ordering::SeqCst),
        10,
        "duplicates are acknowledged too"
    );
    let (events, requests, status): (i64, i64, i64) = db
        .read(|c| {
            let e = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
            let n = c.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))?;
            let s = c.query_row("SELECT MAX(status) FROM requests", [], |r| r.get(0))?;
            Ok((e, n, s))
        })
        .await
        .expect("read");
    assert_eq!((events, requests, status), (5, 3, 200));
    assert_eq!(db.stored_seq("a1").await.expect("seq"), 6);
    assert_eq!(db.stored_seq("other").await.expect("seq"), 0);
}

#[tokio::test]
async fn facts_are_logged_again_only_on_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = LogDb::open(dir.path(), 5, 24).expect("open");
    let mut facts = HostFacts {
        host_id: "h1".into(),
        host_name: "web".into(),
        ..Default::default()
    };
    facts.interfaces.push(usher_core::channel::NetInterface {
        name: "lo".into(),
        mac: "00".into(),
        addresses: vec!["127.0.0.1".into()],
    });
    for _ in 0..3 {
        db.write(
            Write::Facts {
                agent_id: "a1".into(),
                facts: facts.clone(),
            },
            None,
        )
        .await
        .expect("w");
    }
    facts.memory_bytes = 42;
    db.write(
        Write::Facts {
            agent_id: "a1".into(),
            facts,
        },
        None,
    )
    .await
    .expect("w");
    db.flush().await.expect("flush");
    let (f, n): (i64, i64) = db
        .read(|c| {
            Ok((
                c.query_row("SELECT COUNT(*) FROM host_facts", [], |r| r.get(0))?,
                c.query_row("SELECT COUNT(*) FROM net_interfaces", [], |r| r.get(0))?,
            ))
        })
        .await
        .expect("read");
    assert_eq!((f, n), (2, 2));
}

#[tokio::test]
async fn reports_become_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = LogDb::open(dir.path(), 5, 24).expect("open");
    let mut report = Report {
        seq: 1,
        interval_start_us: 10,
        interval_stop_us: 20,
        ..Default::default()
    };
    report.servers.push(usher_core::channel::ServerAggregate {
        server: "s1".into(),
        count: 7,
        queue_delay_us: Some(900),
        ..Default::default()
    });
    report.host.cpu.idle = 55.0;
    db.write(
        Write::Report {
            agent_id: "a1".into(),
            report: report.clone(),
        },
        None,
    )
    .await
    .expect("w");
    db.write(
        Write::Report {
            agent_id: "a1".into(),
            report,
        },
        None,
    )
    .await
    .expect("w");
    db.flush().await.expect("flush");
    let (count, idle, n): (f64, f64, i64) = db
        .read(|c| Ok((
            c.query_row("SELECT value FROM metric_samples WHERE component='server:s1' AND metric='requests'", [], |r| r.get(0))?,
            c.query_row("SELECT value FROM metric_samples WHERE component='host:a1' AND metric='cpu.idle'", [], |r| r.get(0))?,
            c.query_row("SELECT COUNT(*) FROM metric_samples WHERE metric='queue_delay_us'", [], |r| r.get(0))?,
        )))
        .await
        .expect("read");
    assert_eq!((count, idle, n), (7.0, 55.0, 1));
}
