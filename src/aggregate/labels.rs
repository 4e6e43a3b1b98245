//! The label schema of `policyreport_results`: its label slots, which of
//! them are optional (`--extra-labels`), the values a result gives them,
//! and [`SampleRows`], which gathers one report's label sets before they are
//! looked up in a [`SeriesTable`]. Policy Reporter's families use the same
//! slots with their own values.

use super::series::{self, SeriesTable};
use super::short_list::ShortList;
use crate::report::ResultView;

/// An optional label of `policyreport_results`, turned on with
/// `--extra-labels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraLabel {
    /// The rule name.
    Rule,
    /// The kind of the result's subject.
    Kind,
}

/// One label slot: its name, and the `--extra-labels` value that turns it
/// on when it is optional.
struct Label {
    name: &'static str,
    extra: Option<ExtraLabel>,
}

const fn always(name: &'static str) -> Label {
    Label { name, extra: None }
}

/// The label slots of `policyreport_results`, in order. Policy Reporter's
/// families use the same slots with their own values.
const LABELS: [Label; 8] = [
    always("namespace"),
    always("policy"),
    always("category"),
    always("severity"),
    always("source"),
    always("result"),
    Label {
        name: "rule",
        extra: Some(ExtraLabel::Rule),
    },
    Label {
        name: "kind",
        extra: Some(ExtraLabel::Kind),
    },
];
pub(super) const NAMESPACE: usize = 0;
pub(super) const POLICY: usize = 1;
pub(super) const CATEGORY: usize = 2;
pub(super) const SEVERITY: usize = 3;
pub(super) const SOURCE: usize = 4;
pub(super) const RESULT: usize = 5;
const RULE: usize = 6;
pub(super) const KIND: usize = 7;

/// Number of label slots in a series key.
pub const SLOTS: usize = LABELS.len();

/// Names of the label slots of `policyreport_results`, in slot order.
pub const LABEL_NAMES: [&str; SLOTS] = {
    let mut names = [""; SLOTS];
    let mut i = 0;
    while i < SLOTS {
        names[i] = LABELS[i].name;
        i += 1;
    }
    names
};

/// Which optional labels `policyreport_results` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelOptions {
    enabled: [bool; SLOTS],
}

impl Default for LabelOptions {
    /// The labels that are not optional.
    fn default() -> Self {
        Self::of(&[])
    }
}

impl LabelOptions {
    /// The labels that are not optional, and these.
    pub fn of(extra: &[ExtraLabel]) -> Self {
        Self {
            enabled: LABELS.map(|l| l.extra.is_none_or(|e| extra.contains(&e))),
        }
    }

    /// Whether this optional label is on.
    pub fn has(&self, extra: ExtraLabel) -> bool {
        LABELS
            .iter()
            .zip(self.enabled)
            .any(|(l, on)| on && l.extra == Some(extra))
    }

    /// The label names in use, in slot order.
    pub fn names(&self) -> Vec<&'static str> {
        LABEL_NAMES
            .iter()
            .zip(self.enabled)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }

    pub(super) fn enabled(&self, slot: usize) -> bool {
        self.enabled[slot]
    }

    /// A result's label values, those off empty. `kind` is left empty: it
    /// is a subject's.
    pub(super) fn values<'a>(&self, namespace: &'a str, r: &ResultView<'a>) -> [&'a str; SLOTS] {
        // An optional slot's value goes through `on`. Filling the array
        // first and blanking the slots that are off afterwards made
        // `handle(Apply)` about 5% slower (docs/benchmarks.md,
        // micro-benchmarks).
        let on = |slot: usize, v: &'a str| if self.enabled[slot] { v } else { "" };
        let mut values = [""; SLOTS];
        values[NAMESPACE] = namespace;
        values[POLICY] = r.policy;
        values[CATEGORY] = r.category;
        values[SEVERITY] = r.severity;
        values[SOURCE] = r.source_or_report();
        values[RESULT] = r.outcome.as_str();
        values[RULE] = on(RULE, r.rule);
        values
    }
}

/// One row of [`SampleRows`]: the label hash, the label values and the count.
pub(super) type SampleRow<'a> = (u64, [&'a str; SLOTS], u32);

/// Rows of label values with their counts and label hashes (for
/// [`SeriesTable::acquire_hashed`]), each distinct label set once.
pub(super) struct SampleRows<'a, 't> {
    table: &'t SeriesTable,
    rows: ShortList<SampleRow<'a>>,
}

impl<'a, 't> SampleRows<'a, 't> {
    pub(super) fn new(table: &'t SeriesTable) -> Self {
        Self {
            table,
            rows: ShortList::with_capacity(0),
        }
    }

    /// Add `n` to the row of `labels`.
    pub(super) fn add(&mut self, labels: [&'a str; SLOTS], n: u32) {
        let hash = self.table.hash(&labels);
        let same = |row: &SampleRow<'_>| {
            row.0 == hash && row.1.iter().zip(&labels).all(|(a, b)| series::same(a, b))
        };
        match self.rows.find(|| hash, same) {
            Some(i) => self.rows.get_mut(i).2 += n,
            None => {
                self.rows.push((hash, labels, n), |row| row.0);
            }
        }
    }

    /// The rows, in the order their label sets first came.
    pub(super) fn into_rows(self) -> Vec<SampleRow<'a>> {
        self.rows.into_vec()
    }
}
