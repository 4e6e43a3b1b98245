//! The lists gathered from one report while its contribution is built (its
//! label rows, its control deltas, its sources): searched linearly while
//! short, as most reports keep them, and through a hash index of positions
//! once a report makes them long.

use hashbrown::HashTable;

/// Entries a list is searched linearly before it is indexed. Reports with
/// few resources keep no index (docs/benchmarks.md); the value was not
/// tuned separately.
const LINEAR: usize = 16;

/// A list searched linearly until it holds more than [`LINEAR`] entries,
/// then through an index of their positions by hash.
#[derive(Debug)]
pub(super) struct ShortList<T> {
    items: Vec<T>,
    index: HashTable<usize>,
}

impl<T> ShortList<T> {
    /// An empty list with room for `n` entries.
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            items: Vec::with_capacity(n),
            index: HashTable::new(),
        }
    }

    /// The position of the entry `same` accepts. `hash` is that entry's
    /// hash, computed only once the list is indexed.
    pub(super) fn find(
        &self,
        hash: impl FnOnce() -> u64,
        same: impl Fn(&T) -> bool,
    ) -> Option<usize> {
        if self.index.is_empty() {
            self.items.iter().position(same)
        } else {
            self.index.find(hash(), |&i| same(&self.items[i])).copied()
        }
    }

    /// Append an entry, indexing the list once it is long; `hash` gives an
    /// entry's hash, the same as [`find`](Self::find)'s. Returns its position.
    pub(super) fn push(&mut self, item: T, hash: impl Fn(&T) -> u64) -> usize {
        self.items.push(item);
        let len = self.items.len();
        let items = &self.items;
        let rehash = |&i: &usize| hash(&items[i]);
        if len > LINEAR {
            if self.index.is_empty() {
                for (i, item) in items.iter().enumerate() {
                    self.index.insert_unique(hash(item), i, rehash);
                }
            } else {
                self.index
                    .insert_unique(hash(&items[len - 1]), len - 1, rehash);
            }
        }
        len - 1
    }

    /// The entry at `i`, to update it.
    pub(super) fn get_mut(&mut self, i: usize) -> &mut T {
        &mut self.items[i]
    }

    /// The entries, in the order they were pushed.
    pub(super) fn into_vec(self) -> Vec<T> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_found_through_their_index() {
        let hash = |n: &u64| n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut list = ShortList::with_capacity(0);
        for n in 0..40u64 {
            assert_eq!(list.find(|| hash(&n), |m| *m == n), None);
            assert_eq!(list.push(n, hash), n as usize);
            assert_eq!(list.index.is_empty(), list.items.len() <= LINEAR);
        }
        for n in 0..40u64 {
            assert_eq!(list.find(|| hash(&n), |m| *m == n), Some(n as usize));
        }
    }
}
