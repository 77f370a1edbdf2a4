//! Reading what the operator typed: durations, times, query strings, path
//! segments.

use super::client::CtlError;

/// A duration in whole seconds: `90`, `90s`, `5m`, `2h`, `1d`.
pub(super) fn duration_secs(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().ok()?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit_secs)
}

/// `--since`: a duration back from now (`90s`, `10m`, `2h`, `1d`, plain
/// seconds) or, when it has 13+ digits, a Unix time in microseconds.
pub(super) fn since_us(text: &str, now_us: u64) -> Result<u64, CtlError> {
    let t = text.trim();
    let bad = || {
        CtlError::Local(format!(
            "--since: not a duration like 90s, 10m, 2h, 1d: {text:?}"
        ))
    };
    if t.len() >= 13 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    let secs = duration_secs(t).ok_or_else(bad)?;
    Ok(now_us.saturating_sub(secs.saturating_mul(1_000_000)))
}

/// `--for`: how long a pinned load holds, more than zero seconds; with the
/// duration as the operator wrote it (`90` reads `90s`).
pub(super) fn pin_secs(text: &str) -> Result<(u64, String), CtlError> {
    let t = text.trim();
    match duration_secs(t) {
        Some(0) => Err(CtlError::Local(
            "--for: must be longer than 0s (or leave it out to pin until --clear)".into(),
        )),
        Some(s) if t.bytes().all(|b| b.is_ascii_digit()) => Ok((s, format!("{t}s"))),
        Some(s) => Ok((s, t.to_string())),
        None => Err(CtlError::Local(format!(
            "--for: not a duration like 90, 90s, 5m, 1h: {text:?}"
        ))),
    }
}

/// `--quiet`: a drain's quiet period in whole seconds (0 drains at the
/// manager's next interval; the API sets the upper limit).
pub(super) fn quiet_secs(text: &str) -> Result<u64, CtlError> {
    duration_secs(text).ok_or_else(|| {
        CtlError::Local(format!(
            "--quiet: not a duration like 90s, 10m, 1h: {text:?}"
        ))
    })
}

pub(super) fn now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Builds `path?k=v&…` from the parameters that are set.
pub(super) fn query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v))))
        .collect();
    if parts.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

pub(super) fn seg(name: &str) -> String {
    // Names are [A-Za-z0-9._-]; anything else would be refused by the API,
    // but keep the path well formed whatever was typed.
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
