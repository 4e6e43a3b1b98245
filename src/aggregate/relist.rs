//! Relist buffering, for any index (as kubert's index driver does it): a
//! source's changes take effect at once, while a relist's objects are held
//! aside until the relist completes and then replace the origin's whole set
//! atomically. [`Store`] keeps the contributions of each origin and of each
//! relist in progress; what a contribution does when it becomes visible,
//! is retired or is dropped is the [`Index`]'s.
//!
//! Every step makes the new contribution visible before it retires the one
//! it replaces, so a reader never sees an object's counts missing between
//! two versions of it.

use std::hash::Hash;

use super::{Map, OrderedMap};
use crate::source::Origin;

/// What the contributions of a [`Store`] apply to.
pub(super) trait Index<K, C> {
    /// Make a contribution visible.
    fn activate(&mut self, new: &C);
    /// Take a visible contribution away and drop what it holds.
    fn deactivate(&mut self, old: C);
    /// Drop what a contribution that never became visible holds.
    fn release(&mut self, c: C);
    /// The objects held of `id`'s kind changed by `delta`.
    fn counted(&mut self, id: &K, delta: i64);
}

/// The contributions of each origin, and of each relist in progress.
/// Insertion-ordered, so a relist activates its objects in the order the
/// source listed them: results are then the same for the same input,
/// whatever the hash seeds.
#[derive(Debug)]
pub(super) struct Store<K, C> {
    live: Map<Origin, OrderedMap<K, C>>,
    pending: Map<Origin, OrderedMap<K, C>>,
}

impl<K, C> Default for Store<K, C> {
    fn default() -> Self {
        Self {
            live: Map::default(),
            pending: Map::default(),
        }
    }
}

impl<K: Hash + Eq, C> Store<K, C> {
    /// The visible contribution of `id` in `origin`.
    pub(super) fn get(&self, origin: &Origin, id: &K) -> Option<&C> {
        self.live.get(origin).and_then(|m| m.get(id))
    }

    /// Every visible contribution.
    pub(super) fn values(&self) -> impl Iterator<Item = &C> {
        self.live.values().flat_map(|m| m.values())
    }

    /// An object was created or updated: its new contribution (`None`: it
    /// contributes nothing now) replaces its old one.
    pub(super) fn apply(
        &mut self,
        index: &mut impl Index<K, C>,
        origin: Origin,
        id: K,
        new: Option<C>,
    ) {
        let old = self.live.get_mut(&origin).and_then(|m| m.swap_remove(&id));
        match new {
            Some(new) => {
                index.activate(&new);
                match old {
                    Some(old) => index.deactivate(old),
                    None => index.counted(&id, 1),
                }
                self.live.entry(origin).or_default().insert(id, new);
            }
            None => {
                if let Some(old) = old {
                    index.deactivate(old);
                    index.counted(&id, -1);
                }
            }
        }
    }

    /// An object was deleted.
    pub(super) fn delete(&mut self, index: &mut impl Index<K, C>, origin: &Origin, id: &K) {
        if let Some(old) = self.live.get_mut(origin).and_then(|m| m.swap_remove(id)) {
            index.deactivate(old);
            index.counted(id, -1);
        }
    }

    /// A relist of `origin` begins; an unfinished one is abandoned.
    pub(super) fn start(&mut self, index: &mut impl Index<K, C>, origin: Origin) {
        if let Some(stale) = self.pending.insert(origin, OrderedMap::default()) {
            stale.into_values().for_each(|c| index.release(c));
        }
    }

    /// An object of the relist in progress: held, not visible, until the
    /// relist completes; a later copy replaces an earlier one.
    pub(super) fn relisted(
        &mut self,
        index: &mut impl Index<K, C>,
        origin: Origin,
        id: K,
        new: Option<C>,
    ) {
        let pending = self.pending.entry(origin).or_default();
        let dup = match new {
            Some(new) => pending.insert(id, new),
            None => pending.shift_remove(&id),
        };
        if let Some(dup) = dup {
            index.release(dup);
        }
    }

