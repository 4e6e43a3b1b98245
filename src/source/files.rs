//! The files source: reads reports from YAML and JSON files (single objects,
//! multi-document YAML, and `List` wrappers as kubectl writes them), then
//! watches the paths and re-reads what changed.
//!
//! Each file is its own [`Origin`]: a changed file is re-sent as a relist of
//! that file, and a removed file as an empty relist. Change detection
//! compares size, mtime and inode, so a missed notification is caught by the
//! next scan; a periodic scan runs as a fallback.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime};

use notify::RecursiveMode;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Origin, SourceEvent, SourceObject};
use crate::aggregate::FILE_RESOURCE;
use crate::kind::Kind;
use crate::object::RawObject;
use crate::report::{Document, Report};

/// The sync target name of the files source.
pub const SYNC_TARGET: &str = "files";

/// How long file events are debounced before a rescan.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// A full rescan runs at least this often, in case notifications were lost.
const RESCAN: Duration = Duration::from_secs(30);

/// Why a file could not be read as objects.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
    /// The JSON is malformed.
    #[error("parsing JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The YAML is malformed.
    #[error("parsing YAML: {0}")]
    Yaml(#[from] serde_saphyr::Error),
    /// The YAML nests deeper than [`MAX_NESTING`].
    #[error("parsing YAML: nested deeper than {0} levels")]
    TooDeep(usize),
    /// The file is larger than `--max-file-size`.
    #[error(
        "the file has {len} bytes, more than --max-file-size ({max} bytes); raise --max-file-size \
         (POLICYREPORT_EXPORTER_MAX_FILE_SIZE) to read it"
    )]
    TooLarge {
        /// The file's size.
        len: u64,
        /// The limit.
        max: u64,
    },
}

/// Read and parse `files` on up to `workers` threads, and hand each result
/// to `take` in order, until it returns false. Files are parsed in windows
/// of `workers`: while the results of one window are taken, the next window
/// is parsed, so at most two windows of parsed files are held at once.
fn read_in_order(
    files: &[(PathBuf, Fingerprint)],
    workers: usize,
    max: u64,
    mut take: impl FnMut(usize, Result<FileContents, FileError>) -> bool,
) {
    let one = |i: usize| read(&files[i].0, files[i].1.len, max);
    if workers < 2 || files.len() < 2 {
        for i in 0..files.len() {
            // A parser bug must cost one file, never the source.
            let contents = std::panic::catch_unwind(AssertUnwindSafe(|| one(i)))
                .unwrap_or_else(|_| Err(panicked()));
            if !take(i, contents) {
                return;
            }
        }
        return;
    }
    std::thread::scope(|s| {
        let spawn = |range: std::ops::Range<usize>| -> Vec<_> {
            range.map(|i| (i, s.spawn(move || one(i)))).collect()
        };
        let mut window = spawn(0..workers.min(files.len()));
        let mut proceed = true;
        while let Some(&(first, _)) = window.first() {
            let after = first + window.len();
            let next = match proceed {
                true => spawn(after..(after + workers).min(files.len())),
                false => Vec::new(),
            };
            for (i, parsing) in window {
                // A parser bug must cost one file, never the source.
                let contents = parsing.join().unwrap_or_else(|_| Err(panicked()));
                proceed = proceed && take(i, contents);
            }
            window = next;
        }
    });
}

fn panicked() -> FileError {
    FileError::Io(std::io::Error::other("the parser panicked"))
}

/// Read and parse one file of `len` bytes, refusing it above `max`. JSON
/// when its extension says so, else YAML.
pub fn read(path: &Path, len: u64, max: u64) -> Result<FileContents, FileError> {
    if len > max {
        return Err(FileError::TooLarge { len, max });
    }
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse(&std::fs::read(path)?, json)
}

/// An object of a kind the exporter reads, but whose metadata is unusable.
#[derive(Debug)]
pub struct BadObject {
    /// Its kind.
    pub kind: Kind,
    /// Why it was refused.
    pub reason: String,
}

/// The objects of the kinds the exporter reads found in one file.
#[derive(Debug, Default)]
pub struct FileContents {
    /// Reports, Events and policies, in file order.
    pub objects: Vec<SourceObject>,
    /// Objects that could not be taken apart.
    pub bad: Vec<BadObject>,
}

