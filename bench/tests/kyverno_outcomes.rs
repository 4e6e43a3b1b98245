//! Blocked or let through, with real Kyverno (`scripts/cluster start DIR
//! --kyverno`): a `Deny` ValidatingPolicy beside an `Audit` one, and an
//! Enforce ClusterPolicy beside an Audit one, the guide's week-3 cluster.
//! Kyverno 1.19.1 writes "(blocked)" Events for every failing CEL policy of a
//! webhook call that has any Deny policy, even for Pods it admitted; the
//! exporter must count exactly the refusals the API server gave, per policy,
//! and the rest as audit failures. Each expectation comes from what the test
//! saw `kubectl create` do. `#[ignore]`d in a plain `cargo test`;
//! `scripts/test` runs it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use policyreport_bench::exporter::{Build, exporter_binary};
use policyreport_bench::prometheus::{Prometheus, deploy_rules};
use policyreport_bench::real::{RealCluster, eventually};
use policyreport_test_support::exporter::Exporter;
use policyreport_test_support::metrics::samples;
use serde_json::{Value, json};

const NS: &str = "mixed";

fn validating_policy(name: &str, action: &str, expression: &str) -> Value {
    json!({
        "apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
        "metadata": {"name": name},
        "spec": {
            "validationActions": [action],
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
            "validations": [{"expression": expression, "message": format!("{name} failed")}],
        },
    })
}

fn cluster_policy(name: &str, action: &str, pattern: Value) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "validationFailureAction": action,
            "background": false,
            "rules": [{
                "name": "check",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"message": format!("{name} failed"), "pattern": pattern},
            }],
        },
    })
}

fn policies() -> Vec<Value> {
    vec![
        validating_policy(
            "deny-privileged",
            "Deny",
            "object.spec.containers.all(c, !has(c.securityContext) || \
             !has(c.securityContext.privileged) || c.securityContext.privileged == false)",
        ),
        validating_policy(
            "audit-limits",
            "Audit",
            "object.spec.containers.all(c, has(c.resources) && has(c.resources.limits))",
        ),
        cluster_policy(
            "enforce-registry",
            "Enforce",
            json!({"spec": {"containers": [{"image": "registry.example.com/*"}]}}),
        ),
        cluster_policy(
            "audit-team-label",
            "Audit",
            json!({"metadata": {"labels": {"team": "?*"}}}),
        ),
    ]
}

/// A Pod that fails exactly the checks named.
fn pod(name: &str, fails: &[&str]) -> Value {
    let image = if fails.contains(&"registry") {
        "docker.io/library/nginx:1"
    } else {
        "registry.example.com/app:1"
    };
    let mut container = json!({"name": "app", "image": image});
    if !fails.contains(&"limits") {
        container["resources"] = json!({"limits": {"memory": "64Mi"}});
    }
    if fails.contains(&"privileged") {
        container["securityContext"] = json!({"privileged": true});
    }
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"team": "a"}},
        "spec": {"containers": [container]}});
    if fails.contains(&"label") {
        p["metadata"]["labels"] = json!({});
    }
    p
}

/// Creates the Pod; the policies named in the API server's refusal, if any.
fn create(c: &RealCluster, pod: &Value, dry_run: bool) -> Result<Vec<&'static str>> {
    let mut args = vec!["create", "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    match c.kubectl_stdin(&args, &pod.to_string()) {
        Ok(_) => Ok(Vec::new()),
        Err(e) if e.to_string().contains("denied the request") => {
            let text = e.to_string();
            Ok([
                "deny-privileged",
                "audit-limits",
                "enforce-registry",
                "audit-team-label",
            ]
            .into_iter()
            .filter(|p| text.contains(p))
            .collect())
        }
        Err(e) => Err(e),
    }
}

/// Waits until Kyverno's admission controller has the ClusterPolicies
/// ready in their modes and the ValidatingPolicies ready.
fn kyverno_has_policies(c: &RealCluster) -> Result<()> {
    c.kyverno_has_modes(&[
        ("enforce-registry", "enforce"),
        ("audit-team-label", "audit"),
    ])?;
    eventually(
        "Kyverno's ValidatingPolicies",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || {
            for name in ["deny-privileged", "audit-limits"] {
                let out = c
                    .kubectl(&[
                        "get",
                        "validatingpolicies.policies.kyverno.io",
                        name,
                        "-o",
                        "json",
                    ])
                    .map_err(|e| e.to_string())?;
                let v: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
                if v["status"]["conditionStatus"]["ready"] != true {
                    return Err(format!("{name}: {}", v["status"]));
                }
            }
            Ok(())
        },
    )?;
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}

