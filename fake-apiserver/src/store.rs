//! In-memory object storage with a global resourceVersion counter, a bounded
//! per-resource event history (used to replay watches and to serve
//! snapshot-consistent continue pages), and a broadcast channel per resource
//! for live watch events.
//!
//! Objects are serialized once, when written: lists, gets and watch events
//! are built by concatenating the stored bytes. Only the metadata is kept
//! parsed (for label selectors, metadata-only renders and the fields a write
//! inherits); the rest is parsed on demand (field selectors on other paths,
//! [`crate::FakeApiServer::get`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::iter::Peekable;
use std::ops::{Bound, Range};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::ResourceDef;
use crate::util::{fake_uid, now_rfc3339};

/// Identifies a resource type: (group, version, plural).
pub(crate) type ResKey = (String, String, String);

/// Identifies an object within a resource: (namespace or "" when cluster-scoped, name).
pub(crate) type ObjKey = (String, String);

/// One stored version of an object.
#[derive(Debug)]
pub(crate) struct Stored {
    /// The object as JSON, exactly as `serde_json::to_vec` writes it.
    pub(crate) json: Bytes,
    /// Its `metadata` (an object).
    pub(crate) meta: Value,
    /// Where the `metadata.resourceVersion` string token (quotes included) sits in `json`.
    rv_at: Range<usize>,
    /// The whole object, parsed on first need.
    parsed: OnceLock<Value>,
}

impl Stored {
    /// Serializes an object whose `metadata.resourceVersion` is set.
    fn encode(obj: &Map<String, Value>, size_hint: usize) -> Stored {
        let mut out = Vec::with_capacity(size_hint);
        let mut rv_at = 0..0;
        out.push(b'{');
        for (i, (k, v)) in obj.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&mut out, k);
            out.push(b':');
            match (k.as_str(), v) {
                ("metadata", Value::Object(meta)) => {
                    out.push(b'{');
                    for (j, (mk, mv)) in meta.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        write_str(&mut out, mk);
                        out.push(b':');
                        let start = out.len();
                        write_value(&mut out, mv);
                        if mk == "resourceVersion" {
                            rv_at = start..out.len();
                        }
                    }
                    out.push(b'}');
                }
                _ => write_value(&mut out, v),
            }
        }
        out.push(b'}');
        Stored {
            json: Bytes::from(out),
            meta: obj.get("metadata").cloned().unwrap_or_default(),
            rv_at,
            parsed: OnceLock::new(),
        }
    }

    /// The same object with another resourceVersion.
    pub(crate) fn with_rv(&self, rv: u64) -> Stored {
        let token = format!("\"{rv}\"");
        let (head, tail) = (&self.json[..self.rv_at.start], &self.json[self.rv_at.end..]);
        let mut out = Vec::with_capacity(head.len() + token.len() + tail.len());
        out.extend_from_slice(head);
        out.extend_from_slice(token.as_bytes());
        out.extend_from_slice(tail);
        let mut meta = self.meta.clone();
        if let Value::Object(m) = &mut meta {
            m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        Stored {
            json: Bytes::from(out),
            meta,
            rv_at: head.len()..head.len() + token.len(),
            parsed: OnceLock::new(),
        }
    }

    /// Whether both are the same object apart from their resourceVersions.
    fn same_content(&self, other: &Stored) -> bool {
        self.json.len() - self.rv_at.len() == other.json.len() - other.rv_at.len()
            && self.json[..self.rv_at.start] == other.json[..other.rv_at.start]
            && self.json[self.rv_at.end..] == other.json[other.rv_at.end..]
    }

    /// The whole object, parsed once.
    pub(crate) fn parsed(&self) -> &Value {
        self.parsed
            .get_or_init(|| serde_json::from_slice(&self.json).unwrap_or_default())
    }

    /// A fresh copy of the whole object.
    pub(crate) fn to_value(&self) -> Value {
        match self.parsed.get() {
            Some(v) => v.clone(),
            None => serde_json::from_slice(&self.json).unwrap_or_default(),
        }
    }
}

