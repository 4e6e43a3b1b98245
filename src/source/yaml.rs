//! YAML files: each document is decoded straight into [`Report`]s by
//! serde-saphyr, which streams the parser's events into the decoder (no
//! event buffer, no value tree), under the limits of [`options`]. A file
//! holding Events or policies is read a second time through a value tree,
//! which is how the exporter takes those kinds.
//!
//! Streaming keeps a kubectl-style YAML file's decode at a few MiB instead of
//! about 18x the file (serde_yaml_ng's buffered events, then a value tree);
//! see docs/benchmarks.md, "YAML decoding (session 4)".

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::options::{DuplicateKeyPolicy, MergeKeyPolicy};

use super::SourceObject;
use super::files::{BadObject, FileContents, is_list, report_kind};
use crate::kind::Kind;
use crate::object::RawObject;
use crate::report::{Document, Report};

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

/// Gather the objects of a YAML file (one or more documents, each an
/// object or a `List` of objects) into `out`.
pub fn collect(bytes: &[u8], out: &mut FileContents) -> Result<(), serde_saphyr::Error> {
    let reports: Reports = serde_saphyr::from_bytes_multiple_with_options(bytes, options())?;
    if !reports.other_kinds {
        out.objects.extend(reports.contents.objects);
        out.bad.extend(reports.contents.bad);
        return Ok(());
    }
    let documents: Vec<Value> = serde_saphyr::from_bytes_multiple_with_options(bytes, options())?;
    for document in documents {
        collect_value(document, out, true);
    }
    Ok(())
}

/// The reports of a file, taken document by document as they are decoded.
#[derive(Default)]
struct Reports {
    contents: FileContents,
    /// Whether an Event or a policy was seen: the file is then read again
    /// by [`collect_value`].
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
                    Some(kind) if kind.is_report() => self
                        .contents
                        .objects
                        .push(SourceObject::report(kind, report)),
                    Some(_) => self.other_kinds = true,
                    None => {}
                }
            }
        }
    }
}

/// Gather objects from a document as a value tree: an object, or a `List`
/// of objects.
fn collect_value(value: Value, out: &mut FileContents, top: bool) {
    let Value::Object(mut obj) = value else {
        return;
    };
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if let Some(kind) = Kind::from_type(api_version, kind) {
        let object = if kind.is_report() {
            Report::deserialize(Value::Object(obj)).map(|r| SourceObject::report(kind, r))
        } else {
            RawObject::from_value(&Value::Object(obj)).map(|o| SourceObject::object(kind, o))
        };
        match object {
            Ok(object) => out.objects.push(object),
            Err(e) => out.bad.push(BadObject {
                kind,
                reason: e.to_string(),
            }),
        }
    } else if top
        && kind.ends_with("List")
        && let Some(Value::Array(items)) = obj.remove("items")
    {
        for item in items {
            collect_value(item, out, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                .spawn(move || {
                    let mut out = FileContents::default();
                    collect(text.as_bytes(), &mut out).map_err(|e| e.to_string())
                })
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
        let mut out = FileContents::default();
        collect(text.as_bytes(), &mut out).expect("parses");
        let ids: Vec<_> = out.objects.iter().map(|o| o.id()).collect();
        assert_eq!(ids, [("on", "yes"), ("1_000", "0755")]);
        assert!(out.bad.is_empty());
    }
}
