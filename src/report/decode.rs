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
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor,
};

use super::{DecodeError, Outcome, Text};

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
    /// Each entry's message, only when [`super::keep_messages`] is on.
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
    /// The message; empty unless [`super::keep_messages`] is on.
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

/// The fields of a report object (or a `List`) that are read.
#[derive(Clone, Copy, Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum TopKey {
    Metadata,
    ApiVersion,
    Kind,
    Scope,
    Source,
    Results,
    Items,
    #[serde(other)]
    Other,
}

/// The fields of a result that are read or checked.
#[derive(Clone, Copy, Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum EntryKey {
    Policy,
    Rule,
    Category,
    Severity,
    Source,
    Result,
    Resources,
    Message,
    Scored,
    Properties,
    Timestamp,
    #[serde(other)]
    Other,
}

/// The fields of an object reference that are read or checked.
#[derive(Clone, Copy, Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum SubjectKey {
    Kind,
    Namespace,
    Name,
    Uid,
    ApiVersion,
    #[serde(other)]
    Other,
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

/// A verdict.
struct OutcomeSeed;

impl<'de> Visitor<'de> for OutcomeSeed {
    type Value = Result<Outcome, Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a verdict")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match v {
            "pass" => Ok(Outcome::Pass),
            "fail" => Ok(Outcome::Fail),
            "warn" => Ok(Outcome::Warn),
            "error" => Ok(Outcome::Error),
            "skip" => Ok(Outcome::Skip),
            _ => Err(Bad::at(
                "",
                format!(
                    "unknown variant `{v}`, expected one of `pass`, `fail`, `warn`, `error`, `skip`"
                ),
            )),
        })
    }
    reject!("a verdict": bool num unit map seq);
}

/// A boolean or null.
struct BoolSeed;

impl<'de> Visitor<'de> for BoolSeed {
    type Value = Result<(), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    reject!("a boolean": num str map seq);
}

/// Visitor methods that take a value of a type the visitor does not read:
/// the value is consumed and read as absent (`None`).
macro_rules! absent {
    ($($m:ident)*) => { $(absent!(@ $m);)* };
    (@ bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@ num) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@ unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@ str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (@ map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
    (@ seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
}

/// A result's `timestamp` (`{seconds, nanos}`): its whole seconds, or
/// `None`. Never a problem: the format leaves it optional, and a report
/// whose timestamp a tool wrote oddly still counts (it only has no refresh
/// time). `seconds` is an integer, or a float as some tools print it
/// (`1.666094801e+09`).
struct TimestampSeed;

impl<'de> Visitor<'de> for TimestampSeed {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut seconds = None;
        while let Some(key) = m.next_key::<Text<'de>>()? {
            if key.as_str() == "seconds" {
                seconds = m.next_value_seed(Any(SecondsSeed))?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(seconds)
    }
    absent!(bool num unit str seq);
}

/// `timestamp.seconds`: a number, else `None`.
struct SecondsSeed;

impl<'de> Visitor<'de> for SecondsSeed {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // `as` saturates at the ends of the i64 range.
        Ok(v.is_finite().then(|| v.floor() as i64))
    }
    absent!(bool unit str map seq);
}

/// A map of strings to strings (`properties`), checked, or null.
struct StrMapSeed;

impl<'de> Visitor<'de> for StrMapSeed {
    type Value = Result<(), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut bad = None;
        while let Some(key) = m.next_key::<Text<'de>>()? {
            if bad.is_some() {
                m.next_value::<IgnoredAny>()?;
                continue;
            }
            if let Err(b) = required(m.next_value_seed(Any(Str::check()))?) {
                bad = Some(Bad::at(format!(".{}", key.as_str()), b.reason));
            }
        }
        Ok(bad.map_or(Ok(()), Err))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    reject!("a map of strings": bool num str seq);
}

/// A subject (`scope`, or an entry of `resources`); `None` for null.
struct SubjectSeed<'t> {
    text: &'t mut String,
    prev: SubjectSpans,
}