    /// The relist of `origin` is complete: its objects replace the
    /// origin's, then those that vanished are retired.
    pub(super) fn finish(&mut self, index: &mut impl Index<K, C>, origin: Origin) {
        let mut fresh = self.pending.remove(&origin).unwrap_or_default();
        let mut old = self.live.remove(&origin).unwrap_or_default();
        for (id, new) in fresh.iter() {
            let prev = old.swap_remove(id);
            index.activate(new);
            match prev {
                Some(prev) => index.deactivate(prev),
                None => index.counted(id, 1),
            }
        }
        for (id, gone) in old {
            index.deactivate(gone);
            index.counted(&id, -1);
        }
        if !fresh.is_empty() {
            // Its entries grew by doubling: up to half of them spare room,
            // 96 bytes each: at 150k reports, about 50 bytes per report.
            fresh.shrink_to_fit();
            self.live.insert(origin, fresh);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;

    /// Records each call, as `activate a1`, `deactivate a0`, …
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Index<&'static str, String> for Log {
        fn activate(&mut self, new: &String) {
            self.0.push(format!("activate {new}"));
        }
        fn deactivate(&mut self, old: String) {
            self.0.push(format!("deactivate {old}"));
        }
        fn release(&mut self, c: String) {
            self.0.push(format!("release {c}"));
        }
        fn counted(&mut self, id: &&'static str, delta: i64) {
            self.0.push(format!("counted {id} {delta:+}"));
        }
    }

    fn file(name: &str) -> Origin {
        Origin::File(Arc::from(Path::new(name)))
    }

    fn take(log: &mut Log) -> Vec<String> {
        std::mem::take(&mut log.0)
    }

    #[test]
    fn changes_apply_at_once_the_new_before_the_old_goes() {
        let (mut store, mut log) = (Store::default(), Log::default());
        store.apply(&mut log, file("f"), "a", Some("a0".to_owned()));
        store.apply(&mut log, file("f"), "a", Some("a1".to_owned()));
        store.apply(&mut log, file("f"), "a", None);
        store.apply(&mut log, file("f"), "b", Some("b0".to_owned()));
        store.delete(&mut log, &file("f"), &"b");
        store.delete(&mut log, &file("f"), &"b");
        assert_eq!(
            take(&mut log),
            [
                "activate a0",
                "counted a +1",
                "activate a1",
                "deactivate a0",
                "deactivate a1",
                "counted a -1",
                "activate b0",
                "counted b +1",
                "deactivate b0",
                "counted b -1",
            ]
        );
        assert_eq!(store.values().count(), 0);
    }

    #[test]
    fn a_relist_replaces_its_origin_alone_and_only_when_it_ends() {
        let (mut store, mut log) = (Store::default(), Log::default());
        store.apply(&mut log, file("f"), "a", Some("a0".to_owned()));
        store.apply(&mut log, file("f"), "gone", Some("g0".to_owned()));
        store.apply(&mut log, file("other"), "a", Some("o0".to_owned()));
        take(&mut log);

        store.start(&mut log, file("f"));
        store.relisted(&mut log, file("f"), "a", Some("a1".to_owned()));
        store.relisted(&mut log, file("f"), "new", Some("n0".to_owned()));
        store.relisted(&mut log, file("f"), "new", Some("n1".to_owned()));
        assert_eq!(
            take(&mut log),
            ["release n0"],
            "a later copy replaces an earlier one"
        );
        assert_eq!(store.get(&file("f"), &"a").map(String::as_str), Some("a0"));
        assert_eq!(store.get(&file("f"), &"new"), None, "held, not visible");

        store.finish(&mut log, file("f"));
        assert_eq!(
            take(&mut log),
            [
                "activate a1",
                "deactivate a0",
                "activate n1",
                "counted new +1",
                "deactivate g0",
                "counted gone -1",
            ]
        );
        let mut live: Vec<&str> = store.values().map(String::as_str).collect();
        live.sort_unstable();
        assert_eq!(live, ["a1", "n1", "o0"]);
    }

    #[test]
    fn an_abandoned_relist_is_released_and_an_empty_one_empties_the_origin() {
        let (mut store, mut log) = (Store::default(), Log::default());
        store.apply(&mut log, file("f"), "a", Some("a0".to_owned()));
        store.start(&mut log, file("f"));
        store.relisted(&mut log, file("f"), "a", Some("a1".to_owned()));
        store.relisted(&mut log, file("f"), "b", Some("b1".to_owned()));
        store.relisted(&mut log, file("f"), "b", None);
        store.start(&mut log, file("f"));
        store.finish(&mut log, file("f"));
        assert_eq!(
            take(&mut log),
            [
                "activate a0",
                "counted a +1",
                "release b1",
                "release a1",
                "deactivate a0",
                "counted a -1",
            ]
        );
        assert_eq!(store.values().count(), 0);
    }
}
