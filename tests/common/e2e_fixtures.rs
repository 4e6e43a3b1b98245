//! The end-to-end fixture: the examples plus generated policies, Namespaces,
//! reports and Events, so that every panel and rule has data to show.

use std::path::Path;

use serde_json::{Value, json};

use super::{copy_tree, namespace, repo};

/// The namespace the generated fixtures fill with every kind of data.
pub const NS: &str = "e2e-enforced";
/// A namespace where `e2e-override` only audits (its Enforce override names
/// `e2e-enf*`).
pub const NS_AUDITED: &str = "e2e-audited";

pub fn result(policy: &str, rule: &str, category: &str, severity: &str, outcome: &str) -> Value {
    json!({
        "policy": policy, "rule": rule, "category": category, "severity": severity,
        "result": outcome, "scored": true, "source": "kyverno",
        "message": format!("validation rule '{rule}' {outcome}"),
        "properties": {"process": "background scan"},
        "timestamp": {"seconds": 1_731_403_200, "nanos": 0},
    })
}

/// A per-resource (Kyverno >= 1.11) report for a Pod in the e2e namespace.
pub fn pod_report(index: usize, pod: &str, failing: bool) -> Value {
    let outcome = if failing { "fail" } else { "pass" };
    let bp = "Best Practices, EKS Best Practices";
    let results = vec![
        result(
            "require-requests-limits",
            "validate-resources",
            bp,
            "medium",
            outcome,
        ),
        result(
            "restrict-image-registries",
            "validate-registries",
            bp,
            "medium",
            outcome,
        ),
        result(
            "disallow-privileged-containers",
            "privileged-containers",
            "Pod Security Standards (Baseline)",
            "high",
            outcome,
        ),
        result(
            "e2e-enforce-team",
            "validate-team",
            "E2E Enforced",
            "high",
            outcome,
        ),
        result(
            "e2e-audit-clean",
            "validate-owner",
            "E2E Audit",
            "low",
            "pass",
        ),
        result(
            "e2e-audit-wouldblock",
            "validate-cost-center",
            "E2E Audit",
            "low",
            "pass",
        ),
        result(
            "e2e-enforce-clean",
            "validate-app",
            "E2E Enforced",
            "low",
            "pass",
        ),
        result(
            "e2e-audit-failing",
            "validate-version",
            "E2E Audit",
            "low",
            outcome,
        ),
        result(
            "e2e-override",
            "validate-tier",
            "E2E Override",
            "medium",
            outcome,
        ),
        result(
            "e2e-selector",
            "validate-contact",
            "E2E Override",
            "low",
            "pass",
        ),
    ];
    per_resource_report(index, NS, pod, results)
}

/// A Pod whose every result is `skip` (a PolicyException covers it): an
/// excepted resource for each of the three controls.
pub fn excepted_pod_report(index: usize, pod: &str) -> Value {
    let bp = "Best Practices, EKS Best Practices";
    let results = vec![
        result(
            "require-requests-limits",
            "validate-resources",
            bp,
            "medium",
            "skip",
        ),
        result(
            "restrict-image-registries",
            "validate-registries",
            bp,
            "medium",
            "skip",
        ),
        result(
            "disallow-privileged-containers",
            "privileged-containers",
            "Pod Security Standards (Baseline)",
            "high",
            "skip",
        ),
    ];
    per_resource_report(index, NS, pod, results)
}

/// A failing Pod in the namespace where `e2e-override` only audits.
pub fn audited_pod_report(index: usize, pod: &str) -> Value {
    let results = vec![result(
        "e2e-override",
        "validate-tier",
        "E2E Override",
        "medium",
        "fail",
    )];
    per_resource_report(index, NS_AUDITED, pod, results)
}

pub fn per_resource_report(index: usize, namespace: &str, pod: &str, results: Vec<Value>) -> Value {
    let uid = format!("e2e00000-0000-4000-8000-{index:012}");
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": uid, "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kyverno"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}],
        },
        "scope": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": namespace, "uid": uid},
        "results": results,
    })
}

pub fn cluster_policy(
    name: &str,
    title: &str,
    category: &str,
    severity: &str,
    action: &str,
    rule: &str,
) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": name,
            "annotations": {
                "policies.kyverno.io/title": title,
                "policies.kyverno.io/category": category,
                "policies.kyverno.io/severity": severity,
                "policies.kyverno.io/subject": "Pod",
            },
        },
        "spec": {
            "validationFailureAction": action,
            "background": true,
            "rules": [{
                "name": rule,
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {
                    "message": "The label is required.",
                    "pattern": {"metadata": {"labels": {"team": "?*"}}},
                },
            }],
        },
    })
}

/// A ClusterPolicy in Audit mode with one Enforce override on the spec.
pub fn overridden_policy(name: &str, rule: &str, category: &str, over: Value) -> Value {
    let mut p = cluster_policy(name, name, category, "medium", "Audit", rule);
    p["spec"]["validationFailureActionOverrides"] = json!([over]);
    p
}

/// A ClusterPolicy without a validate rule: mode `none`.
pub fn mutate_only_policy(name: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "rules": [{
                "name": "add-label",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"e2e": "yes"}}}},
            }],
        },
    })
}