impl<'de> Visitor<'de> for SubjectSeed<'_> {
    type Value = Result<Option<SubjectSpans>, Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object reference")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut s = SubjectSpans::default();
        let mut bad: Option<Bad> = None;
        while let Some(key) = m.next_key::<SubjectKey>()? {
            if bad.is_some() {
                m.next_value::<IgnoredAny>()?;
                continue;
            }
            let (slot, prev, name) = match key {
                SubjectKey::Kind => (&mut s.kind, self.prev.kind, "kind"),
                SubjectKey::Namespace => (&mut s.namespace, self.prev.namespace, "namespace"),
                SubjectKey::Name => (&mut s.name, Span::default(), "name"),
                SubjectKey::Uid => (&mut s.uid, Span::default(), "uid"),
                SubjectKey::ApiVersion => {
                    if let Err(b) = m.next_value_seed(Any(Str::check()))? {
                        bad = Some(Bad::at(".apiVersion", b.reason));
                    }
                    continue;
                }
                SubjectKey::Other => {
                    m.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            match m.next_value_seed(Any(Str::keep(self.text, prev)))? {
                Ok(v) => *slot = v.unwrap_or_default(),
                Err(b) => bad = Some(Bad::at(format!(".{name}"), b.reason)),
            }
        }
        Ok(bad.map_or(Ok(Some(s)), Err))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(None))
    }
    reject!("an object reference": bool num str seq);
}

/// The `resources` of a result, appended to the report's subjects.
struct SubjectsSeed<'r>(&'r mut Report);

impl<'de> Visitor<'de> for SubjectsSeed<'_> {
    type Value = Result<(), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of object references")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let r = self.0;
        let mut prev = SubjectSpans::default();
        let mut bad = None;
        let mut j = 0usize;
        loop {
            if bad.is_some() {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                continue;
            }
            let seed = SubjectSeed {
                text: &mut r.text,
                prev,
            };
            match seq.next_element_seed(Any(seed))? {
                None => break,
                Some(Ok(Some(s))) => {
                    r.subjects.push(s);
                    prev = s;
                }
                Some(Ok(None)) => {
                    bad = Some(Bad::at(
                        format!("[{j}]"),
                        "invalid type: null, expected an object reference",
                    ));
                }
                Some(Err(b)) => bad = Some(Bad::at(format!("[{j}]{}", b.path), b.reason)),
            }
            j += 1;
        }
        Ok(bad.map_or(Ok(()), Err))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    reject!("a list of object references": bool num str map);
}

/// The last strings of each field, to store repeats once.
#[derive(Clone, Copy, Default)]
struct Last {
    policy: Span,
    rule: Span,
    category: Span,
    severity: Span,
    source: Span,
}

/// One entry of `results`.
struct EntrySeed<'r> {
    report: &'r mut Report,
    last: &'r mut Last,
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Result<(Entry, Span), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a result")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let (r, last) = (self.report, self.last);
        let first_subject = r.subjects.len() as u32;
        let mut policy = None;
        let mut outcome = None;
        let mut e = Entry {
            policy: Span::default(),
            rule: Span::default(),
            category: Span::default(),
            severity: Span::default(),
            source: None,
            outcome: Outcome::Pass,
            subjects: (first_subject, first_subject),
            timestamp: None,
        };
        let mut message = Span::default();
        let mut bad: Option<Bad> = None;
        while let Some(key) = m.next_key::<EntryKey>()? {
            if bad.is_some() {
                m.next_value::<IgnoredAny>()?;
                continue;
            }
            // Each field is named where it is handled, for the error path.
            let (field, got) = match key {
                EntryKey::Policy => (
                    "policy",
                    required(m.next_value_seed(Any(Str::keep(&mut r.text, last.policy)))?).map(
                        |s| {
                            policy = Some(s);
                            last.policy = s;
                        },
                    ),
                ),
                EntryKey::Rule | EntryKey::Category | EntryKey::Severity => {
                    let (field, slot, last) = match key {
                        EntryKey::Rule => ("rule", &mut e.rule, &mut last.rule),
                        EntryKey::Category => ("category", &mut e.category, &mut last.category),
                        _ => ("severity", &mut e.severity, &mut last.severity),
                    };
                    let got = m.next_value_seed(Any(Str::keep(&mut r.text, *last)))?;
                    (
                        field,
                        got.map(|s| {
                            *slot = s.unwrap_or_default();
                            *last = *slot;
                        }),
                    )
                }
                EntryKey::Source => (
                    "source",
                    m.next_value_seed(Any(Str::keep(&mut r.text, last.source)))?
                        .map(|s| {
                            e.source = s;
                            last.source = s.unwrap_or_default();
                        }),
                ),
                EntryKey::Result => (
                    "result",
                    m.next_value_seed(Any(OutcomeSeed))?
                        .map(|o| outcome = Some(o)),
                ),
                EntryKey::Resources => {
                    let start = r.subjects.len() as u32;
                    let got = m.next_value_seed(Any(SubjectsSeed(r)))?;
                    e.subjects = (start, r.subjects.len() as u32);
                    ("resources", got)
                }
                EntryKey::Message if super::keeps_messages() => (
                    "message",
                    m.next_value_seed(Any(Str::keep(&mut r.text, Span::default())))?
                        .map(|s| message = s.unwrap_or_default()),
                ),
                EntryKey::Message => ("message", m.next_value_seed(Any(Str::check()))?.map(drop)),
                EntryKey::Scored => ("scored", m.next_value_seed(Any(BoolSeed))?),
                EntryKey::Timestamp => {
                    e.timestamp = m.next_value_seed(Any(TimestampSeed))?;
                    continue;
                }
                EntryKey::Properties => ("properties", m.next_value_seed(Any(StrMapSeed))?),
                EntryKey::Other => {
                    m.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if let Err(b) = got {
                bad = Some(Bad::at(format!(".{field}{}", b.path), b.reason));
            }
        }
        if let Some(b) = bad {
            return Ok(Err(b));
        }
        match (policy, outcome) {
            (Some(p), Some(o)) => {
                e.policy = p;
                e.outcome = o;
                Ok(Ok((e, message)))
            }
            (None, _) => Ok(Err(Bad::at("", "missing field `policy`"))),
            (_, None) => Ok(Err(Bad::at("", "missing field `result`"))),
        }
    }
    reject!("a result": bool num unit str seq);
}