/// Writes a JSON string exactly as `serde_json` does (same escapes), copying
/// runs of plain bytes at once.
fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(short);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes a value exactly as `serde_json::to_vec` does, without going
/// through the generic serializer for strings, arrays and objects.
fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Writing a number to a Vec cannot fail.
        Value::Number(n) => drop(serde_json::to_writer(&mut *out, n)),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// The kind of change recorded in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One recorded change. `prev` is the object before the change (None for ADDED),
/// which lets watchers compute selector transitions and lets continue pages
/// reconstruct the state at an older resourceVersion.
#[derive(Debug)]
pub(crate) struct HistEvent {
    pub(crate) rv: u64,
    pub(crate) kind: EventKind,
    pub(crate) key: ObjKey,
    pub(crate) object: Arc<Stored>,
    pub(crate) prev: Option<Arc<Stored>>,
}

/// The objects, history and live channel of one resource type.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) objects: BTreeMap<ObjKey, Arc<Stored>>,
    pub(crate) history: VecDeque<Arc<HistEvent>>,
    /// Events with `rv <= compacted_rv` have been forgotten: a watch or continue
    /// token from an RV lower than this gets 410 Expired.
    pub(crate) compacted_rv: u64,
    pub(crate) tx: broadcast::Sender<Arc<HistEvent>>,
}

/// Why a watch or continue request cannot be served from history.
#[derive(Debug)]
pub(crate) struct Expired {
    /// The oldest resourceVersion that can still be served.
    pub(crate) oldest: u64,
}

/// Borrowed (key, object) pairs in key order.
pub(crate) type Entry<'a> = (&'a ObjKey, &'a Arc<Stored>);

/// The objects after a key as they were at an older resourceVersion: the live
/// objects merged with the older states of the keys touched since.
pub(crate) struct SnapshotIter<'a> {
    live: Peekable<std::collections::btree_map::Range<'a, ObjKey, Arc<Stored>>>,
    /// Keys touched since the snapshot, sorted, with their state then (None: absent).
    touched: Vec<(&'a ObjKey, Option<&'a Arc<Stored>>)>,
    next_touched: usize,
}

impl<'a> Iterator for SnapshotIter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        loop {
            let touched = self.touched.get(self.next_touched).copied();
            let (key, then) = match (self.live.peek(), touched) {
                (None, None) => return None,
                (Some((live_key, _)), Some((key, _))) if *key > **live_key => {
                    return self.live.next();
                }
                (Some(_), None) => return self.live.next(),
                (live, Some((key, then))) => {
                    // The touched key replaces the live entry of the same key.
                    if live.is_some_and(|(k, _)| *k == key) {
                        self.live.next();
                    }
                    (key, then)
                }
            };
            self.next_touched += 1;
            if let Some(obj) = then {
                return Some((key, obj));
            }
        }
    }
}

impl Store {
    fn new(compacted_rv: u64, capacity: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted_rv,
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// History events with `rv > after` (oldest first), or `Expired` if some
    /// were compacted away.
    pub(crate) fn newer_than(
        &self,
        after: u64,
    ) -> Result<std::collections::vec_deque::Iter<'_, Arc<HistEvent>>, Expired> {
        if after < self.compacted_rv {
            return Err(Expired {
                oldest: self.compacted_rv,
            });
        }
        let start = self.history.partition_point(|e| e.rv <= after);
        Ok(self.history.range(start..))
    }

    /// Like [`newer_than`](Self::newer_than), collected.
    pub(crate) fn events_after(&self, after: u64) -> Result<Vec<Arc<HistEvent>>, Expired> {
        Ok(self.newer_than(after)?.cloned().collect())
    }

