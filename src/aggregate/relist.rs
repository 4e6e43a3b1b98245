//! Relist buffering, for any index (as kubert's index driver does it): a
//! source's changes take effect at once, while a relist's objects are held
//! aside until the relist completes and then replace the origin's whole set
//! atomically. [`Store`] keeps the contributions of each origin and of each
//! relist in progress, each origin's in a [`Table`] (insertion-ordered for
//! objects, a plain hash map for Events); what a contribution does when it
//! becomes visible, is retired or is dropped is the [`Index`]'s.
//!
//! Every step makes the new contribution visible before it retires the one
//! it replaces, so a reader never sees an object's counts missing between
//! two versions of it.

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;

use indexmap::IndexMap;

use super::{Map, OrderedMap};
use crate::source::Origin;

/// What the contributions of a [`Store`] apply to.
pub(super) trait Index<K, C> {
    /// Make a contribution visible; `old`, the one it replaces, is still
    /// visible and is deactivated right after.
    fn activate(&mut self, new: &mut C, old: Option<&C>);
    /// Take a visible contribution away and drop what it holds.
    fn deactivate(&mut self, old: C);
    /// Drop what a contribution that never became visible holds.
    fn release(&mut self, c: C);
    /// The objects held of `id`'s kind changed by `delta`.
    fn counted(&mut self, id: &K, delta: i64);
}

/// The map a [`Store`] keeps one origin's contributions in: an
/// insertion-ordered [`OrderedMap`], or a plain [`Map`] for contributions
/// whose activation order cannot change the state.
pub(super) trait Table<K, C>: Default + IntoIterator<Item = (K, C)> {
    /// The contribution of `id`.
    fn get(&self, id: &K) -> Option<&C>;
    /// Hold `c` as `id`'s contribution; returns the one it replaces, whose
    /// place it takes.
    fn insert(&mut self, id: K, c: C) -> Option<C>;
    /// Take out `id`'s contribution; the others may change order.
    fn take(&mut self, id: &K) -> Option<C>;
    /// Take out `id`'s contribution, the others kept in order.
    fn take_in_order(&mut self, id: &K) -> Option<C>;
    /// Whether it holds nothing.
    fn is_empty(&self) -> bool;
    /// Every contribution.
    fn values<'a>(&'a self) -> impl Iterator<Item = &'a C>
    where
        C: 'a;
    /// Every identity and contribution, in order.
    fn iter_mut<'a>(&'a mut self) -> impl Iterator<Item = (&'a K, &'a mut C)>
    where
        K: 'a,
        C: 'a;
    /// Give back room grown for entries no longer there.
    fn shrink_to_fit(&mut self);
}

impl<K: Hash + Eq, C> Table<K, C> for OrderedMap<K, C> {
    fn get(&self, id: &K) -> Option<&C> {
        IndexMap::get(self, id)
    }
    fn insert(&mut self, id: K, c: C) -> Option<C> {
        IndexMap::insert(self, id, c)
    }
    fn take(&mut self, id: &K) -> Option<C> {
        self.swap_remove(id)
    }
    fn take_in_order(&mut self, id: &K) -> Option<C> {
        self.shift_remove(id)
    }
    fn is_empty(&self) -> bool {
        IndexMap::is_empty(self)
    }
    fn values<'a>(&'a self) -> impl Iterator<Item = &'a C>
    where
        C: 'a,
    {
        IndexMap::values(self)
    }
    fn iter_mut<'a>(&'a mut self) -> impl Iterator<Item = (&'a K, &'a mut C)>
    where
        K: 'a,
        C: 'a,
    {
        IndexMap::iter_mut(self)
    }
    fn shrink_to_fit(&mut self) {
        IndexMap::shrink_to_fit(self);
    }
}

impl<K: Hash + Eq, C> Table<K, C> for Map<K, C> {
    fn get(&self, id: &K) -> Option<&C> {
        HashMap::get(self, id)
    }
    fn insert(&mut self, id: K, c: C) -> Option<C> {
        HashMap::insert(self, id, c)
    }
    fn take(&mut self, id: &K) -> Option<C> {
        self.remove(id)
    }
    fn take_in_order(&mut self, id: &K) -> Option<C> {
        self.remove(id)
    }
    fn is_empty(&self) -> bool {
        HashMap::is_empty(self)
    }
    fn values<'a>(&'a self) -> impl Iterator<Item = &'a C>
    where
        C: 'a,
    {
        HashMap::values(self)
    }
    fn iter_mut<'a>(&'a mut self) -> impl Iterator<Item = (&'a K, &'a mut C)>
    where
        K: 'a,
        C: 'a,
    {
        HashMap::iter_mut(self)
    }
    fn shrink_to_fit(&mut self) {
        HashMap::shrink_to_fit(self);
    }
}

