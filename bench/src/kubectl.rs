//! Objects written the way `kubectl get -o json` and `kubectl get -o yaml`
//! print them, so that the files-mode benchmark reads what users feed the
//! exporter.
//!
//! - JSON: Go's `json.MarshalIndent` with four spaces, keys sorted, a final
//!   newline (serde_json's pretty printer with a four-space indent gives the
//!   same bytes for these objects).
//! - YAML: go-yaml v2 as kubectl uses it: block style, two-space indent,
//!   sequences not indented under their key, keys sorted, strings plain when
//!   YAML allows it, double-quoted when plain would read as another type
//!   (`""`, `"true"`, `"12"`, timestamps), single-quoted otherwise, and long
//!   plain or single-quoted strings folded at the first space past column 80.

use serde::Serialize;
use serde_json::Value;

/// `kubectl get -o json` output for a value.
pub fn json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serializing a Value into a Vec cannot fail.
    let _ = value.serialize(&mut ser);
    out.push(b'\n');
    out
}

/// `kubectl get -o yaml` output for a value (an object).
pub fn yaml(value: &Value) -> String {
    let mut w = Yaml::default();
    match value {
        Value::Object(_) | Value::Array(_) => w.block(value, 0, false),
        other => {
            w.scalar(other, 0);
            w.out.push('\n');
        }
    }
    w.out
}

/// go-yaml's best width: strings fold at the first space past it.
const WIDTH: usize = 80;

#[derive(Default)]
struct Yaml {
    out: String,
}

impl Yaml {
    fn column(&self) -> usize {
        self.out.len() - self.out.rfind('\n').map_or(0, |i| i + 1)
    }