    /// The objects as they were at `rv`, restricted to keys after `after`
    /// (exclusive), in key order, borrowed. `Expired` when history no longer
    /// reaches `rv`. Costs O(log n) plus the events since `rv` to start.
    pub(crate) fn snapshot_after<'a>(
        &'a self,
        rv: u64,
        after: &ObjKey,
    ) -> Result<SnapshotIter<'a>, Expired> {
        // For every key touched since `rv`, its state at `rv` is the `prev`
        // of the first later event touching it.
        let mut at_rv: BTreeMap<&ObjKey, Option<&Arc<Stored>>> = BTreeMap::new();
        for ev in self.newer_than(rv)? {
            if ev.key > *after {
                at_rv.entry(&ev.key).or_insert(ev.prev.as_ref());
            }
        }
        Ok(SnapshotIter {
            live: self
                .objects
                .range::<ObjKey, _>((Bound::Excluded(after), Bound::Unbounded))
                .peekable(),
            touched: at_rv.into_iter().collect(),
            next_touched: 0,
        })
    }
}

/// All mutable server state, guarded by one mutex. Live events are sent on
/// the broadcast channels while the lock is held, so a watcher that
/// subscribes under the lock sees a gap-free sequence.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) served: BTreeMap<ResKey, ResourceDef>,
    /// Kinds served the way Kyverno's reports-server serves them.
    pub(crate) reports_server: HashMap<ResKey, crate::ReportsServerMode>,
    pub(crate) stores: HashMap<ResKey, Store>,
    /// The last resourceVersion handed out (starts at 1).
    pub(crate) rv: u64,
    compact_floor: u64,
    uid_counter: u64,
    pub(crate) history_limit: usize,
    queue_capacity: usize,
    /// Live events held back during `apply_all`.
    deferred: Option<Vec<(ResKey, Arc<HistEvent>)>>,
}

impl State {
    /// Creates empty state with the given history limit and watch queue capacity.
    pub(crate) fn new(history_limit: usize, queue_capacity: usize) -> Self {
        Self {
            served: BTreeMap::new(),
            reports_server: HashMap::new(),
            stores: HashMap::new(),
            // Start at 1: a list on an empty server must not report "0",
            // which a watch would take as "any" (synthetic ADDED events).
            rv: 1,
            compact_floor: 0,
            uid_counter: 0,
            history_limit: history_limit.max(1),
            queue_capacity,
            deferred: None,
        }
    }

    /// The store of a resource, created on first use.
    pub(crate) fn store(&mut self, key: &ResKey) -> &mut Store {
        if !self.stores.contains_key(key) {
            let store = Store::new(self.compact_floor, self.queue_capacity);
            self.stores.insert(key.clone(), store);
        }
        self.stores.get_mut(key).expect("inserted above")
    }

    /// Ends every live watch on a resource (used when it stops being served).
    pub(crate) fn close_watches(&mut self, key: &ResKey) {
        let cap = self.queue_capacity.max(1);
        if let Some(store) = self.stores.get_mut(key) {
            store.tx = broadcast::channel(cap).0;
        }
    }

    fn record(&mut self, key: &ResKey, ev: HistEvent) {
        let limit = self.history_limit;
        let store = self.store(key);
        let ev = Arc::new(ev);
        store.history.push_back(ev.clone());
        while store.history.len() > limit {
            if let Some(old) = store.history.pop_front() {
                store.compacted_rv = store.compacted_rv.max(old.rv);
            }
        }
        // A reports-server replica that did not handle the write never
        // tells its watchers about it.
        if self
            .reports_server
            .get(key)
            .is_some_and(|m| m.drop_live_events)
        {
            return;
        }
        match &mut self.deferred {
            Some(held) => held.push((key.clone(), ev)),
            // No receivers is fine.
            None => drop(self.store(key).tx.send(ev)),
        }
    }