/// An admission request that failed an Audit policy and was let through, as
/// Kyverno >= 1.12 writes it: one Event per occurrence, `action: Resource
/// Passed`, no count.
pub fn audit_failure_event(n: u32, policy: &str, rule: &str) -> Value {
    let pod = format!("e2e-admitted-{n}");
    let mut event = policy_violation(policy, rule, &pod, "Resource Passed", "fail");
    event["eventTime"] = json!("2024-11-12T10:04:01.000001Z");
    event["metadata"] = json!({
        "name": format!("{policy}.e2eaudit{n:04}"),
        "namespace": "default",
        "uid": format!("e2e0a0d1-0000-4000-8000-{n:012}"),
    });
    event
}

/// An admission request an Enforce policy blocked, `count` times (the
/// Event's `series`).
pub fn blocked_event(n: u32, policy: &str, rule: &str, count: u64) -> Value {
    let pod = format!("e2e-blocked-{n}");
    let mut event = policy_violation(policy, rule, &pod, "Resource Blocked", "fail (blocked)");
    event["eventTime"] = json!("2024-11-12T10:02:17.412345Z");
    event["metadata"] = json!({"name": format!("{policy}.e2e{n:04}"), "namespace": "default"});
    event["series"] = json!({"count": count, "lastObservedTime": "2024-11-12T10:09:52.207113Z"});
    event
}

/// Kyverno's `PolicyViolation` Event on the admission of Pod `pod` in
/// [`NS`], without its metadata and time.
fn policy_violation(policy: &str, rule: &str, pod: &str, action: &str, verdict: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "type": "Warning",
        "reason": "PolicyViolation",
        "action": action,
        "involvedObject": {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "name": policy},
        "related": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": NS},
        "message": format!("Pod {NS}/{pod}: [{rule}] {verdict}; validation error: rule {rule} failed"),
        "reportingComponent": "kyverno-admission",
        "reportingInstance": "kyverno-admission-controller-e2e",
        "source": {},
    })
}

/// The examples, plus generated data in `NS` so that every panel has
/// something to show: a policy for every verdict (ready `e2e-audit-clean`,
/// fix-first `e2e-audit-wouldblock` and `e2e-audit-failing`, enforced
/// `e2e-enforce-clean`,
/// enforced-failing `e2e-enforce-team`, partly-enforced `e2e-override` and
/// `e2e-selector`, none `e2e-mutate`), Enforce overrides by namespace glob and
/// by namespaceSelector, compliant, noncompliant and excepted pods for every
/// control, blocked admissions with and without a control, and audit
/// admission failures.
pub fn write_fixtures(dir: &Path) {
    copy_tree(&repo().join("examples"), dir);
    let gen_dir = dir.join("e2e-generated");
    std::fs::create_dir_all(&gen_dir).expect("mkdir");
    let list = |items: Vec<Value>| json!({"apiVersion": "v1", "kind": "List", "items": items});
    let mut reports = vec![pod_report(0, "e2e-bad", true)];
    for i in 0..8 {
        reports.push(pod_report(i + 1, &format!("e2e-good-{i}"), false));
    }
    reports.push(excepted_pod_report(9, "e2e-excepted"));
    reports.push(audited_pod_report(10, "e2e-audited-bad"));
    let policies = vec![
        cluster_policy(
            "e2e-enforce-team",
            "E2E Require Team",
            "E2E Enforced",
            "high",
            "Enforce",
            "validate-team",
        ),
        cluster_policy(
            "e2e-audit-clean",
            "E2E Require Owner",
            "E2E Audit",
            "low",
            "Audit",
            "validate-owner",
        ),
        cluster_policy(
            "e2e-audit-wouldblock",
            "E2E Require Cost Center",
            "E2E Audit",
            "low",
            "Audit",
            "validate-cost-center",
        ),
        cluster_policy(
            "e2e-audit-failing",
            "E2E Require Version",
            "E2E Audit",
            "low",
            "Audit",
            "validate-version",
        ),
        cluster_policy(
            "e2e-enforce-clean",
            "E2E Require App",
            "E2E Enforced",
            "low",
            "Enforce",
            "validate-app",
        ),
        overridden_policy(
            "e2e-override",
            "validate-tier",
            "E2E Override",
            json!({"action": "Enforce", "namespaces": ["e2e-enf*"]}),
        ),
        overridden_policy(
            "e2e-selector",
            "validate-contact",
            "E2E Override",
            json!({"action": "Enforce", "namespaceSelector": {"matchLabels": {"e2e/enforce": "true"}}}),
        ),
        mutate_only_policy("e2e-mutate"),
    ];
    let namespaces = vec![
        namespace(NS, json!({"e2e/enforce": "true"})),
        namespace(NS_AUDITED, json!({})),
    ];
    let events = vec![
        blocked_event(1, "e2e-enforce-team", "validate-team", 4),
        blocked_event(2, "require-requests-limits", "validate-resources", 2),
        blocked_event(
            3,
            "disallow-privileged-containers",
            "privileged-containers",
            1,
        ),
        audit_failure_event(1, "e2e-audit-wouldblock", "validate-cost-center"),
        audit_failure_event(2, "e2e-audit-wouldblock", "validate-cost-center"),
    ];
    for (file, items) in [
        ("reports.json", reports),
        ("policies.json", policies),
        ("namespaces.json", namespaces),
        ("events.json", events),
    ] {
        let text = serde_json::to_string_pretty(&list(items)).expect("json");
        std::fs::write(gen_dir.join(file), text).expect("write fixture");
    }
}