/// The exporter's admission counters per policy.
fn counters(e: &Exporter, family: &str) -> Result<BTreeMap<String, u64>, String> {
    let text = e.metrics().map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (labels, v) in samples(&text, family) {
        if labels.get("namespace").is_some_and(|n| n == NS) {
            let policy = labels.get("policy").cloned().unwrap_or_default();
            *out.entry(policy).or_default() += v as u64;
        }
    }
    Ok(out)
}

fn expect(
    e: &Exporter,
    blocked: &BTreeMap<String, u64>,
    audit: &BTreeMap<String, u64>,
) -> Result<()> {
    eventually(
        "the exporter's admission counters",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let got_blocked = counters(e, "policyreport_admission_blocked_total")?;
            let got_audit = counters(e, "policyreport_admission_audit_failures_total")?;
            if &got_blocked == blocked && &got_audit == audit {
                Ok(())
            } else {
                Err(format!(
                    "blocked {got_blocked:?} (want {blocked:?}), audit failures {got_audit:?} (want {audit:?})"
                ))
            }
        },
    )?;
    Ok(())
}

#[test]
#[ignore = "needs Go and real Kyverno: scripts/test runs it"]
fn mixed_deny_and_audit_policies_count_the_refusals_the_api_server_gave() -> Result<()> {
    let c = RealCluster::start(&["--kyverno"])?;
    c.kubectl(&["create", "namespace", NS])?;
    for p in policies() {
        c.apply(&p)?;
    }
    kyverno_has_policies(&c)?;
    let bin = exporter_binary(Build::Reuse)?;
    let kc = c.exporter_kubeconfig().display().to_string();
    let e = Exporter::spawn(&bin, &[], &[("KUBECONFIG", kc.as_str())])?;
    e.wait_ready(Duration::from_secs(120), Duration::from_millis(200))?;

    // Each Pod with the checks it fails, and what the API server must do.
    let cases: [(&str, &[&str], &[&str]); 7] = [
        ("ok", &[], &[]),
        ("no-limits", &["limits"], &[]),
        ("privileged", &["privileged"], &["deny-privileged"]),
        (
            "privileged-no-limits",
            &["privileged", "limits"],
            &["deny-privileged"],
        ),
        ("wrong-registry", &["registry"], &["enforce-registry"]),
        ("no-label", &["label"], &[]),
        (
            "wrong-registry-no-label",
            &["registry", "label"],
            &["enforce-registry"],
        ),
    ];
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    for (name, fails, want) in cases {
        let by = create(&c, &pod(name, fails), false)?;
        if by != want {
            bail!("{name}: refused by {by:?}, expected {want:?}");
        }
        for p in by {
            *refused.entry(p.to_owned()).or_default() += 1;
        }
    }
    // What Audit let through that Enforce would refuse: audit-limits failed
    // by no-limits (admitted, though Kyverno's Event says blocked) and by
    // privileged-no-limits (refused by deny-privileged; the CEL Audit policy
    // of the same call is still evaluated); audit-team-label failed by
    // no-label (an Audit ClusterPolicy is not evaluated on a request an
    // enforcing one refused, so wrong-registry-no-label adds nothing).
    let audit: BTreeMap<String, u64> = [
        ("audit-limits".to_owned(), 2),
        ("audit-team-label".to_owned(), 1),
    ]
    .into();
    assert_eq!(
        refused,
        [
            ("deny-privileged".to_owned(), 2),
            ("enforce-registry".to_owned(), 2)
        ]
        .into()
    );
    expect(&e, &refused, &audit)?;
    eprintln!("blocked {refused:?}, audit failures {audit:?}: as the API server answered");

    // The same, counted by an exporter that lists the Events after the fact
    // (the Events may now come before the policies).
    drop(e);
    let e = Exporter::spawn(&bin, &[], &[("KUBECONFIG", kc.as_str())])?;
    e.wait_ready(Duration::from_secs(120), Duration::from_millis(200))?;
    expect(&e, &refused, &audit)?;

    // A refused server-side dry run (what `kubectl diff` sends) writes the
    // same Event as a real refusal, with nothing to tell them apart: the
    // exporter's count grows by one though nothing was refused for real.
    let by = create(&c, &pod("preview", &["privileged"]), true)?;
    assert_eq!(by, ["deny-privileged"]);
    let mut with_preview = refused.clone();
    *with_preview
        .entry("deny-privileged".to_owned())
        .or_default() += 1;
    expect(&e, &with_preview, &audit)?;

    // Where Prometheus also scrapes Kyverno's own counters, the dashboards
    // count from them. More previews: a refused one of the Enforce
    // ClusterPolicy, admitted ones failing each Audit policy.
    let tmp = tempfile::tempdir()?;
    let prom = Prometheus::start(&tmp.path().join("prometheus"), &[deploy_rules(tmp.path())?])?;
    prom.set_targets(&[e.addr])?;
    let port: u16 = c.env("KYVERNO_ADMISSION_METRICS_PORT")?.parse()?;
    prom.set_kyverno_target(([127, 0, 0, 1], port).into())?;
    let previews: [(&str, &[&str], &[&str]); 3] = [
        ("preview-registry", &["registry"], &["enforce-registry"]),
        ("preview-limits", &["limits"], &[]),
        ("preview-label", &["label"], &[]),
    ];
    for (name, fails, want) in previews {
        let by = create(&c, &pod(name, fails), true)?;
        if by != want {
            bail!("{name} (dry run): refused by {by:?}, expected {want:?}");
        }
    }
    // The exporter's Events count every preview, like a real request.
    *with_preview.get_mut("enforce-registry").expect("counted") += 1;
    let mut audit_with_previews = audit.clone();
    for p in ["audit-limits", "audit-team-label"] {
        *audit_with_previews.get_mut(p).expect("counted") += 1;
    }
    expect(&e, &with_preview, &audit_with_previews)?;
    // The dashboards leave out the ClusterPolicies' previews (Kyverno labels
    // them dry_run="true"); the CEL kinds' counters do not say, so their
    // previews still count: deny-privileged's refused one, audit-limits'
    // admitted one.
    let mut dash_blocked = refused.clone();
    *dash_blocked.get_mut("deny-privileged").expect("counted") += 1;
    let mut dash_audit = audit.clone();
    *dash_audit.get_mut("audit-limits").expect("counted") += 1;
    let per_policy = |title: &str| -> Result<BTreeMap<String, u64>, String> {
        let mut out = BTreeMap::new();
        for s in prom
            .panel("policyreport-rollout.json", title, "A", "1h")
            .map_err(|e| format!("{e:#}"))?
        {
            let policy = s.labels.get("policy").cloned().unwrap_or_default();
            *out.entry(policy).or_default() += s.value as u64;
        }
        Ok(out)
    };
    eventually(
        "the rollout dashboard's admissions through Prometheus",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let blocked = per_policy("Blocked admissions by policy and rule")?;
            let audit = per_policy("Would have been blocked by namespace and rule")?;
            if blocked == dash_blocked && audit == dash_audit {
                Ok(())
            } else {
                Err(format!(
                    "blocked {blocked:?} (want {dash_blocked:?}), would have been blocked {audit:?} (want {dash_audit:?})"
                ))
            }
        },
    )?;
    eprintln!("dashboards: blocked {dash_blocked:?}, would have been blocked {dash_audit:?}");
    if let Some(dir) = std::env::var_os("KYVERNO_OUTCOMES_CAPTURE") {
        capture(&c, std::path::Path::new(&dir))?;
    }
    Ok(())
}