    /// Applies several objects in order; their live events go out together
    /// at the end, so a watcher wakes once per batch rather than per object.
    pub(crate) fn apply_all(&mut self, def: &ResourceDef, objects: Vec<Value>) -> Vec<Value> {
        self.deferred = Some(Vec::with_capacity(objects.len()));
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            objects
                .into_iter()
                .map(|o| self.apply(def, o))
                .collect::<Vec<_>>()
        }));
        for (key, ev) in self.deferred.take().unwrap_or_default() {
            let _ = self.store(&key).tx.send(ev);
        }
        out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Creates or replaces an object; see `FakeApiServer::apply`.
    pub(crate) fn apply(&mut self, def: &ResourceDef, object: Value) -> Value {
        let mut obj = match object {
            Value::Object(m) => m,
            other => panic!("fake-apiserver: apply expects a JSON object, got {other}"),
        };
        obj.insert("apiVersion".into(), Value::String(def.api_version()));
        obj.insert("kind".into(), Value::String(def.kind.clone()));
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(meta) = meta else {
            panic!("fake-apiserver: metadata must be a JSON object");
        };
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| panic!("fake-apiserver: apply requires metadata.name"))
            .to_string();
        let namespace = if def.namespaced {
            let ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string();
            meta.insert("namespace".into(), Value::String(ns.clone()));
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };
        let okey = (namespace, name);
        let key = def.key();
        let existing = self.store(&key).objects.get(&okey).cloned();
        let existing_meta = existing.as_ref().map(|e| &e.meta);
        let inherit = |field: &str| existing_meta.and_then(|m| m.get(field)).cloned();
        if !meta.contains_key("uid") {
            let uid = inherit("uid").unwrap_or_else(|| {
                self.uid_counter += 1;
                Value::String(fake_uid(self.uid_counter))
            });
            meta.insert("uid".into(), uid);
        }
        if !meta.contains_key("creationTimestamp") {
            let ts = inherit("creationTimestamp").unwrap_or_else(|| Value::String(now_rfc3339()));
            meta.insert("creationTimestamp".into(), ts);
        }
        let rv = self.rv + 1;
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        let hint = existing.as_ref().map_or(1024, |e| e.json.len() + 64);
        let stored = Stored::encode(&obj, hint);
        if let Some(old) = &existing
            && stored.same_content(old)
        {
            // A write that changes nothing is a no-op, as on a real server.
            if let (Some(Value::Object(meta)), Some(old_rv)) =
                (obj.get_mut("metadata"), inherit("resourceVersion"))
            {
                meta.insert("resourceVersion".into(), old_rv);
            }
            return Value::Object(obj);
        }
        self.rv = rv;
        let stored = Arc::new(stored);
        self.store(&key)
            .objects
            .insert(okey.clone(), stored.clone());
        let kind = if existing.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.record(
            &key,
            HistEvent {
                rv,
                kind,
                key: okey,
                object: stored,
                prev: existing,
            },
        );
        Value::Object(obj)
    }

    /// Deletes an object; records DELETED with the deletion resourceVersion.
    pub(crate) fn delete(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let ns = if def.namespaced {
            namespace.unwrap_or("default").to_string()
        } else {
            String::new()
        };
        let okey = (ns, name.to_string());
        let key = def.key();
        let Some(old) = self.store(&key).objects.remove(&okey) else {
            return false;
        };
        self.rv += 1;
        let rv = self.rv;
        let gone = old.with_rv(rv);
        self.record(
            &key,
            HistEvent {
                rv,
                kind: EventKind::Deleted,
                key: okey,
                object: Arc::new(gone),
                prev: Some(old),
            },
        );
        true
    }

    /// Forgets all history up to the current resourceVersion.
    pub(crate) fn compact(&mut self) {
        self.compact_floor = self.rv;
        for store in self.stores.values_mut() {
            store.history.clear();
            store.compacted_rv = self.rv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def() -> ResourceDef {
        ResourceDef::new("g", "v1", "Thing", "things", true)
    }

    fn names(v: &[Entry<'_>]) -> Vec<String> {
        v.iter().map(|(k, _)| k.1.clone()).collect()
    }

    #[test]
    fn apply_sets_metadata_and_skips_noops() {
        let mut s = State::new(100, 16);
        let a = s.apply(&def(), json!({"metadata": {"name": "a"}, "x": 1}));
        assert_eq!(a["apiVersion"], "g/v1");
        assert_eq!(a["kind"], "Thing");
        assert_eq!(a["metadata"]["namespace"], "default");
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        let uid = a["metadata"]["uid"].clone();
        let same = s.apply(&def(), json!({"metadata": {"name": "a"}, "x": 1}));
        assert_eq!(same["metadata"]["resourceVersion"], "2");
        let b = s.apply(&def(), json!({"metadata": {"name": "a"}, "x": 2}));
        assert_eq!(b["metadata"]["resourceVersion"], "3");
        assert_eq!(b["metadata"]["uid"], uid);
        assert_eq!(s.store(&def().key()).history.len(), 2);
    }

    #[test]
    fn snapshot_reconstructs_older_state() {
        let mut s = State::new(100, 16);
        for n in ["a", "b", "c", "d"] {
            s.apply(&def(), json!({"metadata": {"name": n}}));
        }
        let snap = s.rv;
        s.delete(&def(), Some("default"), "c");
        s.apply(&def(), json!({"metadata": {"name": "bb"}}));
        s.apply(&def(), json!({"metadata": {"name": "d"}, "changed": true}));
        let key = def().key();
        let after = ("default".to_string(), "a".to_string());
        let store = s.store(&key);
        let page: Vec<_> = store.snapshot_after(snap, &after).unwrap().collect();
        assert_eq!(names(&page), ["b", "c", "d"]);
        assert!(page[2].1.parsed().get("changed").is_none());
        let all: Vec<_> = store
            .snapshot_after(snap, &(String::new(), String::new()))
            .unwrap()
            .collect();
        assert_eq!(names(&all), ["a", "b", "c", "d"]);
        s.compact();
        assert!(s.store(&key).snapshot_after(snap, &after).is_err());
        let now = s.rv;
        assert!(s.store(&key).snapshot_after(now, &after).is_ok());
    }

    #[test]
    fn stored_bytes_match_serde_json() {
        let mut s = State::new(100, 16);
        let v = s.apply(
            &def(),
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"s": "q\"\\\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f}é", "t": true, "f": false, "n": -3, "e": {}, "a": []}, "z": [1, 2.5, null, 1e300]}),
        );
        let stored = s
            .store(&def().key())
            .objects
            .values()
            .next()
            .unwrap()
            .clone();
        assert_eq!(&stored.json[..], serde_json::to_vec(&v).unwrap());
        assert_eq!(stored.parsed(), &v);
        let moved = stored.with_rv(12345);
        let mut expect = v.clone();
        expect["metadata"]["resourceVersion"] = json!("12345");
        assert_eq!(&moved.json[..], serde_json::to_vec(&expect).unwrap());
        assert_eq!(moved.meta, expect["metadata"]);
        assert!(moved.same_content(&stored));
    }

    #[test]
    fn apply_all_sends_events_in_order_after_the_batch() {
        let mut s = State::new(100, 16);
        let mut rx = s.store(&def().key()).tx.subscribe();
        let out = s.apply_all(
            &def(),
            vec![
                json!({"metadata": {"name": "a"}}),
                json!({"metadata": {"name": "b"}}),
                json!({"metadata": {"name": "a"}, "x": 1}),
            ],
        );
        let rvs: Vec<_> = out
            .iter()
            .map(|o| o["metadata"]["resourceVersion"].clone())
            .collect();
        assert_eq!(rvs, ["2", "3", "4"]);
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| (e.rv, e.kind))
            .collect();
        use EventKind::*;
        assert_eq!(got, [(2, Added), (3, Added), (4, Modified)]);
        // Later single writes are sent right away again.
        s.apply(&def(), json!({"metadata": {"name": "c"}}));
        assert_eq!(rx.try_recv().unwrap().rv, 5);
    }

    #[test]
    fn history_limit_raises_compaction_point() {
        let mut s = State::new(2, 16);
        for i in 0..5 {
            s.apply(&def(), json!({"metadata": {"name": format!("o{i}")}}));
        }
        let store = s.store(&def().key());
        assert_eq!(store.history.len(), 2);
        assert_eq!(store.compacted_rv, 4);
        assert!(store.events_after(3).is_err());
        assert_eq!(store.events_after(4).unwrap().len(), 2);
    }
}