/// Deepest `[`/`{` nesting accepted in a file. serde_json refuses deeper
/// JSON by itself; YAML is checked before parsing, because the YAML parser
/// takes time quadratic in the depth to refuse it.
pub const MAX_NESTING: usize = 128;

/// Parse a file's bytes. JSON when `json` is set, else YAML (one or more
/// documents). Objects of other kinds are ignored.
pub fn parse(bytes: &[u8], json: bool) -> Result<FileContents, FileError> {
    let mut out = FileContents::default();
    if json {
        collect_json(bytes, &mut out)?;
    } else {
        if flow_depth(bytes) > MAX_NESTING {
            return Err(FileError::TooDeep(MAX_NESTING));
        }
        super::yaml::collect(bytes, &mut out)?;
    }
    Ok(out)
}

/// JSON without building a value tree: the document, and the entries of
/// its `items`, are decoded in one pass straight into [`Report`]s. Events
/// and policies are kept as raw text, so a document holding some is read
/// again by [`collect_json_raw`].
fn collect_json(bytes: &[u8], out: &mut FileContents) -> Result<(), serde_json::Error> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| serde_json::Error::io(std::io::Error::other(e)))?;
    let doc: Document = serde_json::from_str(text)?;
    let is_list = is_list(doc.object.type_meta());
    let reports = if is_list { doc.items } else { vec![doc.object] };
    if reports
        .iter()
        .any(|r| report_kind(r).is_some_and(|k| !k.is_report()))
    {
        return collect_json_raw(text, is_list, out);
    }
    for report in reports {
        if let Some(kind) = report_kind(&report) {
            out.objects.push(SourceObject::report(kind, report));
        }
    }
    Ok(())
}

/// A `List` of objects, as opposed to a list kind the exporter reads.
pub(super) fn is_list((api_version, kind): (Option<&str>, Option<&str>)) -> bool {
    kind.is_some_and(|k| k.ends_with("List"))
        && Kind::from_type(api_version.unwrap_or(""), kind.unwrap_or("")).is_none()
}

/// The kind of a decoded object, if the exporter reads it.
pub(super) fn report_kind(report: &Report) -> Option<Kind> {
    match report.type_meta() {
        (Some(api_version), Some(kind)) => Kind::from_type(api_version, kind),
        _ => None,
    }
}

/// JSON holding Events or policies: one scan delimits each object, then
/// each is taken by [`take_json`].
fn collect_json_raw(
    text: &str,
    is_list: bool,
    out: &mut FileContents,
) -> Result<(), serde_json::Error> {
    if !is_list {
        take_json(text, out);
        return Ok(());
    }
    let head: Head<'_> = serde_json::from_str(text)?;
    for item in head.items.0 {
        if item.get().starts_with('{') {
            take_json(item.get(), out);
        }
    }
    Ok(())
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
fn take_json(raw: &str, out: &mut FileContents) {
    let object = match serde_json::from_str::<Report>(raw) {
        Ok(report) => {
            let kind = match report.type_meta() {
                (Some(api_version), Some(kind)) => Kind::from_type(api_version, kind),
                _ => None,
            };
            match kind {
                Some(kind) if kind.is_report() => Ok(SourceObject::report(kind, report)),
                Some(kind) => serde_json::from_str::<RawObject>(raw)
                    .map(|o| SourceObject::object(kind, o))
                    .map_err(|e| (kind, e)),
                None => return,
            }
        }
        // Not decodable as a report (nested too deep): refused only if the
        // object is of a kind the exporter reads.
        Err(e) => match serde_json::from_str::<Head<'_>>(raw)
            .ok()
            .and_then(|h| kind_of(&h))
        {
            Some(kind) => Err((kind, e)),
            None => return,
        },
    };
    match object {
        Ok(object) => out.objects.push(object),
        Err((kind, e)) => out.bad.push(BadObject {
            kind,
            reason: e.to_string(),
        }),
    }
}

/// The deepest nesting of `[` and `{` outside quoted strings and comments:
/// a cheap upper bound on what the YAML parser will have to descend into.
fn flow_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    let mut line_start = true;
    let mut prev_space = true;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += 1;
                }
            }
            b'#' if prev_space || line_start => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        line_start = b == b'\n';
        prev_space = b == b' ' || b == b'\t' || line_start;
        i += 1;
    }
    max
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    /// Status change time: catches `chmod`, which changes nothing else.
    changed: (i64, i64),
}

