//! Compliance controls: named questions ("do pods have resource limits?")
//! answered from report results. The defaults follow the policy names of
//! Kyverno's sample library; `--controls FILE` replaces them.

use std::collections::HashSet;
use std::path::Path;

use globset::GlobSet;
use serde::Deserialize;

/// The built-in controls, in the `--controls` file format.
pub const DEFAULT_CONTROLS_YAML: &str = r#"# Controls: named compliance questions answered from report results.
# A result belongs to a control when its policy matches one of `policies`
# (globs), or one of the comma-separated entries of its category (trimmed)
# matches one of `categories` (globs); `rules` (globs), when given, narrow the
# match. Only subjects of
# the listed `kinds` count (all kinds when empty). `target` is the compliance
# percentage the control should reach.
controls:
  - name: resource-limits
    policies: [require-requests-limits]
    kinds: [Pod]
    target: 100
  - name: approved-registries
    policies: [restrict-image-registries, advanced-restrict-image-registries]
    kinds: [Pod]
    target: 100
  - name: secure-context
    categories:
      - Pod Security Standards (Baseline)*
      - Pod Security Standards (Restricted)*
    policies: ["podsecurity-subrule-*"]
    kinds: [Pod]
    target: 100
"#;

/// Errors loading a controls file.
#[derive(Debug, thiserror::Error)]
pub enum ControlsError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML does not have the expected shape.
    #[error("parsing controls: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
    /// A glob does not compile.
    #[error("control {control}: bad glob {glob:?}: {reason}")]
    Glob {
        /// The control's name.
        control: String,
        /// The glob.
        glob: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A control is not usable as written.
    #[error("control {control:?}: {reason}")]
    Invalid {
        /// The control's name.
        control: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    controls: Vec<Spec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default = "full")]
    target: f64,
}

fn full() -> f64 {
    100.0
}

/// One control.
#[derive(Debug)]
pub struct Control {
    /// Its name, the `control` label value.
    pub name: String,
    /// Target compliance, in percent.
    pub target: f64,
    policies: GlobSet,
    categories: GlobSet,
    rules: Option<GlobSet>,
    kinds: Vec<String>,
}

impl Control {
    /// Whether a result with this policy, category and rule belongs here.
    pub fn matches(&self, policy: &str, category: &str, rule: &str) -> bool {
        self.covers(policy, category) && self.rules.as_ref().is_none_or(|r| r.is_match(rule))
    }

    /// Whether results of this policy and category can belong here, by
    /// policy or by category, whatever their rule.
    pub fn covers(&self, policy: &str, category: &str) -> bool {
        self.policies.is_match(policy)
            || (!self.categories.is_empty()
                && category
                    .split(',')
                    .any(|c| self.categories.is_match(c.trim())))
    }

    /// Whether subjects of this kind count for the control.
    pub fn counts_kind(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind)
    }
}

/// The configured controls.
#[derive(Debug)]
pub struct Controls {
    list: Vec<Control>,
}

impl Default for Controls {
    fn default() -> Self {
        Self::defaults()
    }
}

impl Controls {
    /// The built-in controls.
    pub fn defaults() -> Self {
        match Self::from_yaml(DEFAULT_CONTROLS_YAML) {
            Ok(c) => c,
            // The defaults are a constant covered by tests.
            Err(e) => panic!("built-in controls are invalid: {e}"),
        }
    }

    /// No controls at all.
    pub fn none() -> Self {
        Self { list: Vec::new() }
    }

    /// Load controls from a YAML file.
    pub fn load(path: &Path) -> Result<Self, ControlsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ControlsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Parse controls from YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, ControlsError> {
        let file: File = serde_yaml_ng::from_str(text)?;
        let mut list = Vec::new();
        let mut names = HashSet::new();
        for spec in file.controls {
            let invalid = |reason: &str| ControlsError::Invalid {
                control: spec.name.clone(),
                reason: reason.into(),
            };
            if spec.name.is_empty() {
                return Err(invalid("the name is empty"));
            }
            if !names.insert(spec.name.clone()) {
                return Err(invalid("the name is used twice"));
            }
            if spec.policies.is_empty() && spec.categories.is_empty() {
                return Err(invalid("needs at least one of policies or categories"));
            }
            if !(0.0..=100.0).contains(&spec.target) {
                return Err(invalid("target must be a percentage from 0 to 100"));
            }
            let rules = if spec.rules.is_empty() {
                None
            } else {
                Some(globs(&spec.name, &spec.rules)?)
            };
            list.push(Control {
                policies: globs(&spec.name, &spec.policies)?,
                categories: globs(
                    &spec.name,
                    &spec
                        .categories
                        .iter()
                        .map(|c| c.trim().to_owned())
                        .collect::<Vec<_>>(),
                )?,
                rules,
                kinds: spec.kinds,
                target: spec.target,
                name: spec.name,
            });
        }
        Ok(Self { list })
    }

