//! The audit-first rollout guide walked with real Kyverno (`scripts/cluster
//! start DIR --kyverno`: its admission, background and reports controllers,
//! built from the module pinned in harness/kyverno/go.mod, against a real
//! kube-apiserver). Kyverno writes the reports and Events; every number is
//! checked against what the test itself created, never against the reports:
//!
//! - **Audit**: four policies in Audit (`restrict-image-registries` enforced in
//!   `payments` by an override), Pods of known classes in three namespaces;
//! - **Review**: results, control resources, percentages, violation rates,
//!   audit admission failures, the work list of `summary --failing`, verdicts
//!   and the mode per namespace equal the truth;
//! - **Offline**: `kyverno apply --policy-report` on the same policies and Pod
//!   manifests, read by `summary --files`, gives the cluster's results;
//! - **Fix**: the violating Pods replaced by fixed ones: 100%, violation rate
//!   0, and after the admission Events expire and the exporter restarts, each
//!   clean audit policy is `ready`;
//! - **Enforce**: every policy switched to Enforce, violating Pods refused by
//!   the API server, blocked admissions per policy, control and namespace
//!   equal to the refused attempts, verdict `enforced`, still 100%;
//! - **Keep monitoring**: a real Prometheus scrapes the exporter (and Kyverno's
//!   own admission metrics, which the dashboards prefer) through the
//!   walk with the rules of `deploy/`; at each step the violation-rate
//!   recording rules and every query of the rollout dashboard give the same
//!   numbers.
//!
//! `#[ignore]`d in a plain `cargo test` (it needs Go, Kyverno's binaries and
//! Prometheus, and takes about three minutes); `scripts/test` runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use policyreport_bench::exporter::{Build, exporter_binary, parse_results, workspace_root};
use policyreport_bench::prometheus::{
    Prometheus, Sample, dashboard_queries, deploy_rules, substitute,
};
use policyreport_bench::real::{RealCluster, crosscheck, eventually};
use policyreport_bench::reportgen::Counts;
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::http::get_once;
use policyreport_test_support::metrics::samples;
use serde_json::{Value, json};

/// The namespaces the walk creates Pods in.
const NAMESPACES: [&str; 3] = ["shop", "batch", "payments"];
/// Where `restrict-image-registries` enforces while it audits elsewhere.
const OVERRIDE_NS: &str = "payments";
/// Kyverno's reports controller aggregates admission reports 10 s after they
/// appear and queues a background scan 30 s after a change (constants in
/// 1.19.1, no flag sets them): a change shows in the reports within about a
/// minute on a loaded machine.
const SETTLE: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------ policies

/// A policy of the walk, with the labels its results carry.
struct Policy {
    name: &'static str,
    /// The validate rule (ClusterPolicy), or "" (ValidatingPolicy results
    /// carry no rule).
    rule: &'static str,
    control: &'static str,
    category: &'static str,
    severity: &'static str,
    source: &'static str,
    title: &'static str,
}

const POLICIES: [Policy; 4] = [
    Policy {
        name: "require-requests-limits",
        rule: "validate-resources",
        control: "resource-limits",
        category: "Best Practices, EKS Best Practices",
        severity: "medium",
        source: "kyverno",
        title: "Require Limits and Requests",
    },
    Policy {
        name: "restrict-image-registries",
        rule: "validate-registries",
        control: "approved-registries",
        category: "Best Practices, EKS Best Practices",
        severity: "medium",
        source: "kyverno",
        title: "Restrict Image Registries",
    },
    Policy {
        name: "podsecurity-subrule-baseline",
        rule: "baseline",
        control: "secure-context",
        category: "Pod Security Standards (Baseline)",
        severity: "high",
        source: "kyverno",
        title: "Baseline Pod Security Standard",
    },
    Policy {
        name: "disallow-privileged-containers",
        rule: "",
        control: "secure-context",
        category: "Pod Security Standards (Baseline) in ValidatingPolicy",
        severity: "high",
        source: "KyvernoValidatingPolicy",
        title: "Disallow Privileged Containers",
    },
];

const CONTROLS: [&str; 3] = ["resource-limits", "approved-registries", "secure-context"];

fn policy(name: &str) -> &'static Policy {
    POLICIES
        .iter()
        .find(|p| p.name == name)
        .expect("a policy of the walk")
}

/// What a Pod gets wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Class {
    no_limits: bool,
    bad_registry: bool,
    privileged: bool,
}

const OK: Class = Class {
    no_limits: false,
    bad_registry: false,
    privileged: false,
};
const NO_LIMITS: Class = Class {
    no_limits: true,
    ..OK
};
const BAD_REGISTRY: Class = Class {
    bad_registry: true,
    ..OK
};
const PRIVILEGED: Class = Class {
    privileged: true,
    ..OK
};

fn and(a: Class, b: Class) -> Class {
    Class {
        no_limits: a.no_limits || b.no_limits,
        bad_registry: a.bad_registry || b.bad_registry,
        privileged: a.privileged || b.privileged,
    }
}

/// Whether a Pod of class `c` fails the control (and so each of its
/// policies).
fn fails_control(control: &str, c: Class) -> bool {
    match control {
        "resource-limits" => c.no_limits,
        "approved-registries" => c.bad_registry,
        _ => c.privileged,
    }
}

fn fails(p: &Policy, c: Class) -> bool {
    fails_control(p.control, c)
}

fn annotations(p: &Policy) -> Value {
    json!({
        "policies.kyverno.io/title": p.title,
        "policies.kyverno.io/category": p.category,
        "policies.kyverno.io/severity": p.severity,
    })
}

/// The walk's policies, in Audit (`restrict-image-registries` with an
/// Enforce override for [`OVERRIDE_NS`]) or all in Enforce.
fn policies(enforce: bool) -> Vec<Value> {
    let action = if enforce { "Enforce" } else { "Audit" };
    let cluster_policy = |p: &Policy, validate: Value| {
        let mut spec = json!({
            "validationFailureAction": action,
            "background": true,
            "rules": [{
                "name": p.rule,
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": validate,
            }],
        });
        if p.name == "restrict-image-registries" {
            spec["validationFailureActionOverrides"] =
                json!([{"action": "Enforce", "namespaces": [OVERRIDE_NS]}]);
        }
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
               "metadata": {"name": p.name, "annotations": annotations(p)}, "spec": spec})
    };
    let limits = policy("require-requests-limits");
    let registries = policy("restrict-image-registries");
    let baseline = policy("podsecurity-subrule-baseline");
    let privileged = policy("disallow-privileged-containers");
    vec![
        cluster_policy(
            limits,
            json!({
                "message": "CPU and memory resource requests and memory limits are required.",
                "pattern": {"spec": {"containers": [{"resources": {
                    "requests": {"memory": "?*", "cpu": "?*"}, "limits": {"memory": "?*"}}}]}},
            }),
        ),
        cluster_policy(
            registries,
            json!({
                "message": "Images must come from registry.example.com.",
                "pattern": {"spec": {"containers": [{"image": "registry.example.com/*"}]}},
            }),
        ),
        cluster_policy(
            baseline,
            json!({"podSecurity": {"level": "baseline", "version": "latest"}}),
        ),
        json!({
            "apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
            "metadata": {"name": privileged.name, "annotations": annotations(privileged)},
            "spec": {
                "validationActions": [if enforce { "Deny" } else { "Audit" }],
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
                "validations": [{
                    "expression": "object.spec.containers.all(c, !has(c.securityContext) || \
                        !has(c.securityContext.privileged) || c.securityContext.privileged == false)",
                    "message": "Privileged mode is disallowed.",
                }],
            },
        }),
    ]
}

