//! The floor baseline: plain serde_json decoding of a `kind: List` of
//! reports into typed report structs, single-threaded. It is the decoder
//! the exporter used when the benchmark was written (a report's parts kept
//! as raw JSON, then its results decoded strictly into a `Vec` of typed
//! entries that borrow their strings), kept here unchanged so that ratios
//! to the floor stay comparable across exporter versions.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct List {
    items: Vec<RawReport>,
}

/// Identity, and the parts of a report kept raw.
#[derive(Deserialize)]
struct RawReport {
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<Meta>,
    #[serde(default)]
    scope: Option<Box<RawValue>>,
    #[serde(default)]
    source: Option<Box<RawValue>>,
    #[serde(default)]
    results: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
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
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct ResultEntry<'a> {
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    policy: Cow<'a, str>,
    #[serde(borrow, default)]
    rule: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    severity: Option<Cow<'a, str>>,
    result: Outcome,
    #[serde(borrow, default)]
    resources: Option<Vec<Subject<'a>>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(default)]
    scored: Option<bool>,
    #[serde(default)]
    properties: Option<StrMap>,
    #[serde(default)]
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
                while map.next_entry::<Cow<'de, str>, Cow<'de, str>>()?.is_some() {}
                Ok(StrMap)
            }
        }
        d.deserialize_map(V)
    }
}

/// Decode a report's raw parts; the number of results counted as the
/// exporter counts them (one per subject, or one), 0 when invalid.
fn decode(raw: &RawReport) -> usize {
    fn part<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Result<Option<T>, ()> {
        raw.map_or(Ok(None), |r| {
            serde_json::from_str::<Option<T>>(r.get()).map_err(|_| ())
        })
    }
    let decoded = (|| {
        let _scope: Option<Subject<'_>> = part(raw.scope.as_deref())?;
        let _source: Option<Cow<'_, str>> = part(raw.source.as_deref())?;
        let results: Option<Vec<ResultEntry<'_>>> = part(raw.results.as_deref())?;
        Ok::<_, ()>(results.unwrap_or_default())
    })();
    decoded.map_or(0, |results| {
        results
            .iter()
            .map(|r| r.resources.as_ref().map_or(0, Vec::len).max(1))
            .sum()
    })
}

/// The floor: decode a `kind: List` of reports; returns the number of
/// results counted.
pub fn decode_list(list_json: &[u8]) -> serde_json::Result<usize> {
    let list: List = serde_json::from_slice(list_json)?;
    Ok(list.items.iter().map(decode).sum())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_results_and_skips_invalid_reports() {
        let list = br#"{"items":[
            {"metadata":{"name":"a"},"results":[{"policy":"p","result":"pass"},
              {"policy":"p","result":"fail","resources":[{"kind":"Pod"},{"kind":"Pod"}]}]},
            {"results":[{"policy":"p","result":"maybe"}]}]}"#;
        assert_eq!(super::decode_list(list).expect("valid"), 3);
    }
}
