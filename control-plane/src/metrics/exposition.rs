//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! a family is a `# HELP` line, a `# TYPE` line and its samples, label
//! values escaped as the format requires. Pure, so the escaping and the
//! number forms are tested without a server.

/// The `Content-Type` Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// A page of metric families being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its help text and type. Every sample written after
    /// it until the next family must carry `name`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        self.text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {}\n",
            kind.name()
        ));
    }

    /// One sample: `name{labels} value`. A NaN or infinite value is written
    /// as Prometheus spells it (`NaN`, `+Inf`, `-Inf`).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(&format!("{k}=\"{}\"", escape_label(v)));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&number(value));
        self.text.push('\n');
    }

    /// The page.
    pub fn finish(self) -> String {
        self.text
    }
}

/// A label value as the format requires: backslash, double quote and line
/// feed escaped.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: integers without a fraction, the rest as Rust writes
/// the shortest form that reads back the same.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_reads_as_prometheus_writes_it() {
        let mut e = Exposition::new();
        e.family(
            "usher_server_weight",
            Kind::Gauge,
            "Weight at the front door.",
        );
        e.sample(
            "usher_server_weight",
            &[("app", "shop"), ("server", "a")],
            2.5,
        );
        e.sample(
            "usher_server_weight",
            &[("app", "shop"), ("server", "b")],
            0.0,
        );
        e.family("usher_up", Kind::Counter, "line one\nline two");
        e.sample("usher_up", &[], 1.0);
        assert_eq!(
            e.finish(),
            "# HELP usher_server_weight Weight at the front door.\n\
             # TYPE usher_server_weight gauge\n\
             usher_server_weight{app=\"shop\",server=\"a\"} 2.5\n\
             usher_server_weight{app=\"shop\",server=\"b\"} 0\n\
             # HELP usher_up line one\\nline two\n\
             # TYPE usher_up counter\n\
             usher_up 1\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("plain-name_1"), "plain-name_1");
    }

    #[test]
    fn numbers_take_the_format_spelling() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(-2.0), "-2");
        assert_eq!(number(0.125), "0.125");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(1e20), "100000000000000000000");
    }
}