fn pod(ns: &str, name: &str, c: Class) -> Value {
    let image = if c.bad_registry {
        "docker.io/library/nginx:1.27"
    } else {
        "registry.example.com/shop/api:1.4"
    };
    let mut container = json!({"name": "app", "image": image});
    if !c.no_limits {
        container["resources"] =
            json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}});
    }
    if c.privileged {
        container["securityContext"] = json!({"privileged": true});
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"containers": [container]}})
}

/// Pods as (namespace, name, class).
type Pods = Vec<(&'static str, &'static str, Class)>;

/// The Pods the audit phase creates (admitted) and the ones it tries and
/// [`OVERRIDE_NS`]'s Enforce override refuses.
fn audit_pods() -> (Pods, Pods) {
    let created = vec![
        ("shop", "web-1", OK),
        ("shop", "web-2", OK),
        ("shop", "cart-1", NO_LIMITS),
        ("shop", "search-1", BAD_REGISTRY),
        ("shop", "metrics-1", PRIVILEGED),
        ("shop", "legacy-1", and(NO_LIMITS, BAD_REGISTRY)),
        (
            "shop",
            "debug-1",
            and(and(NO_LIMITS, BAD_REGISTRY), PRIVILEGED),
        ),
        ("batch", "report-1", OK),
        ("batch", "etl-1", NO_LIMITS),
        ("batch", "etl-2", NO_LIMITS),
        ("batch", "node-agent-1", PRIVILEGED),
        ("batch", "scraper-1", and(BAD_REGISTRY, PRIVILEGED)),
        ("payments", "ledger-1", OK),
        ("payments", "ledger-2", NO_LIMITS),
        ("payments", "hsm-1", PRIVILEGED),
    ];
    let refused = vec![
        ("payments", "gateway-1", BAD_REGISTRY),
        ("payments", "gateway-2", BAD_REGISTRY),
        ("payments", "gateway-3", and(BAD_REGISTRY, PRIVILEGED)),
    ];
    (created, refused)
}

/// The attempts of the enforce phase, each refused.
fn enforce_attempts() -> Pods {
    vec![
        ("shop", "cart-2", NO_LIMITS),
        (
            "shop",
            "debug-2",
            and(and(NO_LIMITS, BAD_REGISTRY), PRIVILEGED),
        ),
        ("batch", "node-agent-2", PRIVILEGED),
        ("batch", "scraper-2", BAD_REGISTRY),
        ("payments", "legacy-2", and(NO_LIMITS, BAD_REGISTRY)),
    ]
}

// ------------------------------------------------------------------ ground truth

/// What the test created and what Kyverno must therefore have seen.
#[derive(Default)]
struct Truth {
    /// The Pods that exist: (namespace, name) → class.
    pods: BTreeMap<(String, String), Class>,
    /// Admission Events present (and so counted since the exporter
    /// started): audit failures per (namespace, policy).
    audit: BTreeMap<(String, &'static str), u64>,
    /// Blocked admissions per (namespace, policy).
    blocked: BTreeMap<(String, &'static str), u64>,
    /// Whether the policies are in Enforce.
    enforce: bool,
    /// Policies that have had a failing result or an audit failure during
    /// the walk (Prometheus keeps them for the dashboard's 7-day panels).
    ever_failed: BTreeSet<&'static str>,
    /// Policies whose admission Events the walk deleted (as `--event-ttl`
    /// would) while Kyverno's counters keep them: the hour's Events missing.
    events_gone: BTreeSet<&'static str>,
}

impl Truth {
    fn created(&mut self, ns: &str, name: &str, c: Class) {
        self.pods.insert((ns.to_owned(), name.to_owned()), c);
        for p in POLICIES.iter().filter(|p| fails(p, c)) {
            *self.audit.entry((ns.to_owned(), p.name)).or_default() += 1;
        }
    }

    /// An attempt the API server refused: a blocked admission for each
    /// policy in force that the Pod fails. A ClusterPolicy still in Audit is
    /// evaluated only for admitted requests, so it writes nothing; the
    /// ValidatingPolicy has a webhook of its own, which evaluates the request
    /// whatever the other webhooks answer, so in Audit it writes an audit
    /// failure for a Pod that never existed.
    fn refused(&mut self, ns: &str, c: Class) {
        for p in POLICIES.iter().filter(|p| fails(p, c)) {
            if self.mode_in(p, ns) == "enforce" {
                *self.blocked.entry((ns.to_owned(), p.name)).or_default() += 1;
            } else if p.source == "KyvernoValidatingPolicy" {
                *self.audit.entry((ns.to_owned(), p.name)).or_default() += 1;
            }
        }
    }

    /// The policy-wide mode, as `policyreport_policy_info` gives it.
    fn mode(&self, p: &Policy) -> &'static str {
        match (self.enforce, p.name) {
            (true, _) => "enforce",
            (false, "restrict-image-registries") => "mixed",
            (false, _) => "audit",
        }
    }

    fn mode_in(&self, p: &Policy, ns: &str) -> &'static str {
        if self.enforce || (p.name == "restrict-image-registries" && ns == OVERRIDE_NS) {
            "enforce"
        } else {
            "audit"
        }
    }

    /// `policyreport_results`, keyed as [`parse_results`] keys it.
    fn results(&self) -> Counts {
        let mut out = Counts::new();
        for ((ns, _), c) in &self.pods {
            for p in &POLICIES {
                let result = if fails(p, *c) { "fail" } else { "pass" };
                let key = [ns, p.name, p.category, p.severity, p.source, result].map(str::to_owned);
                *out.entry(key).or_default() += 1;
            }
        }
        out
    }