    /// A mapping or sequence whose lines start at `indent`. `inline` is set
    /// when the first line continues a `- ` already written.
    fn block(&mut self, value: &Value, indent: usize, inline: bool) {
        let mut first = true;
        let mut pad = |out: &mut String| {
            if !(first && inline) {
                out.extend(std::iter::repeat_n(' ', indent));
            }
            first = false;
        };
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    pad(&mut self.out);
                    self.key(k);
                    self.out.push(':');
                    self.value(v, indent + 2, indent);
                }
            }
            Value::Array(items) => {
                for v in items {
                    pad(&mut self.out);
                    self.out.push('-');
                    match v {
                        Value::Object(m) if !m.is_empty() => {
                            self.out.push(' ');
                            self.block(v, indent + 2, true);
                        }
                        Value::Array(a) if !a.is_empty() => {
                            self.out.push(' ');
                            self.block(v, indent + 2, true);
                        }
                        _ => self.value(v, indent + 2, indent),
                    }
                }
            }
            _ => {}
        }
    }

    /// The value after `key:` or `-`: nested blocks on the next lines (a
    /// sequence under a key at the key's own indent), scalars on the line.
    fn value(&mut self, v: &Value, nested: usize, key_indent: usize) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                self.out.push('\n');
                self.block(v, nested, false);
            }
            Value::Array(a) if !a.is_empty() => {
                self.out.push('\n');
                self.block(v, key_indent, false);
            }
            _ => {
                self.out.push(' ');
                self.scalar(v, key_indent + 2);
                self.out.push('\n');
            }
        }
    }

    fn key(&mut self, k: &str) {
        match style(k) {
            Style::Plain => self.out.push_str(k),
            Style::Single => self.single(k, usize::MAX, 0),
            Style::Double => self.double(k),
        }
    }

    /// A scalar; folded lines continue at `indent`.
    fn scalar(&mut self, v: &Value, indent: usize) {
        match v {
            Value::Null => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => self.out.push_str(&n.to_string()),
            Value::String(s) => match style(s) {
                Style::Plain => self.plain(s, indent),
                Style::Single => self.single(s, WIDTH, indent),
                Style::Double => self.double(s),
            },
            Value::Object(_) => self.out.push_str("{}"),
            Value::Array(_) => self.out.push_str("[]"),
        }
    }

    /// Writes `s`, replacing a space by a line break when the line is past
    /// `width` and the next character is not a space.
    fn folded(&mut self, s: &str, width: usize, indent: usize, quote: Option<char>) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1).is_none_or(|&n| n == ' ');
                if !spaces && self.column() > width && i != 0 && i + 1 != chars.len() && !next_space
                {
                    self.out.push('\n');
                    self.out.extend(std::iter::repeat_n(' ', indent));
                } else {
                    self.out.push(' ');
                }
                spaces = true;
            } else {
                if Some(c) == quote {
                    self.out.push(c);
                }
                self.out.push(c);
                spaces = false;
            }
        }
    }

    fn plain(&mut self, s: &str, indent: usize) {
        self.folded(s, WIDTH, indent, None);
    }

    fn single(&mut self, s: &str, width: usize, indent: usize) {
        self.out.push('\'');
        self.folded(s, width, indent, Some('\''));
        self.out.push('\'');
    }

    fn double(&mut self, s: &str) {
        // JSON escaping is a subset of YAML's double-quoted style.
        self.out
            .push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

enum Style {
    Plain,
    Single,
    Double,
}

/// How go-yaml writes a string in block context.
fn style(s: &str) -> Style {
    if s.is_empty() || resolves_to_other_type(s) {
        return Style::Double;
    }
    if s.contains('\n') || s.chars().any(|c| c.is_control()) {
        return Style::Double;
    }
    if plain_allowed(s) {
        Style::Plain
    } else {
        Style::Single
    }
}

/// Whether a plain scalar would read as null, a boolean, a number or a
/// timestamp (YAML 1.1, as go-yaml v2 resolves them).
fn resolves_to_other_type(s: &str) -> bool {
    const WORDS: [&str; 26] = [
        "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
    ];
    if WORDS.contains(&s) || s.parse::<f64>().is_ok() || s.parse::<i64>().is_ok() {
        return true;
    }
    let b = s.as_bytes();
    // A date or timestamp: YYYY-MM-DD...
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// libyaml's rules for a plain scalar in block context.
fn plain_allowed(s: &str) -> bool {
    let b = s.as_bytes();
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if b[0] == b' ' || b[b.len() - 1] == b' ' {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        let followed_by_space = b.get(i + 1).is_none_or(|&n| n == b' ');
        let preceded_by_space = i == 0 || b[i - 1] == b' ';
        let indicator = if i == 0 {
            matches!(
                c,
                b'#' | b','
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'&'
                    | b'*'
                    | b'!'
                    | b'|'
                    | b'>'
                    | b'\''
                    | b'"'
                    | b'%'
                    | b'@'
                    | b'`'
            ) || (matches!(c, b'?' | b':' | b'-') && followed_by_space)
        } else {
            (c == b':' && followed_by_space) || (c == b'#' && preceded_by_space)
        };
        if indicator {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn yaml_as_kubectl_prints_it() {
        let v = json!({
            "apiVersion": "v1",
            "items": [{"kind": "PolicyReport", "metadata": {"creationTimestamp": "2024-11-12T09:20:00Z",
                "labels": {"app.kubernetes.io/managed-by": "kyverno"}, "resourceVersion": ""},
                "results": [{"message": "validation error: CPU and memory resource requests and limits are required. rule autogen-validate-resources failed at path /spec/template/spec/containers/0/resources/limits/",
                  "policy": "p", "properties": {}, "scored": true, "timestamp": {"nanos": 0, "seconds": 1731403200}}],
                "summary": {"pass": 0}}],
            "kind": "List",
        });
        let expected = "\
apiVersion: v1
items:
- kind: PolicyReport
  metadata:
    creationTimestamp: \"2024-11-12T09:20:00Z\"
    labels:
      app.kubernetes.io/managed-by: kyverno
    resourceVersion: \"\"
  results:
  - message: 'validation error: CPU and memory resource requests and limits are required.
      rule autogen-validate-resources failed at path /spec/template/spec/containers/0/resources/limits/'
    policy: p
    properties: {}
    scored: true
    timestamp:
      nanos: 0
      seconds: 1731403200
  summary:
    pass: 0
kind: List
";
        assert_eq!(super::yaml(&v), expected);
        let back: serde_json::Value = serde_yaml_ng::from_str(expected).expect("valid YAML");
        assert_eq!(back, v);
        assert!(
            super::json(&v)
                .starts_with(b"{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n")
        );
    }
}
