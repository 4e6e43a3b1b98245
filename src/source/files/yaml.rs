//! YAML files: each document is decoded straight into [`Report`]s by
//! serde-saphyr, which streams the parser's events into the decoder (no
//! event buffer, no value tree), under the limits of [`options`]. The
//! entries of a file that is one `List` (what `kubectl get -o yaml` writes)
//! are handed on as they are decoded ([`stream`]). Events and policies are
//! read a second time through a value tree, which is how the exporter takes
//! those kinds.
//!
//! Streaming keeps a kubectl-style YAML file's decode at a few MiB instead of
//! about 13× the file (serde_yaml_ng's buffered events, then a value tree),
//! and a large List at the file + 21 MiB instead of + 104 MiB; see
//! docs/benchmarks.md, "YAML decoding" and "Streaming a single YAML
//! document".

use serde::Deserialize;
use serde::de::DeserializeSeed;
use serde_json::Value;
use serde_saphyr::options::{DuplicateKeyPolicy, MergeKeyPolicy};

use super::Parsed;
use super::items::{ListItems, Rest, is_list, report_kind};
use crate::kind::Kind;
use crate::object::RawObject;
use crate::report::{Document, DocumentSeed, Report, WithMessages};
use crate::source::SourceObject;

/// The most events aliases may replay in one file, and the most events the
/// parser may keep for anchors: a billion-laughs file is refused when it
/// reaches either, with a few MiB spent. Hand-written YAML with anchors stays
/// far below; kubectl never writes anchors.
pub const MAX_ALIAS_EVENTS: usize = 100_000;

/// Deepest nesting of block or flow collections accepted in a YAML file.
/// serde-saphyr recurses once per level, with about 20 KiB of stack a level
/// when unoptimized: 80 levels fit in the 2 MiB of a worker thread, 128 do
/// not (the stack overflowed, aborting the process). Kubernetes objects,
/// policies included, nest about 20 deep. JSON keeps serde_json's 128.
pub const MAX_DEPTH: usize = 64;

/// The decoder's limits. Nesting deeper than [`MAX_DEPTH`] and alias
/// expansion beyond [`MAX_ALIAS_EVENTS`] are refused; the input's size is
/// already bounded by `--max-file-size`, so serde-saphyr's caps on the
/// number of events, nodes, scalar bytes and documents are lifted. Repeated
/// keys and `<<` reach the decoder as written, as they did through
/// serde_yaml_ng's value tree (the last repeated key wins).
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_events: usize::MAX,
            max_nodes: usize::MAX,
            max_total_scalar_bytes: usize::MAX,
            max_documents: usize::MAX,
            max_recorded_anchor_events: MAX_ALIAS_EVENTS,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_EVENTS,
        },
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        merge_keys: MergeKeyPolicy::AsOrdinary,
        with_snippet: false,
        // Plain scalars resolve as serde_yaml_ng resolved them (YAML 1.2
        // core): `yes`/`on` stay strings, and so do `0755` and `1_000`.
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
    }
}

/// Decode a YAML file and hand its objects to `out` in file order.
///
/// A file of one document (what `kubectl get -o yaml` writes) is streamed
/// like JSON: the entries of a `List` are handed on as they are decoded
/// ([`ListItems`]), so a large export is never held decoded whole. Events
/// and policies are read afterwards, through a value tree. A file of several
/// documents (an empty one after `---` counts) is decoded whole by
/// [`whole`]: the streaming attempt stops at the second document, having
/// cost the first one's decode, and what it handed on is voided. Reports
/// keep each result's message with `keep_messages`.
pub(super) fn stream(
    bytes: &[u8],
    keep_messages: bool,
    out: &mut dyn FnMut(Parsed),
) -> Result<(), serde_saphyr::Error> {
    let mut items = ListItems::new(out);
    let streamed =
        serde_saphyr::with_deserializer_from_slice_with_options(bytes, options(), |de| {
            let seed = DocumentSeed {
                items: &mut items,
                keep_messages,
            };
            seed.deserialize(de)
        });
    match streamed {
        Ok(object) => items.finish(object, |rest, out| {
            let document: Value = serde_saphyr::from_slice_with_options(bytes, options())?;
            let take = match rest {
                Rest::Entries(_) => Take::OtherKinds,
                Rest::Document => Take::All,
            };
            take_value(document, keep_messages, out, take);
            Ok(())
        }),
        Err(e)
            if matches!(
                e.without_snippet(),
                serde_saphyr::Error::MultipleDocuments { .. }
            ) =>
        {
            whole(bytes, keep_messages, items.abandon())
        }
        Err(e) => Err(e),
    }
}

