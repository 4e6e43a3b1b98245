//! The report format: the strict decoder of a report's `results`, `scope`
//! and `source`, which borrows strings from the raw text where it can.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

pub use crate::object::RawReport;

/// The verdict of one result.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The resource satisfies the rule.
    Pass,
    /// The resource violates the rule.
    Fail,
    /// Violation of an unscored policy.
    Warn,
    /// The rule could not be evaluated.
    Error,
    /// The rule did not apply (for example, a PolicyException).
    Skip,
}

impl Outcome {
    /// Every outcome, in severity order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::Warn,
        Outcome::Error,
        Outcome::Skip,
    ];

    /// The lowercase name used in reports and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Skip => "skip",
        }
    }
}

/// A string that borrows from the input when it has no escapes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'a> Text<'a> {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Checks that a value is a string without keeping it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AnyStr;

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AnyStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyStr, E> {
                Ok(AnyStr)
            }
        }
        d.deserialize_str(V)
    }
}

/// Checks that a value is a map of strings to strings without keeping it.
#[derive(Debug)]
struct StrMap;

impl<'de> Deserialize<'de> for StrMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrMap, A::Error> {
                while map.next_entry::<AnyStr, AnyStr>()?.is_some() {}
                Ok(StrMap)
            }
        }
        d.deserialize_map(V)
    }
}

/// A reference to a Kubernetes object: a result's subject or a report's scope.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Subject<'a> {
    /// Kind of the object.
    #[serde(borrow, default)]
    pub kind: Option<Text<'a>>,
    /// Namespace, empty for cluster-scoped objects.
    #[serde(borrow, default)]
    pub namespace: Option<Text<'a>>,
    /// Name.
    #[serde(borrow, default)]
    pub name: Option<Text<'a>>,
    /// UID.
    #[serde(borrow, default)]
    pub uid: Option<Text<'a>>,
    /// `apiVersion`, checked for type only.
    #[serde(default, rename = "apiVersion")]
    api_version: Option<AnyStr>,
}

/// One entry of `results`, with the fields the exporter uses. The other
/// documented fields are type-checked but not kept.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultEntry<'a> {
    /// The engine that produced the result.
    #[serde(borrow, default)]
    pub source: Option<Text<'a>>,
    /// `name` of a ClusterPolicy, `namespace/name` of a Policy.
    #[serde(borrow)]
    pub policy: Text<'a>,
    /// Rule name; absent for CEL policy types.
    #[serde(borrow, default)]
    pub rule: Option<Text<'a>>,
    /// The policy's comma-separated categories, as written.
    #[serde(borrow, default)]
    pub category: Option<Text<'a>>,
    /// The policy's severity, as written.
    #[serde(borrow, default)]
    pub severity: Option<Text<'a>>,
    /// The verdict.
    pub result: Outcome,
    /// Subjects of a policy-wide report; empty in the per-resource layout.
    #[serde(borrow, default)]
    pub resources: Option<Vec<Subject<'a>>>,
    #[serde(default, rename = "message")]
    _message: Option<AnyStr>,
    #[serde(default, rename = "scored")]
    _scored: Option<bool>,
    #[serde(default, rename = "properties")]
    _properties: Option<StrMap>,
    #[serde(default, rename = "timestamp")]
    _timestamp: Option<IgnoredAny>,
}

impl ResultEntry<'_> {
    /// The listed subjects (empty when the result has none).
    pub fn subjects(&self) -> &[Subject<'_>] {
        self.resources.as_deref().unwrap_or(&[])
    }
}

/// A report's decoded content, borrowing from its [`RawReport`].
#[derive(Debug, Default)]
pub struct DecodedReport<'a> {
    /// The report's scope, if any.
    pub scope: Option<Subject<'a>>,
    /// The top-level `source` (openreports).
    pub source: Option<Text<'a>>,
    /// All results.
    pub results: Vec<ResultEntry<'a>>,
}

/// Why a report could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct DecodeError {
    /// Which part of the report, such as `results[3].result`.
    pub field: String,
    /// The decoder's explanation.
    pub reason: String,
}

