//! The fuzz targets: each takes any bytes and must neither panic nor hang.
//! Where a decoder has an encoder, the target also checks that what decodes
//! encodes back to something that decodes (to the same value for the binary
//! formats); a failed check is a found bug too.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use usher_core::channel::{self, AgentMessage, ManagerMessage};
use usher_core::record::{self, visit_fields, RequestRecord};
use usher_core::ring::RingArea;
use usher_core::{Applied, Command, Echoed, ErrorReply, FrontDoor, Snapshot};

/// What the targets may use besides the input: a scratch folder (the config
/// parsers read files relative to their config file).
pub struct Ctx {
    pub dir: PathBuf,
}

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    /// Tokens the mutator may splice in (text formats).
    pub dict: &'static [&'static str],
    pub run: fn(&Ctx, &[u8]),
}

const JSON_DICT: &[&str] = &[
    "null",
    "true",
    "false",
    "[]",
    "{}",
    "\"\"",
    "0",
    "-1",
    "-0",
    "1e308",
    "1e999",
    "-1e999",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9007199254740993",
    "0.5",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"/\"",
    "\"//x\"",
    "\"front-door\"",
];

const TOML_DICT: &[&str] = &[
    "inf",
    "-inf",
    "nan",
    "0",
    "-1",
    "\"\"",
    "[]",
    "{}",
    "true",
    "4294967296",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "\"0.0.0.0:80\"",
    "\"[::1]:0\"",
    "\"/dev/zero\"",
    "\"../x\"",
    "\"wss://example.com/\"",
    "[[apps]]",
    "[[servers]]",
    "[[wsis]]",
    "[[agents]]",
    "\n",
];

/// Every target, in the order `make fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "record",
        dict: &[],
        run: record,
    },
    Target {
        name: "ring",
        dict: &[],
        run: ring,
    },
    Target {
        name: "snapshot",
        dict: JSON_DICT,
        run: snapshot,
    },
    Target {
        name: "command",
        dict: JSON_DICT,
        run: command,
    },
    Target {
        name: "channel",
        dict: JSON_DICT,
        run: channel_frames,
    },
    Target {
        name: "control_config",
        dict: TOML_DICT,
        run: control_config,
    },
    Target {
        name: "agent_config",
        dict: TOML_DICT,
        run: agent_config,
    },
];

/// A record, a record visited field by field, and a batch.
fn record(_: &Ctx, bytes: &[u8]) {
    let decoded = RequestRecord::decode(bytes);
    let visited = visit_fields(bytes, |_, _| {});
    assert_eq!(
        decoded.is_ok(),
        visited.is_ok(),
        "decode and visit_fields disagree"
    );
    if let Ok(rec) = decoded {
        let mut again = Vec::new();
        rec.encode_into(rec.mask(), &mut again);
        assert_eq!(RequestRecord::decode(&again), Ok(rec), "record round trip");
    }
    if let Ok(batch) = record::decode_batch(bytes) {
        let again = record::encode_batch(&batch.records, record::FieldMask(u32::MAX));
        let back = record::decode_batch(&again).expect("an encoded batch decodes");
        assert_eq!(back.records, batch.records, "batch round trip");
        assert_eq!(back.bad, 0);
    }
}

/// The shared-memory ring area as the agent sees it: attach and drain every
/// ring, in memory; every 16th input also through the agent's reader over a
/// mapped file.
fn ring(ctx: &Ctx, bytes: &[u8]) {
    let words = words(bytes);
    if let Ok(area) = RingArea::attach(&words) {
        let mut buf = Vec::new();
        for i in 0..area.ring_count() {
            let Some(r) = area.ring(i) else { continue };
            r.drain(usize::MAX, &mut buf, |rec| {
                let _decoded = RequestRecord::decode(rec);
            });
            let _stats = r.stats();
        }
    }
    if bytes.len().is_multiple_of(16) && !bytes.is_empty() {
        ring_file(&ctx.dir, bytes);
    }
}

/// Bytes as little-endian words (the last one zero-padded).
fn words(bytes: &[u8]) -> Vec<AtomicU64> {
    bytes
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            AtomicU64::new(u64::from_le_bytes(w))
        })
        .collect()
}

fn ring_file(dir: &Path, bytes: &[u8]) {
    let path = dir.join("ring");
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    if let Ok(mut reader) = usher_agent::RingReader::open(&path) {
        let _counts = reader.drain(|_| {});
        let _stats = reader.stats();
    }
}

