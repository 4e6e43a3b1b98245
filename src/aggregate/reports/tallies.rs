//! Per-control resource tallies. For each control, each resource (by uid,
//! else kind/namespace/name) keeps how many matching pass, failing and skip
//! results all reports hold for it, so results for one pod spread over
//! several reports combine. From the tallies it keeps the number of
//! compliant, noncompliant and excepted resources per namespace and kind,
//! updated as tallies change: an update to one report never rescans the
//! others.
//!
//! Serves `policyreport_control_resources`.

use std::fmt::Write as _;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use string_interner::DefaultSymbol as Sym;

use crate::aggregate::Aggregate;
use crate::aggregate::Map;
use crate::aggregate::series::{Strings, same};
use crate::aggregate::short_list::ShortList;
use crate::aggregate::uid::{Key, KeyRef};
use crate::controls::Controls;
use crate::exposition::{Family, Type, always};
use crate::report::{Outcome, Report, SubjectView};

/// Where a resource stands under a control: the `status` label of
/// `policyreport_control_resources`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ControlStatus {
    /// It has a matching pass and no failing, warning or error result.
    Compliant,
    /// It has a matching fail, warn or error result.
    Noncompliant,
    /// All its matching results are skips (a PolicyException, say): it is
    /// not part of the compliance percentage.
    Excepted,
}

impl ControlStatus {
    /// Every status, in label order.
    pub const ALL: [ControlStatus; 3] = [Self::Compliant, Self::Noncompliant, Self::Excepted];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compliant => "compliant",
            Self::Noncompliant => "noncompliant",
            Self::Excepted => "excepted",
        }
    }
}

/// One report's contribution to one resource under one control.
#[derive(Debug)]
pub(in crate::aggregate) struct ControlDelta {
    pub control: u16,
    /// The resource: its uid, else `kind/namespace/name`.
    resource: Key,
    namespace: Sym,
    kind: Sym,
    pass: u32,
    bad: u32,
    skip: u32,
}

#[derive(Debug)]
struct Tally {
    namespace: Sym,
    kind: Sym,
    pass: u32,
    bad: u32,
    skip: u32,
}

impl Tally {
    /// The resource's status; `None` when no result is left.
    fn status(&self) -> Option<ControlStatus> {
        if self.bad > 0 {
            Some(ControlStatus::Noncompliant)
        } else if self.pass > 0 {
            Some(ControlStatus::Compliant)
        } else if self.skip > 0 {
            Some(ControlStatus::Excepted)
        } else {
            None
        }
    }
}

/// The state of one control.
#[derive(Debug, Default)]
pub(in crate::aggregate) struct ControlState {
    resources: Map<Key, Tally>,
    counts: Map<(Sym, Sym, ControlStatus), u64>,
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
                skip: 0,
            }),
        };
        let before = tally.status();
        if sign > 0 {
            tally.pass += d.pass;
            tally.bad += d.bad;
            tally.skip += d.skip;
        } else {
            tally.pass = tally.pass.saturating_sub(d.pass);
            tally.bad = tally.bad.saturating_sub(d.bad);
            tally.skip = tally.skip.saturating_sub(d.skip);
        }
        let after = tally.status();
        let key = |status| (tally.namespace, tally.kind, status);
        let (k_before, k_after) = (before.map(key), after.map(key));
        if after.is_none() {
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

    /// Visit the counts: namespace, kind, status, resources.
    pub fn for_each(&self, mut f: impl FnMut(Sym, Sym, ControlStatus, u64)) {
        let mut sorted: Vec<_> = self.counts.iter().collect();
        sorted.sort_by_key(|((ns, kind, c), _)| (*ns, *kind, *c));
        for ((ns, kind, status), n) in sorted {
            f(*ns, *kind, *status, *n);
        }
    }
}

/// Remembers which controls match a (policy, category, rule), so that
/// glob matching runs once per distinct rule, not once per result.
#[derive(Debug, Default)]
pub(in crate::aggregate) struct Matcher {
    hasher: RandomState,
    table: HashTable<Matched>,
}

#[derive(Debug)]
struct Matched {
    policy: Box<str>,
    category: Box<str>,
    rule: Box<str>,
    controls: Box<[u16]>,
}

impl Matcher {
    /// Distinct rules remembered at most; beyond, the memory starts over
    /// (policies renamed again and again must not grow it forever). The
    /// memo's gain is in docs/benchmarks.md (the per-rule control memo); the
    /// bound is a memory guard, not tuned.
    const CAPACITY: usize = 16_384;

