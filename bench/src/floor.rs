//! The floor baseline: the least work any strict decoder of these reports
//! must do. Plain serde_json decoding of a `kind: List` of reports into
//! typed structs that borrow every string from the input (an escaped string
//! is the only one copied), single-threaded, in one pass. Each result's
//! fields are type-checked as the exporter checks them (`policy` required,
//! `result` one of the five verdicts, `properties` a map of strings,
//! `resources` object references), and nothing is kept.
//!
//! It is stricter than the exporter in one way that makes it cheaper: an
//! invalid report fails the whole decode, where the exporter refuses only
//! that report. The benchmark's data holds no invalid report.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// A string borrowed from the input; owned only when it has escapes.
/// (serde does not borrow a `Cow<str>` inside an `Option`, so the floor has
/// its own type.)
struct Str<'a>(#[allow(dead_code)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
struct List<'a> {
    #[serde(borrow)]
    items: Vec<Item<'a>>,
}

/// A report: what identifies it, its scope and source, and its results.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Item<'a> {
    #[serde(borrow)]
    api_version: Option<Str<'a>>,
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    metadata: Option<Meta<'a>>,
    #[serde(borrow)]
    scope: Option<Subject<'a>>,
    #[serde(borrow)]
    source: Option<Str<'a>>,
    #[serde(borrow)]
    results: Option<Vec<ResultEntry<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Meta<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    uid: Option<Str<'a>>,
    #[serde(borrow)]
    resource_version: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Pass,
    Fail,
    Warn,
    Error,
    Skip,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Subject<'a> {
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    uid: Option<Str<'a>>,
    #[serde(borrow)]
    api_version: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ResultEntry<'a> {
    #[serde(borrow)]
    source: Option<Str<'a>>,
    #[serde(borrow)]
    policy: Str<'a>,
    #[serde(borrow)]
    rule: Option<Str<'a>>,
    #[serde(borrow)]
    category: Option<Str<'a>>,
    #[serde(borrow)]
    severity: Option<Str<'a>>,
    result: Outcome,
    #[serde(borrow)]
    resources: Option<Vec<Subject<'a>>>,
    #[serde(borrow)]
    message: Option<Str<'a>>,
    scored: Option<bool>,
    properties: Option<StrMap>,
    timestamp: Option<IgnoredAny>,
}

/// A map of strings to strings, checked without being kept.
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
                while map.next_entry::<Str<'de>, Str<'de>>()?.is_some() {}
                Ok(StrMap)
            }
        }
        d.deserialize_map(V)
    }
}

/// The floor: decode a `kind: List` of reports; returns the number of
/// results counted as the exporter counts them (one per listed subject, or
/// one when a result lists none).
pub fn decode_list(list_json: &[u8]) -> serde_json::Result<usize> {
    let list: List<'_> = serde_json::from_slice(list_json)?;
    Ok(list
        .items
        .iter()
        .flat_map(|i| i.results.iter().flatten())
        .map(|r| r.resources.as_ref().map_or(0, Vec::len).max(1))
        .sum())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_results_and_refuses_invalid_reports() {
        let list = br#"{"items":[
            {"metadata":{"name":"a"},"results":[{"policy":"p","result":"pass","message":"a \"quoted\" word"},
              {"policy":"p","result":"fail","resources":[{"kind":"Pod"},{"kind":"Pod"}]}]},
            {"metadata":{"name":"b"}}]}"#;
        assert_eq!(super::decode_list(list).expect("valid"), 3);
        let bad = br#"{"items":[{"results":[{"policy":"p","result":"maybe"}]}]}"#;
        assert!(super::decode_list(bad).is_err());
    }
}