    /// The controls, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Control> {
        self.list.iter()
    }

    /// Number of controls.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The control at an index.
    pub fn get(&self, index: usize) -> Option<&Control> {
        self.list.get(index)
    }

    /// The first control a policy belongs to, for labelling blocked
    /// admissions: by policy glob, or by the policy's category.
    pub fn first_for(&self, policy: &str, category: &str, rule: &str) -> Option<&Control> {
        self.list.iter().find(|c| c.matches(policy, category, rule))
    }
}

fn globs(control: &str, patterns: &[String]) -> Result<GlobSet, ControlsError> {
    crate::glob::set(patterns).map_err(|e| ControlsError::Glob {
        control: control.into(),
        glob: e.pattern,
        reason: e.source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_library_names() {
        let c = Controls::defaults();
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["resource-limits", "approved-registries", "secure-context"]
        );
        let m = |p: &str, cat: &str| -> Vec<&str> {
            c.iter()
                .filter(|c| c.matches(p, cat, "r"))
                .map(|c| c.name.as_str())
                .collect()
        };
        assert_eq!(
            m(
                "require-requests-limits",
                "Best Practices, EKS Best Practices"
            ),
            ["resource-limits"]
        );
        assert_eq!(
            m("advanced-restrict-image-registries", ""),
            ["approved-registries"]
        );
        assert_eq!(
            m(
                "disallow-privileged-containers",
                "Pod Security Standards (Baseline)"
            ),
            ["secure-context"]
        );
        assert_eq!(
            m("x", " Pod Security Standards (Restricted) ,Other"),
            ["secure-context"],
            "entries are trimmed"
        );
        assert_eq!(
            m(
                "podsecurity-subrule-restricted",
                "Pod Security, EKS Best Practices"
            ),
            ["secure-context"]
        );
        assert!(m("require-labels", "Best Practices").is_empty());
        // The CEL ports of the Pod Security policies.
        assert_eq!(
            m(
                "disallow-host-path",
                "Pod Security Standards (Baseline) in ValidatingPolicy"
            ),
            ["secure-context"]
        );
        assert_eq!(
            m(
                "require-run-as-nonroot",
                "Other, Pod Security Standards (Restricted) in ValidatingPolicy"
            ),
            ["secure-context"]
        );
        assert!(m("x", "Pod Security Standards").is_empty());
        assert!(
            c.iter()
                .all(|c| c.counts_kind("Pod") && !c.counts_kind("Deployment"))
        );
    }

    #[test]
    fn rule_globs_narrow_and_several_controls_can_match() {
        let c = Controls::from_yaml(
            "controls:\n- {name: a, policies: ['p*'], rules: ['check-*']}\n- {name: b, categories: [X], kinds: []}\n",
        )
        .expect("valid");
        let a = c.get(0).expect("a");
        assert!(a.matches("pol", "", "check-1"));
        assert!(!a.matches("pol", "", "other"));
        assert!(c.get(1).expect("b").counts_kind("Deployment"));
        let both: Vec<&str> = c
            .iter()
            .filter(|x| x.matches("p1", "X", "check-2"))
            .map(|x| x.name.as_str())
            .collect();
        assert_eq!(both, ["a", "b"]);
        assert_eq!(
            c.first_for("zzz", "Y, X", "r").map(|x| x.name.as_str()),
            Some("b")
        );
    }

    #[test]
    fn rejects_bad_files() {
        assert!(
            Controls::from_yaml("controls: [{name: a}]").is_err(),
            "no matcher"
        );
        assert!(
            Controls::from_yaml("controls: [{name: a, policies: ['[']}]").is_err(),
            "bad glob"
        );
        assert!(
            Controls::from_yaml("controls: [{name: a, policies: [x], color: red}]").is_err(),
            "unknown field"
        );
        assert!(
            Controls::from_yaml("controls: [{name: a, policies: [x]}, {name: a, policies: [y]}]")
                .is_err()
        );
        assert!(Controls::from_yaml("controls: [{name: a, policies: [x], target: 120}]").is_err());
    }
}