    /// Indices of the controls matching a result of this policy, category
    /// and rule.
    pub(super) fn matching(
        &mut self,
        controls: &Controls,
        policy: &str,
        category: &str,
        rule: &str,
    ) -> &[u16] {
        let hash = self.hasher.hash_one((policy, category, rule));
        if self.table.len() >= Self::CAPACITY
            && self
                .table
                .find(hash, |m| m.is(policy, category, rule))
                .is_none()
        {
            self.table.clear();
        }
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |m| m.is(policy, category, rule),
            |m| hasher.hash_one((&*m.policy, &*m.category, &*m.rule)),
        );
        let matched = match entry {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v
                .insert(Matched {
                    policy: policy.into(),
                    category: category.into(),
                    rule: rule.into(),
                    controls: controls
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.matches(policy, category, rule))
                        .map(|(i, _)| i as u16)
                        .collect(),
                })
                .into_mut(),
        };
        &matched.controls
    }
}

impl Matched {
    fn is(&self, policy: &str, category: &str, rule: &str) -> bool {
        same(&self.policy, policy) && same(&self.category, category) && same(&self.rule, rule)
    }
}

/// What one report contributes to each control.
pub(super) fn deltas(
    controls: &Controls,
    matcher: &mut Matcher,
    report: &Report,
    namespace: &str,
    strings: &mut Strings,
) -> Box<[ControlDelta]> {
    if controls.is_empty() {
        return Box::new([]);
    }
    let mut acc: ShortList<ControlDelta> = ShortList::with_capacity(0);
    let hasher = RandomState::default();
    let hash = |control: u16, resource: KeyRef<'_>| hasher.hash_one((control, resource));
    let mut key = String::new();
    let scope = report.scope();
    for r in report.results() {
        let (pass, bad, skip) = match r.outcome {
            Outcome::Pass => (1, 0, 0),
            Outcome::Fail | Outcome::Warn | Outcome::Error => (0, 1, 0),
            Outcome::Skip => (0, 0, 1),
        };
        let matching = matcher.matching(controls, r.policy, r.category, r.rule);
        for &i in matching {
            let Some(control) = controls.get(i as usize) else {
                continue;
            };
            let mut count = |s: SubjectView<'_>| {
                if !control.counts_kind(s.kind) {
                    return;
                }
                let ns = if s.namespace.is_empty() {
                    namespace
                } else {
                    s.namespace
                };
                key.clear();
                if s.uid.is_empty() {
                    let _ = write!(key, "{}/{ns}/{}", s.kind, s.name);
                } else {
                    key.push_str(s.uid);
                }
                let resource = KeyRef::of(&key);
                let same = |d: &ControlDelta| d.control == i && d.resource.as_ref() == resource;
                let found = acc.find(|| hash(i, resource), same);
                let at = match found {
                    Some(at) => at,
                    None => acc.push(
                        ControlDelta {
                            control: i,
                            resource: resource.to_key(),
                            namespace: strings.intern(ns),
                            kind: strings.intern(s.kind),
                            pass: 0,
                            bad: 0,
                            skip: 0,
                        },
                        |d| hash(d.control, d.resource.as_ref()),
                    ),
                };
                let d = acc.get_mut(at);
                d.pass += pass;
                d.bad += bad;
                d.skip += skip;
            };
            if r.subject_count() == 0 {
                scope.into_iter().for_each(&mut count);
            } else {
                r.subjects().for_each(&mut count);
            }
        }
    }
    acc.into_vec().into_boxed_slice()
}

impl Aggregate {
    /// Visit `policyreport_control_resources`: control, namespace, kind,
    /// status, and the number of resources.
    pub fn for_each_control(&self, mut f: impl FnMut(&str, &str, &str, ControlStatus, u64)) {
        for (control, state) in self
            .reports
            .controls
            .iter()
            .zip(&self.reports.control_state)
        {
            state.for_each(|ns, kind, status, n| {
                f(
                    &control.name,
                    self.strings.resolve(ns),
                    self.strings.resolve(kind),
                    status,
                    n,
                )
            });
        }
    }
}

/// The families this index serves, in serving order.
pub(in crate::aggregate) const FAMILIES: &[Family<Aggregate>] = &[Family {
    name: "policyreport_control_resources",
    help: "Resources per compliance control: compliant when all matching results pass, noncompliant when any fails, warns or errors, excepted when all are skips.",
    kind: Type::Gauge,
    when: always,
    samples: |a, s| {
        a.for_each_control(|control, namespace, kind, status, n| {
            let labels = [
                ("control", control),
                ("namespace", namespace),
                ("kind", kind),
                ("status", status.as_str()),
            ];
            s.write(labels, n)
        })
    },
}];