/// Decode the parts of a raw report the aggregator needs.
///
/// Any result that does not match the format makes the whole report invalid.
pub fn decode(raw: &RawReport) -> Result<DecodedReport<'_>, DecodeError> {
    Ok(DecodedReport {
        scope: decode_part(raw.scope.as_deref(), "scope")?,
        source: decode_part(raw.source.as_deref(), "source")?,
        results: decode_part::<Option<Vec<ResultEntry>>>(raw.results.as_deref(), "results")?
            .flatten()
            .unwrap_or_default(),
    })
}

fn decode_part<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    field: &str,
) -> Result<Option<T>, DecodeError> {
    let Some(raw) = raw else { return Ok(None) };
    match serde_json::from_str::<Option<T>>(raw.get()) {
        Ok(v) => Ok(v),
        Err(first) => {
            // Slow path, errors only: find where the problem is.
            let mut de = serde_json::Deserializer::from_str(raw.get());
            let (path, reason) = match serde_path_to_error::deserialize::<_, Option<T>>(&mut de) {
                Err(e) => (e.path().to_string(), e.into_inner().to_string()),
                Ok(_) => (String::new(), first.to_string()),
            };
            let field = match path.as_str() {
                "" | "?" | "." => field.to_owned(),
                p if p.starts_with('[') => format!("{field}{p}"),
                p => format!("{field}.{p}"),
            };
            Err(DecodeError { field, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawReport {
        serde_json::from_str(json).expect("test JSON")
    }

    #[test]
    fn decodes_results_borrowing_strings() {
        let r = raw(
            r#"{"metadata":{"name":"a","namespace":"ns","managedFields":[{"x":1}]},
            "results":[{"policy":"p","rule":"r","result":"fail","category":"C, D","severity":"high",
            "message":"m","scored":true,"properties":{"process":"background scan"},
            "timestamp":{"seconds":1,"nanos":0},"resources":[{"kind":"Pod","name":"x","uid":"u"}]}]}"#,
        );
        assert_eq!(r.metadata.name.as_deref(), Some("a"));
        let d = decode(&r).expect("valid");
        assert_eq!(d.results.len(), 1);
        let e = &d.results[0];
        assert!(matches!(e.policy.0, Cow::Borrowed("p")));
        assert_eq!(e.result, Outcome::Fail);
        assert_eq!(e.subjects()[0].kind.as_ref().map(Text::as_str), Some("Pod"));
    }

    #[test]
    fn rejects_unknown_outcome_with_its_path() {
        let r =
            raw(r#"{"results":[{"policy":"p","result":"pass"},{"policy":"p","result":"maybe"}]}"#);
        let e = decode(&r).expect_err("invalid");
        assert_eq!(e.field, "results[1].result");
        assert!(e.reason.contains("unknown variant `maybe`"), "{}", e.reason);
    }

    #[test]
    fn rejects_missing_policy_and_wrong_types() {
        let e = decode(&raw(r#"{"results":[{"result":"pass"}]}"#)).expect_err("no policy");
        assert!(e.reason.contains("missing field `policy`"), "{e}");
        let e = decode(&raw(
            r#"{"results":[{"policy":"p","result":"pass","message":5}]}"#,
        ))
        .expect_err("message type");
        assert_eq!(e.field, "results[0].message");
        let e = decode(&raw(
            r#"{"results":[{"policy":"p","result":"pass","properties":{"a":1}}]}"#,
        ))
        .expect_err("properties type");
        assert!(e.field.starts_with("results[0].properties"), "{e}");
        let e = decode(&raw(
            r#"{"results":[{"policy":"p","result":"pass","resources":["x"]}]}"#,
        ))
        .expect_err("resources type");
        assert!(e.field.starts_with("results[0].resources"), "{e}");
        let e = decode(&raw(r#"{"source":7}"#)).expect_err("source type");
        assert_eq!(e.field, "source");
    }

    #[test]
    fn null_and_missing_results_are_empty() {
        assert!(
            decode(&raw(r#"{"results":null}"#))
                .expect("ok")
                .results
                .is_empty()
        );
        assert!(decode(&raw(r#"{}"#)).expect("ok").results.is_empty());
    }

    #[test]
    fn escaped_strings_are_owned() {
        let r = raw(r#"{"results":[{"policy":"a\"b","result":"skip"}]}"#);
        let d = decode(&r).expect("valid");
        assert_eq!(d.results[0].policy.as_str(), "a\"b");
    }
}
