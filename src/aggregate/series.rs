//! The strings the indexes share ([`Strings`]) and the table of label
//! sets (series) and their current values ([`SeriesTable`]).
//!
//! Label values are interned once, in the [`Strings`] the aggregate owns
//! and lends each index (the namespaces of object ids, admission counters,
//! control tallies and freshness entries are interned there too); a series
//! is a fixed array of symbols. Contributions refer to series by
//! [`SeriesId`] and hold a reference, so a series lives exactly as long as
//! some report (committed or in a pending relist) mentions it, and its slot
//! is reused afterwards.
//!
//! Series are found by one hash of their label strings, compared against
//! the interned strings, so finding an existing series interns nothing.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use string_interner::{DefaultBackend, DefaultSymbol, StringInterner};

pub use super::labels::SLOTS;

/// A series: one interned symbol per label slot.
pub type SeriesKey = [DefaultSymbol; SLOTS];

/// Index of a series in the table.
pub type SeriesId = u32;

/// A series and the count one report adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesCount {
    /// The series, in the table the list belongs to.
    pub series: SeriesId,
    /// What the report adds to its value.
    pub count: u32,
}

/// Interned strings: each distinct string stored once, named by a
/// 4-byte symbol. Symbols are never freed.
#[derive(Debug)]
pub struct Strings(StringInterner<DefaultBackend, RandomState>);

impl Default for Strings {
    fn default() -> Self {
        Self(StringInterner::with_hasher(RandomState::default()))
    }
}

impl Strings {
    /// The symbol of a string, interned when new.
    pub fn intern(&mut self, s: &str) -> DefaultSymbol {
        self.0.get_or_intern(s)
    }

    /// The string of a symbol.
    pub fn resolve(&self, sym: DefaultSymbol) -> &str {
        self.0.resolve(sym).unwrap_or("")
    }

