//! JSON files: decoded in one pass straight into [`Report`]s, without a
//! value tree. The entries of a `List` are handed on as they are decoded
//! ([`ListItems`]), so a large `kubectl get -o json` export is never held
//! decoded whole.

use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::Parsed;
use super::items::{ListItems, Rest, report_kind};
use crate::kind::Kind;
use crate::object::RawObject;
use crate::report::{DocumentSeed, Report, WithMessages};
use crate::source::SourceObject;

/// Decode a JSON document and hand its objects to `out` in file order.
///
/// The document and the entries of its `items` are decoded in one pass
/// (see [`ListItems`]). Events and policies are kept as raw text: when the
/// List holds some, its text is read a second time for those entries only.
/// Reports keep each result's message with `keep_messages`.
pub(super) fn stream(
    bytes: &[u8],
    keep_messages: bool,
    out: &mut dyn FnMut(Parsed),
) -> Result<(), serde_json::Error> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| serde_json::Error::io(std::io::Error::other(e)))?;
    let mut items = ListItems::new(out);
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = DocumentSeed {
        items: &mut items,
        keep_messages,
    };
    let object = seed.deserialize(&mut de)?;
    de.end()?;
    items.finish(object, |rest, out| {
        let wanted = match rest {
            Rest::Document => {
                take_json(text, keep_messages, out);
                return Ok(());
            }
            Rest::Entries(wanted) => wanted,
        };
        let head: Head<'_> = serde_json::from_str(text)?;
        let objects = head
            .items
            .0
            .into_iter()
            .filter(|i| i.get().starts_with('{'));
        let mut wanted = wanted.into_iter().peekable();
        for (index, item) in objects.enumerate() {
            if wanted.next_if_eq(&index).is_some() {
                take_json(item.get(), keep_messages, out);
            }
        }
        Ok(())
    })
}

/// The type fields of a JSON object, kept raw: a field of another type than
/// expected means "not an object the exporter reads", never an error.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default, rename = "apiVersion", borrow)]
    api_version: Option<&'a RawValue>,
    #[serde(default, borrow)]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    items: Items<'a>,
}

