//! One-pass decoding of a report into a [`Report`].
//!
//! The decoder walks the report once, straight from the JSON (or YAML value)
//! a source read, and keeps only what the aggregator uses: the identifying
//! metadata, the scope, the top-level `source`, and per result its labels,
//! verdict and subjects. Their strings are copied into one buffer per report
//! (a repeated value, such as the category of consecutive results, once).
//!
//! It is strict about the format but never fails on it: a field of the wrong
//! type, an unknown verdict or a missing `policy` is recorded as the report's
//! [`DecodeError`] and the rest of the report is skipped, so one bad report
//! can never break the list page or file it came in. Only malformed JSON, or
//! a report that is not an object, fails the decode.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor,
};

use super::{DecodeError, Outcome};

/// A string in a report's text buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// A subject's strings; empty when absent.
#[derive(Clone, Copy, Debug, Default)]
struct SubjectSpans {
    kind: Span,
    namespace: Span,
    name: Span,
    uid: Span,
}

/// One result; strings are empty when absent, except `source`, whose
/// absence means "the report's source".
#[derive(Clone, Copy, Debug)]
struct Entry {
    policy: Span,
    rule: Span,
    category: Span,
    severity: Span,
    source: Option<Span>,
    outcome: Outcome,
    subjects: (u32, u32),
    timestamp: Option<i64>,
}

/// A report reduced to what the exporter reads, decoded in one pass.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Only name, namespace, uid and resourceVersion are kept.
    pub metadata: ObjectMeta,
    text: String,
    api_version: Option<Span>,
    kind: Option<Span>,
    scope: Option<SubjectSpans>,
    source: Option<Span>,
    entries: Vec<Entry>,
    /// Each entry's message, only when decoded with messages kept
    /// ([`WithMessages`], [`DocumentSeed`]).
    messages: Vec<Span>,
    subjects: Vec<SubjectSpans>,
    error: Option<Box<DecodeError>>,
}

/// A subject of a result, or a report's scope. Absent strings are empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubjectView<'a> {
    /// Kind of the object.
    pub kind: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// UID.
    pub uid: &'a str,
}

/// One result of a report. Absent strings are empty.
#[derive(Clone, Copy, Debug)]
pub struct ResultView<'a> {
    /// `name` of a ClusterPolicy, `namespace/name` of a Policy.
    pub policy: &'a str,
    /// Rule name; empty for CEL policy types.
    pub rule: &'a str,
    /// The policy's comma-separated categories, as written.
    pub category: &'a str,
    /// The policy's severity, as written.
    pub severity: &'a str,
    /// The result's own `source`, when it has one.
    pub source: Option<&'a str>,
    /// The verdict.
    pub outcome: Outcome,
    /// The message; empty unless the report was decoded with messages kept
    /// ([`WithMessages`], [`DocumentSeed`]).
    pub message: &'a str,
    /// `timestamp.seconds` (whole seconds since the Unix epoch, a float
    /// rounded down), when it is a number.
    pub timestamp: Option<i64>,
    report: &'a Report,
    subjects: &'a [SubjectSpans],
}

impl<'a> ResultView<'a> {
    /// The listed subjects (none in the per-resource layout).
    pub fn subjects(&self) -> impl ExactSizeIterator<Item = SubjectView<'a>> + use<'a> {
        let report = self.report;
        self.subjects.iter().map(move |s| report.subject(s))
    }

    /// The source the result counts under: its own `source`, else its
    /// report's top-level one, else empty.
    pub fn source_or_report(&self) -> &'a str {
        self.source.or(self.report.source()).unwrap_or("")
    }

    /// How many subjects the result lists.
    pub fn subject_count(&self) -> usize {
        self.subjects.len()
    }
}

impl Report {
    /// Why the report's content does not match the format, if it does not.
    pub fn error(&self) -> Option<&DecodeError> {
        self.error.as_deref()
    }

    /// `apiVersion` and `kind`, when they are strings.
    pub fn type_meta(&self) -> (Option<&str>, Option<&str>) {
        (
            self.api_version.map(|s| self.str(s)),
            self.kind.map(|s| self.str(s)),
        )
    }