/// Decode a file of any number of documents whole, each an object or a
/// `List` of objects, and hand on its objects.
fn whole(
    bytes: &[u8],
    keep_messages: bool,
    out: &mut dyn FnMut(Parsed),
) -> Result<(), serde_saphyr::Error> {
    let reports: Reports = if keep_messages {
        serde_saphyr::from_bytes_multiple_with_options::<WithMessages<Document>, _>(
            bytes,
            options(),
        )?
    } else {
        serde_saphyr::from_bytes_multiple_with_options::<Document, _>(bytes, options())?
    };
    if !reports.other_kinds {
        reports
            .objects
            .into_iter()
            .for_each(|o| out(Parsed::Object(o)));
        return Ok(());
    }
    let documents: Vec<Value> = serde_saphyr::from_bytes_multiple_with_options(bytes, options())?;
    for document in documents {
        take_value(document, keep_messages, out, Take::All);
    }
    Ok(())
}

/// The reports of a file, taken document by document as they are decoded.
#[derive(Default)]
struct Reports {
    objects: Vec<SourceObject>,
    /// Whether an Event or a policy was seen: the file is then read again
    /// by [`take_value`].
    other_kinds: bool,
}

impl Extend<Document> for Reports {
    fn extend<I: IntoIterator<Item = Document>>(&mut self, documents: I) {
        for document in documents {
            let reports = match is_list(document.object.type_meta()) {
                true => document.items,
                false => vec![document.object],
            };
            for report in reports {
                match report_kind(&report) {
                    Some(kind) if kind.is_report() => {
                        self.objects.push(SourceObject::report(kind, report))
                    }
                    Some(_) => self.other_kinds = true,
                    None => {}
                }
            }
        }
    }
}

impl Extend<WithMessages<Document>> for Reports {
    fn extend<I: IntoIterator<Item = WithMessages<Document>>>(&mut self, documents: I) {
        self.extend(documents.into_iter().map(|d| d.0));
    }
}

/// Which objects [`take_value`] hands on.
#[derive(Clone, Copy, PartialEq)]
enum Take {
    All,
    /// Events and policies only: the reports were streamed.
    OtherKinds,
}

/// Hand on the objects of a document read as a value tree: an object, or
/// the entries of a `List`; reports keep each result's message with
/// `keep_messages`.
fn take_value(value: Value, keep_messages: bool, out: &mut dyn FnMut(Parsed), take: Take) {
    let Value::Object(mut obj) = value else {
        return;
    };
    if let Some(kind) = kind_of(&obj) {
        take_object(kind, obj, keep_messages, out, take);
        return;
    }
    let list = obj
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    if let (true, Some(Value::Array(items))) = (list, obj.remove("items")) {
        for item in items {
            if let Value::Object(obj) = item
                && let Some(kind) = kind_of(&obj)
            {
                take_object(kind, obj, keep_messages, out, take);
            }
        }
    }
}

/// The kind of an object of a value tree, if the exporter reads it.
fn kind_of(obj: &serde_json::Map<String, Value>) -> Option<Kind> {
    let field = |name| obj.get(name).and_then(Value::as_str).unwrap_or("");
    Kind::from_type(field("apiVersion"), field("kind"))
}

fn take_object(
    kind: Kind,
    obj: serde_json::Map<String, Value>,
    keep_messages: bool,
    out: &mut dyn FnMut(Parsed),
    take: Take,
) {
    let object = if kind.is_report() {
        if take == Take::OtherKinds {
            return;
        }
        let report = if keep_messages {
            WithMessages::deserialize(Value::Object(obj)).map(|r| r.0)
        } else {
            Report::deserialize(Value::Object(obj))
        };
        report.map(|r| SourceObject::report(kind, r))
    } else {
        RawObject::from_value(&Value::Object(obj)).map(|o| SourceObject::object(kind, o))
    };
    out(Parsed::taken(kind, object));
}

