//! Per-control resource tallies. For each control, each resource (by uid,
//! else kind/namespace/name) keeps how many matching pass and failing
//! results all reports hold for it, so results for one pod spread over
//! several reports combine. From the tallies it keeps the number of
//! compliant and noncompliant resources per namespace and kind, updated as
//! tallies change: an update to one report never rescans the others.

use string_interner::DefaultSymbol as Sym;

use super::Map;
use super::series::SeriesTable;
use crate::controls::Controls;
use crate::report::{DecodedReport, Outcome, Subject};

/// One report's contribution to one resource under one control.
#[derive(Debug)]
pub(super) struct ControlDelta {
    pub control: u16,
    resource: Box<str>,
    namespace: Sym,
    kind: Sym,
    pass: u32,
    bad: u32,
}

#[derive(Debug)]
struct Tally {
    namespace: Sym,
    kind: Sym,
    pass: u32,
    bad: u32,
}

impl Tally {
    /// `Some(true)` compliant, `Some(false)` noncompliant, `None` not counted
    /// (no results, or only skips).
    fn status(&self) -> Option<bool> {
        if self.bad > 0 {
            Some(false)
        } else if self.pass > 0 {
            Some(true)
        } else {
            None
        }
    }
}

/// The state of one control.
#[derive(Debug, Default)]
pub(super) struct ControlState {
    resources: Map<Box<str>, Tally>,
    counts: Map<(Sym, Sym, bool), u64>,
}

impl ControlState {
    /// Add (`sign` = 1) or remove (`sign` = -1) a delta.
    pub fn apply(&mut self, d: &ControlDelta, sign: i32) {
        let tally = match self.resources.get_mut(&d.resource) {
            Some(t) => t,
            None => self.resources.entry(d.resource.clone()).or_insert(Tally {
                namespace: d.namespace,
                kind: d.kind,
                pass: 0,
                bad: 0,
            }),
        };
        let before = tally.status();
        if sign > 0 {
            tally.pass += d.pass;
            tally.bad += d.bad;
        } else {
            tally.pass = tally.pass.saturating_sub(d.pass);
            tally.bad = tally.bad.saturating_sub(d.bad);
        }
        let after = tally.status();
        let key = |compliant| (tally.namespace, tally.kind, compliant);
        let (k_before, k_after) = (before.map(key), after.map(key));
        if tally.pass == 0 && tally.bad == 0 {
            self.resources.remove(&d.resource);
        }
        if k_before == k_after {
            return;
        }
        if let Some(k) = k_before
            && let Some(n) = self.counts.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&k);
            }
        }
        if let Some(k) = k_after {
            *self.counts.entry(k).or_default() += 1;
        }
    }

    /// Visit the counts: namespace, kind, compliant, resources.
    pub fn for_each(&self, mut f: impl FnMut(Sym, Sym, bool, u64)) {
        let mut sorted: Vec<_> = self.counts.iter().collect();
        sorted.sort_by_key(|((ns, kind, c), _)| (*ns, *kind, *c));
        for ((ns, kind, compliant), n) in sorted {
            f(*ns, *kind, *compliant, *n);
        }
    }
}

/// What one report contributes to each control.
pub(super) fn deltas(
    controls: &Controls,
    report: &DecodedReport<'_>,
    namespace: &str,
    strings: &mut SeriesTable,
) -> Box<[ControlDelta]> {
    if controls.is_empty() {
        return Box::new([]);
    }
    let mut acc: Map<(u16, String), ControlDelta> = Map::default();
    let scope = report.scope.as_slice();
    for r in &report.results {
        let (pass, bad) = match r.result {
            Outcome::Pass => (1, 0),
            Outcome::Fail | Outcome::Warn | Outcome::Error => (0, 1),
            Outcome::Skip => continue,
        };
        let category = r.category.as_ref().map_or("", |t| t.as_str());
        let rule = r.rule.as_ref().map_or("", |t| t.as_str());
        let subjects: &[Subject<'_>] = if r.subjects().is_empty() {
            scope
        } else {
            r.subjects()
        };
        for (i, control) in controls.iter().enumerate() {
            if !control.matches(r.policy.as_str(), category, rule) {
                continue;
            }
            for s in subjects {
                let kind = s.kind.as_ref().map_or("", |t| t.as_str());
                if !control.counts_kind(kind) {
                    continue;
                }
                let ns = s
                    .namespace
                    .as_ref()
                    .map(|t| t.as_str())
                    .filter(|n| !n.is_empty())
                    .unwrap_or(namespace);
                let name = s.name.as_ref().map_or("", |t| t.as_str());
                let key = match s.uid.as_ref().map(|t| t.as_str()).filter(|u| !u.is_empty()) {
                    Some(uid) => uid.to_owned(),
                    None => format!("{kind}/{ns}/{name}"),
                };
                let d = acc
                    .entry((i as u16, key))
                    .or_insert_with_key(|(_, key)| ControlDelta {
                        control: i as u16,
                        resource: key.as_str().into(),
                        namespace: strings.intern(ns),
                        kind: strings.intern(kind),
                        pass: 0,
                        bad: 0,
                    });
                d.pass += pass;
                d.bad += bad;
            }
        }
    }
    acc.into_values().collect()
}
