//! The report visitor: a report object's metadata, type, scope, source and
//! `results`, and a document whose `items` are decoded as reports in the
//! same pass.

use std::fmt;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor,
};

use super::results::{ResultsSeed, SubjectSeed};
use super::{Any, Bad, Report, Span, Str, SubjectSpans, invalid_type};

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
        Document::decode(d, false)
    }
}

impl Document {
    fn decode<'de, D: Deserializer<'de>>(d: D, keep_messages: bool) -> Result<Self, D::Error> {
        let mut items = Vec::new();
        let seed = DocumentSeed {
            items: &mut items,
            keep_messages,
        };
        let object = seed.deserialize(d)?;
        Ok(Document { object, items })
    }
}

/// A [`Report`] (or a [`Document`]) decoded with each result's message
/// kept ([`ResultView::message`](super::ResultView::message)). The plain
/// `Deserialize` of either only checks messages: `serve` never shows them.
#[derive(Clone, Debug)]
pub struct WithMessages<T = Report>(pub T);

impl<'de> Deserialize<'de> for WithMessages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ReportVisitor::new(None, true))
            .map(WithMessages)
    }
}

impl<'de> Deserialize<'de> for WithMessages<Document> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Document::decode(d, true).map(WithMessages)
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
pub struct DocumentSeed<'s> {
    /// Receives the entries of `items`.
    pub items: &'s mut dyn ItemSink,
    /// Keep each result's message, as [`WithMessages`] does.
    pub keep_messages: bool,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = Report;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Report, D::Error> {
        struct V<'s>(DocumentSeed<'s>);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = Result<Report, Bad>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a document")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
                let DocumentSeed {
                    items,
                    keep_messages,
                } = self.0;
                ReportVisitor::new(Some(items), keep_messages)
                    .visit_map(m)
                    .map(Ok)
            }
            reject!("a document": bool num unit str seq);
        }
        Ok(d.deserialize_any(V(self))?.unwrap_or_default())
    }
}

/// The `items` of a document: each object decoded as a report, keeping
/// messages or not.
struct ItemsSeed<'i>(&'i mut dyn ItemSink, bool);

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Result<(), Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while let Some(item) = s.next_element_seed(Any(ItemSeed(self.1)))? {
            if let Ok(report) = item {
                self.0.item(report);
            }
        }
        Ok(Ok(()))
    }
    reject!("a list of objects": bool num unit str map);
}

/// One entry of `items`: a report if it is an object, keeping messages or
/// not.
struct ItemSeed(bool);

impl<'de> Visitor<'de> for ItemSeed {
    type Value = Result<Report, Bad>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
        ReportVisitor::new(None, self.0).visit_map(m).map(Ok)
    }
    reject!("an object": bool num unit str seq);
}

impl<'de> Deserialize<'de> for Report {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ReportVisitor::new(None, false))
    }
}

/// A report object; with `items`, also the entries of its `items`.
struct ReportVisitor<'i> {
    items: Option<&'i mut dyn ItemSink>,
    /// A field rather than a type parameter, so the decoder is compiled
    /// once whichever way it is used.
    keep_messages: bool,
}

impl<'i> ReportVisitor<'i> {
    fn new(items: Option<&'i mut dyn ItemSink>, keep_messages: bool) -> Self {
        Self {
            items,
            keep_messages,
        }
    }
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
                    let seed = ResultsSeed {
                        report: &mut r,
                        keep_messages: self.keep_messages,
                    };
                    if let Err(b) = m.next_value_seed(Any(seed))? {
                        r.fail("results".into(), b.reason);
                    }
                }
                TopKey::Items => match self.items.as_deref_mut() {
                    Some(items) => {
                        items.begin();
                        let seed = ItemsSeed(items, self.keep_messages);
                        let _not_a_list = m.next_value_seed(Any(seed))?;
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
