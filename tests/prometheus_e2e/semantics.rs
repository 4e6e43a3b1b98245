//! Numbers and meanings in the per-cluster Prometheus of
//! tests/prometheus_e2e.rs: the replicas are not counted twice, the alerts
//! see the fixture, and the rollout plan gives every generated policy the
//! verdict, the columns and the modes the fixture says.

use std::collections::{BTreeMap, BTreeSet};

use policyreport_test_support::metrics::Metrics;
use serde_json::Value;

use crate::common::e2e_fixtures::{NS, NS_AUDITED};
use crate::common::monitoring::{panel_expr, panel_exprs, substitute, variables};
use crate::common::prometheus::{Prometheus, value};

/// Numbers and meanings, checked in the per-cluster Prometheus: the replicas
/// are not counted twice, and the rollout panels list the right policies.
pub fn check_semantics(prom: &Prometheus, served: &Metrics) -> Vec<String> {
    let mut failures = Vec::new();
    let vars = variables(".*");
    let one = |q: &str| -> Result<f64, String> {
        let s = prom.query(q)?;
        match s.as_slice() {
            [x] => Ok(value(x)),
            other => Err(format!("{} samples for {q}", other.len())),
        }
    };
    let total = served.sum("policyreport_results");
    match (
        one("sum(policyreport_results)"),
        one("sum(max without (instance, pod) (policyreport_results))"),
    ) {
        (Ok(raw), Ok(merged)) => {
            if (raw - 2.0 * total).abs() > 1e-9 {
                failures.push(format!(
                    "two replicas should be scraped: sum {raw}, one exporter {total}"
                ));
            }
            if (merged - total).abs() > 1e-9 {
                failures.push(format!("merged sum {merged} != one exporter's {total}"));
            }
        }
        (a, b) => failures.push(format!("sums: {a:?} {b:?}")),
    }
    // fail / (pass + fail) from one exporter's /metrics, in one namespace or all.
    let rate = |namespace: Option<&str>| -> f64 {
        let count = |result: &str| -> f64 {
            served
                .family("policyreport_results")
                .iter()
                .filter(|(l, _)| l.iter().any(|(k, v)| k == "result" && v == result))
                .filter(|(l, _)| {
                    namespace.is_none_or(|ns| l.iter().any(|(k, v)| k == "namespace" && v == ns))
                })
                .map(|(_, v)| v)
                .sum()
        };
        count("fail") / (count("fail") + count("pass"))
    };
    let overview = "Policy reports / Compliance overview";
    let expected = rate(Some(NS));
    match one(&substitute(&panel_expr(overview, "Violation rate"), &vars)) {
        Ok(v) if (v - expected).abs() < 1e-9 => {}
        other => failures.push(format!(
            "overview violation rate in {NS}: {other:?}, expected fail/(pass+fail) = {expected}"
        )),
    }
    let expected = rate(None);
    match one("cluster:policyreport_violation_rate:ratio") {
        Ok(v) if (v - expected).abs() < 1e-9 => {}
        other => failures.push(format!(
            "cluster:policyreport_violation_rate:ratio = {other:?}, expected {expected}"
        )),
    }

    let rollout = "Policy reports / Rollout";
    let policies_in = |panel: &str| -> Result<BTreeSet<String>, String> {
        let s = prom.query(&substitute(&panel_expr(rollout, panel), &vars))?;
        Ok(s.iter()
            .filter_map(|x| x["metric"]["policy"].as_str().map(str::to_owned))
            .collect())
    };
    match policies_in("Ready to enforce: audit policies with no failure in 7 days") {
        Ok(p) if p.contains("e2e-audit-clean") && !p.contains("e2e-enforce-team") => {}
        other => failures.push(format!(
            "ready to enforce should list e2e-audit-clean only among the e2e policies: {other:?}"
        )),
    }
    match policies_in("Enforced policies with failing resources") {
        Ok(p) if p.contains("e2e-enforce-team") && !p.contains("e2e-audit-clean") => {}
        other => failures.push(format!(
            "enforced policies with failing resources should list e2e-enforce-team: {other:?}"
        )),
    }
    failures.extend(check_rollout(prom, served));

    // The alerts see the fixture: the e2e namespace is above the violation
    // target with an enforced policy, and every control is below 100%.
    match prom.get_json("/api/v1/alerts") {
        Err(e) => failures.push(e),
        Ok(data) => {
            let alerts = data["alerts"].as_array().cloned().unwrap_or_default();
            let has = |name: &str, label: &str, value: &str| {
                alerts
                    .iter()
                    .any(|a| a["labels"]["alertname"] == name && a["labels"][label] == value)
            };
            if !has("PolicyReportViolationRateHigh", "namespace", NS) {
                failures.push(format!("no PolicyReportViolationRateHigh alert for {NS}"));
            }
            // e2e-override fails in NS_AUDITED too, but only audits there.
            if has("PolicyReportViolationRateHigh", "namespace", NS_AUDITED) {
                failures.push(format!(
                    "PolicyReportViolationRateHigh fires for {NS_AUDITED}, where no policy is enforced"
                ));
            }
            // Audit admission failures of an Audit policy, new within the hour.
            if !has("PolicyReportWouldBlock", "policy", "e2e-audit-wouldblock") {
                failures.push("no PolicyReportWouldBlock alert for e2e-audit-wouldblock".into());
            }
            let would_block: Vec<&Value> = alerts
                .iter()
                .filter(|a| a["labels"]["alertname"] == "PolicyReportWouldBlock")
                .filter(|a| a["labels"]["policy"] != "e2e-audit-wouldblock")
                .filter(|a| {
                    a["labels"]["policy"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("e2e-"))
                })
                .collect();
            if !would_block.is_empty() {
                failures.push(format!(
                    "PolicyReportWouldBlock for policies without audit admission failures: {would_block:?}"
                ));
            }
            for control in ["resource-limits", "approved-registries", "secure-context"] {
                if !has("PolicyReportControlBelowTarget", "control", control) {
                    failures.push(format!(
                        "no PolicyReportControlBelowTarget alert for {control}"
                    ));
                }
            }
            for quiet in [
                // Prometheus has no data from an hour or 7 days ago.
                "PolicyReportRegression",
                "PolicyReportReadyToEnforce",
                "PolicyReportExporterDown",
                "PolicyReportExporterAbsent",
                "PolicyReportExporterNotSynced",
                "PolicyReportInvalidReports",
            ] {
                if alerts.iter().any(|a| a["labels"]["alertname"] == quiet) {
                    failures.push(format!("{quiet} is active against healthy exporters"));
                }
            }
        }
    }
    failures
}

