//! The scenario's table, as docs/performance.md shows it: per front door
//! the median over rounds of each figure, and the ratios to nginx
//! `least_conn` (the first door), then the goals of issue 12 checked
//! against those medians.

use super::run::{DoorResult, Figures, ScenarioResult};
use super::scenario::Scenario;
use super::stats::median;

/// One door's medians over its rounds.
pub fn medians(r: &DoorResult) -> Figures {
    let m = |f: fn(&Figures) -> f64| median(&r.rounds.iter().map(f).collect::<Vec<_>>());
    Figures {
        p50_ms: m(|f| f.p50_ms),
        p99_ms: m(|f| f.p99_ms),
        p999_ms: m(|f| f.p999_ms),
        share: m(|f| f.share),
        cpu_us: m(|f| f.cpu_us),
        rate: m(|f| f.rate),
    }
}

/// Appends `text` and a newline.
fn line(out: &mut String, text: String) {
    out.push_str(&text);
    out.push('\n');
}

/// Milliseconds with about three significant digits.
fn ms(v: f64) -> String {
    if v.is_nan() {
        "?".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "?".into()
    }
}

fn ratio(v: f64, base: f64) -> String {
    num(v / base, 2)
}

/// The scenario's table (Markdown).
pub fn table(sc: &Scenario, res: &ScenarioResult, rounds: usize) -> String {
    let mut out = String::new();
    line(
        &mut out,
        format!(
            "Scenario {}: {}; {} requests per front door per round, median of {rounds} rounds.\n",
            sc.number, sc.title, sc.requests
        ),
    );
    line(&mut out, format!("| front door | p50 | p99 | p99.9 (ms) | {} | CPU µs/req | p99 ×lc | p99.9 ×lc | CPU ×lc | req/s | non-2xx | errors |",
        sc.share_label
    ));
    line(
        &mut out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|".into(),
    );
    let Some(base) = res.doors.first().map(medians) else {
        return out;
    };
    for r in &res.doors {
        let f = medians(r);
        let non_2xx = if r.non_2xx.is_empty() {
            "0".to_string()
        } else {
            r.non_2xx
                .iter()
                .map(|(s, n)| format!("{n}×{s}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        line(
            &mut out,
            format!(
                "| {} | {} | {} | {} | {} % | {} | {} | {} | {} | {} | {} | {}{} |",
                r.door.name,
                ms(f.p50_ms),
                ms(f.p99_ms),
                ms(f.p999_ms),
                num(f.share * 100.0, 1),
                num(f.cpu_us, 1),
                ratio(f.p99_ms, base.p99_ms),
                ratio(f.p999_ms, base.p999_ms),
                ratio(f.cpu_us, base.cpu_us),
                num(f.rate, 0),
                non_2xx,
                r.errors,
                if r.capped > 0 {
                    format!(" ({} rounds cut by the time cap)", r.capped)
                } else {
                    String::new()
                }
            ),
        );
    }
    for r in res.doors.iter().filter(|r| !r.samples.is_empty()) {
        line(&mut out, format!("\n{} e.g.: {:?}", r.door.name, r.samples));
    }
    if let Some(h) = &res.hidden {
        line(&mut out, format!("\nHidden load on {}: {} requests straight at its nginx, {} req/s, {} non-2xx, {} errors.",
            sc.spec.servers[sc.watched],
            h.sent(),
            num(h.sent() as f64 / h.elapsed.as_secs_f64().max(1e-9), 0),
            h.non_2xx.values().sum::<u64>(),
            h.errors
        ));
    }
    out.push_str(&goals(sc, res));
    out
}

/// Issue 12's goals for the usher doors, met or not, from the medians.
pub fn goals(sc: &Scenario, res: &ScenarioResult) -> String {
    let Some(base) = res.doors.first().map(medians) else {
        return String::new();
    };
    let usher: Vec<(&str, Figures)> = res
        .doors
        .iter()
        .filter(|r| r.door.name.starts_with("usher"))
        .map(|r| (r.door.name, medians(r)))
        .collect();
    let mark = |ok: bool| if ok { "met" } else { "NOT met" };
    let mut out = String::from("\nGoals (issue 12):\n");
    for (name, f) in &usher {
        let p999 = f.p999_ms / base.p999_ms;
        let cpu = f.cpu_us / base.cpu_us;
        let verdict = if sc.number == 1 {
            format!(
                "p99.9 ×{} (≤ 0.5) and {} ms (≤ 105): {}; p99 ×{} (≤ 1.0): {}",
                num(p999, 2),
                ms(f.p999_ms),
                mark(p999 <= 0.5 && f.p999_ms <= 105.0),
                num(f.p99_ms / base.p99_ms, 2),
                mark(f.p99_ms <= base.p99_ms)
            )
        } else {
            format!(
                "p99.9 ×{} (≤ 0.9): {}; share {} % vs least_conn {} %: {}",
                num(p999, 2),
                mark(p999 <= 0.9),
                num(f.share * 100.0, 1),
                num(base.share * 100.0, 1),
                mark(f.share < base.share)
            )
        };
        line(
            &mut out,
            format!(
                "- {name}: {verdict}; CPU ×{} (≤ 1.2): {}",
                num(cpu, 2),
                mark(cpu <= 1.2)
            ),
        );
    }
    let p999s: Vec<f64> = usher.iter().map(|(_, f)| f.p999_ms).collect();
    let (lo, hi) = p999s.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(*v), hi.max(*v))
    });
    if !p999s.is_empty() {
        line(
            &mut out,
            format!(
                "- usher doors within 20 % of each other on p99.9 ({} to {} ms): {}",
                ms(lo),
                ms(hi),
                mark(hi <= lo * 1.2)
            ),
        );
    }
    out
}