    fn count(&self, ns: Option<&str>, policy: Option<&str>, failing: bool) -> u64 {
        let mut n = 0;
        for ((pod_ns, _), c) in &self.pods {
            for p in &POLICIES {
                if ns.is_none_or(|ns| ns == pod_ns)
                    && policy.is_none_or(|name| name == p.name)
                    && fails(p, *c) == failing
                {
                    n += 1;
                }
            }
        }
        n
    }

    /// fail ÷ (pass + fail), or `None` without results.
    fn violation_rate(&self, ns: Option<&str>) -> Option<f64> {
        let (fail, pass) = (self.count(ns, None, true), self.count(ns, None, false));
        (fail + pass > 0).then(|| fail as f64 / (fail + pass) as f64)
    }

    /// (compliant, noncompliant) Pods per (control, namespace).
    fn controls(&self) -> BTreeMap<(&'static str, String), (u64, u64)> {
        let mut out: BTreeMap<(&'static str, String), (u64, u64)> = BTreeMap::new();
        for ((ns, _), c) in &self.pods {
            for control in CONTROLS {
                let e = out.entry((control, ns.clone())).or_default();
                if fails_control(control, *c) {
                    e.1 += 1;
                } else {
                    e.0 += 1;
                }
            }
        }
        out
    }

    fn control_totals(&self, control: &str) -> (u64, u64) {
        self.controls()
            .iter()
            .filter(|((c, _), _)| *c == control)
            .fold((0, 0), |(a, b), (_, (c, n))| (a + c, b + n))
    }

    /// The work list: (policy, namespace, Pod, rule).
    fn failing(&self) -> BTreeSet<(String, String, String, String)> {
        let mut out = BTreeSet::new();
        for ((ns, name), c) in &self.pods {
            for p in POLICIES.iter().filter(|p| fails(p, *c)) {
                out.insert((p.name.into(), ns.clone(), name.clone(), p.rule.into()));
            }
        }
        out
    }

    fn sum(map: &BTreeMap<(String, &'static str), u64>, policy: &str) -> u64 {
        map.iter()
            .filter(|((_, p), _)| *p == policy)
            .map(|(_, n)| n)
            .sum()
    }

    fn verdict(&self, p: &Policy) -> &'static str {
        let failing = self.count(None, Some(p.name), true) > 0;
        match (self.mode(p), failing) {
            ("mixed", _) => "partly-enforced",
            ("enforce", true) => "enforced-failing",
            ("enforce", false) => "enforced",
            (_, true) => "fix-first",
            _ if Self::sum(&self.audit, p.name) > 0 => "fix-first",
            _ => "ready",
        }
    }

    /// (policy, namespace, mode) of `policyreport_policy_namespace_mode`:
    /// every namespace with results, and the override's.
    fn namespace_modes(&self) -> BTreeSet<(String, String, String)> {
        let namespaces: BTreeSet<&str> = self.pods.keys().map(|(ns, _)| ns.as_str()).collect();
        let mut out = BTreeSet::new();
        for p in &POLICIES {
            let mut in_ns = namespaces.clone();
            if p.name == "restrict-image-registries" {
                in_ns.insert(OVERRIDE_NS);
            }
            for ns in in_ns {
                out.insert((p.name.into(), ns.into(), self.mode_in(p, ns).into()));
            }
        }
        out
    }

    /// The step's figures, for the log.
    fn describe(&self) -> String {
        let controls: Vec<String> = CONTROLS
            .iter()
            .map(|c| {
                let (compliant, noncompliant) = self.control_totals(c);
                format!("{c} {compliant}/{}", compliant + noncompliant)
            })
            .collect();
        format!(
            "{} Pods, {} results ({} fail), {}; audit failures {}, blocked {}",
            self.pods.len(),
            self.count(None, None, true) + self.count(None, None, false),
            self.count(None, None, true),
            controls.join(", "),
            self.audit.values().sum::<u64>(),
            self.blocked.values().sum::<u64>()
        )
    }

    /// Remembers the policies failing now, for the 7-day panels.
    fn remember_failures(&mut self) {
        for p in &POLICIES {
            if self.count(None, Some(p.name), true) > 0 || Self::sum(&self.audit, p.name) > 0 {
                self.ever_failed.insert(p.name);
            }
        }
    }
}

// ------------------------------------------------------------------ the exporter

fn exporter(c: &RealCluster) -> Result<Exporter> {
    let bin = exporter_binary(Build::Reuse)?;
    let kc = c.exporter_kubeconfig().display().to_string();
    Exporter::spawn(&bin, &[], &[("KUBECONFIG", kc.as_str())])
}

/// `policyreport-exporter summary ARGS --output json` (with the cluster's
/// exporter kubeconfig unless `--files` is given).
fn summary(c: &RealCluster, args: &[&str]) -> Result<Value> {
    let bin = exporter_binary(Build::Reuse)?;
    let out = Command::new(bin)
        .arg("summary")
        .args(args)
        .args(["--output", "json"])
        .env("KUBECONFIG", c.exporter_kubeconfig())
        .output()
        .context("running summary")?;
    ensure!(
        out.status.success(),
        "summary {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("summary's JSON")
}

fn diff<T: std::fmt::Debug + PartialEq>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}:\n  got  {got:?}\n  want {want:?}"))
    }
}

/// The admission counters of one family, per (namespace, policy), with the
/// labels each series must carry checked on the way.
fn admissions(text: &str, family: &str) -> Result<BTreeMap<(String, &'static str), u64>, String> {
    let mut out = BTreeMap::new();
    for (labels, v) in samples(text, family) {
        let name = labels.get("policy").cloned().unwrap_or_default();
        let p = POLICIES
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("{family}: unknown policy {labels:?}"))?;
        let want = BTreeMap::from([
            ("namespace".to_owned(), labels["namespace"].clone()),
            ("policy".to_owned(), p.name.to_owned()),
            ("rule".to_owned(), p.rule.to_owned()),
            ("kind".to_owned(), "Pod".to_owned()),
            ("control".to_owned(), p.control.to_owned()),
        ]);
        diff(&format!("{family} labels"), &labels, &want)?;
        if v > 0.0 {
            out.insert((labels["namespace"].clone(), p.name), v as u64);
        }
    }
    Ok(out)
}