/// The rollout plan against the fixtures: the verdict of every e2e policy,
/// `policy:policyreport_ready_to_enforce:bool`, "would have been blocked",
/// enforcement per namespace, and excepted resources.
fn check_rollout(prom: &Prometheus, served: &Metrics) -> Vec<String> {
    let mut failures = Vec::new();
    let vars = variables(".*");
    let mut all_ns = variables(".*");
    all_ns.insert("namespace", ".*".to_owned());
    let rollout = "Policy reports / Rollout";
    // label values of the samples of a query, keyed by policy
    let by_policy = |expr: &str, label: &str| -> Result<BTreeMap<String, String>, String> {
        Ok(prom
            .query(expr)?
            .iter()
            .filter_map(|x| {
                let policy = x["metric"]["policy"].as_str()?.to_owned();
                let v = if label == "value" {
                    value(x).to_string()
                } else {
                    x["metric"][label].as_str().unwrap_or_default().to_owned()
                };
                Some((policy, v))
            })
            .filter(|(p, _)| p.starts_with("e2e-"))
            .collect())
    };
    let expect =
        |what: &str, got: Result<BTreeMap<String, String>, String>, want: &[(&str, &str)]| {
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            match got {
                Ok(got) if got == want => None,
                other => Some(format!("{what}: {other:?}, expected {want:?}")),
            }
        };

    // The verdict per policy, with summary's rules.
    let plan = panel_exprs(rollout, "Rollout plan: verdict per policy");
    failures.extend(expect(
        "rollout plan verdicts",
        by_policy(&substitute(&plan[0], &all_ns), "verdict"),
        &[
            ("e2e-audit-clean", "ready"),
            ("e2e-audit-wouldblock", "fix-first"),
            ("e2e-audit-failing", "fix-first"),
            ("e2e-enforce-clean", "enforced"),
            ("e2e-enforce-team", "enforced-failing"),
            ("e2e-override", "partly-enforced"),
            ("e2e-selector", "partly-enforced"),
            ("e2e-mutate", "none"),
        ],
    ));
    // Its columns: failing results (fail + warn + error), audit admission
    // failures and blocked admissions in the range (here 1 h, so every
    // counter is younger than the range and counts with its whole value).
    let served_sum = |family: &str, policy: &str| -> f64 {
        served
            .family(family)
            .iter()
            .filter(|(l, _)| l.iter().any(|(k, v)| k == "policy" && v == policy))
            .filter(|(l, _)| {
                family != "policyreport_results"
                    || l.iter().any(|(k, v)| {
                        k == "result" && ["fail", "warn", "error"].contains(&v.as_str())
                    })
            })
            .map(|(_, v)| v)
            .sum()
    };
    for (column, family) in [
        (1, "policyreport_results"),
        (2, "policyreport_admission_audit_failures_total"),
        (3, "policyreport_admission_blocked_total"),
    ] {
        let want: Vec<(String, String)> = [
            "e2e-audit-clean",
            "e2e-audit-wouldblock",
            "e2e-audit-failing",
            "e2e-enforce-clean",
            "e2e-enforce-team",
            "e2e-override",
            "e2e-selector",
            "e2e-mutate",
        ]
        .iter()
        // + 0.0: an empty f64 sum is -0, which prints as "-0".
        .map(|p| ((*p).to_owned(), (served_sum(family, p) + 0.0).to_string()))
        .collect();
        let want: Vec<(&str, &str)> = want.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        failures.extend(expect(
            &format!("rollout plan column {family}"),
            by_policy(&substitute(&plan[column], &all_ns), "value"),
            &want,
        ));
    }
    if served_sum(
        "policyreport_admission_audit_failures_total",
        "e2e-audit-wouldblock",
    ) != 2.0
    {
        failures.push(format!(
            "the exporter should count the two audit admission failures of e2e-audit-wouldblock: {:?}",
            served.family("policyreport_admission_audit_failures_total")
        ));
    }

    // The recording rule: 1 for the clean Audit policy, 0 for the Audit
    // policies with audit admission failures or failing results, no series
    // for other modes.
    failures.extend(expect(
        "policy:policyreport_ready_to_enforce:bool",
        by_policy("policy:policyreport_ready_to_enforce:bool", "value"),
        &[
            ("e2e-audit-clean", "1"),
            ("e2e-audit-wouldblock", "0"),
            ("e2e-audit-failing", "0"),
        ],
    ));

    // Would have been blocked, with the policy's mode.
    failures.extend(expect(
        "would have been blocked (mode)",
        by_policy(
            &substitute(
                &panel_expr(
                    rollout,
                    "Would have been blocked: audit admission failures by policy",
                ),
                &vars,
            ),
            "mode",
        ),
        &[("e2e-audit-wouldblock", "audit")],
    ));

    // Enforcement per namespace: e2e-override is enforced in NS (glob
    // override) and audits in NS_AUDITED; e2e-selector is enforced in NS
    // through its namespaceSelector.
    let enforced = substitute(
        &panel_expr(rollout, "Enforced policies with failing resources"),
        &all_ns,
    );
    match prom.query(&enforced) {
        Err(e) => failures.push(e),
        Ok(s) => {
            let rows: BTreeSet<(String, String)> = s
                .iter()
                .map(|x| {
                    let l = |k: &str| x["metric"][k].as_str().unwrap_or_default().to_owned();
                    (l("policy"), l("namespace"))
                })
                .filter(|(p, _)| p.starts_with("e2e-"))
                .collect();
            let want: BTreeSet<(String, String)> = [("e2e-enforce-team", NS), ("e2e-override", NS)]
                .iter()
                .map(|(p, n)| ((*p).to_owned(), (*n).to_owned()))
                .collect();
            if rows != want {
                failures.push(format!(
                    "enforced policies with failing resources, per namespace: {rows:?}, expected {want:?}"
                ));
            }
        }
    }
    let modes = |policy: &str| -> Result<BTreeMap<String, String>, String> {
        Ok(prom
            .query(&format!(
                "max by (namespace, mode) (policyreport_policy_namespace_mode{{policy=\"{policy}\"}})"
            ))?
            .iter()
            .map(|x| {
                let l = |k: &str| x["metric"][k].as_str().unwrap_or_default().to_owned();
                (l("namespace"), l("mode"))
            })
            .collect())
    };
    for (policy, want) in [
        ("e2e-override", vec![(NS, "enforce"), (NS_AUDITED, "audit")]),
        ("e2e-selector", vec![(NS, "enforce")]),
    ] {
        let want: BTreeMap<String, String> = want
            .into_iter()
            .map(|(n, m)| (n.to_owned(), m.to_owned()))
            .collect();
        match modes(policy) {
            Ok(got) if got == want => {}
            other => failures.push(format!(
                "policyreport_policy_namespace_mode of {policy}: {other:?}, expected {want:?}"
            )),
        }
    }

    // The namespace detail: each policy's mode in NS after its overrides.
    failures.extend(expect(
        "namespace detail: policy modes in NS",
        by_policy(
            &substitute(
                &panel_expr(
                    "Policy reports / Namespace detail",
                    "Policy modes in this namespace",
                ),
                &vars,
            ),
            "mode",
        ),
        &[
            ("e2e-audit-clean", "audit"),
            ("e2e-audit-wouldblock", "audit"),
            ("e2e-audit-failing", "audit"),
            ("e2e-enforce-clean", "enforce"),
            ("e2e-enforce-team", "enforce"),
            ("e2e-override", "enforce"),
            ("e2e-selector", "enforce"),
        ],
    ));

    // Excepted: e2e-excepted is all skip, one excepted pod per control in NS,
    // shown next to each control's percentage.
    for (dashboard, panel, control) in [
        (
            "Policy reports / Compliance overview",
            "Pods with resource limits",
            "",
        ),
        (
            "Policy reports / Compliance overview",
            "Images from approved registries",
            "",
        ),
        (
            "Policy reports / Compliance overview",
            "Pods with a secure context",
            "",
        ),
        (
            "Policy reports / Compliance overview",
            "Compliance per control",
            "secure-context",
        ),
        (
            "Policy reports / Namespace detail",
            "Compliance per control",
            "resource-limits",
        ),
        (
            rollout,
            "Controls: compliance and exceptions",
            "approved-registries",
        ),
    ] {
        let exprs = panel_exprs(dashboard, panel);
        let Some(expr) = exprs.iter().find(|e| e.contains("status=\"excepted\"")) else {
            failures.push(format!("{dashboard} / {panel}: no excepted count"));
            continue;
        };
        let got = prom.query(&substitute(expr, &vars)).map(|s| {
            s.iter()
                .filter(|x| control.is_empty() || x["metric"]["control"] == control)
                .map(value)
                .collect::<Vec<f64>>()
        });
        match got {
            Ok(v) if v == [1.0] => {}
            other => failures.push(format!(
                "{dashboard} / {panel}: excepted in {NS} {other:?}, expected [1.0]"
            )),
        }
    }
    failures
}
