use super::*;

/// A frame maker as `push` takes it.
fn ok(make: impl Fn(u64) -> Frame) -> impl FnOnce(u64) -> std::io::Result<Frame> {
    move |seq| Ok(make(seq))
}

fn frame(seq: u64) -> Frame {
    Frame::Text(format!("{{\"v\":2,\"msg\":{{\"seq\":{seq}}}}}"))
}

#[test]
fn survives_restart_and_sends_each_message_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut delivered = Vec::new();
    {
        let mut s = Spool::open(dir.path(), 1 << 20).expect("open");
        for _ in 0..10 {
            s.push(Kind::Event, ok(frame)).expect("push");
        }
        // The first four are sent and acknowledged, 5 and 6 sent but not acknowledged.
        delivered.extend(s.after(0, 4).iter().map(|e| e.seq));
        s.ack(4).expect("ack");
        assert_eq!(s.after(4, 2).len(), 2);
    } // agent restarts
    let mut s = Spool::open(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(s.len(), 6);
    let rest: Vec<u64> = s.after(s.acked(), 100).iter().map(|e| e.seq).collect();
    assert_eq!(rest, vec![5, 6, 7, 8, 9, 10]);
    delivered.extend(rest);
    s.ack(10).expect("ack");
    // New messages continue the numbering.
    assert_eq!(s.push(Kind::Report, ok(frame)).expect("push"), 11);
    assert_eq!(delivered, (1..=10).collect::<Vec<_>>());
    drop(s);
    let s = Spool::open(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(
        s.after(0, 100).iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![11]
    );
}

#[test]
fn a_torn_last_line_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = Spool::open(dir.path(), 1 << 20).expect("open");
        s.push(Kind::Event, ok(frame)).expect("push");
    }
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.path().join(LOG))
        .expect("open");
    f.write_all(b"2 e {\"v\":1,\"ms").expect("torn");
    drop(f);
    let mut s = Spool::open(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(s.len(), 1);
    assert_eq!(s.push(Kind::Event, ok(frame)).expect("push"), 2);
}

#[test]
fn full_spool_sheds_reports_before_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Spool::open(dir.path(), 8192).expect("open");
    for i in 0..200 {
        let kind = if i % 10 == 0 {
            Kind::Event
        } else {
            Kind::Report
        };
        s.push(kind, ok(frame)).expect("push");
    }
    assert!(s.dropped > 0);
    let kept = s.after(0, 1000);
    assert_eq!(kept.iter().filter(|e| e.kind == Kind::Event).count(), 20);
    assert!(kept.windows(2).all(|w| w[0].seq < w[1].seq));
    drop(s);
    assert_eq!(
        Spool::open(dir.path(), 8192).expect("reopen").len(),
        kept.len()
    );
}

#[test]
fn frames_stay_on_disk_and_survive_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Spool::open(dir.path(), 64 << 20).expect("open");
    let big = |seq: u64| {
        Frame::Text(format!(
            "{{\"v\":2,\"msg\":{{\"seq\":{seq},\"pad\":\"{}\"}}}}",
            "x".repeat(1000)
        ))
    };
    for _ in 0..3000 {
        s.push(Kind::Records, ok(big)).expect("push");
    }
    assert_eq!(s.after(10, 1)[0].frame, big(11));
    // Acknowledging most of it compacts the file; the rest reads back.
    s.ack(2900).expect("ack");
    let size = std::fs::metadata(dir.path().join(LOG)).expect("log").len();
    assert!(size < 200 * 1100, "compacted to {size} bytes");
    let rest = s.after(2900, 1000);
    assert_eq!(rest.len(), 100);
    assert!(rest.iter().all(|e| e.frame == big(e.seq)));
    // Appends after the compaction land where the index says.
    let seq = s.push(Kind::Event, ok(frame)).expect("push");
    assert_eq!(s.after(seq - 1, 1)[0].frame, frame(seq));
    drop(s);
    let s = Spool::open(dir.path(), 64 << 20).expect("reopen");
    assert_eq!(s.len(), 101);
    assert_eq!(
        s.after(2999, 5)
            .iter()
            .map(|e| e.frame.clone())
            .collect::<Vec<_>>(),
        vec![big(3000), frame(3001)]
    );
}

#[test]
fn spool_files_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    };
    {
        let mut s = Spool::open(dir.path(), 1 << 20).expect("open");
        s.push(Kind::Records, ok(frame)).expect("push");
        s.push(Kind::Records, ok(frame)).expect("push");
        s.ack(1).expect("ack");
    }
    assert_eq!((mode(LOG), mode(ACKED)), (0o600, 0o600));
    // A spool an older agent left readable is made private at open.
    for name in [LOG, ACKED] {
        std::fs::set_permissions(
            dir.path().join(name),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
    }
    let mut s = Spool::open(dir.path(), 1 << 20).expect("reopen");
    assert_eq!((mode(LOG), mode(ACKED)), (0o600, 0o600));
    s.ack(2).expect("ack");
    assert_eq!(mode(ACKED), 0o600);
}

#[test]
fn binary_frames_keep_every_byte_across_restart_and_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Bytes a line-based reader would trip on: newlines, spaces, digits.
    let bin = |seq: u64| Frame::Binary(format!("\n1 B 3 \n{seq}\n\n").into_bytes());
    {
        let mut s = Spool::open(dir.path(), 1 << 20).expect("open");
        for i in 0..6u64 {
            if i % 2 == 0 {
                s.push(Kind::Records, ok(bin)).expect("push");
            } else {
                s.push(Kind::Event, ok(frame)).expect("push");
            }
        }
        s.ack(1).expect("ack");
    }
    // An older agent's JSON record batch line is still read.
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.path().join(LOG))
        .expect("open");
    f.write_all(b"7 b {\"v\":1}\n").expect("old line");
    // A torn binary line: its length says more than is there.
    f.write_all(b"8 B 40 \x02R\n").expect("torn");
    drop(f);
    let mut s = Spool::open(dir.path(), 1 << 20).expect("reopen");
    let want: Vec<(u64, Kind, Frame)> = vec![
        (2, Kind::Event, frame(2)),
        (3, Kind::Records, bin(3)),
        (4, Kind::Event, frame(4)),
        (5, Kind::Records, bin(5)),
        (6, Kind::Event, frame(6)),
        (7, Kind::Records, Frame::Text("{\"v\":1}".into())),
    ];
    let got = |s: &Spool| -> Vec<(u64, Kind, Frame)> {
        s.after(0, 100)
            .into_iter()
            .map(|e| (e.seq, e.kind, e.frame))
            .collect()
    };
    assert_eq!(got(&s), want);
    // A frame that cannot be made uses no number; the torn line's number
    // is handed out again.
    let refused = s.push(Kind::Records, |_| {
        Err(std::io::ErrorKind::InvalidInput.into())
    });
    assert!(refused.is_err());
    assert_eq!(s.push(Kind::Records, ok(bin)).expect("push"), 8);
    s.rewrite().expect("compact");
    let mut want = want;
    want.push((8, Kind::Records, bin(8)));
    assert_eq!(got(&s), want);
    drop(s);
    assert_eq!(
        got(&Spool::open(dir.path(), 1 << 20).expect("reopen")),
        want
    );
}
