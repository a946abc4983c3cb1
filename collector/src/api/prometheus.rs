//! The Prometheus text exposition format (version 0.0.4), written by hand: `# HELP`
//! and `# TYPE` once per family, label values and help text escaped as the format
//! says, counters named `*_total`. Pure.

use std::fmt::Write as _;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// An exposition being written, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    families: Vec<String>,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts family `name`. Panics in debug builds on a name the format refuses or
    /// given twice: both are programming errors, caught by the tests.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(valid_name(name), "metric name {name:?}");
        debug_assert!(
            !self.families.iter().any(|f| f == name),
            "family {name} twice"
        );
        debug_assert!(
            kind != Kind::Counter || name.ends_with("_total"),
            "counter {name} without _total"
        );
        self.families.push(name.to_owned());
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_label(k), "label name {k:?}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&value_str(value));
        self.out.push('\n');
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// Names of the families written, in order.
    pub fn families(&self) -> &[String] {
        &self.families
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// A label value: backslash, double quote and line feed escaped.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Help text: backslash and line feed escaped.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: Go's float syntax (`NaN`, `+Inf`, `-Inf`, else Rust's shortest
/// round-trip form, which Go parses).
pub fn value_str(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_in_the_text_format() {
        let mut e = Exposition::new();
        e.single(
            "veille_ingest_reports_stored_total",
            Kind::Counter,
            "Reports\nstored \\ new",
            42.0,
        );
        e.family("veille_devices", Kind::Gauge, "Devices by state.")
            .sample("veille_devices", &[("org", "a\"b"), ("state", "idle")], 3.0)
            .sample(
                "veille_devices",
                &[("org", "x\\y\nz"), ("state", "off")],
                0.5,
            );
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP veille_ingest_reports_stored_total Reports\\nstored \\\\ new\n\
             # TYPE veille_ingest_reports_stored_total counter\n\
             veille_ingest_reports_stored_total 42\n\
             # HELP veille_devices Devices by state.\n\
             # TYPE veille_devices gauge\n\
             veille_devices{org=\"a\\\"b\",state=\"idle\"} 3\n\
             veille_devices{org=\"x\\\\y\\nz\",state=\"off\"} 0.5\n"
        );
    }

    #[test]
    fn special_values_use_go_syntax() {
        assert_eq!(value_str(f64::NAN), "NaN");
        assert_eq!(value_str(f64::INFINITY), "+Inf");
        assert_eq!(value_str(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value_str(1e21), "1000000000000000000000");
        assert_eq!(value_str(0.1), "0.1");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("veille_up"));
        assert!(valid_name("a:b_c1"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a-b"));
        assert!(valid_label("site"));
        assert!(!valid_label("__name__"));
        assert!(!valid_label("a:b"));
    }
}
