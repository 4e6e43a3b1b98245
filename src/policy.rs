//! Kyverno policies: each policy's mode (audit, enforce, mixed or none), the
//! mode in force per namespace, and the annotations dashboards show next to
//! it.
//!
//! For `kyverno.io` ClusterPolicy and Policy, the policy-wide mode combines
//! each validate rule's action (its `validate.failureAction`, else the spec's
//! `validationFailureAction`, else Audit) with the actions of every override
//! entry. Per namespace N, each validate rule takes the first entry that
//! applies to N among the rule's `failureActionOverrides` (or, when the rule
//! has none, the spec's `validationFailureActionOverrides`), else its action:
//! the order Kyverno 1.14 to 1.18 route rules in (`pkg/policycache`). For the
//! `policies.kyverno.io` CEL kinds, `validationActions` containing Deny means
//! enforce, anything else audit, in every namespace.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::decode::DecodeError;
use crate::kind::{Kind, Role};

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

/// A decoded policy: what `policyreport_policy_info` shows, and how its mode
/// varies by namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The policy-wide information.
    pub info: PolicyInfo,
    /// The mode per namespace.
    pub routing: Routing,
}

/// How a policy's mode is decided per namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routing {
    /// For a namespaced policy, its namespace: the only one it applies to.
    pub own_namespace: Option<String>,
    /// The rules.
    pub rules: Rules,
}

/// The rules a namespace's mode is computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rules {
    /// The same mode everywhere (the CEL kinds, and policies without a
    /// validate rule, whose mode is [`Mode::None`]).
    Fixed(Mode),
    /// One entry per validate rule.
    PerRule(Vec<RuleRoute>),
}

/// One validate rule: the override entries it consults in order, and its
/// action when none applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRoute {
    /// The rule's own overrides, or the spec's when it has none.
    pub overrides: Vec<Override>,
    /// The rule's `failureAction`, else the spec's, else Audit.
    pub action: Mode,
}

/// One entry of `validationFailureActionOverrides` or
/// `failureActionOverrides`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// Its action.
    pub action: Mode,
    /// `namespaces` patterns (`*` and `?` wildcards); empty when not given.
    pub namespaces: Vec<String>,
    /// `namespaceSelector`, when given.
    pub selector: Option<Selector>,
}