#[cfg(test)]
mod tests {
    use super::super::FileContents;
    use super::*;

    fn streamed(text: &str) -> (Vec<String>, bool) {
        super::super::items::streamed(text, |bytes, out| stream(bytes, false, out))
    }

    /// A report as `kubectl get -o yaml` prints an entry of `items`.
    fn report(name: &str) -> String {
        format!(
            "- apiVersion: wgpolicyk8s.io/v1alpha2\n  kind: PolicyReport\n  metadata:\n    \
             name: {name}\n    namespace: n\n  results:\n  - policy: p\n    result: pass\n"
        )
    }

    const INVALID: &str = "- apiVersion: wgpolicyk8s.io/v1alpha2\n  kind: PolicyReport\n  \
                           metadata: {name: bad, namespace: n}\n  results: 5\n";
    const EVENT: &str = "- apiVersion: v1\n  kind: Event\n  \
                         metadata: {name: e, namespace: n}\n  reason: PolicyViolation\n";
    const POLICY: &str =
        "- apiVersion: kyverno.io/v1\n  kind: ClusterPolicy\n  metadata: {name: [5]}\n";

    /// kubectl's order: `kind: List` after `items`.
    fn list(items: &[&str]) -> String {
        format!("apiVersion: v1\nitems:\n{}kind: List\n", items.concat())
    }

