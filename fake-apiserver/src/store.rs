//! In-memory object storage with a global resourceVersion counter, a bounded
//! per-resource event history (used to replay watches and to serve
//! snapshot-consistent continue pages), and a broadcast channel per resource
//! for live watch events.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
    pub(crate) object: Arc<Value>,
    pub(crate) prev: Option<Arc<Value>>,
    json: OnceLock<Bytes>,
}

impl HistEvent {
    /// The serialized object, computed once and shared by every watcher.
    pub(crate) fn object_json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&*self.object).unwrap_or_default()))
            .clone()
    }
}

/// The objects, history and live channel of one resource type.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) objects: BTreeMap<ObjKey, Arc<Value>>,
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

impl Store {
    fn new(compacted_rv: u64, capacity: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted_rv,
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// History events with `rv > after`, or `Expired` if some were compacted away.
    pub(crate) fn events_after(&self, after: u64) -> Result<Vec<Arc<HistEvent>>, Expired> {
        if after < self.compacted_rv {
            return Err(Expired {
                oldest: self.compacted_rv,
            });
        }
        let start = self.history.partition_point(|e| e.rv <= after);
        Ok(self.history.range(start..).cloned().collect())
    }

    /// The objects as they were at `rv`, restricted to keys after `after`
    /// (exclusive), in key order. `Expired` when history no longer reaches `rv`.
    pub(crate) fn snapshot_after(
        &self,
        rv: u64,
        after: &ObjKey,
    ) -> Result<Vec<(ObjKey, Arc<Value>)>, Expired> {
        let newer = self.events_after(rv)?;
        // For every key touched since `rv`, its state at `rv` is the `prev`
        // of the first later event touching it.
        let mut at_rv: BTreeMap<&ObjKey, Option<&Arc<Value>>> = BTreeMap::new();
        for ev in &newer {
            at_rv.entry(&ev.key).or_insert(ev.prev.as_ref());
        }
        let mut out: Vec<(ObjKey, Arc<Value>)> = self
            .objects
            .range::<ObjKey, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .filter(|(k, _)| !at_rv.contains_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in at_rv {
            if let Some(v) = v
                && k > after
            {
                out.push((k.clone(), v.clone()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// All mutable server state, guarded by one mutex. Live events are sent on
/// the broadcast channels while the lock is held, so a watcher that
/// subscribes under the lock sees a gap-free sequence.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) served: BTreeMap<ResKey, ResourceDef>,
    pub(crate) stores: HashMap<ResKey, Store>,
    /// The last resourceVersion handed out (starts at 1).
    pub(crate) rv: u64,
    compact_floor: u64,
    uid_counter: u64,
    pub(crate) history_limit: usize,
    queue_capacity: usize,
}

impl State {
    /// Creates empty state with the given history limit and watch queue capacity.
    pub(crate) fn new(history_limit: usize, queue_capacity: usize) -> Self {
        Self {
            served: BTreeMap::new(),
            stores: HashMap::new(),
            // Start at 1: a list on an empty server must not report "0",
            // which a watch would take as "any" (synthetic ADDED events).
            rv: 1,
            compact_floor: 0,
            uid_counter: 0,
            history_limit: history_limit.max(1),
            queue_capacity,
        }
    }

    /// The store of a resource, created on first use.
    pub(crate) fn store(&mut self, key: &ResKey) -> &mut Store {
        let (floor, cap) = (self.compact_floor, self.queue_capacity);
        self.stores
            .entry(key.clone())
            .or_insert_with(|| Store::new(floor, cap))
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
        // No receivers is fine.
        let _ = store.tx.send(ev);
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
        let existing_meta = existing.as_ref().and_then(|e| e.get("metadata"));
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
        if let Some(old) = &existing {
            // A write that changes nothing is a no-op, as on a real server.
            if let Some(old_rv) = inherit("resourceVersion") {
                meta.insert("resourceVersion".into(), old_rv);
            }
            if obj == *old.as_object().unwrap_or(&Map::new()) {
                return (**old).clone();
            }
        }
        self.rv += 1;
        let rv = self.rv;
        if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let stored = Arc::new(Value::Object(obj));
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
                object: stored.clone(),
                prev: existing,
                json: OnceLock::new(),
            },
        );
        (*stored).clone()
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
        let mut gone = (*old).clone();
        if let Some(Value::Object(meta)) = gone.get_mut("metadata") {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        self.record(
            &key,
            HistEvent {
                rv,
                kind: EventKind::Deleted,
                key: okey,
                object: Arc::new(gone),
                prev: Some(old),
                json: OnceLock::new(),
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

    fn names(v: &[(ObjKey, Arc<Value>)]) -> Vec<String> {
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
        let page = s.store(&key).snapshot_after(snap, &after).unwrap();
        assert_eq!(names(&page), ["b", "c", "d"]);
        assert!(page[2].1.get("changed").is_none());
        s.compact();
        assert!(s.store(&key).snapshot_after(snap, &after).is_err());
        let now = s.rv;
        assert!(s.store(&key).snapshot_after(now, &after).is_ok());
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