    /// The resource the report is about (per-resource layout).
    pub fn scope(&self) -> Option<SubjectView<'_>> {
        self.scope.as_ref().map(|s| self.subject(s))
    }

    /// The top-level `source` (openreports).
    pub fn source(&self) -> Option<&str> {
        self.source.map(|s| self.str(s))
    }

    /// The results, in order.
    pub fn results(&self) -> impl ExactSizeIterator<Item = ResultView<'_>> {
        self.entries.iter().enumerate().map(|(i, e)| ResultView {
            policy: self.str(e.policy),
            rule: self.str(e.rule),
            category: self.str(e.category),
            severity: self.str(e.severity),
            source: e.source.map(|s| self.str(s)),
            outcome: e.outcome,
            message: self.messages.get(i).map_or("", |s| self.str(*s)),
            timestamp: e.timestamp,
            report: self,
            subjects: self
                .subjects
                .get(e.subjects.0 as usize..e.subjects.1 as usize)
                .unwrap_or(&[]),
        })
    }

    fn str(&self, s: Span) -> &str {
        let start = s.start as usize;
        self.text.get(start..start + s.len as usize).unwrap_or("")
    }

    fn subject(&self, s: &SubjectSpans) -> SubjectView<'_> {
        SubjectView {
            kind: self.str(s.kind),
            namespace: self.str(s.namespace),
            name: self.str(s.name),
            uid: self.str(s.uid),
        }
    }

    /// Record the first problem found; later ones are not looked for.
    fn fail(&mut self, field: String, reason: String) {
        if self.error.is_none() {
            self.error = Some(Box::new(DecodeError { field, reason }));
        }
    }
}

/// Copy `v` into the buffer, unless it equals `prev` (already there).
fn push(text: &mut String, v: &str, prev: Span) -> Span {
    let start = prev.start as usize;
    if prev.len as usize == v.len() && text.get(start..start + v.len()) == Some(v) {
        return prev;
    }
    let start = text.len();
    text.push_str(v);
    Span {
        start: start as u32,
        len: v.len() as u32,
    }
}

/// A problem in a part of the report: where within the part, and why.
#[derive(Debug)]
struct Bad {
    path: String,
    reason: String,
}

impl Bad {
    fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Bad {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

fn invalid_type(got: impl fmt::Display, expected: &str) -> Bad {
    Bad::at("", format!("invalid type: {got}, expected {expected}"))
}

/// Visitor methods that take a value of a type the visitor does not expect:
/// the value is consumed and described as the problem.
macro_rules! reject {
    ($what:literal: $($m:ident)*) => { $(reject!(@ $what $m);)* };
    (@ $what:literal bool) => {
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Err(invalid_type(Unexpected::Bool(v), $what)))
        }
    };
    (@ $what:literal num) => {
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Err(invalid_type(Unexpected::Signed(v), $what)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Err(invalid_type(Unexpected::Unsigned(v), $what)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Err(invalid_type(Unexpected::Float(v), $what)))
        }
    };
    (@ $what:literal unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Err(invalid_type("null", $what)))
        }
    };
    (@ $what:literal str) => {
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Err(invalid_type(Unexpected::Str(v), $what)))
        }
    };
    (@ $what:literal map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Err(invalid_type("map", $what)))
        }
    };
    (@ $what:literal seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Err(invalid_type("sequence", $what)))
        }
    };
}

/// Drives a visitor through `deserialize_any`: the decoder's parts check
/// the type of what they get themselves, and describe a mismatch as the
/// report's problem instead of failing the decode.
struct Any<V>(V);

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for Any<V> {
    type Value = V::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self.0)
    }
}

/// A string: copied into the buffer (or, without one, only checked), or
/// `None` for null.
struct Str<'t> {
    text: Option<&'t mut String>,
    prev: Span,
}

impl<'t> Str<'t> {
    fn keep(text: &'t mut String, prev: Span) -> Self {
        Str {
            text: Some(text),
            prev,
        }
    }

    fn check() -> Self {
        Str {
            text: None,
            prev: Span::default(),
        }
    }
}

impl<'de> Visitor<'de> for Str<'_> {
    type Value = Result<Option<Span>, Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Ok(Some(match self.text {
            Some(text) => push(text, v, self.prev),
            None => Span::default(),
        })))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(None))
    }
    reject!("a string": bool num map seq);
}

/// A string that must not be null.
fn required(got: Result<Option<Span>, Bad>) -> Result<Span, Bad> {
    got?.ok_or_else(|| invalid_type("null", "a string"))
}

mod document;
mod results;

pub use document::{Document, DocumentSeed, ItemSink, WithMessages};

#[cfg(test)]
mod tests;