    #[test]
    fn a_single_list_is_handed_on_as_decoded() {
        let (a, b) = (report("a"), report("b"));
        let text = list(&[&a, "- 7\n", &b]);
        assert_eq!(
            streamed(&text),
            (vec!["PolicyReport a".into(), "PolicyReport b".into()], true)
        );
        // Broken after the first item: it was handed on before the error.
        let cut = format!("{}- {{ broken\n", &text[..text.find(&b).expect("b")]);
        assert_eq!(streamed(&cut), (vec!["PolicyReport a".into()], false));
        // An invalid report of a single List is handed on in its place.
        assert_eq!(
            streamed(&list(&[&a, INVALID, &b])),
            (
                vec![
                    "PolicyReport a".into(),
                    "invalid".into(),
                    "PolicyReport b".into()
                ],
                true
            )
        );
        // Events and policies follow, from a second read.
        assert_eq!(
            streamed(&list(&[&a, EVENT, POLICY, &b])),
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
    }

    #[test]
    fn a_document_that_is_not_a_list_voids_its_items() {
        let a = report("a");
        let text = format!(
            "apiVersion: wgpolicyk8s.io/v1alpha2\nmetadata: {{name: top, namespace: n}}\n\
             items:\n{a}kind: PolicyReport\n"
        );
        assert_eq!(
            streamed(&text),
            (
                vec![
                    "PolicyReport a".into(),
                    "restart".into(),
                    "PolicyReport top".into()
                ],
                true
            )
        );
        // An invalid report there is never handed on.
        let text = format!("items:\n{a}{INVALID}{a}kind: ConfigMap\n");
        assert_eq!(
            streamed(&text),
            (vec!["PolicyReport a".into(), "restart".into()], true)
        );
        // A single policy: read through the value tree.
        let policy = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\n";
        assert_eq!(streamed(policy), (vec!["ClusterPolicy p".into()], true));
        // No document at all.
        for empty in ["", "# nothing\n", "---\n"] {
            assert_eq!(streamed(empty), (vec![], true));
        }
    }

    /// The aggregator counts an invalid report when it sees one, so one is
    /// handed on only once its document is known to be a List read whole.
    #[test]
    fn an_invalid_report_waits_for_the_end_of_its_list() {
        let (a, b) = (report("a"), report("b"));
        // Repeated `items`: the first is void, its invalid report never seen.
        let text = format!("apiVersion: v1\nkind: List\nitems:\n{INVALID}items:\n{a}");
        assert_eq!(streamed(&text), (vec!["PolicyReport a".into()], true));
        // An error after it, in the streamed pass.
        let broken = "- {apiVersion: wgpolicyk8s.io/v1alpha2, kind: PolicyReport, \
                      metadata: {name: b, namespace: n, ~: x}}\n";
        assert_eq!(
            streamed(&list(&[&a, INVALID, &b, broken])),
            (vec!["PolicyReport a".into()], false)
        );
        // An error in the second pass, which reads the Events.
        let event =
            "- {apiVersion: v1, kind: Event, metadata: {name: e, namespace: n}, note: {~: x}}\n";
        assert_eq!(
            streamed(&list(&[&a, INVALID, event])),
            (vec!["PolicyReport a".into()], false)
        );
    }

    #[test]
    fn several_documents_are_decoded_whole_after_a_restart() {
        let (a, b) = (report("a"), report("b"));
        let single = "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\n\
                      metadata: {name: c, namespace: n}\n";
        let text = format!("{}---\n{single}", list(&[&a, &b]));
        assert_eq!(
            streamed(&text),
            (
                vec![
                    "PolicyReport a".into(),
                    "PolicyReport b".into(),
                    "restart".into(),
                    "PolicyReport a".into(),
                    "PolicyReport b".into(),
                    "PolicyReport c".into()
                ],
                true
            )
        );
        // An invalid report in the first document is handed on once: the
        // streaming attempt finds that the file is not one List first.
        let text = format!("{}---\n{single}", list(&[&a, INVALID]));
        assert_eq!(
            streamed(&text),
            (
                vec![
                    "PolicyReport a".into(),
                    "restart".into(),
                    "PolicyReport a".into(),
                    "invalid".into(),
                    "PolicyReport c".into()
                ],
                true
            )
        );
        // An empty document after a List: the file is decoded whole, and its
        // invalid report handed on once.
        for end in ["---\n", "--- ~\n", "...\n---\n# c\n"] {
            let text = format!("{}{end}", list(&[INVALID]));
            assert_eq!(streamed(&text), (vec!["invalid".into()], true), "{end:?}");
        }
        // A null first document, as `---` at the top of a file of two.
        let text = format!("---\n---\n{single}");
        assert_eq!(streamed(&text), (vec!["PolicyReport c".into()], true));
    }

    /// The file's objects as they are kept: a Restart voids what came before.
    fn collect(bytes: &[u8]) -> Result<FileContents, String> {
        let mut out = FileContents::default();
        stream(bytes, false, &mut |p| out.take(p)).map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn block(depth: usize) -> String {
        let mut s = String::from("apiVersion: v1\nkind: List\nitems:\n");
        for d in 0..depth {
            s.push_str(&" ".repeat(d * 2));
            s.push_str("- a:\n");
        }
        s
    }

    #[test]
    fn deep_block_nesting_is_refused_on_a_small_stack() {
        let decode = |depth: usize| {
            let text = block(depth);
            std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || collect(text.as_bytes()).map(|_| ()))
                .expect("spawn")
                .join()
                .expect("no stack overflow")
        };
        // Each level is a sequence holding a mapping: two levels of nesting.
        assert_eq!(decode(31), Ok(()));
        for depth in [32, 2000] {
            assert_eq!(
                decode(depth),
                Err("budget breached: Depth { depth: 65 } at line 35, column 65".to_string())
            );
        }
    }

    /// Plain scalars resolve by the YAML 1.2 core schema, as they did
    /// through serde_yaml_ng: YAML 1.1's `yes`/`on` stay strings, and so do
    /// numbers with leading zeros or underscores.
    #[test]
    fn plain_scalars_that_yaml_1_1_reads_as_booleans_stay_names() {
        let text = "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\n\
                    metadata: {name: yes, namespace: on}\nresults: []\n---\n\
                    apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\n\
                    metadata: {name: 0755, namespace: 1_000}\nresults: []\n";
        let out = collect(text.as_bytes()).expect("parses");
        let ids: Vec<_> = out.objects.iter().map(|o| o.id()).collect();
        assert_eq!(ids, [("on", "yes"), ("1_000", "0755")]);
        assert!(out.bad.is_empty());
    }
}
