//! The Prometheus text (and OpenMetrics) samples the exporter serves:
//! parsing a sample line, the samples of a metric, one sample's value, a
//! fast sum for polling, and [`Metrics`], a whole scrape parsed for tests.

use std::collections::BTreeMap;

/// A sample's label pairs.
pub type Labels = Vec<(String, String)>;

/// One sample line split into name, labels (unescaped, in the order written)
/// and value; `Ok(None)` for comments and blank lines, `Err` for a line that
/// is not a sample.
pub fn parse_sample(line: &str) -> Result<Option<(&str, Labels, f64)>, String> {
    if line.starts_with('#') || line.trim().is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| format!("{why}: {line:?}");
    let (series, value) = line
        .rsplit_once(' ')
        .ok_or_else(|| bad("a sample line without a value"))?;
    let value: f64 = value
        .parse()
        .map_err(|_| bad("a sample with a value that is not a number"))?;
    match series.split_once('{') {
        Some((name, rest)) => {
            let labels = rest
                .strip_suffix('}')
                .ok_or_else(|| bad("labels without a closing brace"))?;
            let labels = parse_labels(labels).map_err(bad)?;
            Ok(Some((name, labels, value)))
        }
        None => Ok(Some((series, Vec::new(), value))),
    }
}

/// The label pairs between a sample's braces, unescaped.
fn parse_labels(s: &str) -> Result<Labels, &'static str> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim_start_matches(',').trim().to_owned();
        if name.is_empty() {
            return Ok(out);
        }
        if chars.next() != Some('"') {
            return Err("a label value without its opening quote");
        }
        let mut value = String::new();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                '"' => {
                    closed = true;
                    break;
                }
                c => value.push(c),
            }
        }
        if !closed {
            return Err("a label value without its closing quote");
        }
        out.push((name, value));
    }
}

/// The samples of a text that parse, skipping the lines that do not: the
/// benchmark scans texts of any size in its polling loops, where a line it
/// cannot read only makes a count come out wrong, which it reports.
fn parsed(text: &str) -> impl Iterator<Item = (&str, Labels, f64)> {
    text.lines().filter_map(|l| parse_sample(l).ok().flatten())
}

/// The value of a sample with exactly these labels (any order), if present.
pub fn sample_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    parsed(text).find_map(|(n, l, v)| {
        (n == name
            && l.len() == labels.len()
            && labels
                .iter()
                .all(|(k, val)| l.iter().any(|(a, b)| a == k && b == val)))
        .then_some(v)
    })
}

/// Every sample of the metric `name`: its labels (by name) and value.
pub fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    parsed(text)
        .filter(|(n, _, _)| *n == name)
        .map(|(_, labels, v)| (labels.into_iter().collect(), v))
        .collect()
}

/// Sum of `policyreport_results` samples whose line contains every one of
/// `needles` (such as `policy="x"`): a fast scan for polling. Only the lines
/// holding the first needle are looked at, found with a SIMD substring search.
pub fn sum_results_with(text: &[u8], needles: &[&str]) -> u64 {
    const PREFIX: &[u8] = b"policyreport_results{";
    let Some((first, rest)) = needles.split_first() else {
        return text
            .split(|b| *b == b'\n')
            .filter(|l| l.starts_with(PREFIX))
            .map(line_value)
            .sum();
    };
    let mut sum = 0;
    let mut from = 0;
    let finder = memchr::memmem::Finder::new(first.as_bytes());
    while let Some(i) = finder.find(&text[from..]) {
        let at = from + i;
        let start = memchr::memrchr(b'\n', &text[..at]).map_or(0, |n| n + 1);
        let end = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |n| at + n);
        let line = &text[start..end];
        if line.starts_with(PREFIX)
            && rest
                .iter()
                .all(|n| memchr::memmem::find(line, n.as_bytes()).is_some())
        {
            sum += line_value(line);
        }
        from = end;
    }
    sum
}