/// What `/metrics` serves equals the truth.
fn exporter_matches(e: &Exporter, truth: &Truth) -> Result<(), String> {
    let text = e.metrics().map_err(|e| e.to_string())?;
    diff(
        "policyreport_results",
        parse_results(&text),
        truth.results(),
    )?;
    let mut controls = BTreeMap::new();
    for (l, v) in samples(&text, "policyreport_control_resources") {
        if v > 0.0 {
            controls.insert(
                (
                    l["control"].clone(),
                    l["namespace"].clone(),
                    l["kind"].clone(),
                    l["status"].clone(),
                ),
                v as u64,
            );
        }
    }
    let mut want = BTreeMap::new();
    for ((control, ns), (compliant, noncompliant)) in truth.controls() {
        for (status, n) in [("compliant", compliant), ("noncompliant", noncompliant)] {
            if n > 0 {
                want.insert(
                    (
                        control.to_owned(),
                        ns.clone(),
                        "Pod".to_owned(),
                        status.to_owned(),
                    ),
                    n,
                );
            }
        }
    }
    diff("policyreport_control_resources", controls, want)?;
    diff(
        "policyreport_admission_audit_failures_total",
        admissions(&text, "policyreport_admission_audit_failures_total")?,
        truth.audit.clone(),
    )?;
    diff(
        "policyreport_admission_blocked_total",
        admissions(&text, "policyreport_admission_blocked_total")?,
        truth.blocked.clone(),
    )?;
    let info: BTreeMap<String, String> = samples(&text, "policyreport_policy_info")
        .into_iter()
        .map(|(l, _)| (l["policy"].clone(), l["mode"].clone()))
        .collect();
    let want: BTreeMap<String, String> = POLICIES
        .iter()
        .map(|p| (p.name.to_owned(), truth.mode(p).to_owned()))
        .collect();
    diff("policyreport_policy_info mode", info, want)?;
    let modes: BTreeSet<(String, String, String)> =
        samples(&text, "policyreport_policy_namespace_mode")
            .into_iter()
            .map(|(l, _)| {
                (
                    l["policy"].clone(),
                    l["namespace"].clone(),
                    l["mode"].clone(),
                )
            })
            .collect();
    diff(
        "policyreport_policy_namespace_mode",
        modes,
        truth.namespace_modes(),
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// `summary --failing` against the cluster equals the truth: violation
/// rates, the three percentages, verdicts and the work list.
fn summary_matches(s: &Value, truth: &Truth) -> Result<(), String> {
    // The entry of `list` whose `key` is `value`.
    let row = |list: &str, key: &str, value: &str| {
        s[list]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r[key] == value)
            .ok_or_else(|| format!("summary has no {key} {value}"))
    };
    for ns in NAMESPACES {
        let row = row("namespaces", "namespace", ns)?;
        let want = truth.violation_rate(Some(ns)).map(|r| 100.0 * r);
        let got = row["violation_rate"].as_f64();
        if !matches!((got, want), (Some(g), Some(w)) if close(g, w)) {
            return Err(format!("violation rate of {ns}: {got:?}, want {want:?}"));
        }
    }
    for control in CONTROLS {
        let row = row("controls", "control", control)?;
        let (compliant, noncompliant) = truth.control_totals(control);
        let want = 100.0 * compliant as f64 / (compliant + noncompliant) as f64;
        let got = (
            row["compliant"].as_u64(),
            row["noncompliant"].as_u64(),
            row["excepted"].as_u64(),
        );
        diff(control, got, (Some(compliant), Some(noncompliant), Some(0)))?;
        let pct = row["compliance"].as_f64().unwrap_or(f64::NAN);
        if !close(pct, want) {
            return Err(format!("{control} compliance {pct}, want {want}"));
        }
    }
    let rollout: BTreeMap<String, (String, u64, u64, u64, String)> = s["rollout"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX);
            let t = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (
                t("policy"),
                (
                    t("mode"),
                    n("failing"),
                    n("audit_admission_failures"),
                    n("blocked_admissions"),
                    t("verdict"),
                ),
            )
        })
        .collect();
    let want = POLICIES
        .iter()
        .map(|p| {
            (
                p.name.to_owned(),
                (
                    truth.mode(p).to_owned(),
                    truth.count(None, Some(p.name), true),
                    Truth::sum(&truth.audit, p.name),
                    Truth::sum(&truth.blocked, p.name),
                    truth.verdict(p).to_owned(),
                ),
            )
        })
        .collect();
    diff(
        "rollout (mode, failing, audit, blocked, verdict)",
        rollout,
        want,
    )?;
    diff("the work list", work_list(s)?, truth.failing())
}

/// The work list of `summary --failing`: (policy, namespace, Pod, rule).
fn work_list(s: &Value) -> Result<BTreeSet<(String, String, String, String)>, String> {
    let mut out = BTreeSet::new();
    for f in s["failing"]
        .as_array()
        .ok_or("summary without a work list")?
    {
        let t = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
        let p = POLICIES
            .iter()
            .find(|p| p.name == t("policy"))
            .ok_or_else(|| format!("unknown policy in the work list: {f}"))?;
        let wanted = (t("kind"), t("result"), f["controls"].clone());
        diff(
            "work-list entry",
            wanted,
            ("Pod".into(), "fail".into(), json!([p.control])),
        )?;
        out.insert((t("policy"), t("namespace"), t("name"), t("rule")));
    }
    Ok(out)
}

// ------------------------------------------------------------------ Prometheus

/// A dashboard query's answer as (labels, value), sorted, with Prometheus'
/// rule that an empty label is no label.
type Answer = Vec<(BTreeMap<String, String>, f64)>;

