//! The exposition of one family: its declaration ([`Family`]: name, help,
//! type, when it is served and how its samples are read), and the writer of
//! both text formats at once ([`Exposition`]). The indexes declare their
//! families with it, beside their state; the encoder (`metrics`) and
//! `process` write them.

use std::fmt::Write;

use bytes::Bytes;

/// A metric type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A value that goes up and down.
    Gauge,
    /// A value that only grows; samples are named `<name>_total`.
    Counter,
}

impl Type {
    /// The name in `# TYPE` lines.
    fn as_str(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
        }
    }

    /// What sample names (and the Prometheus text format's `# HELP` and
    /// `# TYPE` lines) append to the family name.
    fn suffix(self) -> &'static str {
        match self {
            Type::Gauge => "",
            Type::Counter => "_total",
        }
    }
}

/// A metric family read from some state `S`: everything about it in one
/// place. The writer derives the rest: counters' samples (and their
/// Prometheus text headers) are named `<name>_total`, OpenMetrics headers
/// `<name>`.
pub struct Family<S: ?Sized> {
    /// The family name, without `_total` for counters.
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Gauge or counter.
    pub kind: Type,
    /// Whether the family is served at all (for families a flag enables).
    pub when: fn(&S) -> bool,
    /// Write the samples of the family, one [`Samples::write`] per series.
    pub samples: fn(&S, &mut Samples<'_>),
}

/// For families that are always served.
pub fn always<S: ?Sized>(_: &S) -> bool {
    true
}

/// The sample writer of one family: it names every sample.
pub struct Samples<'b> {
    buf: &'b mut String,
    name: &'static str,
    suffix: &'static str,
}

impl Samples<'_> {
    /// Write one sample with these labels, in this order.
    pub fn write<'a>(&mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>, value: u64) {
        self.name();
        write_labels(self.buf, labels);
        let _ = writeln!(self.buf, " {value}");
    }

    /// Write one unlabelled sample with a float value: integral values as
    /// integers, others in Rust's shortest round-trip form.
    pub fn float(&mut self, value: f64) {
        if value.fract() == 0.0 && value.abs() < 1e15 {
            self.write([], value as u64);
        } else {
            self.name();
            let _ = writeln!(self.buf, " {value}");
        }
    }

    fn name(&mut self) {
        self.buf.push_str(self.name);
        self.buf.push_str(self.suffix);
    }
}

/// Both renderings under construction. Samples are written once and copied.
#[derive(Default)]
pub struct Exposition {
    /// Prometheus text 0.0.4.
    pub prometheus: String,
    /// OpenMetrics text, without `# EOF`.
    pub openmetrics: String,
}

impl Exposition {
    /// Write a family read from `state`, unless its `when` says it is off.
    /// The Prometheus text format names a counter `<name>_total` in its
    /// headers, OpenMetrics `<name>`; samples are `<name>_total` in both.
    pub fn family<S: ?Sized>(&mut self, family: &Family<S>, state: &S) {
        if !(family.when)(state) {
            return;
        }
        let Family {
            name, help, kind, ..
        } = *family;
        let (suffix, type_name) = (kind.suffix(), kind.as_str());
        let _ = write!(
            self.prometheus,
            "# HELP {name}{suffix} {help}\n# TYPE {name}{suffix} {type_name}\n"
        );
        let _ = write!(
            self.openmetrics,
            "# HELP {name} {help}\n# TYPE {name} {type_name}\n"
        );
        let start = self.prometheus.len();
        (family.samples)(
            state,
            &mut Samples {
                buf: &mut self.prometheus,
                name,
                suffix,
            },
        );
        self.openmetrics.push_str(&self.prometheus[start..]);
    }

    /// Both renderings, Prometheus text first.
    pub fn finish(self) -> (Bytes, Bytes) {
        (Bytes::from(self.prometheus), Bytes::from(self.openmetrics))
    }
}

/// Write `{k="v",...}`, or nothing when there are no labels.
fn write_labels<'a>(buf: &mut String, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut first = true;
    for (k, v) in labels {
        buf.push(if first { '{' } else { ',' });
        first = false;
        buf.push_str(k);
        buf.push_str("=\"");
        escape_label_value(buf, v);
        buf.push('"');
    }
    if !first {
        buf.push('}');
    }
}

/// Escape a label value as both text formats require.
fn escape_label_value(buf: &mut String, v: &str) {
    if !v.contains(['\\', '"', '\n']) {
        buf.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '"' => buf.push_str("\\\""),
            '\n' => buf.push_str("\\n"),
            c => buf.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
