//! The policy index: each policy known (its name, kind, category, mode) and
//! how its mode varies by namespace. Admissions read policies' categories
//! to resolve their control.
//!
//! Serves `policyreport_policy_info` and
//! `policyreport_policy_namespace_mode`.

use std::collections::{BTreeMap, BTreeSet};

use super::labels::{CATEGORY, NAMESPACE, POLICY};
use super::{Aggregate, Map, remove_copy};
use crate::exposition::{Family, Type, always};
use crate::policy::{self, Mode, Policy, PolicyInfo, Routing};

/// The policies held.
#[derive(Debug, Default)]
pub(super) struct Policies {
    /// Each policy and how many live objects carry it.
    known: BTreeMap<PolicyInfo, u32>,
    /// How each policy's mode varies by namespace: every live copy (a policy
    /// may be in several files); the first is used.
    routing: BTreeMap<String, Vec<Routing>>,
}

impl Policies {
    /// A policy became visible.
    pub(super) fn apply(&mut self, p: &Policy) {
        *self.known.entry(p.info.clone()).or_default() += 1;
        self.routing
            .entry(p.info.policy.clone())
            .or_default()
            .push(p.routing.clone());
    }

    /// Whether the policy named `policy` has the `Deny` action everywhere
    /// (a CEL policy whose `validationActions` include Deny); `None` when no
    /// copy of it is held. Decides what its admission Events count as.
    pub(super) fn denies(&self, policy: &str) -> Option<bool> {
        let routing = self.routing.get(policy)?.first()?;
        Some(routing.rules == policy::Rules::Fixed(Mode::Enforce))
    }

    /// A visible policy went away.
    pub(super) fn delete(&mut self, p: &Policy) {
        if let Some(n) = self.known.get_mut(&p.info) {
            *n -= 1;
            if *n == 0 {
                self.known.remove(&p.info);
            }
        }
        remove_copy(&mut self.routing, &p.info.policy, &p.routing);
    }
}

impl Aggregate {
    /// Each policy's category: from policy objects first, else from results.
    pub(super) fn policy_categories(&self) -> Map<&str, &str> {
        let mut out: Map<&str, &str> = Map::default();
        self.reports.for_each_series(&self.strings, |values, _| {
            if !values[CATEGORY].is_empty() {
                out.entry(values[POLICY]).or_insert(values[CATEGORY]);
            }
        });
        for p in self
            .policies
            .known
            .keys()
            .filter(|p| !p.category.is_empty())
        {
            out.insert(&p.policy, &p.category);
        }
        out
    }

    /// Every policy currently known (a policy seen in several origins once).
    pub fn policies(&self) -> impl Iterator<Item = &PolicyInfo> {
        self.policies.known.keys()
    }

    /// Visit `policyreport_policy_namespace_mode`, sorted: policy,
    /// namespace, and the mode in force there, for every policy whose mode
    /// is not `none`. A namespaced policy has only its own namespace; any
    /// other has every namespace where it has results (`""` for
    /// cluster-scoped ones) and every namespace its overrides name
    /// literally. Computed when the state is rendered, not per scrape.
    pub fn for_each_namespace_mode(&self, mut f: impl FnMut(&str, &str, Mode)) {
        if self.policies.routing.is_empty() {
            return;
        }
        let targets = self.mode_targets();
        let labels = |ns: &str| self.namespaces.labels(ns);
        for (policy, (copies, namespaces, _)) in targets {
            for ns in namespaces {
                // Namespaces with results are in scope already; those an
                // override names may not be.
                if !self.namespace_filter.admits(ns) {
                    continue;
                }
                let mode = policy::combine(copies.iter().map(|r| r.mode_in(ns, labels)));
                if mode != Mode::None {
                    f(policy, ns, mode);
                }
            }
        }
    }

    /// Per policy: its copies' routing, the namespaces it has a mode in,
    /// and whether any copy is cluster-wide.
    fn mode_targets(&self) -> BTreeMap<&str, ModeTarget<'_>> {
        // Several policy objects may share a label (a ClusterPolicy and a
        // ValidatingPolicy of one name, or copies in several files): their
        // modes combine, so the result never depends on arrival order.
        let mut targets: BTreeMap<&str, ModeTarget<'_>> = BTreeMap::new();
        for (policy, copies) in &self.policies.routing {
            let mut namespaces = BTreeSet::new();
            let mut cluster_wide = false;
            for routing in copies {
                match &routing.own_namespace {
                    Some(ns) => {
                        namespaces.insert(ns.as_str());
                    }
                    None => {
                        cluster_wide = true;
                        namespaces.extend(routing.literal_namespaces());
                    }
                }
            }
            targets.insert(policy, (copies, namespaces, cluster_wide));
        }
        self.reports.for_each_series(&self.strings, |values, _| {
            if let Some((_, namespaces, true)) = targets.get_mut(values[POLICY]) {
                namespaces.insert(values[NAMESPACE]);
            }
        });
        targets
    }
}

/// A policy's copies, the namespaces it has a mode in, and whether any
/// copy is cluster-wide.
type ModeTarget<'a> = (&'a [Routing], BTreeSet<&'a str>, bool);

/// The families this index serves, in serving order.
pub(super) const FAMILIES: &[Family<Aggregate>] = &[
    Family {
        name: "policyreport_policy_info",
        help: "Kyverno policies and their mode (audit, enforce, mixed or none); always 1.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| {
            for p in a.policies() {
                let labels = [
                    ("policy", p.policy.as_str()),
                    ("mode", p.mode.as_str()),
                    ("category", p.category.as_str()),
                    ("severity", p.severity.as_str()),
                    ("title", p.title.as_str()),
                    ("background", if p.background { "true" } else { "false" }),
                ];
                s.write(labels, 1)
            }
        },
    },
    Family {
        name: "policyreport_policy_namespace_mode",
        help: "The mode (audit, enforce or mixed) a policy is in, per namespace where it has results or that its overrides name; always 1.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| {
            a.for_each_namespace_mode(|policy, namespace, mode| {
                let labels = [
                    ("policy", policy),
                    ("namespace", namespace),
                    ("mode", mode.as_str()),
                ];
                s.write(labels, 1)
            })
        },
    },
];
