//! Kyverno policies: each policy's mode (audit, enforce, mixed or none) and
//! the annotations dashboards show next to it.
//!
//! For `kyverno.io` ClusterPolicy and Policy, each validate rule's action is
//! its `validate.failureAction`, else the spec's `validationFailureAction`,
//! else Audit; override entries add their actions. For `policies.kyverno.io`
//! ValidatingPolicy, `validationActions` containing Deny means enforce.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::kind::Kind;
use crate::report::DecodeError;

/// A policy's resolved enforcement mode.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Every validate rule only audits.
    Audit,
    /// Every validate rule enforces.
    Enforce,
    /// Rules or overrides disagree.
    Mixed,
    /// The policy has no validate rule.
    None,
}

impl Mode {
    /// All modes.
    pub const ALL: [Mode; 4] = [Mode::Audit, Mode::Enforce, Mode::Mixed, Mode::None];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Enforce => "enforce",
            Self::Mixed => "mixed",
            Self::None => "none",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `policyreport_policy_info` shows about a policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyInfo {
    /// `name` for cluster-scoped policies, `namespace/name` for Policy.
    pub policy: String,
    /// The resolved mode.
    pub mode: Mode,
    /// `policies.kyverno.io/category`.
    pub category: String,
    /// `policies.kyverno.io/severity`.
    pub severity: String,
    /// `policies.kyverno.io/title`.
    pub title: String,
    /// Whether background scans run: `true` or `false`.
    pub background: bool,
}

#[derive(Deserialize, Default)]
struct MetaIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SpecIn {
    #[serde(default)]
    validation_failure_action: Option<String>,
    #[serde(default)]
    validation_failure_action_overrides: Option<Vec<OverrideIn>>,
    #[serde(default)]
    background: Option<bool>,
    #[serde(default)]
    rules: Option<Vec<RuleIn>>,
    /// ValidatingPolicy.
    #[serde(default)]
    validation_actions: Option<Vec<String>>,
    /// ValidatingPolicy.
    #[serde(default)]
    evaluation: Option<EvaluationIn>,
}

#[derive(Deserialize, Default)]
struct OverrideIn {
    #[serde(default)]
    action: Option<String>,
}

#[derive(Deserialize, Default)]
struct RuleIn {
    #[serde(default)]
    validate: Option<ValidateIn>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ValidateIn {
    #[serde(default)]
    failure_action: Option<String>,
    #[serde(default)]
    failure_action_overrides: Option<Vec<OverrideIn>>,
}

#[derive(Deserialize, Default)]
struct EvaluationIn {
    #[serde(default)]
    background: Option<BackgroundIn>,
}

#[derive(Deserialize, Default)]
struct BackgroundIn {
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Deserialize)]
struct PolicyIn {
    #[serde(default)]
    metadata: MetaIn,
    #[serde(default)]
    spec: Option<SpecIn>,
}

/// Decode a policy object of the given kind.
pub fn decode(kind: Kind, raw: &str) -> Result<PolicyInfo, DecodeError> {
    let invalid = |field: &str, reason: String| DecodeError {
        field: field.into(),
        reason,
    };
    let p: PolicyIn = serde_json::from_str(raw).map_err(|e| invalid("policy", e.to_string()))?;
    let name = p.metadata.name.unwrap_or_default();
    if name.is_empty() {
        return Err(invalid("metadata.name", "missing".into()));
    }
    let policy = match (kind, p.metadata.namespace.as_deref()) {
        (Kind::Policy, Some(ns)) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name,
    };
    let spec = p.spec.unwrap_or_default();
    let (mode, background) = if kind == Kind::ValidatingPolicy {
        let actions = spec.validation_actions.unwrap_or_default();
        let mode = if actions.iter().any(|a| a.eq_ignore_ascii_case("deny")) {
            Mode::Enforce
        } else if actions.is_empty() {
            Mode::None
        } else {
            Mode::Audit
        };
        let bg = spec
            .evaluation
            .and_then(|e| e.background)
            .and_then(|b| b.enabled);
        (mode, bg.unwrap_or(true))
    } else {
        (
            kyverno_mode(&spec).map_err(|r| invalid("spec", r))?,
            spec.background.unwrap_or(true),
        )
    };
    let mut annotations = p.metadata.annotations.unwrap_or_default();
    let mut take = |key: &str| {
        annotations
            .remove(&format!("policies.kyverno.io/{key}"))
            .unwrap_or_default()
    };
    Ok(PolicyInfo {
        policy,
        mode,
        category: take("category"),
        severity: take("severity"),
        title: take("title"),
        background,
    })
}

fn kyverno_mode(spec: &SpecIn) -> Result<Mode, String> {
    let parse = |a: &str| -> Result<Mode, String> {
        if a.eq_ignore_ascii_case("audit") {
            Ok(Mode::Audit)
        } else if a.eq_ignore_ascii_case("enforce") {
            Ok(Mode::Enforce)
        } else {
            Err(format!("unknown failure action `{a}`"))
        }
    };
    let spec_action = spec.validation_failure_action.as_deref().unwrap_or("Audit");
    let mut seen: Vec<Mode> = Vec::new();
    let mut any_validate = false;
    for rule in spec.rules.iter().flatten() {
        let Some(v) = &rule.validate else { continue };
        any_validate = true;
        seen.push(parse(v.failure_action.as_deref().unwrap_or(spec_action))?);
        for o in v.failure_action_overrides.iter().flatten() {
            if let Some(a) = &o.action {
                seen.push(parse(a)?);
            }
        }
    }
    if !any_validate {
        return Ok(Mode::None);
    }
    for o in spec.validation_failure_action_overrides.iter().flatten() {
        if let Some(a) = &o.action {
            seen.push(parse(a)?);
        }
    }
    Ok(if seen.iter().all(|m| *m == seen[0]) {
        seen[0]
    } else {
        Mode::Mixed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(kind: Kind, spec: &str) -> Mode {
        let raw = format!(r#"{{"metadata":{{"name":"p","namespace":"ns"}},"spec":{spec}}}"#);
        decode(kind, &raw).expect("valid policy").mode
    }

    #[test]
    fn resolves_modes() {
        let validate = r#"{"validate":{"pattern":{}}}"#;
        assert_eq!(
            mode(Kind::ClusterPolicy, &format!(r#"{{"rules":[{validate}]}}"#)),
            Mode::Audit,
            "default"
        );
        assert_eq!(
            mode(
                Kind::ClusterPolicy,
                &format!(r#"{{"validationFailureAction":"enforce","rules":[{validate}]}}"#)
            ),
            Mode::Enforce,
            "lowercase legacy value"
        );
        assert_eq!(
            mode(
                Kind::ClusterPolicy,
                r#"{"validationFailureAction":"Audit","rules":[{"validate":{"failureAction":"Enforce"}}]}"#
            ),
            Mode::Enforce,
            "rule action wins over spec action"
        );
        assert_eq!(
            mode(
                Kind::ClusterPolicy,
                r#"{"rules":[{"validate":{"failureAction":"Enforce"}},{"validate":{"failureAction":"Audit"}}]}"#
            ),
            Mode::Mixed,
            "per-rule actions differ"
        );
        assert_eq!(
            mode(
                Kind::ClusterPolicy,
                &format!(
                    r#"{{"validationFailureAction":"Audit","validationFailureActionOverrides":[{{"action":"Enforce","namespaces":["prod"]}}],"rules":[{validate}]}}"#
                )
            ),
            Mode::Mixed,
            "spec override adds its action"
        );
        assert_eq!(
            mode(
                Kind::ClusterPolicy,
                r#"{"rules":[{"validate":{"failureAction":"Audit","failureActionOverrides":[{"action":"Enforce"}]}}]}"#
            ),
            Mode::Mixed,
            "rule override adds its action"
        );
        assert_eq!(
            mode(Kind::ClusterPolicy, r#"{"rules":[{"mutate":{}}]}"#),
            Mode::None,
            "no validate rule"
        );
        assert_eq!(mode(Kind::ClusterPolicy, r#"{}"#), Mode::None);
        assert_eq!(
            mode(Kind::ValidatingPolicy, r#"{"validationActions":["Deny"]}"#),
            Mode::Enforce
        );
        assert_eq!(
            mode(
                Kind::ValidatingPolicy,
                r#"{"validationActions":["Audit","Warn"]}"#
            ),
            Mode::Audit
        );
        assert_eq!(mode(Kind::ValidatingPolicy, r#"{}"#), Mode::None);
    }

    #[test]
    fn names_annotations_and_background() {
        let raw = r#"{"metadata":{"name":"require-team","namespace":"prod","annotations":{
            "policies.kyverno.io/title":"Require Team","policies.kyverno.io/category":"Best Practices",
            "policies.kyverno.io/severity":"medium"}},"spec":{"background":false,"rules":[{"validate":{}}]}}"#;
        let p = decode(Kind::Policy, raw).expect("valid");
        assert_eq!(
            p,
            PolicyInfo {
                policy: "prod/require-team".into(),
                mode: Mode::Audit,
                category: "Best Practices".into(),
                severity: "medium".into(),
                title: "Require Team".into(),
                background: false,
            }
        );
        assert_eq!(
            decode(Kind::ClusterPolicy, raw).expect("valid").policy,
            "require-team"
        );
    }

    #[test]
    fn rejects_bad_policies() {
        assert!(
            decode(Kind::ClusterPolicy, r#"{"metadata":{}}"#).is_err(),
            "no name"
        );
        let bad_action = r#"{"metadata":{"name":"p"},"spec":{"validationFailureAction":"Block","rules":[{"validate":{}}]}}"#;
        assert!(decode(Kind::ClusterPolicy, bad_action).is_err());
        assert!(
            decode(
                Kind::ClusterPolicy,
                r#"{"metadata":{"name":"p"},"spec":{"rules":5}}"#
            )
            .is_err()
        );
        assert!(
            decode(
                Kind::ClusterPolicy,
                r#"{"metadata":{"name":"p","annotations":{"a":1}}}"#
            )
            .is_err()
        );
    }
}