/// The `results` array.
struct ResultsSeed<'r>(&'r mut Report);

impl<'de> Visitor<'de> for ResultsSeed<'_> {
    type Value = Result<(), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of results")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let r = self.0;
        let mut last = Last::default();
        let mut i = 0usize;
        loop {
            if r.error.is_some() {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                continue;
            }
            let seed = EntrySeed {
                report: r,
                last: &mut last,
            };
            match seq.next_element_seed(Any(seed))? {
                None => break,
                Some(Ok((e, message))) => {
                    r.entries.push(e);
                    if super::keeps_messages() {
                        r.messages.push(message);
                    }
                }
                Some(Err(b)) => r.fail(format!("results[{i}]{}", b.path), b.reason),
            }
            i += 1;
        }
        Ok(Ok(()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    reject!("a list of results": bool num str map);
}

/// A string kept as its own `String` (metadata), or `None` for null.
struct OwnedStr;

impl<'de> Visitor<'de> for OwnedStr {
    type Value = Result<Option<String>, Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Ok(Some(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Ok(Some(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(None))
    }
    reject!("a string": bool num map seq);
}

/// The fields of `metadata` that are kept.
#[derive(Clone, Copy, Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum MetaKey {
    Name,
    Namespace,
    Uid,
    ResourceVersion,
    #[serde(other)]
    Other,
}

/// `metadata`: only what identifies the object is kept, so that large
/// `managedFields` or annotations are skipped instead of allocated.
struct MetaSeed<'r>(&'r mut Report);

impl<'de> Visitor<'de> for MetaSeed<'_> {
    type Value = Result<(), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("object metadata")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let meta = &mut self.0.metadata;
        let mut bad = None;
        while let Some(key) = m.next_key::<MetaKey>()? {
            let (slot, name) = match key {
                MetaKey::Name => (&mut meta.name, "name"),
                MetaKey::Namespace => (&mut meta.namespace, "namespace"),
                MetaKey::Uid => (&mut meta.uid, "uid"),
                MetaKey::ResourceVersion => (&mut meta.resource_version, "resourceVersion"),
                MetaKey::Other => {
                    m.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            match m.next_value_seed(Any(OwnedStr))? {
                Ok(v) => *slot = v,
                Err(b) if bad.is_none() => bad = Some(Bad::at(format!(".{name}"), b.reason)),
                Err(_) => {}
            }
        }
        Ok(bad.map_or(Ok(()), Err))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(()))
    }
    reject!("object metadata": bool num str seq);
}

/// A JSON or YAML document of a file: an object, which may be a report,
/// and the entries of its `items`, decoded as reports in the same pass (in
/// case the object is a `List`). A document that is not an object holds
/// nothing.
#[derive(Debug, Default)]
pub struct Document {
    /// The object itself.
    pub object: Report,
    /// The objects of its `items`; entries that are not objects are left out.
    pub items: Vec<Report>,
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut items = Vec::new();
        let object = DocumentSeed(&mut items).deserialize(d)?;
        Ok(Document { object, items })
    }
}