/// A snapshot as a WSI parses it, then the front door built from each app.
fn snapshot(_: &Ctx, bytes: &[u8]) {
    let Ok(s) = Snapshot::from_json(bytes) else {
        return;
    };
    let _admitted = usher_core::admit(s.version, 1, 1_790_000_000_000);
    for app in &s.apps {
        let mut door = FrontDoor::new(app, 0.0);
        let _metrics = door.metrics(1.0);
        let shares = door.shares();
        assert!(
            shares
                .iter()
                .all(|x| x.is_finite() && (0.0..=1.0).contains(x)),
            "shares {shares:?}"
        );
        for draw in [0.0, 0.5, 0.999_999] {
            if let usher_core::Pick::Server(i) = door.pick(1.0, [draw, 1.0 - draw]) {
                let name = door.servers()[i].name.clone();
                door.finished(&name, 2.0, 1.0, usher_core::SteeringOutcome::Failed);
            }
        }
        assert_eq!(door.in_flight(), 0, "every pick was finished");
    }
    // What a valid snapshot serializes to is valid again (not compared
    // field by field: serde_json may read a float back 1 ULP off).
    let text = serde_json::to_vec(&s).expect("a snapshot serializes");
    let back = Snapshot::from_json(&text);
    assert!(back.is_ok(), "snapshot round trip: {back:?}");
}

/// A command endpoint request and the replies the control plane reads.
fn command(_: &Ctx, bytes: &[u8]) {
    if let Ok(Command::Snapshot { snapshot }) = serde_json::from_slice::<Command>(bytes) {
        let _checked = snapshot.validate();
    }
    if let Some(e) = ErrorReply::from_json(bytes) {
        let _current = e.stale_current();
        let _text = e.to_string();
    }
    let _applied = serde_json::from_slice::<Applied>(bytes);
    let _echoed = serde_json::from_slice::<Echoed>(bytes);
}

/// Channel frames both ways: JSON text frames and binary record frames.
fn channel_frames(_: &Ctx, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    // What decodes encodes to a frame that decodes again (floats may come
    // back 1 ULP off, so the values are not compared).
    if let Ok(m) = channel::decode::<AgentMessage>(&text) {
        let back = channel::decode::<AgentMessage>(&channel::encode(&m));
        assert!(back.is_ok(), "agent message round trip: {back:?}");
    }
    if let Ok(m) = channel::decode::<ManagerMessage>(&text) {
        let back = channel::decode::<ManagerMessage>(&channel::encode(&m));
        assert!(back.is_ok(), "manager message round trip: {back:?}");
    }
    if let Ok(f) = channel::decode_records(bytes) {
        let again = channel::encode_records(f.seq, f.server, f.batch).expect("re-encodes");
        assert_eq!(again, bytes, "records frame round trip");
        let _batch = record::decode_batch(f.batch);
    }
}

/// `usher.toml` as `usher control` reads it.
fn control_config(ctx: &Ctx, bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _config = usher_control_plane::Config::parse(&ctx.dir.join("usher.toml"), text);
}

/// `agent.toml` as `usher agent` reads it.
fn agent_config(_: &Ctx, bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _config = usher_agent::AgentConfig::parse(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .expect("corpus folder")
            .map(|e| {
                let p = e.expect("entry").path();
                let bytes = std::fs::read(&p).expect("read seed");
                (p.display().to_string(), bytes)
            })
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no seeds for {target}");
        out
    }

    /// Mutations of a valid input reach deep into a parser; mutations of a
    /// refused one mostly test its first check. So every seed is valid.
    #[test]
    fn every_seed_is_a_valid_input() {
        for (name, b) in seeds("record") {
            let ok = RequestRecord::decode(&b).is_ok()
                || record::decode_batch(&b).is_ok_and(|d| d.bad == 0 && !d.records.is_empty());
            assert!(ok, "{name}");
        }
        for (name, b) in seeds("ring") {
            assert!(RingArea::attach(&words(&b)).is_ok(), "{name}");
        }
        for (name, b) in seeds("snapshot") {
            assert!(
                Snapshot::from_json(&b).is_ok(),
                "{name}: {:?}",
                Snapshot::from_json(&b)
            );
        }
        for (name, b) in seeds("command") {
            let ok = serde_json::from_slice::<Command>(&b).is_ok()
                || serde_json::from_slice::<Applied>(&b).is_ok()
                || serde_json::from_slice::<Echoed>(&b).is_ok()
                || ErrorReply::from_json(&b).is_some();
            assert!(ok, "{name}");
        }
        for (name, b) in seeds("channel") {
            let text = String::from_utf8_lossy(&b);
            let ok = channel::decode::<AgentMessage>(&text).is_ok()
                || channel::decode::<ManagerMessage>(&text).is_ok()
                || channel::decode_records(&b).is_ok();
            assert!(ok, "{name}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, b) in seeds("control_config") {
            let text = String::from_utf8(b).expect("UTF-8");
            let parsed = usher_control_plane::Config::parse(&dir.path().join("usher.toml"), &text);
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
        }
        for (name, b) in seeds("agent_config") {
            let text = String::from_utf8(b).expect("UTF-8");
            let parsed = usher_agent::AgentConfig::parse(&text);
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
        }
    }
}