/// The value of a sample line (after its last space), truncated to an integer; 0 if unparsable.
fn line_value(line: &[u8]) -> u64 {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    memchr::memrchr(b' ', line)
        .and_then(|i| std::str::from_utf8(&line[i + 1..]).ok())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Parsed samples: metric name → (labels sorted by name → value).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Metrics(pub BTreeMap<String, BTreeMap<Labels, f64>>);

impl Metrics {
    /// Parse every sample of a Prometheus text (or OpenMetrics) answer.
    ///
    /// Panics on a line that is not a sample, unlike the scanning functions
    /// of this module: the tests parse the exporter's answers with it, and a
    /// malformed line must fail them rather than be skipped.
    pub fn parse(text: &str) -> Metrics {
        let mut out = Metrics::default();
        for line in text.lines() {
            let sample = parse_sample(line).unwrap_or_else(|e| panic!("{e}"));
            let Some((name, mut labels, value)) = sample else {
                continue;
            };
            labels.sort();
            out.0
                .entry(name.to_owned())
                .or_default()
                .insert(labels, value);
        }
        out
    }

    /// Samples of one metric.
    pub fn family(&self, name: &str) -> BTreeMap<Labels, f64> {
        self.0.get(name).cloned().unwrap_or_default()
    }

    /// The value of the sample of `name` with exactly these labels (any order).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut key: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        key.sort();
        self.0.get(name)?.get(&key).copied()
    }

    /// Sum of all samples of a metric.
    pub fn sum(&self, name: &str) -> f64 {
        self.family(name).values().sum()
    }

    /// `policyreport_results` in a stable text form, for diffs.
    pub fn render_results(&self) -> String {
        render_family("policyreport_results", &self.family("policyreport_results"))
    }
}

/// Render samples sorted, one per line, labels in their stored order.
pub fn render_family(name: &str, samples: &BTreeMap<Labels, f64>) -> String {
    let mut out = String::new();
    for (labels, v) in samples {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        out.push_str(&format!("{name}{{{}}} {v}\n", l.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\npolicyreport_results{namespace=\"a\",policy=\"p\",category=\"C, D\",severity=\"\",source=\"kyverno\",result=\"fail\"} 3\n\
                        policyreport_exporter_objects{resource=\"r\"} 7\n\
                        up 1\n";

    #[test]
    fn samples_and_values() {
        assert_eq!(
            sample_value(TEXT, "policyreport_exporter_objects", &[("resource", "r")]),
            Some(7.0)
        );
        assert_eq!(sample_value(TEXT, "up", &[]), Some(1.0));
        let s = samples(TEXT, "policyreport_results");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].0["category"], "C, D");
        assert_eq!(
            sum_results_with(TEXT.as_bytes(), &["policy=\"p\"", "result=\"fail\""]),
            3
        );
        assert_eq!(sum_results_with(TEXT.as_bytes(), &["result=\"pass\""]), 0);
        assert_eq!(sum_results_with(TEXT.as_bytes(), &[]), 3);
    }

    #[test]
    fn escapes_and_sorting() {
        let m = Metrics::parse("m{b=\"x\\\"y\",a=\"1\\n2\"} 2\n");
        assert_eq!(m.value("m", &[("a", "1\n2"), ("b", "x\"y")]), Some(2.0));
        assert_eq!(m.render_results(), "");
        assert_eq!(
            render_family("m", &m.family("m")),
            "m{a=\"1\n2\",b=\"x\"y\"} 2\n"
        );
    }

    #[test]
    fn malformed_lines() {
        for line in ["m{a=\"1\"", "m{a=1} 2", "m{a=\"1} 2", "m x", "m"] {
            assert!(parse_sample(line).is_err(), "{line}");
        }
        assert_eq!(
            sample_value("m{a=1} 2\nm{a=\"1\"} 3\n", "m", &[("a", "1")]),
            Some(3.0)
        );
    }

    #[test]
    #[should_panic(expected = "not a number")]
    fn metrics_parse_panics_on_a_malformed_line() {
        Metrics::parse("m{a=\"1\"} x\n");
    }
}