fn answer(rows: impl IntoIterator<Item = (Vec<(&'static str, String)>, f64)>) -> Answer {
    let mut out: Answer = rows
        .into_iter()
        .map(|(labels, v)| {
            let labels = labels
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            (labels, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn scalar(v: u64) -> Answer {
    answer([(vec![], v as f64)])
}

/// What each query of the rollout dashboard must answer, by panel title and
/// refId, given the truth of this step: the exporter serves the truth (it
/// was checked first), so these are the exporter's numbers too.
fn expected_panel(title: &str, ref_id: &str, t: &Truth) -> Option<Answer> {
    let with_mode = |mode: &'static str| POLICIES.iter().filter(move |p| t.mode(p) == mode);
    let audit_sum = |p: &Policy| Truth::sum(&t.audit, p.name);
    let blocked_sum = |p: &Policy| Truth::sum(&t.blocked, p.name);
    let failing = |p: &Policy| t.count(None, Some(p.name), true);
    let pass = |p: &Policy| t.count(None, Some(p.name), false);
    let s = |v: &str| v.to_owned();
    // Audit policies that pass somewhere and neither fail now nor failed in
    // the 7 days Prometheus remembers.
    let ready_7d = with_mode("audit")
        .filter(|p| {
            pass(p) > 0 && failing(p) == 0 && audit_sum(p) == 0 && !t.ever_failed.contains(p.name)
        })
        .map(|p| {
            (
                vec![
                    ("policy", s(p.name)),
                    ("title", s(p.title)),
                    ("category", s(p.category)),
                    ("severity", s(p.severity)),
                ],
                pass(p) as f64,
            )
        });
    let fix_first = with_mode("audit").filter(|p| failing(p) > 0 || audit_sum(p) > 0);
    // Failing results in namespaces where the policy enforces.
    let enforced_failing: Vec<(&Policy, &str, u64)> = POLICIES
        .iter()
        .flat_map(|p| NAMESPACES.iter().map(move |ns| (p, *ns)))
        .filter(|(p, ns)| t.mode_in(p, ns) == "enforce")
        .map(|(p, ns)| (p, ns, t.count(Some(ns), Some(p.name), true)))
        .filter(|(_, _, n)| *n > 0)
        .collect();
    let by_policy = |f: &dyn Fn(&Policy) -> u64, zeros: bool| {
        answer(
            POLICIES
                .iter()
                .filter(|p| zeros || f(p) > 0)
                .map(|p| (vec![("policy", s(p.name))], f(p) as f64)),
        )
    };
    let admissions = |map: &BTreeMap<(String, &'static str), u64>, with_ns: bool| {
        let mut rows: BTreeMap<Vec<(&'static str, String)>, f64> = BTreeMap::new();
        for ((ns, name), n) in map {
            let p = policy(name);
            let mut labels = vec![
                ("policy", s(p.name)),
                ("rule", s(p.rule)),
                ("kind", s("Pod")),
                ("control", s(p.control)),
            ];
            if with_ns {
                labels.push(("namespace", ns.clone()));
            }
            *rows.entry(labels).or_default() += *n as f64;
        }
        answer(rows)
    };
    Some(match (title, ref_id) {
        ("Audit policies", "A") => scalar(with_mode("audit").count() as u64),
        ("Enforced policies", "A") => scalar(with_mode("enforce").count() as u64),
        ("Mixed policies", "A") => scalar(with_mode("mixed").count() as u64),
        ("Ready to enforce", "A") => scalar(ready_7d.count() as u64),
        ("Fix first", "A") => scalar(fix_first.count() as u64),
        ("Blocked admissions", "A") if t.blocked.is_empty() => answer([]),
        ("Blocked admissions", "A") => scalar(t.blocked.values().sum()),
        ("Would have been blocked", "A") => scalar(t.audit.values().sum()),
        ("Enforced policies still failing", "A") => scalar(
            enforced_failing
                .iter()
                .map(|(p, _, _)| p.name)
                .collect::<BTreeSet<_>>()
                .len() as u64,
        ),
        ("Policies by mode", "A") => {
            let mut modes: BTreeMap<&str, u64> = BTreeMap::new();
            for p in &POLICIES {
                *modes.entry(t.mode(p)).or_default() += 1;
            }
            answer(
                modes
                    .into_iter()
                    .map(|(m, n)| (vec![("mode", s(m))], n as f64)),
            )
        }
        ("Rollout plan: verdict per policy", "A") => answer(POLICIES.iter().map(|p| {
            (
                vec![
                    ("policy", s(p.name)),
                    ("mode", s(t.mode(p))),
                    ("verdict", s(t.verdict(p))),
                ],
                1.0,
            )
        })),
        ("Rollout plan: verdict per policy", "B") => by_policy(&failing, true),
        ("Rollout plan: verdict per policy", "C") => by_policy(&audit_sum, true),
        ("Rollout plan: verdict per policy", "D") => by_policy(&blocked_sum, true),
        ("Controls: compliance and exceptions", "A") => answer(CONTROLS.map(|c| {
            let (compliant, noncompliant) = t.control_totals(c);
            (
                vec![("control", s(c))],
                compliant as f64 / (compliant + noncompliant) as f64,
            )
        })),
        ("Controls: compliance and exceptions", "B") => {
            answer(CONTROLS.map(|c| (vec![("control", s(c))], t.control_totals(c).1 as f64)))
        }
        ("Controls: compliance and exceptions", "C") => {
            answer(CONTROLS.map(|c| (vec![("control", s(c))], 0.0)))
        }
        ("Would have been blocked: audit admission failures by policy", "A") => {
            answer(POLICIES.iter().filter(|p| audit_sum(p) > 0).map(|p| {
                (
                    vec![("policy", s(p.name)), ("mode", s(t.mode(p)))],
                    audit_sum(p) as f64,
                )
            }))
        }
        ("Would have been blocked by namespace and rule", "A") => admissions(&t.audit, true),
        ("Would have been blocked, by policy", "A") => by_policy(&audit_sum, false),
        ("Blocked admissions by policy", "A") => by_policy(&blocked_sum, false),
        ("Ready to enforce: audit policies with no failure in 7 days", "A") => answer(ready_7d),
        ("Enforced policies with failing resources", "A") => {
            answer(enforced_failing.iter().map(|(p, ns, n)| {
                (
                    vec![
                        ("namespace", s(ns)),
                        ("policy", s(p.name)),
                        ("mode", s("enforce")),
                    ],
                    *n as f64,
                )
            }))
        }
        ("Failing results of enforced policies", "A") => {
            let mut rows: BTreeMap<&str, u64> = BTreeMap::new();
            for (p, _, n) in &enforced_failing {
                *rows.entry(p.name).or_default() += n;
            }
            answer(
                rows.into_iter()
                    .map(|(p, n)| (vec![("policy", s(p))], n as f64)),
            )
        }
        ("Blocked admissions by policy and rule", "A") => admissions(&t.blocked, false),
        // Kyverno's counters and the Events agree until the walk deletes the
        // Events; then those policies' (values are compared by `same_panel`).
        ("Admission results without an Event", "A") => {
            answer(t.events_gone.iter().map(|p| (vec![("policy", s(p))], 0.0)))
        }
        ("Admission results without an Event", "B") => answer([]),
        ("All policies", "A") => answer(POLICIES.iter().map(|p| {
            (
                vec![
                    ("policy", s(p.name)),
                    ("mode", s(t.mode(p))),
                    ("title", s(p.title)),
                    ("category", s(p.category)),
                    ("severity", s(p.severity)),
                    ("background", s("true")),
                ],
                failing(p) as f64,
            )
        })),
        _ => return None,
    })
}

/// Prometheus' answer without the metric name a recording rule's series
/// keeps.
fn from_prometheus(samples: Vec<Sample>) -> Answer {
    let mut out: Answer = samples
        .into_iter()
        .map(|mut s| {
            s.labels.remove("__name__");
            (s.labels, s.value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn same(a: &Answer, b: &Answer) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((la, va), (lb, vb))| la == lb && close(*va, *vb))
}

/// `same`, but for the panel of Events missing only which policies it lists:
/// after the exporter's restart, its hour-long window takes the old
/// exporter's ended series through increase(), which extrapolates and does
/// not see their first sample, so its values are not whole numbers.
///
/// The panels counting admissions read Kyverno's counters, which outlive
/// the exporter's restarts and the Events the walk deletes: where the Events
/// have nothing, they answer 0. Both mean none, so zero rows are left out
/// there when none is expected.
fn same_panel(title: &str, got: &Answer, want: &Answer) -> bool {
    const ADMISSIONS: [&str; 4] = [
        "Blocked admissions",
        "Blocked admissions by policy",
        "Blocked admissions by policy and rule",
        "Would have been blocked, by policy",
    ];
    if title == "Admission results without an Event" {
        let labels = |a: &Answer| a.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
        return labels(got) == labels(want) && got.iter().all(|(_, v)| *v > 0.0);
    }
    if ADMISSIONS.contains(&title) && want.iter().all(|(_, v)| *v != 0.0) {
        let nonzero: Answer = got.iter().filter(|(_, v)| *v != 0.0).cloned().collect();
        return same(&nonzero, want);
    }
    same(got, want)
}

/// The recording rules and every rollout dashboard query answer the truth
/// of this step; `step` is when the step's window opened.
fn prometheus_matches(p: &Prometheus, truth: &Truth, step: Instant) -> Result<(), String> {
    let q = |expr: &str| {
        p.query(expr)
            .map(from_prometheus)
            .map_err(|e| format!("{e:#}"))
    };
    let rates = answer(NAMESPACES.iter().filter_map(|ns| {
        truth
            .violation_rate(Some(ns))
            .map(|r| (vec![("namespace", ns.to_string())], r))
    }));
    let got = q("namespace:policyreport_violation_rate:ratio")?;
    if !same(&got, &rates) {
        return Err(format!(
            "namespace:policyreport_violation_rate:ratio: {got:?}, want {rates:?}"
        ));
    }
    let overall = answer(truth.violation_rate(None).map(|r| (vec![], r)));
    let got = q("cluster:policyreport_violation_rate:ratio")?;
    if !same(&got, &overall) {
        return Err(format!(
            "cluster:policyreport_violation_rate:ratio: {got:?}, want {overall:?}"
        ));
    }
    let range = format!("{}s", step.elapsed().as_secs() + 1);
    for (title, ref_id, expr) in
        dashboard_queries("policyreport-rollout.json").map_err(|e| e.to_string())?
    {
        let want = expected_panel(&title, &ref_id, truth)
            .ok_or_else(|| format!("no expectation for the rollout panel {title:?} {ref_id}"))?;
        let got = q(&substitute(&expr, &range))?;
        if !same_panel(&title, &got, &want) {
            return Err(format!(
                "rollout panel {title:?} {ref_id} (range {range}):\n  got  {got:?}\n  want {want:?}"
            ));
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ Kyverno

fn apply_all(c: &RealCluster, objects: &[Value]) -> Result<()> {
    for o in objects {
        c.apply(o)?;
    }
    Ok(())
}

/// Creates a Pod through kubectl, as a person would; the API server's
/// refusal as `Err(message)`.
fn create(c: &RealCluster, pod: &Value) -> Result<Result<(), String>> {
    match c.kubectl_stdin(&["create", "-f", "-"], &pod.to_string()) {
        Ok(_) => Ok(Ok(())),
        Err(e) if e.to_string().contains("denied the request") => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Waits until Kyverno routes each policy as written: the ClusterPolicies
/// are Ready and the admission controller's own metrics show their mode
/// (its policy cache and metrics read the same informer), and the
/// ValidatingPolicy's status shows the actions Kyverno computed from its
/// current spec.
fn kyverno_has(c: &RealCluster, enforce: bool) -> Result<()> {
    let port: u16 = c.env("KYVERNO_ADMISSION_METRICS_PORT")?.parse()?;
    let mode = if enforce { "enforce" } else { "audit" };
    let action = if enforce { "Deny" } else { "Audit" };
    eventually(
        "Kyverno's policy cache",
        SETTLE,
        Duration::from_millis(500),
        || {
            let (_, body) =
                get_once(([127, 0, 0, 1], port).into(), "/metrics").map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&body);
            for p in POLICIES.iter().filter(|p| !p.rule.is_empty()) {
                let found =
                    samples(&text, "kyverno_policy_rule_info_total")
                        .iter()
                        .any(|(l, v)| {
                            *v == 1.0
                                && l.get("policy_name").is_some_and(|n| n == p.name)
                                && l.get("rule_name").is_some_and(|r| r == p.rule)
                                && l.get("policy_validation_mode").is_some_and(|m| m == mode)
                                && l.get("status_ready").is_some_and(|r| r == "true")
                        });
                if !found {
                    return Err(format!(
                        "{} is not {mode} and ready in Kyverno's metrics",
                        p.name
                    ));
                }
            }
            let vpol: Value = serde_json::from_str(
                &c.kubectl(&[
                    "get",
                    "validatingpolicies.policies.kyverno.io",
                    "disallow-privileged-containers",
                    "-o",
                    "json",
                ])
                .map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            let status = &vpol["status"];
            let computed = &status["autogen"]["configs"]["defaults"]["spec"]["validationActions"];
            if status["conditionStatus"]["ready"] == true && *computed == json!([action]) {
                Ok(())
            } else {
                Err(format!("the ValidatingPolicy's status: {status}"))
            }
        },
    )?;
    // The webhook handlers read those caches at each request; one second
    // covers the informer of the ValidatingPolicy engine catching up.
    std::thread::sleep(Duration::from_secs(1));
    Ok(())
}

/// `kubectl-kyverno apply POLICIES --resource PODS --policy-report` into
/// `out`, as a shell redirect writes it.
fn kyverno_apply(c: &RealCluster, dir: &Path, pods: &[Value], out: &Path) -> Result<()> {
    let policy_file = dir.join("policies.yaml");
    let resources = dir.join("pods.yaml");
    let yaml = |objects: Vec<Value>| -> Result<String> {
        Ok(objects
            .iter()
            .map(serde_yaml_ng::to_string)
            .collect::<Result<Vec<_>, _>>()?
            .join("---\n"))
    };
    std::fs::write(&policy_file, yaml(policies(false))?)?;
    std::fs::write(&resources, yaml(pods.to_vec())?)?;
    let cli = c.env("KYVERNO_CLI")?;
    let status = Command::new(&cli)
        .args([
            "apply",
            policy_file.to_str().unwrap_or_default(),
            "--resource",
        ])
        .arg(&resources)
        .arg("--policy-report")
        .stdout(std::fs::File::create(out)?)
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("running {cli}"))?;
    // Exit status 1: some resources fail a policy, as they do here.
    ensure!(status.code() == Some(1), "kyverno apply: {status}");
    Ok(())
}

// ------------------------------------------------------------------ the walk

/// Polls until the exporter, `summary` and Prometheus agree with the truth,
/// collecting reports of deleted Pods on the way as the garbage collector
/// would; returns the summary.
fn settled(
    what: &str,
    c: &RealCluster,
    e: &Exporter,
    p: &Prometheus,
    truth: &Truth,
    step: Instant,
) -> Result<Value> {
    let start = Instant::now();
    let s = eventually(what, SETTLE, POLL, || {
        c.kyverno_gc().map_err(|e| e.to_string())?;
        exporter_matches(e, truth)?;
        let s = summary(c, &["--failing"]).map_err(|e| format!("{e:#}"))?;
        summary_matches(&s, truth)?;
        Ok(s)
    })
    .map_err(|err| anyhow!("{err:#}\nexporter logs:\n{}", e.log_tail(20)))?;
    eventually(
        &format!("{what}: Prometheus"),
        Duration::from_secs(60),
        Duration::from_secs(1),
        || prometheus_matches(p, truth, step),
    )
    .map_err(|err| anyhow!("{err:#}\nprometheus log:\n{}", p.logs()))?;
    eprintln!(
        "{what}: exact after {:.0?}: {}",
        start.elapsed(),
        truth.describe()
    );
    Ok(s)
}

#[test]
#[ignore = "needs Go, real Kyverno and Prometheus: scripts/test runs it"]
fn the_rollout_guide_walked_with_real_kyverno() -> Result<()> {
    let walk = Instant::now();
    let c = RealCluster::start(&["--kyverno"])?;
    eprintln!(
        "cluster with Kyverno {} up after {:.0?}",
        c.env("KYVERNO_VERSION")?,
        walk.elapsed()
    );
    let tmp = tempfile::tempdir()?;
    let rules = deploy_rules(tmp.path())?;
    let prom = Prometheus::start(&tmp.path().join("prometheus"), &[rules])?;
    let mut e = exporter(&c)?;
    e.wait_ready(SETTLE, POLL)?;
    prom.set_targets(&[e.addr])?;
    // Kyverno's own counters too, as its chart's ServiceMonitor has them
    // scraped: the dashboards then count admissions from them.
    let kyverno: u16 = c.env("KYVERNO_ADMISSION_METRICS_PORT")?.parse()?;
    prom.set_kyverno_target(([127, 0, 0, 1], kyverno).into())?;
    let mut truth = Truth::default();

    // Audit: the policies, then the Pods.
    let step = Instant::now();
    apply_all(&c, &policies(false))?;
    kyverno_has(&c, false)?;
    for ns in NAMESPACES {
        c.apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))?;
    }
    let (created, refused) = audit_pods();
    let mut manifests = Vec::new();
    for (ns, name, class) in &created {
        let manifest = pod(ns, name, *class);
        create(&c, &manifest)?.map_err(|e| anyhow!("{ns}/{name} refused in Audit: {e}"))?;
        truth.created(ns, name, *class);
        manifests.push(manifest);
    }
    truth.remember_failures();
    for (ns, name, class) in &refused {
        let why = create(&c, &pod(ns, name, *class))?
            .err()
            .ok_or_else(|| anyhow!("{ns}/{name} was admitted; the override enforces in {ns}"))?;
        ensure!(why.contains("restrict-image-registries"), "{why}");
        truth.refused(ns, *class);
    }

    // Review.
    let review = settled("review", &c, &e, &prom, &truth, step)?;
    for p in &POLICIES {
        let want = match p.name {
            "restrict-image-registries" => "partly-enforced",
            _ => "fix-first",
        };
        ensure!(truth.verdict(p) == want, "{}: {}", p.name, truth.verdict(p));
    }
    truth.remember_failures();
    crosschecked(&c, &e, &tmp.path().join("snapshot"))?;

    // Offline: the CLI on the same policies and Pod manifests.
    let cli_dir = tmp.path().join("cli");
    std::fs::create_dir_all(&cli_dir)?;
    let report = cli_dir.join("report.yaml");
    kyverno_apply(&c, &cli_dir, &manifests, &report)?;
    let offline = summary(
        &c,
        &[
            "--failing",
            "--files",
            report.to_str().unwrap_or_default(),
            "--files",
            cli_dir.join("policies.yaml").to_str().unwrap_or_default(),
        ],
    )?;
    let input = &offline["input"];
    ensure!(
        (
            input["reports_read"].as_u64(),
            input["files_refused"].as_u64(),
            input["objects_invalid"].as_u64()
        ) == (Some(1), Some(0), Some(0)),
        "the CLI's report read whole: {input}"
    );
    diff(
        "the CLI's work list",
        work_list(&offline),
        work_list(&review),
    )
    .map_err(|e| anyhow!(e))?;
    for key in ["pass", "fail", "warn", "error", "skip"] {
        ensure!(
            offline["overall"][key] == review["overall"][key],
            "overall {key}: {} against {}",
            offline["overall"],
            review["overall"]
        );
    }
    for (a, b) in offline["controls"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(review["controls"].as_array().into_iter().flatten())
    {
        ensure!(
            (&a["control"], &a["compliant"], &a["noncompliant"])
                == (&b["control"], &b["compliant"], &b["noncompliant"]),
            "{a} against {b}"
        );
    }
    let failing_by_policy = |s: &Value| -> BTreeMap<String, Value> {
        s["rollout"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["policy"].as_str().unwrap_or_default().to_owned(),
                    r["failing"].clone(),
                )
            })
            .collect()
    };
    ensure!(
        failing_by_policy(&offline) == failing_by_policy(&review),
        "failing per policy: {offline} against {review}"
    );

    // Fix: each violating Pod replaced by a fixed one of the same name.
    for ((ns, name), class) in truth.pods.clone() {
        if class != OK {
            c.kubectl(&["delete", "pod", "-n", &ns, &name, "--wait=true"])?;
            create(&c, &pod(&ns, &name, OK))?
                .map_err(|e| anyhow!("fixed {ns}/{name} refused: {e}"))?;
            truth.pods.insert((ns, name), OK);
        }
    }
    eventually("fixed: every percentage at 100%", SETTLE, POLL, || {
        c.kyverno_gc().map_err(|e| e.to_string())?;
        let text = e.metrics().map_err(|e| e.to_string())?;
        diff(
            "policyreport_results",
            parse_results(&text),
            truth.results(),
        )
    })
    .map_err(|err| anyhow!("{err:#}"))?;
    // While the audit weeks' admission Events exist, a fresh count (a
    // restarted exporter, `summary`) finds them again: every violating Pod is
    // fixed, yet the audit policies are still `fix-first`.
    let recount = summary(&c, &[])?;
    for r in recount["rollout"].as_array().into_iter().flatten() {
        let p = policy(r["policy"].as_str().unwrap_or_default());
        let audit = Truth::sum(&truth.audit, p.name);
        let verdict = if truth.mode(p) == "mixed" {
            "partly-enforced"
        } else {
            "fix-first"
        };
        ensure!(
            (
                r["failing"].as_u64(),
                r["audit_admission_failures"].as_u64(),
                r["verdict"].as_str()
            ) == (Some(0), Some(audit), Some(verdict)),
            "{} before the Events expire: {r}",
            p.name
        );
    }
    // The admission Events of the audit weeks expire (the API server's
    // --event-ttl, 1 h by default, long before a rollout's next step): the
    // test deletes them, then restarts the exporter, whose counters begin
    // again from the Events that exist.
    c.kubectl(&[
        "delete",
        "events",
        "-A",
        "--field-selector",
        "reason=PolicyViolation",
    ])?;
    let gone = truth
        .audit
        .keys()
        .chain(truth.blocked.keys())
        .map(|(_, p)| *p);
    truth.events_gone = gone.collect();
    truth.audit.clear();
    truth.blocked.clear();
    assert!(e.stop(Duration::from_secs(10)), "clean exit on SIGTERM");
    // Prometheus' next scrapes find the target down and end its series
    // (stale markers): the fixed step's window opens after them.
    std::thread::sleep(Duration::from_secs(3));
    let step = Instant::now();
    e = exporter(&c)?;
    e.wait_ready(SETTLE, POLL)?;
    prom.set_targets(&[e.addr])?;
    settled("fixed", &c, &e, &prom, &truth, step)?;
    for p in &POLICIES {
        let want = if p.name == "restrict-image-registries" {
            "partly-enforced"
        } else {
            "ready"
        };
        ensure!(truth.verdict(p) == want, "{}: {}", p.name, truth.verdict(p));
    }

    // Enforce: every policy switched, violating Pods refused.
    let step = Instant::now();
    apply_all(&c, &policies(true))?;
    truth.enforce = true;
    kyverno_has(&c, true)?;
    for (ns, name, class) in enforce_attempts() {
        let why = create(&c, &pod(ns, name, class))?
            .err()
            .ok_or_else(|| anyhow!("{ns}/{name} was admitted in Enforce"))?;
        eprintln!(
            "refused {ns}/{name}: {}",
            why.lines().next().unwrap_or_default()
        );
        truth.refused(ns, class);
    }
    settled("enforced", &c, &e, &prom, &truth, step)?;
    for p in &POLICIES {
        ensure!(
            truth.verdict(p) == "enforced",
            "{}: {}",
            p.name,
            truth.verdict(p)
        );
    }
    crosschecked(&c, &e, &tmp.path().join("snapshot-enforced"))?;
    eprintln!("the walk took {:.0?}", walk.elapsed());
    Ok(())
}

/// The exporter's families equal the independent count of a snapshot of
/// the cluster in `dir`. Retried with a new snapshot and scrape: Kyverno's
/// background scan rewrites the reports' timestamps (every 30 s here), so a
/// snapshot and a scrape taken across a rescan differ in the freshness
/// families.
fn crosschecked(c: &RealCluster, e: &Exporter, dir: &Path) -> Result<()> {
    eventually("the independent count of a snapshot", SETTLE, POLL, || {
        let _ = std::fs::remove_dir_all(dir);
        c.snapshot(dir).map_err(|e| e.to_string())?;
        let metrics = e.metrics().map_err(|e| e.to_string())?;
        crosscheck(dir, &metrics).map(drop)
    })
    .map_err(|err| anyhow!("cross-check: {err}"))
}

// ------------------------------------------------------------------ fixtures

/// Real Kyverno 1.19.1's objects and CLI output (tests/crosscheck/kyverno-1.19.1,
/// and kyverno-1.19.1-mixed from `bench/tests/kyverno_outcomes.rs`): every
/// family the exporter serves equals the hand-checked expectation and the
/// independent Python count, and nothing is refused.
#[test]
fn kyverno_1_19_1_objects_and_cli_output_are_read_exactly() -> Result<()> {
    for (name, families) in [("kyverno-1.19.1", 6), ("kyverno-1.19.1-mixed", 3)] {
        fixture_is_read_exactly(name, families).with_context(|| name.to_owned())?;
    }
    Ok(())
}

/// Serves `tests/crosscheck/NAME` and compares with `expected-NAME.txt`,
/// which holds `families` families.
fn fixture_is_read_exactly(name: &str, families: usize) -> Result<()> {
    // A copy: the cross-check writes the metrics next to the objects.
    let tmp = tempfile::tempdir()?;
    let fixture = tmp.path().join(name);
    std::fs::create_dir_all(&fixture)?;
    for f in std::fs::read_dir(workspace_root().join("tests/crosscheck").join(name))? {
        let f = f?;
        std::fs::copy(f.path(), fixture.join(f.file_name()))?;
    }
    let bin = exporter_binary(Build::Reuse)?;
    let path = fixture.display().to_string();
    let e = Exporter::spawn(&bin, &["--files", &path], &[])?;
    e.wait_ready(Duration::from_secs(60), Duration::from_millis(100))?;
    let metrics = e.metrics()?;
    let expected = std::fs::read_to_string(
        workspace_root().join(format!("tests/crosscheck/expected-{name}.txt")),
    )?;
    // The families the hand-checked file holds (of the six the cross-check
    // computes).
    let held: BTreeSet<&str> = expected
        .lines()
        .filter_map(|l| l.split_once('{').map(|(name, _)| name))
        .collect();
    assert_eq!(held.len(), families, "{held:?}");
    let lines = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| {
                l.split_once('{')
                    .is_some_and(|(name, _)| held.contains(name))
            })
            .filter(|l| !l.ends_with(" 0"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(lines(&metrics), lines(&expected));
    let invalid: f64 = samples(&metrics, "policyreport_exporter_invalid_objects_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(invalid, 0.0);
    crosscheck(&fixture, &metrics).map_err(|err| anyhow!("cross-check: {err}"))?;
    Ok(())
}

/// The CRDs scripts/cluster installs and the binaries scripts/kyverno builds
/// come from one Kyverno release.
#[test]
fn one_kyverno_release_for_crds_and_binaries() -> Result<()> {
    let root = workspace_root();
    let cluster = std::fs::read_to_string(root.join("scripts/cluster"))?;
    let crds = cluster
        .lines()
        .find_map(|l| l.strip_prefix("KYVERNO_MODULE=github.com/kyverno/kyverno@"))
        .context("KYVERNO_MODULE in scripts/cluster")?;
    let gomod = std::fs::read_to_string(root.join("harness/kyverno/go.mod"))?;
    let binaries = gomod
        .lines()
        .find_map(|l| l.trim().strip_prefix("github.com/kyverno/kyverno "))
        .and_then(|v| v.split_whitespace().next())
        .context("github.com/kyverno/kyverno in harness/kyverno/go.mod")?;
    assert_eq!(crds, binaries);
    Ok(())
}
