//! The visitors of a report's `results`: per entry its labels, verdict,
//! timestamp and the fields only checked, and its `resources` (the
//! subjects), their strings copied into the report's buffer.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor};

use super::{Any, Bad, Entry, Report, Span, Str, SubjectSpans, invalid_type, required};
use crate::decode::Text;
use crate::report::Outcome;

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
pub(super) struct SubjectSeed<'t> {
    pub(super) text: &'t mut String,
    pub(super) prev: SubjectSpans,
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
    /// Keep the message, else only check it.
    keep_messages: bool,
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Result<(Entry, Span), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a result")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let (r, last, keep_messages) = (self.report, self.last, self.keep_messages);
        let first_subject = r.subjects.len() as u32;
        let mut policy = None;
        let mut outcome = None;
        let mut e = Entry::empty(first_subject);
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
                    label(&mut m, key, &mut e, last, &mut r.text)?
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
                EntryKey::Message if keep_messages => (
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
        Ok(complete(e, policy, outcome, message, bad))
    }
    reject!("a result": bool num unit str seq);
}

impl Entry {
    /// An entry before its fields are read: its subjects start at
    /// `first_subject`, none yet.
    #[inline]
    fn empty(first_subject: u32) -> Self {
        Entry {
            policy: Span::default(),
            rule: Span::default(),
            category: Span::default(),
            severity: Span::default(),
            source: None,
            outcome: Outcome::Pass,
            subjects: (first_subject, first_subject),
            timestamp: None,
        }
    }
}

/// `rule`, `category` or `severity` (`key`): read into its slot of `e`,
/// stored once when it repeats the last entry's. Returns the field's name
/// and whether it was valid.
#[inline]
fn label<'de, A: MapAccess<'de>>(
    m: &mut A,
    key: EntryKey,
    e: &mut Entry,
    last: &mut Last,
    text: &mut String,
) -> Result<(&'static str, Result<(), Bad>), A::Error> {
    let (field, slot, last) = match key {
        EntryKey::Rule => ("rule", &mut e.rule, &mut last.rule),
        EntryKey::Category => ("category", &mut e.category, &mut last.category),
        _ => ("severity", &mut e.severity, &mut last.severity),
    };
    let got = m.next_value_seed(Any(Str::keep(text, *last)))?;
    Ok((
        field,
        got.map(|s| {
            *slot = s.unwrap_or_default();
            *last = *slot;
        }),
    ))
}

/// A read entry: its first problem, or the entry once both `policy` and
/// `result` were present.
#[inline]
fn complete(
    mut e: Entry,
    policy: Option<Span>,
    outcome: Option<Outcome>,
    message: Span,
    bad: Option<Bad>,
) -> Result<(Entry, Span), Bad> {
    if let Some(b) = bad {
        return Err(b);
    }
    match (policy, outcome) {
        (Some(p), Some(o)) => {
            e.policy = p;
            e.outcome = o;
            Ok((e, message))
        }
        (None, _) => Err(Bad::at("", "missing field `policy`")),
        (_, None) => Err(Bad::at("", "missing field `result`")),
    }
}

/// The `results` array.
pub(super) struct ResultsSeed<'r> {
    pub(super) report: &'r mut Report,
    /// Keep each result's message, else only check it.
    pub(super) keep_messages: bool,
}

impl<'de> Visitor<'de> for ResultsSeed<'_> {
    type Value = Result<(), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of results")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (r, keep_messages) = (self.report, self.keep_messages);
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
                keep_messages,
            };
            match seq.next_element_seed(Any(seed))? {
                None => break,
                Some(Ok((e, message))) => {
                    r.entries.push(e);
                    if keep_messages {
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
