//! The metric samples an agent's interval report becomes.

use usher_core::channel::Report;

use super::Sample;

/// The metric samples one report makes: per server `server:<name>` and per
/// host `host:<host>` (the agent id stands for its host).
pub fn report_samples(agent_id: &str, report: &Report) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut put = |component: &str, metric: &str, value: f64| {
        out.push(Sample {
            component: component.to_string(),
            metric: metric.to_string(),
            interval_start_us: report.interval_start_us,
            interval_stop_us: report.interval_stop_us,
            value,
        });
    };
    for s in &report.servers {
        let c = format!("server:{}", s.server);
        put(&c, "requests", s.count as f64);
        put(&c, "mean_us", s.mean_us as f64);
        put(&c, "p50_us", s.p50_us as f64);
        put(&c, "p95_us", s.p95_us as f64);
        put(&c, "p99_us", s.p99_us as f64);
        put(&c, "errors_4xx", s.errors_4xx as f64);
        put(&c, "errors_5xx", s.errors_5xx as f64);
        put(&c, "dropped", s.dropped as f64);
        if let Some(q) = s.queue_length {
            put(&c, "queue_length", f64::from(q));
        }
        if let Some(d) = s.queue_delay_us {
            put(&c, "queue_delay_us", d as f64);
        }
        if let Some(ok) = s.probe_ok {
            put(&c, "probe_ok", if ok { 1.0 } else { 0.0 });
        }
    }
    let h = &report.host;
    let c = format!("host:{agent_id}");
    put(&c, "cpu.user", h.cpu.user);
    put(&c, "cpu.system", h.cpu.system);
    put(&c, "cpu.idle", h.cpu.idle);
    for (i, cpu) in h.per_cpu.iter().enumerate() {
        put(&c, &format!("cpu{i}.user"), cpu.user);
        put(&c, &format!("cpu{i}.system"), cpu.system);
        put(&c, &format!("cpu{i}.idle"), cpu.idle);
    }
    put(&c, "load1", h.load1);
    put(&c, "load5", h.load5);
    put(&c, "load15", h.load15);
    if let Some(r) = h.run_queue {
        put(&c, "run_queue", r as f64);
    }
    put(&c, "memory.total", h.memory_total as f64);
    put(&c, "memory.used", h.memory_used as f64);
    put(&c, "swap.total", h.swap_total as f64);
    put(&c, "swap.used", h.swap_used as f64);
    for d in &h.disks {
        let k = format!("disk:{}", d.mount);
        put(&c, &format!("{k}.total_bytes"), d.total_bytes as f64);
        put(
            &c,
            &format!("{k}.available_bytes"),
            d.available_bytes as f64,
        );
        put(&c, &format!("{k}.read_bytes"), d.read_bytes as f64);
        put(&c, &format!("{k}.written_bytes"), d.written_bytes as f64);
    }
    for n in &h.nets {
        let k = format!("net:{}", n.name);
        put(&c, &format!("{k}.rx_bytes"), n.rx_bytes as f64);
        put(&c, &format!("{k}.tx_bytes"), n.tx_bytes as f64);
        put(&c, &format!("{k}.rx_packets"), n.rx_packets as f64);
        put(&c, &format!("{k}.tx_packets"), n.tx_packets as f64);
        put(&c, &format!("{k}.rx_errors"), n.rx_errors as f64);
        put(&c, &format!("{k}.tx_errors"), n.tx_errors as f64);
    }
    out
}