struct Known {
    fingerprint: Fingerprint,
    origin: Origin,
}

/// Reads the configured paths and sends their reports to the aggregator.
pub struct FilesSource {
    roots: Vec<PathBuf>,
    follow: bool,
    max_file_size: u64,
    known: HashMap<PathBuf, Known>,
    reported: HashSet<String>,
    tx: mpsc::Sender<SourceEvent>,
}

impl FilesSource {
    /// A source over these files and folders.
    pub fn new(roots: Vec<PathBuf>, tx: mpsc::Sender<SourceEvent>) -> Self {
        Self {
            roots,
            follow: true,
            max_file_size: u64::MAX,
            known: HashMap::new(),
            reported: HashSet::new(),
            tx,
        }
    }

    /// Whether to keep following changes after the first read (the
    /// default), or stop after it.
    pub fn follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// Skip files larger than this many bytes (with an error).
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Start on a thread of its own: scan, report synced, then follow
    /// changes until the aggregator goes away.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("files-source".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let (signal_tx, signal_rx) = std_mpsc::channel::<()>();
        // Start watching before the first scan so no change is missed.
        let _debouncer = self.follow.then(|| Self::watch(&self.roots, signal_tx));
        let files = self.scan();
        info!(files, "read report files");
        let synced = self.send(SourceEvent::Synced {
            target: SYNC_TARGET.into(),
        });
        if synced.is_err() || !self.follow {
            return;
        }
        loop {
            match signal_rx.recv_timeout(RESCAN) {
                Ok(()) => while signal_rx.try_recv().is_ok() {},
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(RESCAN);
                }
            }
            if self.tx.is_closed() {
                return;
            }
            self.scan();
        }
    }

    fn watch(roots: &[PathBuf], signal: std_mpsc::Sender<()>) -> Option<impl Drop + use<>> {
        let debouncer = notify_debouncer_full::new_debouncer(DEBOUNCE, None, move |res| {
            if let Err(errors) = &res {
                debug!(?errors, "file watch error");
            }
            let _ = signal.send(());
        });
        let mut debouncer = match debouncer {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot watch files for changes; rescanning every {}s", RESCAN.as_secs());
                return None;
            }
        };
        for root in roots {
            // Watch a file's folder, so editors that replace the file are seen.
            let (target, mode) = if root.is_dir() {
                (root.clone(), RecursiveMode::Recursive)
            } else {
                let parent = root.parent().filter(|p| !p.as_os_str().is_empty());
                (
                    parent.unwrap_or(Path::new(".")).to_path_buf(),
                    RecursiveMode::NonRecursive,
                )
            };
            if let Err(e) = debouncer.watch(&target, mode) {
                warn!(path = %target.display(), error = %e, "cannot watch path for changes");
            }
        }
        Some(debouncer)
    }

    /// Compare the files on disk with what was sent; send what changed.
    /// Returns the number of files found.
    fn scan(&mut self) -> usize {
        let mut seen: HashMap<PathBuf, Fingerprint> = HashMap::new();
        let roots = std::mem::take(&mut self.roots);
        for root in &roots {
            let explicit_file = root.is_file();
            for entry in walkdir::WalkDir::new(root).follow_links(true) {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        let location = e.path().unwrap_or(root).display().to_string();
                        self.report_once(location, e.to_string());
                        continue;
                    }
                };
                if !entry.file_type().is_file()
                    || !(explicit_file || has_report_extension(entry.path()))
                {
                    continue;
                }
                match entry.metadata() {
                    Ok(m) => {
                        seen.insert(
                            entry.path().to_path_buf(),
                            Fingerprint {
                                len: m.len(),
                                modified: m.modified().ok(),
                                inode: m.ino(),
                                changed: (m.ctime(), m.ctime_nsec()),
                            },
                        );
                    }
                    Err(e) => self.report_once(entry.path().display().to_string(), e.to_string()),
                }
            }
        }
        self.roots = roots;
        let gone: Vec<PathBuf> = self
            .known
            .keys()
            .filter(|p| !seen.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(known) = self.known.remove(&path) {
                debug!(path = %path.display(), "file removed");
                let _ = self.relist(known.origin, Vec::new());
            }
        }
        let count = seen.len();
        let mut changed: Vec<(PathBuf, Fingerprint)> = seen
            .into_iter()
            .filter(|(p, fp)| self.known.get(p).is_none_or(|k| k.fingerprint != *fp))
            .collect();
        changed.sort_by(|a, b| a.0.cmp(&b.0));
        // Files are parsed in parallel and sent in path order.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        read_in_order(&changed, workers, self.max_file_size, |i, contents| {
            let (path, fingerprint) = &changed[i];
            let origin = match self.known.get(path) {
                Some(k) => k.origin.clone(),
                None => Origin::File(Arc::from(path.as_path())),
            };
            let objects = self.take(path, contents);
            self.known.insert(
                path.clone(),
                Known {
                    fingerprint: *fingerprint,
                    origin: origin.clone(),
                },
            );
            self.relist(origin, objects).is_ok()
        });
        count
    }

    /// Report what could not be read of one file; return its objects.
    fn take(
        &mut self,
        path: &Path,
        contents: Result<FileContents, FileError>,
    ) -> Vec<SourceObject> {
        let location = || path.display().to_string();
        match contents {
            Ok(contents) => {
                for bad in contents.bad {
                    let _ = self.send(SourceEvent::Invalid {
                        resource: bad.kind.resource(),
                        location: location(),
                        reason: bad.reason,
                    });
                }
                contents.objects
            }
            Err(e) => {
                let _ = self.send(SourceEvent::Invalid {
                    resource: FILE_RESOURCE,
                    location: location(),
                    reason: e.to_string(),
                });
                Vec::new()
            }
        }
    }

    fn relist(&self, origin: Origin, objects: Vec<SourceObject>) -> Result<(), Closed> {
        self.send(SourceEvent::ResyncStart {
            origin: origin.clone(),
        })?;
        for object in objects {
            self.send(SourceEvent::ResyncApply {
                origin: origin.clone(),
                object,
            })?;
        }
        self.send(SourceEvent::ResyncEnd { origin })
    }

    /// Report a path problem the first time it is seen.
    fn report_once(&mut self, location: String, reason: String) {
        if self.reported.insert(format!("{location}: {reason}")) {
            let _ = self.send(SourceEvent::Invalid {
                resource: FILE_RESOURCE,
                location,
                reason,
            });
        }
    }

    fn send(&self, event: SourceEvent) -> Result<(), Closed> {
        self.tx.blocking_send(event).map_err(|_| Closed)
    }
}

