//! Field and label selectors as accepted in `fieldSelector` / `labelSelector`
//! query parameters, evaluated against JSON objects.
//!
//! Field selectors support `path=value`, `path==value` and `path!=value`
//! terms joined by commas, where `path` is any dotted JSON path such as
//! `metadata.namespace` or `reason` (the real server only allows a per-type
//! set of fields; this fake allows all). Label selectors support `k=v`,
//! `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)` and `k notin (a,b)`.

use serde_json::Value;

/// One field selector requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    path: Vec<String>,
    value: String,
    negate: bool,
}

/// A parsed field selector; an empty one matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// One label selector requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelTerm {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector; an empty one matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    terms: Vec<LabelTerm>,
}

/// Splits on commas that are not escaped with a backslash and not inside parentheses.
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Removes backslash escapes (`\,`, `\=`, `\\`) from a field selector value.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Finds the first unescaped occurrence of `pat` in `s`.
fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(pat) {
            return Some(i);
        }
        i += 1;
    }
    None
}

impl FieldSelector {
    /// Parses a field selector; returns an error message for malformed terms.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in split_terms(s) {
            let (key, value, negate) = if let Some(i) = find_unescaped(&term, "!=") {
                (&term[..i], &term[i + 2..], true)
            } else if let Some(i) = find_unescaped(&term, "==") {
                (&term[..i], &term[i + 2..], false)
            } else if let Some(i) = find_unescaped(&term, "=") {
                (&term[..i], &term[i + 1..], false)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("invalid selector: '{term}': empty field name"));
            }
            terms.push(FieldTerm {
                path: key.split('.').map(str::to_string).collect(),
                value: unescape(value.trim()),
                negate,
            });
        }
        Ok(Self { terms })
    }

    /// Whether the selector has no terms.
    pub(crate) fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `obj` satisfies every term. Missing fields compare as "".
    #[cfg(test)]
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.matches_with(|path| walk(obj, path))
    }

    /// Like `matches`, with `field` resolving a dotted path to its value.
    pub(crate) fn matches_with<'a>(&self, field: impl Fn(&[String]) -> Option<&'a Value>) -> bool {
        self.terms.iter().all(|t| {
            let actual = match field(&t.path) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(other) => other.to_string(),
            };
            (actual == t.value) != t.negate
        })
    }
}

/// Follows `path` from `v`.
pub(crate) fn walk<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| cur.get(seg))
}

/// Parses `(a, b, c)` into its values.
fn parse_set(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("invalid label selector set: '{s}'"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// Validates a label key (loosely: non-empty, no whitespace or operators).
fn check_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || "=!(),".contains(c)) {
        return Err(format!("invalid label key: '{key}'"));
    }
    Ok(key.to_string())
}

impl LabelSelector {
    /// Parses a label selector; returns an error message for malformed terms.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in split_terms(s) {
            let parsed = if let Some(k) = term.strip_prefix('!') {
                LabelTerm::NotExists(check_key(k)?)
            } else if let Some(i) = term.find("!=") {
                LabelTerm::NotIn(check_key(&term[..i])?, vec![term[i + 2..].trim().into()])
            } else if let Some(i) = term.find("==") {
                LabelTerm::In(check_key(&term[..i])?, vec![term[i + 2..].trim().into()])
            } else if let Some(i) = term.find('=') {
                LabelTerm::In(check_key(&term[..i])?, vec![term[i + 1..].trim().into()])
            } else if let Some(i) = term.find(" notin ") {
                LabelTerm::NotIn(check_key(&term[..i])?, parse_set(&term[i + 7..])?)
            } else if let Some(i) = term.find(" in ") {
                LabelTerm::In(check_key(&term[..i])?, parse_set(&term[i + 4..])?)
            } else {
                LabelTerm::Exists(check_key(&term)?)
            };
            terms.push(parsed);
        }
        Ok(Self { terms })
    }

    /// Whether the selector has no terms.
    pub(crate) fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether the object's `metadata.labels` satisfy every term.
    #[cfg(test)]
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.matches_labels(obj.pointer("/metadata/labels"))
    }

    /// Whether these labels (`metadata.labels`, if any) satisfy every term.
    pub(crate) fn matches_labels(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.terms.iter().all(|t| match t {
            LabelTerm::Exists(k) => get(k).is_some(),
            LabelTerm::NotExists(k) => get(k).is_none(),
            LabelTerm::In(k, vals) => get(k).is_some_and(|v| vals.iter().any(|x| x == v)),
            LabelTerm::NotIn(k, vals) => get(k).is_none_or(|v| !vals.iter().any(|x| x == v)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({
            "metadata": {"name": "a", "namespace": "ns1", "labels": {"app": "web", "tier": "fe"}},
            "reason": "PolicyViolation",
            "count": 3,
            "spec": {"enabled": true}
        })
    }

    #[test]
    fn field_selectors() {
        let o = obj();
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("reason=PolicyViolation"));
        assert!(m("reason==PolicyViolation"));
        assert!(!m("reason!=PolicyViolation"));
        assert!(m("metadata.namespace=ns1,metadata.name=a"));
        assert!(!m("metadata.namespace=ns1,metadata.name=b"));
        assert!(m("count=3"));
        assert!(m("spec.enabled=true"));
        assert!(m("missing.field="));
        assert!(m("missing.field!=x"));
        assert!(!m("missing.field=x"));
        assert!(FieldSelector::parse("nonsense").is_err());
    }

    #[test]
    fn field_selector_escapes() {
        let o = json!({"message": "a,b=c"});
        assert!(
            FieldSelector::parse(r"message=a\,b\=c")
                .unwrap()
                .matches(&o)
        );
    }

    #[test]
    fn label_selectors() {
        let o = obj();
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("app!=db"));
        assert!(m("missing!=x"));
        assert!(m("app"));
        assert!(!m("missing"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("app in (db, web)"));
        assert!(!m("app notin (db,web)"));
        assert!(m("missing notin (x)"));
        assert!(m("app=web,tier in (fe,be),!missing"));
        assert!(!m("app=web,tier=be"));
        assert!(LabelSelector::parse("a in x").is_err());
    }
}