/// Receives the entries of a document's `items` as they are decoded, so a
/// `List` need not be held whole (see [`DocumentSeed`]).
pub trait ItemSink {
    /// An `items` field begins; a repeated field replaces the earlier one,
    /// so what was received before is void.
    fn begin(&mut self);
    /// One entry that is an object, decoded as a report.
    fn item(&mut self, report: Report);
}

impl ItemSink for Vec<Report> {
    fn begin(&mut self) {
        self.clear();
    }
    fn item(&mut self, report: Report) {
        self.push(report);
    }
}

/// Decodes a document like [`Document`], but hands each entry of its
/// `items` to the sink as soon as it is decoded, and returns the object
/// itself (without its items).
pub struct DocumentSeed<'s>(pub &'s mut dyn ItemSink);

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = Report;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Report, D::Error> {
        struct V<'s>(&'s mut dyn ItemSink);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = Result<Report, Bad>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a document")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
                ReportVisitor {
                    items: Some(self.0),
                }
                .visit_map(m)
                .map(Ok)
            }
            reject!("a document": bool num unit str seq);
        }
        Ok(d.deserialize_any(V(self.0))?.unwrap_or_default())
    }
}

/// The `items` of a document: each object decoded as a report.
struct ItemsSeed<'i>(&'i mut dyn ItemSink);

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Result<(), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while let Some(item) = s.next_element_seed(Any(ItemSeed))? {
            if let Ok(report) = item {
                self.0.item(report);
            }
        }
        Ok(Ok(()))
    }
    reject!("a list of objects": bool num unit str map);
}

/// One entry of `items`: a report if it is an object.
struct ItemSeed;

impl<'de> Visitor<'de> for ItemSeed {
    type Value = Result<Report, Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
        ReportVisitor { items: None }.visit_map(m).map(Ok)
    }
    reject!("an object": bool num unit str seq);
}

impl<'de> Deserialize<'de> for Report {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ReportVisitor { items: None })
    }
}

/// A report object; with `items`, also the entries of its `items`.
struct ReportVisitor<'i> {
    items: Option<&'i mut dyn ItemSink>,
}

impl<'de> Visitor<'de> for ReportVisitor<'_> {
    type Value = Report;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a report object")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut m: A) -> Result<Report, A::Error> {
        let mut r = Report::default();
        while let Some(key) = m.next_key::<TopKey>()? {
            match key {
                TopKey::Metadata => {
                    if let Err(b) = m.next_value_seed(Any(MetaSeed(&mut r)))? {
                        r.fail(format!("metadata{}", b.path), b.reason);
                    }
                }
                TopKey::ApiVersion => {
                    r.api_version = m
                        .next_value_seed(Any(Str::keep(&mut r.text, Span::default())))?
                        .ok()
                        .flatten();
                }
                TopKey::Kind => {
                    r.kind = m
                        .next_value_seed(Any(Str::keep(&mut r.text, Span::default())))?
                        .ok()
                        .flatten();
                }
                TopKey::Scope => {
                    let seed = SubjectSeed {
                        text: &mut r.text,
                        prev: SubjectSpans::default(),
                    };
                    match m.next_value_seed(Any(seed))? {
                        Ok(s) => r.scope = s,
                        Err(b) => r.fail(format!("scope{}", b.path), b.reason),
                    }
                }
                TopKey::Source => {
                    match m.next_value_seed(Any(Str::keep(&mut r.text, Span::default())))? {
                        Ok(s) => r.source = s,
                        Err(b) => r.fail("source".into(), b.reason),
                    }
                }
                TopKey::Results => {
                    r.entries.clear();
                    r.messages.clear();
                    r.subjects.clear();
                    if let Err(b) = m.next_value_seed(Any(ResultsSeed(&mut r)))? {
                        r.fail("results".into(), b.reason);
                    }
                }
                TopKey::Items => match self.items.as_deref_mut() {
                    Some(items) => {
                        items.begin();
                        let _not_a_list = m.next_value_seed(Any(ItemsSeed(items)))?;
                    }
                    None => {
                        m.next_value::<IgnoredAny>()?;
                    }
                },
                TopKey::Other => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        if r.error.is_some() {
            // An invalid report contributes nothing: keep only its identity.
            r.entries = Vec::new();
            r.messages = Vec::new();
            r.subjects = Vec::new();
            r.scope = None;
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests;
