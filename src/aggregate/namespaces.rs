//! The Namespace index: each Namespace in scope and its labels, and the
//! metric label names of the `--namespace-labels` keys. Policies' modes
//! read the labels too (an override may select namespaces by label).
//!
//! Serves `policyreport_namespace_info`.

use std::collections::BTreeMap;

use tracing::warn;

use super::{Aggregate, remove_copy};
use crate::exposition::{Family, Type};
use crate::namespace::NamespaceInfo;
use crate::policy::Labels;

/// The Namespaces held and the label keys served.
#[derive(Debug)]
pub(super) struct Namespaces {
    /// `--namespace-labels`: (label key, metric label name).
    keys: Vec<(String, String)>,
    /// Namespace labels: every live copy; the first is used.
    labels: BTreeMap<String, Vec<Labels>>,
}

impl Namespaces {
    /// An empty index serving the `--namespace-labels` `keys`.
    pub(super) fn new(keys: &[String]) -> Self {
        Self {
            keys: namespace_label_names(keys),
            labels: BTreeMap::new(),
        }
    }

    /// A Namespace became visible.
    pub(super) fn apply(&mut self, n: &NamespaceInfo) {
        self.labels
            .entry(n.name.clone())
            .or_default()
            .push(n.labels.clone());
    }

    /// A visible Namespace went away.
    pub(super) fn delete(&mut self, n: &NamespaceInfo) {
        remove_copy(&mut self.labels, &n.name, &n.labels);
    }

    /// The labels of `namespace`, when it is held.
    pub(super) fn labels(&self, namespace: &str) -> Option<&Labels> {
        self.labels.get(namespace).and_then(|copies| copies.first())
    }
}

impl Aggregate {
    /// The label names of `policyreport_namespace_info` after `namespace`
    /// (`label_<key>`, as kube-state-metrics names them); empty unless
    /// `--namespace-labels` is given.
    pub fn namespace_label_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.namespaces.keys.iter().map(|(_, name)| name.as_str())
    }

    /// Visit `policyreport_namespace_info`, sorted by namespace: each
    /// Namespace in scope and the values of the `--namespace-labels` keys,
    /// in the order given (empty when a Namespace lacks the label).
    pub fn for_each_namespace_info(&self, mut f: impl FnMut(&str, &[&str])) {
        let keys = &self.namespaces.keys;
        if keys.is_empty() {
            return;
        }
        let mut values: Vec<&str> = Vec::with_capacity(keys.len());
        for (namespace, copies) in &self.namespaces.labels {
            let labels = copies.first();
            values.clear();
            values.extend(
                keys.iter()
                    .map(|(key, _)| labels.and_then(|l| l.get(key)).map_or("", String::as_str)),
            );
            f(namespace, &values);
        }
    }
}

/// The metric label for a Namespace label key, as kube-state-metrics names
/// them: `label_` and the key with every character that a Prometheus label
/// name cannot hold replaced by `_` (`app.kubernetes.io/team` gives
/// `label_app_kubernetes_io_team`).
pub fn namespace_label_name(key: &str) -> String {
    let sanitized: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("label_{sanitized}")
}

/// (key, metric label) for each `--namespace-labels` key, without empty
/// keys and without keys whose metric label an earlier key already has.
fn namespace_label_names(keys: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for key in keys.iter().filter(|k| !k.is_empty()) {
        let name = namespace_label_name(key);
        match out.iter().find(|(_, n)| *n == name) {
            Some((first, _)) => {
                warn!(
                    key,
                    first,
                    label = name,
                    "namespace label skipped: same metric label as another"
                )
            }
            None => out.push((key.clone(), name)),
        }
    }
    out
}

/// The families this index serves, in serving order.
pub(super) const FAMILIES: &[Family<Aggregate>] = &[Family {
    name: "policyreport_namespace_info",
    help: "Namespaces and the labels --namespace-labels names (as kube-state-metrics' kube_namespace_labels); always 1.",
    kind: Type::Gauge,
    when: |a| a.namespace_label_names().len() > 0,
    samples: |a, s| {
        let names: Vec<&str> = a.namespace_label_names().collect();
        a.for_each_namespace_info(|namespace, values| {
            let labels = std::iter::once(("namespace", namespace))
                .chain(names.iter().copied().zip(values.iter().copied()));
            s.write(labels, 1)
        })
    },
}];
