//! The label schema of `policyreport_results`: its label names and slots,
//! the optional labels in use, and [`Rows`], which gathers one report's
//! label sets before they are looked up in a [`SeriesTable`]. Policy
//! Reporter's families use the same slots with their own values.

use hashbrown::HashTable;

use super::series::{self, SLOTS, SeriesTable};

/// Names of the label slots of `policyreport_results`, in slot order.
pub const LABEL_NAMES: [&str; SLOTS] = [
    "namespace",
    "policy",
    "category",
    "severity",
    "source",
    "result",
    "rule",
    "kind",
];
pub(super) const NAMESPACE: usize = 0;
pub(super) const POLICY: usize = 1;
pub(super) const CATEGORY: usize = 2;
pub(super) const SEVERITY: usize = 3;
pub(super) const SOURCE: usize = 4;
pub(super) const RESULT: usize = 5;
const RULE: usize = 6;
pub(super) const KIND: usize = 7;

/// Which optional labels `policyreport_results` carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabelOptions {
    /// Add the `rule` label.
    pub rule: bool,
    /// Add the `kind` label (the subject's kind).
    pub kind: bool,
}

impl LabelOptions {
    /// The label names in use, in slot order.
    pub fn names(&self) -> Vec<&'static str> {
        LABEL_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.enabled(*i))
            .map(|(_, n)| *n)
            .collect()
    }

    pub(super) fn enabled(&self, slot: usize) -> bool {
        match slot {
            RULE => self.rule,
            KIND => self.kind,
            _ => true,
        }
    }
}

/// One row of [`Rows`]: the label hash, the label values and the count.
pub(super) type Row<'a> = (u64, [&'a str; SLOTS], u32);

/// Rows of label values with their counts and label hashes (for
/// [`SeriesTable::acquire_hashed`]), each distinct label set once.
pub(super) struct Rows<'a, 't> {
    table: &'t SeriesTable,
    pub(super) rows: Vec<Row<'a>>,
    index: HashTable<usize>,
}

impl<'a, 't> Rows<'a, 't> {
    pub(super) fn new(table: &'t SeriesTable) -> Self {
        Self {
            table,
            rows: Vec::new(),
            index: HashTable::new(),
        }
    }

    /// Add `n` to the row of `labels`.
    pub(super) fn add(&mut self, labels: [&'a str; SLOTS], n: u32) {
        // Most reports hold few distinct rows: a list beats a map, until it
        // grows long.
        let hash = self.table.hash(&labels);
        let rows = &mut self.rows;
        let same = |row: &Row<'_>| {
            row.0 == hash && row.1.iter().zip(&labels).all(|(a, b)| series::same(a, b))
        };
        let found = if self.index.is_empty() {
            rows.iter().position(same)
        } else {
            self.index.find(hash, |&i| same(&rows[i])).copied()
        };
        match found {
            Some(i) => rows[i].2 += n,
            None => {
                rows.push((hash, labels, n));
                index_long_list(&mut self.index, rows.len(), |i| rows[i].0);
            }
        }
    }
}

/// Entries a list is searched linearly before [`index_long_list`] indexes it.
/// Reports with few resources keep no index (docs/benchmarks.md); the value
/// was not tuned separately.
pub(super) const LINEAR: usize = 16;

/// Keep `index` over a list of `len` entries, which just grew by one: empty
/// while the list is short, then holding every position by its hash.
pub(super) fn index_long_list(
    index: &mut HashTable<usize>,
    len: usize,
    hash: impl Fn(usize) -> u64,
) {
    if len <= LINEAR {
        return;
    }
    if index.is_empty() {
        for i in 0..len {
            index.insert_unique(hash(i), i, |&j| hash(j));
        }
    } else {
        index.insert_unique(hash(len - 1), len - 1, |&j| hash(j));
    }
}