/// Writes the policies and Kyverno's admission Events of this run as
/// `kubectl get -o json` Lists, for `tests/crosscheck/kyverno-1.19.1-mixed/`:
/// the cluster's snapshot, less what the fixture does not pin.
fn capture(c: &RealCluster, dir: &std::path::Path) -> Result<()> {
    let snapshot = tempfile::tempdir()?;
    c.snapshot(snapshot.path())?;
    let read = |name: &str| -> Result<Value> {
        Ok(serde_json::from_str(&std::fs::read_to_string(
            snapshot.path().join(name),
        )?)?)
    };
    let mut events = read("events.json")?;
    if let Some(items) = events["items"].as_array_mut() {
        items.retain(|e| e["reportingComponent"] == "kyverno-admission");
    }
    let mut policies = Vec::new();
    for name in [
        "clusterpolicies.kyverno.io.json",
        "validatingpolicies.policies.kyverno.io.json",
    ] {
        policies.extend(
            read(name)?["items"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("events.json"),
        serde_json::to_string_pretty(&events)?,
    )?;
    let policies = json!({"apiVersion": "v1", "kind": "List", "items": policies});
    std::fs::write(
        dir.join("policies.json"),
        serde_json::to_string_pretty(&policies)?,
    )?;
    Ok(())
}