/// A Kubernetes label selector.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector {
    /// `matchLabels`.
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`.
    pub expressions: Vec<Expression>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expression {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values (`In` and `NotIn`).
    pub values: Vec<String>,
}

/// A label selector operator.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Operator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// A namespace's labels, as far as they are known.
pub type Labels = BTreeMap<String, String>;

impl Selector {
    /// Whether labels match this selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator {
                    Operator::In => value.is_some_and(|v| e.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !e.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

impl Override {
    /// Whether this entry applies to namespace `ns` (whose labels are
    /// `labels`, when known): every condition it gives holds. No entry
    /// applies to `""` (cluster-scoped resources), and a selector never
    /// matches a namespace whose labels are unknown.
    pub fn applies(&self, ns: &str, labels: Option<&Labels>) -> bool {
        if ns.is_empty() {
            return false;
        }
        let by_name = self.namespaces.is_empty() || self.namespaces.iter().any(|p| wildcard(p, ns));
        let by_labels = self
            .selector
            .as_ref()
            .is_none_or(|s| labels.is_some_and(|l| s.matches(l)));
        by_name && by_labels
    }
}

impl Routing {
    /// The mode in force in namespace `ns`, given a lookup of namespace
    /// labels. [`Mode::None`] for a policy without validate rules.
    pub fn mode_in<'a>(&self, ns: &str, labels: impl Fn(&str) -> Option<&'a Labels>) -> Mode {
        match &self.rules {
            Rules::Fixed(mode) => *mode,
            Rules::PerRule(rules) => {
                let known = labels(ns);
                combine(rules.iter().map(|r| {
                    r.overrides
                        .iter()
                        .find(|o| o.applies(ns, known))
                        .map_or(r.action, |o| o.action)
                }))
            }
        }
    }

    /// The namespaces the overrides name literally (without wildcards).
    pub fn literal_namespaces(&self) -> impl Iterator<Item = &str> {
        let rules = match &self.rules {
            Rules::PerRule(rules) => rules.as_slice(),
            Rules::Fixed(_) => &[],
        };
        rules
            .iter()
            .flat_map(|r| &r.overrides)
            .flat_map(|o| &o.namespaces)
            .map(String::as_str)
            .filter(|p| !p.is_empty() && !p.contains(['*', '?']))
    }
}

/// Combine modes: [`Mode::None`] is left out; the rest give `audit` or
/// `enforce` when all agree, `mixed` when they differ, `none` when none is
/// left.
pub fn combine(modes: impl Iterator<Item = Mode>) -> Mode {
    let mut out = Mode::None;
    for m in modes {
        out = match out {
            Mode::None => m,
            o if o == m => o,
            _ => return Mode::Mixed,
        };
    }
    out
}

/// Kyverno's namespace patterns: `*` matches any run of characters, `?` one
/// character, everything else itself (as Kyverno's `wildcard.CheckPatterns`
/// does; a glob library would also give `[`, `{` and `\` meanings).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
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
    /// The CEL kinds.
    #[serde(default)]
    validation_actions: Option<Vec<String>>,
    /// The CEL kinds.
    #[serde(default)]
    evaluation: Option<EvaluationIn>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OverrideIn {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    namespace_selector: Option<SelectorIn>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SelectorIn {
    #[serde(default)]
    match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    match_expressions: Option<Vec<ExpressionIn>>,
}

#[derive(Deserialize, Default)]
struct ExpressionIn {
    key: String,
    operator: String,
    #[serde(default)]
    values: Option<Vec<String>>,
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

fn invalid(field: &str, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Decode a policy object of the given kind.
pub fn decode(kind: Kind, raw: &str) -> Result<Policy, DecodeError> {
    let p: PolicyIn = serde_json::from_str(raw).map_err(|e| invalid("policy", e.to_string()))?;
    let name = p.metadata.name.unwrap_or_default();
    if name.is_empty() {
        return Err(invalid("metadata.name", "missing"));
    }
    let own_namespace = p
        .metadata
        .namespace
        .filter(|ns| kind.namespaced() && !ns.is_empty());
    let policy = match &own_namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name,
    };
    let spec = p.spec.unwrap_or_default();
    let (mode, rules, background) = if kind.role() == Role::CelPolicy {
        let actions = spec.validation_actions.unwrap_or_default();
        let mode = if actions.iter().any(|a| a.eq_ignore_ascii_case("deny")) {
            Mode::Enforce
        } else {
            Mode::Audit
        };
        let bg = spec
            .evaluation
            .and_then(|e| e.background)
            .and_then(|b| b.enabled);
        (mode, Rules::Fixed(mode), bg.unwrap_or(true))
    } else {
        let (mode, rules) = kyverno_mode(&spec)?;
        (mode, rules, spec.background.unwrap_or(true))
    };
    let mut annotations = p.metadata.annotations.unwrap_or_default();
    let mut take = |key: &str| {
        annotations
            .remove(&format!("policies.kyverno.io/{key}"))
            .unwrap_or_default()
    };
    Ok(Policy {
        info: PolicyInfo {
            policy,
            mode,
            category: take("category"),
            severity: take("severity"),
            title: take("title"),
            background,
        },
        routing: Routing {
            own_namespace,
            rules,
        },
    })
}

fn parse_action(field: &str, a: &str) -> Result<Mode, DecodeError> {
    if a.eq_ignore_ascii_case("audit") {
        Ok(Mode::Audit)
    } else if a.eq_ignore_ascii_case("enforce") {
        Ok(Mode::Enforce)
    } else {
        Err(invalid(field, format!("unknown failure action `{a}`")))
    }
}

fn overrides(field: &str, list: Option<&Vec<OverrideIn>>) -> Result<Vec<Override>, DecodeError> {
    let mut out = Vec::new();
    for (i, o) in list.into_iter().flatten().enumerate() {
        let field = format!("{field}[{i}]");
        // An entry without an action routes nothing.
        let Some(action) = &o.action else { continue };
        let selector = match &o.namespace_selector {
            None => None,
            Some(s) => {
                let mut expressions = Vec::new();
                for (j, e) in s.match_expressions.iter().flatten().enumerate() {
                    let operator = match e.operator.as_str() {
                        "In" => Operator::In,
                        "NotIn" => Operator::NotIn,
                        "Exists" => Operator::Exists,
                        "DoesNotExist" => Operator::DoesNotExist,
                        other => {
                            return Err(invalid(
                                &format!(
                                    "{field}.namespaceSelector.matchExpressions[{j}].operator"
                                ),
                                format!("unknown operator `{other}`"),
                            ));
                        }
                    };
                    expressions.push(Expression {
                        key: e.key.clone(),
                        operator,
                        values: e.values.clone().unwrap_or_default(),
                    });
                }
                Some(Selector {
                    match_labels: s.match_labels.clone().unwrap_or_default(),
                    expressions,
                })
            }
        };
        out.push(Override {
            action: parse_action(&format!("{field}.action"), action)?,
            namespaces: o.namespaces.clone().unwrap_or_default(),
            selector,
        });
    }
    Ok(out)
}

fn kyverno_mode(spec: &SpecIn) -> Result<(Mode, Rules), DecodeError> {
    let validates: Vec<(usize, &ValidateIn)> = spec
        .rules
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, r)| r.validate.as_ref().map(|v| (i, v)))
        .collect();
    // Without a validate rule, the actions are not looked at.
    if validates.is_empty() {
        return Ok((Mode::None, Rules::Fixed(Mode::None)));
    }
    // Looked at only when a rule has no action of its own.
    let spec_action = || match &spec.validation_failure_action {
        Some(a) => parse_action("spec.validationFailureAction", a),
        None => Ok(Mode::Audit),
    };
    let spec_overrides = overrides(
        "spec.validationFailureActionOverrides",
        spec.validation_failure_action_overrides.as_ref(),
    )?;
    let mut seen: Vec<Mode> = Vec::new();
    let mut routes = Vec::new();
    for (i, v) in validates {
        let action = match &v.failure_action {
            Some(a) => parse_action(&format!("spec.rules[{i}].validate.failureAction"), a)?,
            None => spec_action()?,
        };
        let own = overrides(
            &format!("spec.rules[{i}].validate.failureActionOverrides"),
            v.failure_action_overrides.as_ref(),
        )?;
        seen.push(action);
        seen.extend(own.iter().map(|o| o.action));
        routes.push(RuleRoute {
            overrides: if own.is_empty() {
                spec_overrides.clone()
            } else {
                own
            },
            action,
        });
    }
    seen.extend(spec_overrides.iter().map(|o| o.action));
    Ok((combine(seen.into_iter()), Rules::PerRule(routes)))
}

#[cfg(test)]
mod tests;