    /// Number of distinct strings ever interned.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no string was interned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug)]
struct Slot {
    key: SeriesKey,
    value: u64,
    refs: u32,
}

/// Series built from interned label values (the [`Strings`] each method
/// that reads or writes labels is lent), and their values.
#[derive(Debug)]
pub struct SeriesTable {
    hasher: RandomState,
    index: HashTable<SeriesId>,
    slots: Vec<Slot>,
    free: Vec<SeriesId>,
}

impl Default for SeriesTable {
    fn default() -> Self {
        Self {
            hasher: RandomState::default(),
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl SeriesTable {
    /// The hash [`acquire_hashed`](Self::acquire_hashed) takes.
    pub fn hash(&self, labels: &[&str; SLOTS]) -> u64 {
        self.hasher.hash_one(labels)
    }

    /// Find or create the series for these label values and take a reference.
    #[cfg(test)]
    pub fn acquire(&mut self, strings: &mut Strings, labels: &[&str; SLOTS]) -> SeriesId {
        self.acquire_hashed(strings, self.hash(labels), labels)
    }

    /// Find or create the series for these label values, whose
    /// [`hash`](Self::hash) is `hash`, and take a reference.
    pub fn acquire_hashed(
        &mut self,
        strings: &mut Strings,
        hash: u64,
        labels: &[&str; SLOTS],
    ) -> SeriesId {
        let Self {
            hasher,
            index,
            slots,
            free,
        } = self;
        let same = |id: &SeriesId| {
            let key = &slots[*id as usize].key;
            key.iter()
                .zip(labels)
                .all(|(sym, label)| strings.0.resolve(*sym).is_some_and(|s| same(s, label)))
        };
        if let Some(&id) = index.find(hash, same) {
            slots[id as usize].refs += 1;
            return id;
        }
        let slot = Slot {
            key: labels.map(|s| strings.intern(s)),
            value: 0,
            refs: 1,
        };
        let id = match free.pop() {
            Some(id) => {
                slots[id as usize] = slot;
                id
            }
            None => {
                slots.push(slot);
                (slots.len() - 1) as SeriesId
            }
        };
        index.insert_unique(hash, id, |id| {
            key_hash(hasher, strings, &slots[*id as usize].key)
        });
        id
    }

    /// Drop a reference taken by [`acquire_hashed`](Self::acquire_hashed).
    pub fn release(&mut self, strings: &Strings, id: SeriesId) {
        let slot = &mut self.slots[id as usize];
        slot.refs -= 1;
        if slot.refs == 0 {
            debug_assert_eq!(slot.value, 0, "released series still has a value");
            let hash = key_hash(&self.hasher, strings, &slot.key);
            if let Ok(entry) = self.index.find_entry(hash, |x| *x == id) {
                entry.remove();
            }
            self.free.push(id);
        }
    }

    /// Add to a series' value.
    pub fn add(&mut self, id: SeriesId, n: u32) {
        self.slots[id as usize].value += u64::from(n);
    }

    /// Subtract from a series' value.
    pub fn sub(&mut self, id: SeriesId, n: u32) {
        let slot = &mut self.slots[id as usize];
        debug_assert!(slot.value >= u64::from(n), "series value underflow");
        slot.value = slot.value.saturating_sub(u64::from(n));
    }

    /// Visit every series with a non-zero value.
    pub fn for_each<'s>(&self, strings: &'s Strings, mut f: impl FnMut([&'s str; SLOTS], u64)) {
        for slot in &self.slots {
            // Freed slots have refs == 0; pending-only series have value 0.
            if slot.value == 0 || slot.refs == 0 {
                continue;
            }
            f(slot.key.map(|s| strings.resolve(s)), slot.value);
        }
    }

    /// Number of live series (including those only held by a pending relist).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the table holds no series.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// String equality for the short strings of labels, compared in words
/// without a call to `memcmp` (which dominated finding series).
#[inline]
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let words_equal = wa.by_ref().zip(wb.by_ref()).all(|(x, y)| {
        let word = |c: &[u8]| c.try_into().map_or(0, u64::from_ne_bytes);
        word(x) == word(y)
    });
    words_equal
        && wa
            .remainder()
            .iter()
            .zip(wb.remainder())
            .all(|(x, y)| x == y)
}

/// The hash of a stored key: the same as [`SeriesTable::hash`] of its strings.
fn key_hash(hasher: &RandomState, strings: &Strings, key: &SeriesKey) -> u64 {
    hasher.hash_one(key.map(|s| strings.resolve(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [&str; SLOTS] = ["ns", "p", "", "", "", "pass", "", ""];
    const B: [&str; SLOTS] = ["ns", "p", "", "", "", "fail", "", ""];

    fn values(t: &SeriesTable, strings: &Strings) -> Vec<(String, u64)> {
        let mut v = Vec::new();
        t.for_each(strings, |k, n| v.push((k.join("|"), n)));
        v.sort();
        v
    }

    #[test]
    fn same_compares_strings() {
        for (a, b) in [
            ("", ""),
            ("a", "a"),
            ("exactly8", "exactly8"),
            ("require-requests-limits", "require-requests-limits"),
        ] {
            assert!(same(a, b), "{a} = {b}");
        }
        for (a, b) in [
            ("", "a"),
            ("a", "b"),
            ("exactly8", "exactly9"),
            ("require-requests-limits", "require-requests-limitz"),
            ("require-requests-limits", "xequire-requests-limits"),
            ("abc", "abcd"),
        ] {
            assert!(!same(a, b), "{a} != {b}");
        }
    }

    #[test]
    fn acquire_release_reuses_slots() {
        let (mut t, mut s) = (SeriesTable::default(), Strings::default());
        let a = t.acquire(&mut s, &A);
        assert_eq!(t.acquire(&mut s, &A), a);
        t.add(a, 3);
        let b = t.acquire(&mut s, &B);
        t.add(b, 1);
        assert_eq!(
            values(&t, &s),
            vec![("ns|p||||fail||".into(), 1), ("ns|p||||pass||".into(), 3)]
        );
        t.sub(b, 1);
        t.release(&s, b);
        assert_eq!(t.len(), 1);
        assert_eq!(t.acquire(&mut s, &B), b, "freed slot is reused");
        t.sub(a, 3);
        assert!(
            values(&t, &s).is_empty(),
            "zero-valued series are not visited"
        );
        t.release(&s, a);
        t.release(&s, a);
        t.release(&s, b);
        assert!(t.is_empty());
    }
}