/// The aggregator has stopped.
struct Closed;

fn has_report_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["yaml", "yml", "json"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Body;

    #[test]
    fn parses_lists_and_documents_and_ignores_other_kinds() {
        let yaml = br#"
apiVersion: v1
kind: List
items:
- apiVersion: wgpolicyk8s.io/v1alpha2
  kind: PolicyReport
  metadata: {name: a, namespace: x}
  results: [{policy: p, result: pass}]
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
---
apiVersion: openreports.io/v1alpha1
kind: ClusterReport
metadata: {name: b}
source: kyverno
---
"#;
        let c = parse(yaml, false).expect("valid YAML");
        let kinds: Vec<_> = c.objects.iter().map(|o| (o.kind, o.id())).collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::PolicyReport, ("x", "a")),
                (Kind::ClusterReport, ("", "b"))
            ]
        );
        let Body::Report(r) = &c.objects[1].body else {
            panic!("a report")
        };
        assert_eq!(r.source(), Some("kyverno"));
        assert!(c.bad.is_empty());
    }

    #[test]
    fn parses_json_lists() {
        let json = br#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"ClusterPolicyReport","metadata":{"name":"n"},"results":null}]}"#;
        let c = parse(json, true).expect("valid JSON");
        assert_eq!(c.objects.len(), 1);
        let Body::Report(r) = &c.objects[0].body else {
            panic!("a report")
        };
        assert_eq!(r.results().len(), 0);
    }

    #[test]
    fn bad_metadata_is_reported_per_object() {
        let yaml =
            b"apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata: {name: [1]}\n";
        let c = parse(yaml, false).expect("valid YAML");
        // Taken, and refused by the aggregator with the reason.
        assert!(c.bad.is_empty());
        let Body::Report(r) = &c.objects[0].body else {
            panic!("a report")
        };
        assert_eq!(r.error().map(|e| e.field.as_str()), Some("metadata.name"));
        let json = br#"{"kind":"List","items":[{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{"name":1}}]}"#;
        let c = parse(json, true).expect("valid JSON");
        let Body::Report(r) = &c.objects[0].body else {
            panic!("a report")
        };
        assert_eq!(r.error().map(|e| e.field.as_str()), Some("metadata.name"));
    }

    #[test]
    fn reads_events_and_policies() {
        let yaml = b"apiVersion: v1\nkind: Event\nmetadata: {name: e, namespace: default, uid: u1}\nreason: PolicyViolation\n---\n\
apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\n---\n\
apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: e2, namespace: default}\n";
        let c = parse(yaml, false).expect("valid YAML");
        let kinds: Vec<_> = c.objects.iter().map(|o| (o.kind, o.id())).collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::Event, ("default", "e")),
                (Kind::ClusterPolicy, ("", "p")),
                (Kind::Event, ("default", "e2"))
            ]
        );
        let Body::Object(o) = &c.objects[0].body else {
            panic!("an object")
        };
        assert_eq!(o.metadata.uid.as_deref(), Some("u1"));
        assert!(o.raw.get().contains("PolicyViolation"));
    }

    #[test]
    fn json_lists_and_objects_take_the_lean_path() {
        let json = br#"{"apiVersion":"wgpolicyk8s.io/v1alpha2","kind":"PolicyReport","metadata":{"name":"a","namespace":"n"},
            "results":[{"policy":"p","result":"pass"}]}"#;
        let c = parse(json, true).expect("valid");
        assert_eq!(c.objects.len(), 1);
        let Body::Report(r) = &c.objects[0].body else {
            panic!("a report")
        };
        let results: Vec<_> = r.results().map(|e| (e.policy, e.outcome)).collect();
        assert_eq!(results, vec![("p", crate::report::Outcome::Pass)]);
        // Other kinds, arrays and scalars are ignored; a report list's items too.
        assert!(
            parse(
                br#"{"apiVersion":"v1","kind":"ConfigMap","items":[1]}"#,
                true
            )
            .expect("valid")
            .objects
            .is_empty()
        );
        assert!(parse(b"[1,2]", true).expect("valid").objects.is_empty());
        assert!(parse(b"7", true).expect("valid").objects.is_empty());
        for odd in [
            r#"{"apiVersion":false}"#,
            r#"{"kind":"List","items":5}"#,
            r#"{"kind":"List","items":[1,"x",null]}"#,
        ] {
            let parsed = parse(odd.as_bytes(), true).expect("well-formed");
            assert!(parsed.objects.is_empty(), "{odd}");
        }
        let bad = br#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{"name":5}}]}"#;
        assert_eq!(parse(bad, true).expect("valid JSON").bad.len(), 1);
        assert!(parse(b"\xff\xfe", true).is_err(), "invalid UTF-8");
        assert!(
            parse(b"[1,", true).is_err(),
            "a malformed array is an error"
        );
        // Deep nesting in a field is skipped without recursion, and inside a
        // report it is kept raw here and refused when the report is decoded.
        let deep = format!(
            "{{\"a\":{}1{}}}",
            "{\"a\":".repeat(100_000),
            "}".repeat(100_000)
        );
        assert!(
            parse(deep.as_bytes(), true)
                .expect("valid JSON")
                .objects
                .is_empty()
        );
    }

    #[test]
    fn deep_yaml_is_refused_before_parsing() {
        let deep = format!(
            "a: {}{}\n",
            "[".repeat(MAX_NESTING + 1),
            "]".repeat(MAX_NESTING + 1)
        );
        assert!(matches!(
            parse(deep.as_bytes(), false),
            Err(FileError::TooDeep(_))
        ));
        let fine = format!(
            "a: {}{}\nb: '[[[[' # [[[[\nc: \"{{{{\"\n",
            "[".repeat(10),
            "]".repeat(10)
        );
        assert!(parse(fine.as_bytes(), false).is_ok());
        assert_eq!(flow_depth(b"a: '[[' # [[\nb: [{c: [1]}]\n"), 3);
    }

    #[test]
    fn broken_yaml_is_an_error() {
        assert!(parse(b"a: [1, 2\n", false).is_err());
        assert!(parse(b"{", true).is_err());
    }
}