/// The contributions of each origin, and of each relist in progress, each
/// origin's in a [`Table`]. By default insertion-ordered, so a relist
/// activates its objects in the order the source listed them: results are
/// then the same for the same input, whatever the hash seeds.
#[derive(Debug)]
pub(super) struct Store<K, C, T = OrderedMap<K, C>> {
    live: Map<Origin, T>,
    pending: Map<Origin, T>,
    contributions: PhantomData<(K, C)>,
}

impl<K, C, T> Default for Store<K, C, T> {
    fn default() -> Self {
        Self {
            live: Map::default(),
            pending: Map::default(),
            contributions: PhantomData,
        }
    }
}

impl<K: Hash + Eq, C, T: Table<K, C>> Store<K, C, T> {
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
        let old = self.live.get_mut(&origin).and_then(|m| m.take(&id));
        match new {
            Some(mut new) => {
                index.activate(&mut new, old.as_ref());
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
        let Some(table) = self.live.get_mut(origin) else {
            return;
        };
        let old = table.take(id);
        if table.is_empty() {
            self.live.remove(origin);
        }
        if let Some(old) = old {
            index.deactivate(old);
            index.counted(id, -1);
        }
    }

    /// A relist of `origin` begins; an unfinished one is abandoned.
    pub(super) fn relist_start(&mut self, index: &mut impl Index<K, C>, origin: Origin) {
        if let Some(stale) = self.pending.insert(origin, T::default()) {
            stale.into_iter().for_each(|(_, c)| index.release(c));
        }
    }

    /// An object of the relist in progress: held, not visible, until the
    /// relist completes; a later copy replaces an earlier one.
    pub(super) fn relist_apply(
        &mut self,
        index: &mut impl Index<K, C>,
        origin: Origin,
        id: K,
        new: Option<C>,
    ) {
        let pending = self.pending.entry(origin).or_default();
        let dup = match new {
            Some(new) => pending.insert(id, new),
            None => pending.take_in_order(&id),
        };
        if let Some(dup) = dup {
            index.release(dup);
        }
    }

    /// The relist of `origin` is complete: its objects replace the
    /// origin's, then those that vanished are retired.
    pub(super) fn relist_end(&mut self, index: &mut impl Index<K, C>, origin: Origin) {
        let mut fresh = self.pending.remove(&origin).unwrap_or_default();
        let mut old = self.live.remove(&origin).unwrap_or_default();
        for (id, new) in fresh.iter_mut() {
            let prev = old.take(id);
            index.activate(new, prev.as_ref());
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
            // 96 bytes each in an ordered table: at 150k reports, about 50
            // bytes per report.
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
        fn activate(&mut self, new: &mut String, _old: Option<&String>) {
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
        let (mut store, mut log): (Store<_, _>, _) = (Store::default(), Log::default());
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
        let (mut store, mut log): (Store<_, _>, _) = (Store::default(), Log::default());
        store.apply(&mut log, file("f"), "a", Some("a0".to_owned()));
        store.apply(&mut log, file("f"), "gone", Some("g0".to_owned()));
        store.apply(&mut log, file("other"), "a", Some("o0".to_owned()));
        take(&mut log);

        store.relist_start(&mut log, file("f"));
        store.relist_apply(&mut log, file("f"), "a", Some("a1".to_owned()));
        store.relist_apply(&mut log, file("f"), "new", Some("n0".to_owned()));
        store.relist_apply(&mut log, file("f"), "new", Some("n1".to_owned()));
        assert_eq!(
            take(&mut log),
            ["release n0"],
            "a later copy replaces an earlier one"
        );
        assert_eq!(store.get(&file("f"), &"a").map(String::as_str), Some("a0"));
        assert_eq!(store.get(&file("f"), &"new"), None, "held, not visible");

        store.relist_end(&mut log, file("f"));
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
        let (mut store, mut log): (Store<_, _>, _) = (Store::default(), Log::default());
        store.apply(&mut log, file("f"), "a", Some("a0".to_owned()));
        store.relist_start(&mut log, file("f"));
        store.relist_apply(&mut log, file("f"), "a", Some("a1".to_owned()));
        store.relist_apply(&mut log, file("f"), "b", Some("b1".to_owned()));
        store.relist_apply(&mut log, file("f"), "b", None);
        store.relist_start(&mut log, file("f"));
        store.relist_end(&mut log, file("f"));
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