/// The entries of an `items` array, delimited but not decoded; anything
/// else than an array holds none.
#[derive(Default)]
struct Items<'a>(Vec<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Items<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Items<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Items<'a>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = s.next_element::<&'a RawValue>()? {
                    items.push(item);
                }
                Ok(Items(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Items<'a>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Items::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Items<'a>, E> {
                Ok(Items::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Items<'a>, E> {
                Ok(Items::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Items<'a>, E> {
                Ok(Items::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Items<'a>, E> {
                Ok(Items::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Items<'a>, E> {
                Ok(Items::default())
            }
            fn visit_unit<E>(self) -> Result<Items<'a>, E> {
                Ok(Items::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

fn string(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

/// The kind of an object, if the exporter reads it.
fn kind_of(head: &Head<'_>) -> Option<Kind> {
    Kind::from_type(&string(head.api_version)?, &string(head.kind)?)
}

/// Take one JSON object: a report decoded, an Event or policy kept raw;
/// objects of other kinds are ignored.
fn take_json(raw: &str, keep_messages: bool, out: &mut dyn FnMut(Parsed)) {
    let report = if keep_messages {
        serde_json::from_str::<WithMessages>(raw).map(|r| r.0)
    } else {
        serde_json::from_str::<Report>(raw)
    };
    let (kind, object) = match report {
        Ok(report) => match report_kind(&report) {
            Some(kind) if kind.is_report() => (kind, Ok(SourceObject::report(kind, report))),
            Some(kind) => (
                kind,
                serde_json::from_str::<RawObject>(raw).map(|o| SourceObject::object(kind, o)),
            ),
            None => return,
        },
        // Not decodable as a report (nested too deep): refused only if the
        // object is of a kind the exporter reads.
        Err(e) => match serde_json::from_str::<Head<'_>>(raw)
            .ok()
            .and_then(|h| kind_of(&h))
        {
            Some(kind) => (kind, Err(e)),
            None => return,
        },
    };
    out(Parsed::taken(kind, object));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(text: &str) -> (Vec<String>, bool) {
        super::super::items::streamed(text, |bytes, out| stream(bytes, false, out))
    }

    fn report(name: &str) -> String {
        format!(
            r#"{{"apiVersion":"wgpolicyk8s.io/v1alpha2","metadata":{{"name":"{name}","namespace":"n"}},"results":[],"kind":"PolicyReport"}}"#
        )
    }

    const INVALID: &str = r#"{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{"name":"bad","namespace":"n"},"results":5}"#;
    const EVENT: &str = r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"e","namespace":"n"},"reason":"PolicyViolation"}"#;

    #[test]
    fn list_items_are_handed_on_as_decoded() {
        let (a, b) = (report("a"), report("b"));
        // kubectl's order: kind after items.
        let list = format!(r#"{{"apiVersion":"v1","items":[{a},7,{b}],"kind":"List"}}"#);
        assert_eq!(
            streamed(&list),
            (vec!["PolicyReport a".into(), "PolicyReport b".into()], true)
        );
        // Cut after the first item: it was handed on before the error.
        let cut = &list[..list.find(&b).expect("b")];
        assert_eq!(streamed(cut), (vec!["PolicyReport a".into()], false));
        // An invalid report of a List is handed on (the aggregator refuses it).
        let list = format!(r#"{{"items":[{a},{INVALID}],"kind":"PolicyReportList"}}"#);
        assert_eq!(
            streamed(&list),
            (vec!["PolicyReport a".into(), "invalid".into()], true)
        );
    }

    #[test]
    fn a_document_that_is_not_a_list_voids_its_items() {
        let a = report("a");
        // A report with an `items` field, its kind last: the items were
        // handed on, then voided, then the report itself.
        let doc = format!(
            r#"{{"apiVersion":"wgpolicyk8s.io/v1alpha2","metadata":{{"name":"top","namespace":"n"}},"items":[{a}],"kind":"PolicyReport"}}"#
        );
        assert_eq!(
            streamed(&doc),
            (
                vec![
                    "PolicyReport a".into(),
                    "restart".into(),
                    "PolicyReport top".into()
                ],
                true
            )
        );
        assert_eq!(
            super::super::parse(doc.as_bytes(), true)
                .expect("valid")
                .objects
                .iter()
                .map(|o| o.id().1)
                .collect::<Vec<_>>(),
            ["top"]
        );
        // An unknown kind, or none: nothing.
        for kind in [r#","kind":"ConfigMap""#, ""] {
            let doc = format!(r#"{{"items":[{a}]{kind}}}"#);
            assert_eq!(
                streamed(&doc),
                (vec!["PolicyReport a".into(), "restart".into()], true)
            );
        }
        // An invalid report among the items of a document that is not a
        // List is never handed on (the aggregator would count it): it waits,
        // with the reports after it, for the end of the document.
        let doc = format!(r#"{{"items":[{a},{INVALID},{a}],"kind":"ConfigMap"}}"#);
        assert_eq!(
            streamed(&doc),
            (vec!["PolicyReport a".into(), "restart".into()], true)
        );
        let broken = format!(r#"{{"items":[{INVALID},{a}],"kind":"List""#);
        assert_eq!(streamed(&broken), (vec![], false));
        // A repeated `items` replaces the first one; an invalid report of
        // the first is never handed on.
        let doc = format!(r#"{{"items":[{INVALID}],"items":[{a}],"kind":"List"}}"#);
        assert_eq!(streamed(&doc), (vec!["PolicyReport a".into()], true));
        let b = report("b");
        let doc = format!(r#"{{"items":[{a}],"items":[{b}],"kind":"List"}}"#);
        assert_eq!(
            streamed(&doc),
            (
                vec![
                    "PolicyReport a".into(),
                    "restart".into(),
                    "PolicyReport b".into()
                ],
                true
            )
        );
    }

    #[test]
    fn events_and_policies_of_a_list_are_taken_in_a_second_pass() {
        let (a, b) = (report("a"), report("b"));
        let policy =
            r#"{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{"name":5}}"#;
        let list = format!(r#"{{"items":[{a},{EVENT},"x",{b},{policy}],"kind":"List"}}"#);
        assert_eq!(
            streamed(&list),
            (
                vec![
                    "PolicyReport a".into(),
                    "PolicyReport b".into(),
                    "Event e".into(),
                    "bad ClusterPolicy".into()
                ],
                true
            )
        );
        // A single Event.
        assert_eq!(streamed(EVENT), (vec!["Event e".into()], true));
    }
}
